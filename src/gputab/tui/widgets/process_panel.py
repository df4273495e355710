"""Under the processes table: the selected process in brief and its history on its GPU (SM %, VRAM)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from gputab.live.frame import Frame, ProcessView
from gputab.live.history import History, process_sm_key, process_vram_key, util_key
from gputab.tui import format as fmt
from gputab.tui.literal import literal
from gputab.tui.widgets.chart import Chart, ChartSpec, Line, nice_ceiling
from gputab.tui.widgets.chart_window import ago_from, live_span
from gputab.tui.widgets.processes import SOURCE_LABELS, sm_text


def process_facts(p: ProcessView | None, frame: Frame, derived: float | None = None) -> Text:
    """The selected process, its job's money and the keys that act on it; outside text stays literal.

    Args:
        derived: its SM % from its MIG instance (the driver reports none per process on MIG), said as such.
    """
    if p is None:
        return Text("no process selected" if frame.processes else "no process holds a GPU", style="dim")
    job = next((j for j in frame.jobs if j.tag == p.tag), None)
    text = Text.assemble(
        (f"pid {p.pid}", "bold"), " · ", literal(p.user or "?"), f" · GPU {p.gpu_index}", mig_place(p, frame), "\n",
        ("tag  ", "dim"), literal(p.tag or "?", style="bold"), " ", literal(f"({SOURCE_LABELS.get(p.source, p.source)})", style="dim"), "\n",
        ("now  ", "dim"), f"SM {sm_text(p, derived)}",
        (", from its MIG instance" if p.sm_pct is None and derived is not None else "", "dim"),
        f" · VRAM {fmt.gib(p.used_memory_bytes)}\n",
    )  # fmt: skip
    if job is not None:
        waste = "" if job.waste_pct is None else f" · waste {fmt.pct(job.waste_pct)} {job.waste_top_reason or ''}"
        text.append_text(
            Text.assemble(("job  ", "dim"), f"{fmt.money(job.cost_usd)} · {fmt.rate(job.burn_rate_usd_per_hour)}")
        )
        text.append(waste.rstrip() + "\n")
    text.append("cmd  ", style="dim")
    text.append_text(literal(p.command))
    text.append("\n")
    text.append("enter: in full · t: tag · I T K: signal", style="dim")
    return text


def mig_place(p: ProcessView, frame: Frame) -> Text:
    """`` MIG 3g.40gb`` (literal: the profile is the driver's) for a process on a MIG instance, else nothing."""
    if p.gpu_instance_id is None:
        return Text("")
    gpu = next((g for g in frame.gpus if g.index == p.gpu_index), None)
    inst = next(
        (
            m
            for m in (gpu.mig if gpu is not None else ())
            if (m.gpu_instance_id, m.compute_instance_id) == (p.gpu_instance_id, p.compute_instance_id)
        ),
        None,
    )
    name = inst.profile if inst is not None and inst.profile else f"GI {p.gpu_instance_id}"
    return literal(f" MIG {name}")


def sm_spec(p: ProcessView, history: History, window: float | None, label: str) -> ChartSpec:
    """The whole GPU's utilization and the process's own SM share, on the same 0-100 % scale."""
    t0, t1 = live_span(history, window)
    gt, gv = history.points(util_key(p.gpu_index), window)
    pt, pv = history.points(process_sm_key(p.key), window)
    sm = "~SM" if p.sm_pct is None and p.gpu_instance_id is not None else "SM"  # on MIG: from its instance
    lines = (Line(f"GPU {p.gpu_index} util (all)", gt, gv, "green"), Line(f"pid {p.pid} {sm}", pt, pv, "cyan"))
    return ChartSpec(
        f"GPU {p.gpu_index}, % ({label})", lines, 100.0, t0, t1, y_fmt=lambda x: f"{x:.0f}%", t_fmt=ago_from(t1)
    )


def vram_spec(p: ProcessView, history: History, window: float | None, label: str) -> ChartSpec:
    """The process's VRAM, from 0 to its GPU's memory."""
    t0, t1 = live_span(history, window)
    t, v = history.points(process_vram_key(p.key), window)
    top = history.memory_totals.get(p.gpu_index) or nice_ceiling(max((x for x in v if x == x), default=0.0))
    return ChartSpec(
        f"pid {p.pid} VRAM, 0 to GPU {p.gpu_index}'s {top:.0f}G ({label})",
        (Line(f"pid {p.pid}", t, v, "magenta"),),
        top,
        t0,
        t1,
        y_fmt=lambda x: f"{x:.0f}G",
        legend=False,
        t_fmt=ago_from(t1),
    )


class ProcessPanel(Horizontal):
    """The selected process's facts (left) and its SM % and VRAM over time (right)."""

    DEFAULT_CSS = """
    ProcessPanel { height: 1fr; min-height: 0; }
    ProcessPanel > #process-facts { width: 2fr; height: 1fr; padding: 0 1; }
    ProcessPanel > #process-charts { width: 3fr; height: 1fr; }
    ProcessPanel Chart { height: 1fr; padding: 0 1 0 0; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._facts: Text | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="process-facts")
        with Vertical(id="process-charts"):
            yield Chart(classes="sm-chart")
            yield Chart(classes="vram-chart")

    def show(
        self,
        p: ProcessView | None,
        frame: Frame,
        history: History,
        window: float | None,
        label: str,
        derived: float | None = None,
    ) -> None:
        """Show process ``p`` (None: nothing selected) as of ``frame``; ``derived``: its SM % from its MIG
        instance (:func:`gputab.tui.widgets.processes.derived_sm`)."""
        facts = process_facts(p, frame, derived)
        if facts != self._facts:
            self._facts = facts
            self.query_one("#process-facts", Static).update(facts)
        charts = self.query_one("#process-charts", Vertical)
        charts.display = p is not None
        if p is not None:
            self.query_one(".sm-chart", Chart).plot(sm_spec(p, history, window, label))
            self.query_one(".vram-chart", Chart).plot(vram_spec(p, history, window, label))
