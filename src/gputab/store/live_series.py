"""Reading a session's stored series back for the live charts: a span of it, on one time axis.

A viewer attached to a running recorder draws the charts the recorder's own live view draws. The recorder stores
one point per GPU and per job every series step (10 s by default); this reads the points of a span of the session,
raw (the last hour) or averaged into buckets (the whole session, a few hundred points), with the figures the
charts need that are not stored as such: the session's cost before the span and each job's cost before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gputab.store.queries import StoreQueries


@dataclass(frozen=True)
class StoredGpuSeries:
    """One GPU's points, aligned with :attr:`StoredSpan.t` (None: no point of this GPU at that time)."""

    utilization: list[float | None]
    """Time-weighted mean utilization over the step, 0..1."""
    power_w: list[float | None]
    """Mean power over the step, W."""
    cost_usd: list[float]
    """Dollars charged to this GPU within the step (0 where it has no point)."""


@dataclass(frozen=True)
class StoredSpan:
    """The stored series of one session between ``start_s`` and ``end_s`` (seconds since it started)."""

    start_s: float
    end_s: float
    t: list[float] = field(default_factory=list)
    """The points' times, seconds since the session started, ascending."""
    gpus: dict[int, StoredGpuSeries] = field(default_factory=dict)
    jobs: dict[str, list[float | None]] = field(default_factory=dict)
    """Each job's cumulative cost at each time (None before its first point)."""
    cost_before_usd: float = 0.0
    """What the session had cost before ``start_s`` (the cumulative total's starting point)."""


def stored_span(
    store: StoreQueries, session_id: int, start_s: float, end_s: float, bucket_s: float | None = None
) -> StoredSpan:
    """The session's series points with ``start_s <= t < end_s``.

    Args:
        bucket_s: None: every stored point. Else the points are averaged in buckets of this many seconds
            (utilization and power as means, cost as sums, jobs' cumulative costs as their last value), so a
            day's series reads as a few hundred points; SQLite does the grouping.

    Reads by the series tables' primary keys only (session, GPU, time; job, time): one range per GPU and per job,
    and one seek per job for its cost before the span (their sum is the session's: conservation), so a span costs
    the same on a session's first day and its thirtieth.
    """
    lo, hi = int(max(0.0, start_s) * 1000), int(end_s * 1000)
    if hi <= lo:
        return StoredSpan(start_s, end_s)
    b = max(1, int((bucket_s or 0.0) * 1000))
    db = store.db
    by_time: dict[int, dict[int, tuple]] = {}
    indexes = [
        r[0]
        for r in db.execute(
            "SELECT gpu_index FROM session_gpus WHERE session_id = ? ORDER BY gpu_index", [session_id]
        ).fetchall()
    ]
    for index in indexes:  # one range of the primary key per GPU, however long the session
        rows = db.execute(
            "SELECT max(t_ms), avg(utilization), avg(power_w), sum(cost_usd) FROM gpu_samples "
            "WHERE session_id = ? AND gpu_index = ? AND t_ms >= ? AND t_ms < ? GROUP BY t_ms / ? ORDER BY t_ms / ?",
            [session_id, index, lo, hi, b, b],
        ).fetchall()
        for t_ms, util, power, cost in rows:
            by_time.setdefault(t_ms, {})[index] = (util, power, cost)
    times = sorted(by_time)
    gpus: dict[int, StoredGpuSeries] = {}
    for index in indexes:
        points = [by_time[t].get(index) for t in times]
        gpus[index] = StoredGpuSeries(
            utilization=[p[0] if p else None for p in points],
            power_w=[p[1] if p else None for p in points],
            cost_usd=[p[2] or 0.0 if p else 0.0 for p in points],
        )
    before = 0.0  # every job's cost before the span (the (idle) and (unobserved) buckets are jobs): the session's
    jobs: dict[str, list[float | None]] = {}
    for job_id, tag in db.execute("SELECT id, tag FROM jobs WHERE session_id = ?", [session_id]).fetchall():
        prior = db.execute(
            "SELECT cost_usd FROM job_samples WHERE job_id = ? AND t_ms < ? ORDER BY t_ms DESC LIMIT 1", [job_id, lo]
        ).fetchone()
        steps: list[tuple[int, float]] = [
            (int(r[0]), float(r[1]))
            for r in db.execute(
                "SELECT max(t_ms), max(cost_usd) FROM job_samples WHERE job_id = ? AND t_ms >= ? AND t_ms < ? "
                "GROUP BY t_ms / ? ORDER BY t_ms / ?",
                [job_id, lo, hi, b, b],
            )
        ]
        before += prior[0] if prior else 0.0
        if prior is None and not steps:
            continue
        jobs[tag] = _forward_fill(times, steps, prior[0] if prior else None)
    return StoredSpan(start_s, end_s, t=[t / 1000.0 for t in times], gpus=gpus, jobs=jobs, cost_before_usd=before)


def _forward_fill(times: list[int], points: list[tuple[int, float]], value: float | None) -> list[float | None]:
    """A job's cumulative cost at each of ``times``: its last point at or before it (the recorder writes a job's
    point only in steps where it ran or was charged, so between points its cost stood still)."""
    out: list[float | None] = []
    i = 0
    for t in times:
        while i < len(points) and points[i][0] <= t:
            value = points[i][1]
            i += 1
        out.append(value)
    return out
