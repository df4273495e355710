"""The money picture under the jobs: each job's cumulative cost, and where the session's $/h goes (busy, wasted
in jobs, idle GPUs) over time.

The session's burn rate itself is no chart: idle GPUs are charged too, so it equals the price of every GPU and
draws a flat line. How that price splits does move with the work:

* busy $/h: each GPU's $/h times its utilization, summed (the dollars of effective GPU-hours);
* idle $/h: the growth of the ``(idle)`` bucket's cost (GPUs that no process holds);
* waste $/h: the rest of the burn rate (GPUs that a job holds while they do nothing, and unobserved time).

Every series comes from the chart history (:class:`~gputab.live.history.History`): utilization per GPU, the
burn rate and the cost of each job, so a view whose history was loaded from the store draws the same picture.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal

from gputab.live.frame import Frame, GpuView
from gputab.live.history import BURN, History, job_key, util_key
from gputab.tui.widgets.chart import Chart, ChartSpec, Line, nice_ceiling, palette
from gputab.tui.widgets.chart_window import ago_from, live_span, nice_range, visible

TOP_JOBS = 6
"""Jobs drawn in the cost chart: the costliest (the table lists them all; the legend says how many more)."""
IDLE_TAG = "(idle)"
SPLIT_POINTS = 600
"""Points the $/h split is worked out at, at most (a chart 300 cells wide has 600 dot columns)."""
NAN = float("nan")


def money_label(v: float) -> str:
    """A y label in dollars: short, and round where the range is round."""
    if v == 0:
        return "$0"
    if abs(v) >= 100:
        return f"${v:,.0f}"
    if abs(v) >= 1:
        return f"${v:.2f}".rstrip("0").rstrip(".")
    return f"${v:.3g}"


def cost_spec(frame: Frame, history: History, window: float | None, label: str) -> ChartSpec:
    """Cumulative $ of the costliest jobs over the window; the y range covers what the window shows."""
    known = history.jobs()
    tracked = [j for j in frame.jobs if j.tag in known]
    jobs = tracked[:TOP_JOBS]
    t0, t1 = live_span(history, window)
    lines = []
    shown: list[float] = []
    for job, color in zip(jobs, palette(len(jobs))):
        t, v = history.points(job_key(job.tag), window)
        lines.append(Line(job.tag, t, v, color))
        shown.extend(visible(v, t, t0))
    low, high = nice_range(min(shown, default=0.0), max(shown, default=0.0))
    return ChartSpec(
        "$ per job",
        tuple(lines),
        high,
        t0,
        t1,
        y_fmt=money_label,
        y_min=low,
        t_fmt=ago_from(t1),
        more=len(tracked) - len(jobs),
    )


def gpu_rate(g: GpuView) -> float:
    """What GPU ``g`` costs an hour now (its burn rate: price and energy), its price when no burn is known."""
    if g.burn_rate_usd_per_hour is not None:
        return g.burn_rate_usd_per_hour
    return g.rate_per_hour or 0.0


def growth_per_hour(times: Sequence[float], values: Sequence[float]) -> array:
    """$/h from a cumulative $ series: the growth between each point and the one before (NaN for the first point
    and next to a gap)."""
    out = array("d", [NAN]) * len(times)
    for i in range(1, len(times)):
        dt = times[i] - times[i - 1]
        dv = values[i] - values[i - 1]
        if dt > 0 and dv == dv:
            out[i] = max(0.0, dv / dt * 3600.0)
    return out


def _sample(n: int) -> list[int]:
    """Indexes of at most about :data:`SPLIT_POINTS` points out of ``n``, evenly spaced, the last one included."""
    stride = max(1, -(-n // SPLIT_POINTS))
    idx = list(range(0, n, stride))
    if n and idx[-1] != n - 1:
        idx.append(n - 1)
    return idx


def split_rates(frame: Frame, history: History, window: float | None) -> tuple[array, array, array, array]:
    """(times, busy, waste, idle) $/h over the window; see the module's docstring for what each one is.

    A window of more points than :data:`SPLIT_POINTS` is split at evenly spaced points (a chart has fewer dot
    columns than that); the idle growth between two of them is their average, so no interval is left out.
    """
    all_times, burn_all = history.points(BURN, window)
    idx = _sample(len(all_times))
    times = array("d", [all_times[i] for i in idx])
    n = len(idx)
    busy = array("d", [0.0]) * n
    seen = [False] * n
    for g in frame.gpus:
        rate = gpu_rate(g)
        _, util_all = history.points(util_key(g.index), window)
        if len(util_all) != len(all_times):
            continue
        for k, i in enumerate(idx):
            u = util_all[i]
            if u == u:
                busy[k] += rate * min(100.0, max(0.0, u)) / 100.0
                seen[k] = True
    if IDLE_TAG in history.jobs():
        it, iv = history.points(job_key(IDLE_TAG), window)
        idle = growth_per_hour(times, [iv[i] for i in idx]) if len(it) == len(all_times) else array("d", [NAN]) * n
    else:
        idle = array("d", [0.0]) * n
    waste = array("d", [NAN]) * n
    for k, i in enumerate(idx):
        if not seen[k]:
            busy[k] = NAN
            continue
        b, idle_k = burn_all[i], idle[k]
        if b == b and idle_k == idle_k:  # no idle growth known (the first point): no waste claimed either
            waste[k] = max(0.0, b - busy[k] - idle_k)
    return times, busy, waste, idle


def split_spec(frame: Frame, history: History, window: float | None, label: str) -> ChartSpec:
    """Busy, wasted and idle $/h over the window, from $0 to a round figure above the window's highest."""
    t, busy, waste, idle = split_rates(frame, history, window)
    t0, t1 = live_span(history, window)
    lines = (Line("busy", t, busy, "green"), Line("waste", t, waste, "yellow"), Line("idle", t, idle, "red"))
    top = nice_ceiling(max((v for line in lines for v in visible(line.values, line.times, t0)), default=0.0))
    return ChartSpec(
        "$/h",
        lines,
        top,
        t0,
        t1,
        y_fmt=money_label,
        t_fmt=ago_from(t1),
    )


class MoneyCharts(Horizontal):
    """Two charts side by side: cumulative $ per job (wider) and the $/h split into busy, waste and idle."""

    DEFAULT_CSS = """
    MoneyCharts { height: 1fr; }
    MoneyCharts > .cost-chart { width: 1fr; height: 1fr; padding: 0 1 0 0; }
    MoneyCharts > .split-chart { width: 1fr; height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._drawn: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Chart(classes="cost-chart")
        yield Chart(classes="split-chart")

    def show(self, frame: Frame, history: History, window: float | None, label: str) -> None:
        drawn = (history.version, window)
        if drawn == self._drawn or not self.display:
            return
        self._drawn = drawn
        self.query_one(".cost-chart", Chart).plot(cost_spec(frame, history, window, label))
        self.query_one(".split-chart", Chart).plot(split_spec(frame, history, window, label))
