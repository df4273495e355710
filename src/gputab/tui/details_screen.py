"""A job or a process in full: the whole tag and command line that the tables cap, and every figure.

A job's details live: :class:`JobDetailsScreen` is handed every frame while it is open (the jobs view forwards
them), so its figures and processes are those of the row behind it, tick for tick.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from gputab.cost.totals import reported_tokens
from gputab.live.frame import Frame, JobView, ProcessView, process_counts
from gputab.live.sm_share import own_sm_share
from gputab.tui import format as fmt
from gputab.tui.literal import literal
from gputab.tui.widgets.jobs import eta, gpu_list


def forecast_text(job: JobView) -> str:
    """The forecast in words: projected cost and ETA, or why there is none."""
    state = job.forecast_state
    if state is None:
        return "- (the job reports no progress)"
    done = "" if job.progress_fraction is None else f", {job.progress_fraction * 100:.0f}% done"
    if state == "running" and job.projected_cost_usd is not None and job.eta_seconds is not None:
        return f"{fmt.money(job.projected_cost_usd)} at the end, in {eta(job.eta_seconds)}{done}"
    words = {"unknown": "measuring its rate", "stalled": "stalled", "done": "done"}
    return words.get(state, state) + done


def tokens_text(job: JobView) -> str:
    """The job's tokens, with the prompt and generated tokens its inference servers counted when known, and what
    it reported itself (no kind) when there is some beside them."""
    if job.prompt_tokens is None and job.generated_tokens is None:
        return fmt.count(job.tokens)
    prompt, generated = job.prompt_tokens or 0, job.generated_tokens or 0
    reported = reported_tokens(job.tokens or 0, prompt, generated)
    kinds = f"prompt {fmt.count(prompt)}, generated {fmt.count(generated)}"
    return f"{fmt.count(job.tokens)} ({kinds}{f', reported {fmt.count(reported)}' if reported > 0 else ''})"


def job_details(job: JobView, own_sm: float | None = None, processes: int | None = None) -> list[tuple[str, str]]:
    """(name, value) lines of a job: every figure of its row and more; the values are outside text where they quote
    it (the tag, the reasons).

    Args:
        own_sm: the job's own share of its GPUs' SMs now.
        processes: how many processes the job holds now (untagged processes of one user and command on several
            GPUs are one job); None: not known here.
    """
    wasted = "-" if job.waste_usd is None else f"{fmt.money(job.waste_usd)} ({fmt.pct(job.waste_pct)})"
    reasons = ", ".join(f"{reason} {fmt.money(usd)}" for reason, usd in job.waste_by_reason if usd > 0) or "-"
    per_1m = fmt.money(job.cost_per_1m_tokens_usd) if job.cost_per_1m_tokens_usd is not None else "-"
    per_1k = fmt.money(job.cost_per_1k_samples_usd) if job.cost_per_1k_samples_usd is not None else "-"
    return [
        ("tag", job.tag),
        ("processes now", "-" if processes is None else str(processes)),
        ("cost", fmt.money(job.cost_usd) + (" (a GPU priced at the default rate)" if job.unknown_price else "")),
        ("burn rate", fmt.rate(job.burn_rate_usd_per_hour)),
        ("forecast", forecast_text(job)),
        ("GPUs", gpu_list(job.gpus, job.mig_instances)),
        ("GPU util (whole GPUs, average)", fmt.pct(job.avg_utilization, fraction=True)),
        ("own SM (its processes, now)", "-" if job.special else fmt.pct(own_sm)),
        ("VRAM now / peak", f"{fmt.gib(job.vram_bytes)} / {fmt.gib(job.peak_vram_bytes)}"),
        ("GPU-hours", fmt.hours(job.gpu_hours)),
        ("effective GPU-hours", fmt.hours(job.effective_gpu_hours)),
        ("$ per effective GPU-hour", fmt.money(job.cost_per_effective_gpu_hour_usd)),
        ("energy", "n/a" if job.energy_kwh is None else f"{job.energy_kwh:.3f} kWh"),
        ("samples", fmt.count(job.samples)),
        ("$ per 1k samples", per_1k),
        ("tokens", tokens_text(job)),
        ("$ per 1M tokens", per_1m),
        ("busy", fmt.money(job.busy_usd) if job.busy_usd is not None else "-"),
        ("wasted", wasted),
        ("waste by reason", reasons),
        ("why", job.waste_top_reason or "-"),
        ("evidence", job.waste_evidence or "-"),
    ]


def job_processes(job: JobView, frame: Frame) -> list[tuple[str, str]]:
    """(pid on GPU, what it is) lines of the job's processes now: user, SM %, VRAM and the redacted command."""
    procs = sorted((p for p in frame.processes if p.tag == job.tag), key=lambda p: (p.gpu_index, p.pid))
    return [
        (
            f"{p.pid} on GPU {p.gpu_index}",
            f"{p.user or '?'}  SM {fmt.pct(p.sm_pct)}  VRAM {fmt.gib(p.used_memory_bytes)}  {p.command}",
        )
        for p in procs
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
    """Name/value lines, values wrapped in full (literal text) under their own column; escape, enter or q closes it."""

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
            yield Static(id="details-lines")
            yield Static(Text("escape: close", style="dim"))

    def on_mount(self) -> None:
        self.fill()

    def on_resize(self) -> None:
        self.fill()

    def fill(self) -> None:
        """Lay the lines out for the terminal's width now."""
        width = max(len(name) for name, _ in self.lines) + 2
        self.query_one("#details-lines", Static).update(_name_value_lines(self.lines, width, self.value_cells(width)))

    def value_cells(self, name_cells: int) -> int:
        """Cells a value's lines get beside the names: the dialog is 90 % of the screen and 100 cells at most, less
        its border, its padding and a scrollbar."""
        return max(10, min(int(self.app.size.width * 0.9), 100) - 6 - name_cells)

    def action_close(self) -> None:
        self.dismiss(None)


def _name_value_lines(lines: list[tuple[str, str]], width: int, cells: int | None = None) -> Text:
    """Names in a column ``width`` wide, each value beside its name; a value longer than ``cells`` wraps under its
    own column (a hanging indent), never back under the names."""
    out = Text()
    for n, (name, value) in enumerate(lines):
        if n:
            out.append("\n")
        out.append(name.ljust(width), style="dim")
        for k, part in enumerate(_wrapped(literal(value, wrap=True), cells)):
            if k:
                out.append("\n" + " " * width)
            out.append_text(part)
    return out


def _wrapped(text: Text, cells: int | None) -> list[Text]:
    """``text`` cut into lines of at most ``cells`` cells, at spaces where it can (a long word is cut where it must)."""
    if cells is None or text.cell_len <= cells:
        return [text]
    lines = list(text.wrap(_MEASURE, cells, overflow="fold"))
    for line in lines:
        line.rstrip()  # the space a line was cut at
    return lines


_MEASURE = Console(width=1000, color_system=None, file=io.StringIO())
"""A console only for measuring cells while wrapping (Rich's wrapping asks one for nothing else)."""


class JobDetailsScreen(DetailsScreen):
    """A job in full, live: :meth:`show` takes each new frame (the figures and processes of the row behind it).

    When the job leaves the session's jobs (it cannot: the ledger keeps every tag), the last figures stay.
    """

    def __init__(self, tag: str, frame: Frame) -> None:
        super().__init__("Job", [])
        self.tag = tag
        self.frame = frame

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="details"):
            yield Label(literal(f"Job {self.tag}"), id="details-heading")
            yield Static(id="job-figures")
            yield Label("Processes", id="job-processes-heading")
            yield Static(id="job-processes")
            yield Static(Text("updates every tick · escape: close", style="dim"))

    def fill(self) -> None:
        """Lay the job out for the terminal's width now (at mount and on resize)."""
        self.show(self.frame)

    def show(self, frame: Frame) -> None:
        """Show the job as ``frame`` has it."""
        job = next((j for j in frame.jobs if j.tag == self.tag), None)
        if job is None:
            return
        self.frame = frame
        own = own_sm_share(frame.processes, frame.gpus).get(job.tag)
        figures = job_details(job, own, process_counts(frame.processes).get(job.tag, 0))
        procs = job_processes(job, frame)
        width = max(len(name) for name, _ in figures + procs) + 2
        cells = self.value_cells(width)
        self.query_one("#job-figures", Static).update(_name_value_lines(figures, width, cells))
        self.query_one("#job-processes-heading", Label).update(f"Processes ({len(procs)})")
        box = self.query_one("#job-processes", Static)
        if procs:
            box.update(_name_value_lines(procs, width, cells))
        else:
            box.update(Text("none on a GPU now", style="dim"))
