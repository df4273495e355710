"""The jobs table: every tag of the session, most expensive first, with the figures that explain the cost."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from gputab.cost.buckets import IDLE
from gputab.live.frame import JobView
from gputab.tui import format as fmt
from gputab.tui.literal import literal
from gputab.tui.widgets.table import KeyedTable, pick_columns

UNKNOWN_MARK = "?"
"""Appended to a cost that includes a GPU priced at the default rate (model not in the price table)."""


def gpu_list(gpus: tuple[int, ...], instances: tuple[str, ...] = ()) -> str:
    """``0,1`` or ``0-3``: which GPUs a job held; a GPU in MIG mode as the instance it runs on, by its compute
    slices (``4:3g`` for ``4:3g.40gb``: the column is narrow; the GPU view has the whole profile)."""
    if instances:
        on_mig = {i.split(":", 1)[0] for i in instances}
        short = [i.split(".", 1)[0] if i.split(".", 1)[0].endswith("g") else i.rsplit(".", 1)[0] for i in instances]
        return ",".join([*(str(g) for g in gpus if str(g) not in on_mig), *short])
    if not gpus:
        return "-"
    if len(gpus) > 2 and list(gpus) == list(range(gpus[0], gpus[-1] + 1)):
        return f"{gpus[0]}-{gpus[-1]}"
    return ",".join(map(str, gpus))


def tag_cell(job: JobView, processes: int = 0, width: int | None = None) -> Text:
    """The job's tag, with ``×N`` when it holds N > 1 processes now; a tag too long for ``width`` cells is cut
    before the count, so the count always shows (``untagged:root/sl… ×2``)."""
    tag = literal(job.tag, style="dim" if job.special else "")
    if processes < 2:
        return tag
    suffix = f" ×{processes}"
    if width is not None and tag.cell_len + len(suffix) > width:
        tag.truncate(max(1, width - len(suffix)), overflow="ellipsis")
    return Text.assemble(tag, (suffix, "dim"))


def job_cells(job: JobView, own_sm: float | None = None, processes: int = 0, tag_width: int | None = None) -> tuple:
    """One row of the table. Cost, burn rate and cost per sample come first: what the user came for (and what
    an 80-column terminal shows without scrolling).

    Args:
        own_sm: the job's own processes' SM share of its GPUs now (%), None when the driver does not report it.
        processes: how many processes the job holds now (shown after the tag when more than one).
        tag_width: the tag column's width (the count stays in view when the tag is cut).
    """
    cost = Text(fmt.money(job.cost_usd) + (UNKNOWN_MARK if job.unknown_price else ""), style="bold")
    tag = tag_cell(job, processes, tag_width)
    wasted, why, evidence = waste_cells(job)
    return (
        tag,
        cost,
        fmt.rate(job.burn_rate_usd_per_hour),
        forecast_cell(job),
        forecast_cell(job, short=True),
        fmt.money(job.cost_per_1k_samples_usd) if job.cost_per_1k_samples_usd is not None else "-",
        fmt.money(job.cost_per_1m_tokens_usd) if job.cost_per_1m_tokens_usd is not None else "-",
        waste_pct_cell(job),
        gpu_list(job.gpus, job.mig_instances),
        fmt.pct(job.avg_utilization, fraction=True) if job.tag != IDLE else "-",
        fmt.pct(own_sm) if not job.special else "-",
        wasted,
        why,
        fmt.gib(job.vram_bytes) if job.vram_bytes else "-",
        fmt.hours(job.gpu_hours),
        fmt.hours(job.effective_gpu_hours),
        fmt.count(job.samples),
        evidence,
    )


def eta(seconds: float) -> str:
    """A short ETA: ``45s``, ``12m``, ``2h10m``, ``3d4h``."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def forecast_cell(job: JobView, short: bool = False) -> Text:
    """What the job will cost at completion and when (docs/forecast.md); ``-`` when it reports no progress.

    Args:
        short: ``$12.34 2h10m`` (at most 13 cells) for a narrow terminal, rather than ``$12.34 in 2h10m``.
    """
    state = job.forecast_state
    if state == "running" and job.projected_cost_usd is not None and job.eta_seconds is not None:
        return Text(f"{fmt.money(job.projected_cost_usd)}{' ' if short else ' in '}{eta(job.eta_seconds)}")
    if state in ("unknown", "stalled", "done"):
        return Text({"unknown": "measuring", "stalled": "stalled", "done": "done"}[state], style="dim")
    return Text("-")


