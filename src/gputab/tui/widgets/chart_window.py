"""Where a live chart looks: the time span of a window with the newest sample at its right edge, time labels that
say how long ago (``-5m ... now``), and a y range that reads well over what the window shows.

Pure functions over :class:`~gputab.live.history.History`; the chart widgets and specs call them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from gputab.live.history import History
from gputab.tui.widgets.chart import nice_ceiling

MIN_SESSION_SPAN = 60.0
"""Seconds the whole-session window spans at least (a young session's line grows from the right edge)."""


def live_span(history: History, seconds: float | None) -> tuple[float, float]:
    """(start, end) session times of a window that ends at the newest sample: the chart scrolls, the newest point
    stays on the right edge, and a session younger than the window draws its line in the window's right part.

    Args:
        seconds: the window's length; None for the whole session (at least :data:`MIN_SESSION_SPAN`).
    """
    now = history.now
    span = max(now, MIN_SESSION_SPAN) if seconds is None else seconds
    return now - span, now


def ago(seconds: float) -> str:
    """How long ago, for a time axis: ``now``, ``-45s``, ``-2m30s``, ``-5m``, ``-1h30m``, ``-2d3h``."""
    s = int(round(max(0.0, seconds)))
    if s == 0:
        return "now"
    if s < 60:
        return f"-{s}s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"-{m}m{r:02d}s" if r else f"-{m}m"
    if s < 86400:
        h, r = divmod(s, 3600)
        m = r // 60
        return f"-{h}h{m:02d}m" if m else f"-{h}h"
    d, r = divmod(s, 86400)
    h = r // 3600
    return f"-{d}d{h}h" if h else f"-{d}d"


def ago_from(end: float) -> Callable[[float], str]:
    """A time-axis formatter that writes each session time as how long before ``end`` it was."""
    return lambda t: ago(end - t)


def visible(values: Iterable[float], times: Iterable[float], start: float) -> list[float]:
    """The known values (not NaN) at or after ``start``: what a window shows."""
    return [v for t, v in zip(times, values) if t >= start and v == v]


def nice_range(low: float, high: float) -> tuple[float, float]:
    """A y range holding ``low``..``high`` whose bottom, middle and top are all round figures (multiples of one
    round step), so each of the chart's three labels reads well. A flat series gets a small range around it."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return 0.0, 1.0
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(high) * 0.1 or 1.0
        low, high = (0.0, high + pad) if low >= 0 and low - pad < 0 else (low - pad, high + pad)
    step = nice_ceiling((high - low) / 2)
    for _ in range(8):
        bottom = math.floor(low / step + 1e-9) * step
        if bottom + 2 * step >= high * (1 - 1e-12) - 1e-12:
            return bottom, bottom + 2 * step
        step = nice_ceiling(step * 1.0001)
    bottom = math.floor(low / step) * step
    return bottom, bottom + 2 * step
