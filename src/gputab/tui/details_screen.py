"""A job or a process in full: the whole tag and command line that the tables cap, and every figure."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from gputab.live.frame import JobView, ProcessView
from gputab.tui import format as fmt
from gputab.tui.literal import literal


def job_details(job: JobView, processes: int | None = None) -> list[tuple[str, str]]:
    """(name, value) lines of a job; the values are outside text where they quote it (the tag).

    Args:
        processes: how many processes the job holds now (untagged processes of one user and command on several
            GPUs are one job); None: not known here.
    """
    return [
        ("tag", job.tag),
        ("processes now", "-" if processes is None else str(processes)),
        ("cost", fmt.money(job.cost_usd) + (" (a GPU priced at the default rate)" if job.unknown_price else "")),
        ("burn rate", fmt.rate(job.burn_rate_usd_per_hour)),
        ("GPUs", ",".join(map(str, job.gpus)) or "-"),
        ("GPU util (whole GPUs, average)", fmt.pct(job.avg_utilization, fraction=True)),
        ("VRAM now", fmt.gib(job.vram_bytes)),
        ("GPU-hours", fmt.hours(job.gpu_hours)),
        ("effective GPU-hours", fmt.hours(job.effective_gpu_hours)),
        ("samples", fmt.count(job.samples)),
        ("$ per 1k samples", fmt.money(job.cost_per_1k_samples_usd)),
        ("tokens", fmt.count(job.tokens)),
        ("$ per 1M tokens", fmt.money(job.cost_per_1m_tokens_usd)),
        ("wasted", "-" if job.waste_usd is None else f"{fmt.money(job.waste_usd)} ({fmt.pct(job.waste_pct)})"),
        ("why", job.waste_top_reason or "-"),
        ("evidence", job.waste_evidence or "-"),
    ]


def process_details(p: ProcessView) -> list[tuple[str, str]]:
    """(name, value) lines of a process on a GPU."""
    return [
        ("pid", str(p.pid)),
        ("user", p.user or "?"),
        ("GPU", str(p.gpu_index)),
        ("VRAM", fmt.gib(p.used_memory_bytes)),
        ("SM", fmt.pct(p.sm_pct)),
        ("tag", p.tag or "?"),
        ("tag from", p.source),
        ("command (redacted)", p.command),
    ]


class DetailsScreen(ModalScreen[None]):
    """Name/value lines, values wrapped in full (literal text); escape, enter or q closes it."""

    DEFAULT_CSS = """
    DetailsScreen { align: center middle; }
    #details { width: 90%; max-width: 100; height: auto; max-height: 90%; border: round $primary;
               background: $surface; padding: 0 1; }
    #details-heading { text-style: bold; }
    """
    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, heading: str, lines: list[tuple[str, str]]) -> None:
        super().__init__()
        self.heading = heading
        self.lines = lines

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="details"):
            yield Label(self.heading, id="details-heading")
            width = max(len(name) for name, _ in self.lines) + 2
            for name, value in self.lines:
                yield Static(Text.assemble((name.ljust(width), "dim"), literal(value, wrap=True)))
            yield Static(Text("escape: close", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
