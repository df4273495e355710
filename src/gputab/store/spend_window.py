"""Spend's time window and its buckets: which span to count, and where days and weeks are cut.

Days and weeks are local (the zone of this process) unless ``utc``; a week starts on Monday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from itertools import pairwise


@dataclass(frozen=True)
class Window:
    """Which spend to count: the time window, a tag glob, and how days are cut.

    Args:
        since: epoch seconds; None for no lower bound.
        until: epoch seconds (exclusive); None for no upper bound.
        tag: a glob (``exp-*``) jobs must match; None for every job and the ``(idle)``/``(unobserved)`` buckets.
        utc: cut days at UTC midnight instead of local midnight.
    """

    since: float | None = None
    until: float | None = None
    tag: str | None = None
    utc: bool = False


# -- days and weeks ------------------------------------------------------------------------------------------------
def bucket_start(wall: float, by: str, utc: bool) -> date:
    """The day (or the Monday of the week) holding ``wall``."""
    d = datetime.fromtimestamp(wall, tz=UTC if utc else None).date()
    return d - timedelta(days=d.weekday()) if by == "week" else d


def bucket_wall(d: date, utc: bool) -> float:
    """Epoch seconds of midnight starting day ``d`` (local midnight unless ``utc``; DST is the C library's)."""
    return datetime.combine(d, dtime(), tzinfo=UTC if utc else None).timestamp()


def window_cuts(
    start: float, end: float, window: Window, by: str | None
) -> list[tuple[float, float, str | None, bool]]:
    """``[start, end]`` cut at day (or week) boundaries and at the window's edges: ``(lo, hi, bucket, inside)``.

    ``bucket`` is None unless ``by`` is ``day`` or ``week``; ``inside`` says whether the piece is in the window.
    An instant (``start == end``) is one piece.
    """
    points = {start, end}
    if by in ("day", "week") and end > start:
        step = timedelta(days=7 if by == "week" else 1)
        d = bucket_start(start, by, window.utc) + step
        while (t := bucket_wall(d, window.utc)) < end:
            points.add(t)
            d += step
    for edge in (window.since, window.until):
        if edge is not None and start < edge < end:
            points.add(edge)
    pts = sorted(points)
    pairs = list(pairwise(pts)) or [(start, start)]
    out = []
    for lo, hi in pairs:
        inside = (window.since is None or lo >= window.since) and (
            window.until is None or (hi <= window.until if hi > lo else lo < window.until)
        )
        out.append((lo, hi, bucket_start(lo, by, window.utc).isoformat() if by in ("day", "week") else None, inside))
    return out


def timezone_label(utc: bool) -> str:
    """The zone days are cut in, for the reader: ``UTC`` or the local name and offset (``CET, UTC+01:00``)."""
    if utc:
        return "UTC"
    now = datetime.now().astimezone()
    off = now.strftime("%z")
    return "UTC" if now.tzname() == "UTC" and off == "+0000" else f"{now.tzname()}, UTC{off[:3]}:{off[3:]}"


def last_days(end: float, days: int, utc: bool) -> list[str]:
    """The ``days`` days (ISO dates) ending with the day of ``end``, oldest first."""
    last = bucket_start(end, "day", utc)
    return [(last - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
