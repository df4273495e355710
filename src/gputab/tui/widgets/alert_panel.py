"""Under the alerts table: how many alerts were active over time, and where the money goes to waste now."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from gputab.live.frame import AlertView, Frame
from gputab.live.history import History
from gputab.tui import format as fmt
from gputab.tui.literal import literal
from gputab.tui.widgets.chart import Chart, ChartSpec, Line, nice_ceiling
from gputab.tui.widgets.chart_window import ago_from, live_span

SEVERITIES = (("warning", "yellow"), ("critical", "red"))


def active_counts(
    alerts: tuple[AlertView, ...], severity: str, started_wall: float, t0: float, now: float
) -> tuple[list[float], list[float]]:
    """(session times, active alerts of ``severity``) as steps from ``t0`` to ``now``: a point just before and
    one at every raise and clear, so the chart draws the count as it was, not a slope between changes."""
    events: list[tuple[float, int]] = []
    for a in alerts:
        if a.severity != severity:
            continue
        events.append((a.started_at - started_wall, 1))
        if a.ended_at is not None:
            events.append((a.ended_at - started_wall, -1))
    events.sort()
    count = sum(step for t, step in events if t <= t0)
    times, values = [t0], [float(count)]
    for t, step in events:
        if t <= t0 or t > now:
            continue
        times.append(t)
        values.append(float(count))
        count += step
        times.append(t)
        values.append(float(count))
    times.append(now)
    values.append(float(count))
    return times, values


def timeline_spec(frame: Frame, history: History, window: float | None, label: str) -> ChartSpec:
    """Active alerts by severity over the window, from 0 to a round count above the most at once."""
    t0, t1 = live_span(history, window)
    lines = []
    if frame.started_wall is not None:
        for severity, color in SEVERITIES:
            t, v = active_counts(frame.alerts, severity, frame.started_wall, max(0.0, t0), history.now)
            lines.append(Line(severity, t, v, color))
    top = max(2.0, nice_ceiling(max((max(line.values) for line in lines), default=0.0)))
    return ChartSpec(
        f"active alerts ({label})",
        tuple(lines),
        top,
        t0,
        t1,
        y_fmt=lambda x: f"{x:g}",
        steps=True,
        t_fmt=ago_from(t1),
    )


def waste_lines(frame: Frame, limit: int = 12) -> Text:
    """The jobs wasting money now, most dollars first: wasted $ and share, the likely reason and its evidence."""
    jobs = sorted(
        (j for j in frame.jobs if j.waste_usd and j.waste_top_reason), key=lambda j: j.waste_usd or 0.0, reverse=True
    )
    text = Text("Money wasted this session, by job", style="bold", no_wrap=True, overflow="ellipsis")
    if not jobs:
        text.append("\nno waste measured yet", style="dim")
        return text
    for j in jobs[:limit]:
        text.append("\n")
        text.append_text(literal(j.tag, style="dim" if j.special else "bold"))
        text.append(f"  {fmt.money(j.waste_usd)} {fmt.pct(j.waste_pct)}  ")
        text.append_text(literal(j.waste_top_reason))
        if j.waste_evidence:
            text.append("\n  ")
            text.append_text(literal(j.waste_evidence, style="dim"))
    if len(jobs) > limit:
        text.append(f"\n{len(jobs) - limit} more: the jobs view (1) lists them", style="dim")
    return text


class AlertPanel(Horizontal):
    """The alert timeline (left) and the money wasted by job with its likely reason (right)."""

    DEFAULT_CSS = """
    AlertPanel { height: 1fr; min-height: 0; }
    AlertPanel > Chart { width: 1fr; height: 1fr; padding: 0 1 0 0; }
    AlertPanel > #alert-waste { width: 1fr; height: 1fr; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._waste: Text | None = None

    def compose(self) -> ComposeResult:
        yield Chart(classes="alert-chart")
        yield Static("", id="alert-waste")

    def show(self, frame: Frame, history: History, window: float | None, label: str) -> None:
        self.query_one(Chart).plot(timeline_spec(frame, history, window, label))
        waste = waste_lines(frame)
        if waste != self._waste:
            self._waste = waste
            self.query_one("#alert-waste", Static).update(waste)