def waste_pct_cell(job: JobView) -> str:
    """Waste % over the measured part; ``n/a`` where nothing was measured (utilization not reported)."""
    if job.waste_usd is not None and job.waste_pct is None and job.unmeasured_usd:
        return "n/a"
    return fmt.pct(job.waste_pct) if job.waste_usd is not None and job.waste_top_reason else "-"


def waste_cells(job: JobView) -> tuple[str, Text, Text]:
    """Wasted dollars with their share of the cost, the top reason, and its evidence (docs/waste.md)."""
    if job.waste_usd is not None and not job.waste_top_reason and job.unmeasured_usd:
        return "n/a", Text("unmeasured", style="dim"), Text("GPU utilization not reported", style="dim")
    if job.waste_usd is None or not job.waste_top_reason:
        return "-", Text("-"), Text("-")
    waste = f"{fmt.money(job.waste_usd)} {fmt.pct(job.waste_pct)}"
    style = "dim" if job.special else ""
    return waste, Text(job.waste_top_reason, style=style), Text(job.waste_evidence or "-", style=style)


class JobsTable(KeyedTable):
    """Jobs sorted by cost; ``(idle)`` and ``(unobserved)`` last. Select a row and press ``t`` to tag it."""

    COLUMNS = (
        ("tag", "job (tag)", 22),
        ("cost", "cost", 9),
        ("burn", "burn", 9),
        ("forecast", "at end", 16),
        ("forecast_short", "at end", 13),
        ("per_1k", "$/1k smp", 8),
        ("per_1m", "$/1M tok", 8),
        ("waste_pct", "waste", 5),
        ("gpus", "GPUs", 4),
        ("util", "GPU util", 8),
        ("sm", "own SM", 6),
        ("waste", "wasted", 12),
        ("why", "why", 15),
        ("vram", "VRAM", 6),
        ("gpu_h", "GPU-h", 6),
        ("eff_h", "eff GPU-h", 9),
        ("samples", "samples", 7),
        ("evidence", "evidence", 60),
    )
    """``GPU util`` is the whole GPUs' average utilization while the job held them (what it is charged on);
    ``own SM`` is the job's own processes' share of those GPUs' SMs now: a notebook at 3 % on a GPU another job
    keeps at 97 % shows 97 % and 3 %."""

    NARROW_WIDTH = 100
    """Under this many cells the table takes its narrow cells: a shorter tag, cost and burn, ``$/1k``, the
    forecast without "in", and the waste as a share alone (its dollars and reason are in Enter's details)."""
    NARROW = {"tag": ("job (tag)", 18), "cost": ("cost", 8), "burn": ("burn", 8), "per_1k": ("$/1k", 7)}
    WIDE_ONLY = frozenset({"forecast", "waste"})
    NARROW_ONLY = frozenset({"forecast_short", "waste_pct"})
    PRIORITY = (
        "tag", "cost", "burn", "per_1k", "waste_pct", "waste", "forecast", "forecast_short", "gpus", "util", "sm",
        "per_1m", "why", "vram", "gpu_h", "eff_h", "samples", "evidence",
    )  # fmt: skip
    """What stays when the terminal is too narrow for every column, most useful first: the last ones go first.
    At 80 columns: tag, cost, burn, $/1k samples, waste %, at end, GPUs (tested in tests/tui)."""

    def __init__(self, **kwargs: Any) -> None:
        # The tag stays in view while left/right scroll to the per-sample columns on a narrow terminal.
        super().__init__(fixed_columns=1, **kwargs)

    FILL = "evidence"

    def columns_for(self, width: int) -> list[tuple[str, str, int]]:
        # Only whole columns, chosen by PRIORITY (KeyedTable); Enter shows a job with every figure. The waste
        # evidence, last, takes what is left (up to 60 cells) once every other column that fits is in.
        narrow = width < self.NARROW_WIDTH
        skip = self.WIDE_ONLY if narrow else self.NARROW_ONLY
        defined = {
            key: self.NARROW[key] if narrow and key in self.NARROW else (label, w)
            for key, label, w in self.COLUMNS
            if key not in skip
        }
        return pick_columns(defined, self.PRIORITY, width, self.FILL)

    def show(
        self,
        jobs: tuple[JobView, ...],
        own_sm: dict[str, float] | None = None,
        processes: dict[str, int] | None = None,
    ) -> None:
        """Show ``jobs`` (already sorted by the frame) with each job's own SM share (see :func:`own_sm_share`) and
        how many processes it holds (see :func:`gputab.live.frame.process_counts`)."""
        own_sm = own_sm or {}
        processes = processes or {}
        width = next((w for key, _, w in getattr(self, "_shown", ()) if key == "tag"), None)
        self.sync([(j.tag, job_cells(j, own_sm.get(j.tag), processes.get(j.tag, 0), width)) for j in jobs])
