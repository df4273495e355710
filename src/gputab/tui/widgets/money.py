"""The money picture under the jobs: each job's cumulative cost and the session's burn rate over time."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal

from gputab.live.frame import Frame
from gputab.live.history import BURN, History, job_key
from gputab.tui import format as fmt
from gputab.tui.widgets.chart import Chart, ChartSpec, Line, nice_ceiling, palette

TOP_JOBS = 6
"""Jobs drawn in the cost chart: the costliest (the table lists them all)."""


def _money_label(v: float) -> str:
    if v == 0:
        return "$0"
    if v >= 100:
        return f"${v:,.0f}"
    if v >= 1:
        return f"${v:.2f}".rstrip("0").rstrip(".")
    return f"${v:.3g}"


def cost_spec(frame: Frame, history: History, window: float | None, label: str) -> ChartSpec:
    """Cumulative $ of the costliest jobs, from $0 to a round figure above the costliest (it only grows)."""
    jobs = [j for j in frame.jobs if j.tag in history.jobs()][:TOP_JOBS]
    t0, t1 = history.window(window)
    lines = []
    for job, color in zip(jobs, palette(len(jobs))):
        t, v = history.points(job_key(job.tag), window)
        lines.append(Line(job.tag, t, v, color))
    top = nice_ceiling(max((j.cost_usd for j in jobs), default=0.0))
    return ChartSpec(f"$ per job ({label})", tuple(lines), top, t0, t1, y_fmt=_money_label)


def burn_spec(history: History, window: float | None, label: str) -> ChartSpec:
    """The session's burn rate ($/h), from 0 to what every GPU together costs an hour."""
    t, v = history.points(BURN, window)
    t0, t1 = history.window(window)
    top = history.max_burn or nice_ceiling(max((x for x in v if x == x), default=0.0))
    return ChartSpec(
        f"burn $/h, 0 to all GPUs' price ({label})",
        (Line("burn", t, v, "red"),),
        top,
        t0,
        t1,
        y_fmt=lambda x: fmt.rate(x).removesuffix("/h"),
        legend=False,
    )


class MoneyCharts(Horizontal):
    """Two charts side by side: cumulative $ per job (wider) and the burn rate."""

    DEFAULT_CSS = """
    MoneyCharts { height: 1fr; }
    MoneyCharts > .cost-chart { width: 3fr; height: 1fr; padding: 0 1 0 0; }
    MoneyCharts > .burn-chart { width: 2fr; height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._drawn: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Chart(classes="cost-chart")
        yield Chart(classes="burn-chart")

    def show(self, frame: Frame, history: History, window: float | None, label: str) -> None:
        drawn = (history.version, window)
        if drawn == self._drawn or not self.display:
            return
        self._drawn = drawn
        self.query_one(".cost-chart", Chart).plot(cost_spec(frame, history, window, label))
        self.query_one(".burn-chart", Chart).plot(burn_spec(history, window, label))
