"""Read-only queries over recorded sessions, for review and export.

Extends :mod:`gputab.store.queries` (the store's own reads) with filters over many sessions and a record type
that carries a session with its jobs and GPUs. Everything here reads the stored totals (``sessions``,
``session_gpus``, ``jobs``), never the sample series, so listing or exporting a year of sessions stays fast.
Jobs come back as dicts with the keys of ``JobTotals.to_json()`` and GPUs with the columns of ``session_gpus``
(``index``, the price in force, totals, plus ``energy_kwh``), so the CLI, the CSV export and the TUI print the
same figures.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gputab.cost.buckets import IDLE, SPECIAL_TAGS, UNATTRIBUTED, UNOBSERVED
from gputab.errors import GputabError
from gputab.store.queries import NoSuchSession, StoreQueries

_SESSION_FIELDS = (
    "id",
    "host",
    "backend",
    "started_at",
    "ended_at",
    "end_reason",
    "end_detail",
    "interval",
    "ticks",
    "total_cost_usd",
    "energy_j",
    "started_wall",
    "last_wall",
    "ended_wall",
)
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class SessionRecord:
    """One recorded session with its stored totals.

    ``jobs`` are dicts with the ``JobTotals.to_json()`` keys, real jobs by cost first, then ``(idle)`` and
    ``(unobserved)``; ``gpus`` are dicts with the ``GpuTotals.to_json()`` keys, by index.
    """

    id: int
    host: str | None
    started_at: str | None
    """ISO 8601 UTC, as stored."""
    ended_at: str | None
    """None while the session is still recording (or crashed before the recorder noticed)."""
    end_reason: str | None = None
    end_detail: str | None = None
    backend: str | None = None
    interval: float | None = None
    ticks: int | None = None
    total_cost_usd: float | None = None
    energy_j: float | None = None
    started_wall: float | None = None
    last_wall: float | None = None
    ended_wall: float | None = None
    jobs: list[dict] = field(default_factory=list)
    gpus: list[dict] = field(default_factory=list)

    @property
    def tags(self) -> list[str]:
        """The real jobs' tags (no special buckets), by cost."""
        return [j["tag"] for j in self.jobs if j["tag"] not in SPECIAL_TAGS]

    def summary_json(self) -> dict:
        """The session's own fields (no jobs or GPUs): what ``gputab sessions --json`` lists."""
        return {k: getattr(self, k) for k in _SESSION_FIELDS}


def parse_when(text: str, now: datetime | None = None) -> float:
    """Epoch seconds of a ``--since`` value: ISO 8601 date or time, or an age such as ``30m``, ``12h``, ``7d``, ``2w``.

    A date or time without a zone is local time (what a user at the terminal means); ``Z`` or an offset is honoured.

    Raises:
        GputabError: the text is neither.
    """
    m = _RELATIVE.match(text)
    if m:
        now = now or datetime.now(UTC)
        try:
            return (now - timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()])).timestamp()
        except OverflowError:  # further back than the year 1 (or than a float holds)
            raise GputabError(
                f"bad date {text!r}: an age goes back at most a few thousand years (e.g. 7d, 52w)", exit_code=2
            ) from None
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise GputabError(
            f"bad date {text!r}: use ISO 8601 (2025-01-31, 2025-01-31T14:00, 2025-01-31T14:00Z) or an age "
            f"(30m, 12h, 7d, 2w)",
            exit_code=2,
        ) from None
    return dt.timestamp() if dt.tzinfo else dt.astimezone().timestamp()


def _end_wall_sql() -> str:
    # A session still recording (or crashed) has no ended_wall: its last committed tick is its end so far.
    return "coalesce(ended_wall, last_wall, started_wall)"


def session_ids(
    store: StoreQueries,
    since: float | None = None,
    until: float | None = None,
    tag: str | None = None,
    host: str | None = None,
) -> list[int]:
    """Ids of the sessions that match, oldest first.

    Args:
        since: keep sessions still running at or after this epoch time (a month-long session overlaps last week).
        until: keep sessions started before this epoch time.
        tag: keep sessions with a job whose tag matches this glob (``exp-*``); exact when it has no wildcard.
        host: keep sessions recorded on this host.
    """
    where: list[str] = []
    params: list[float | str] = []
    if since is not None:
        where.append(f"{_end_wall_sql()} >= ?")
        params.append(since)
    if until is not None:
        where.append("started_wall < ?")
        params.append(until)
    if host is not None:
        where.append("host = ?")
        params.append(host)
    if tag is not None:
        where.append("id IN (SELECT session_id FROM jobs WHERE tag GLOB ?)")
        params.append(tag)
    sql = "SELECT id FROM sessions"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_wall, id"
    return [r[0] for r in store.db.execute(sql, params).fetchall()]


def _ratio(num: float, den: float | int | None) -> float | None:
    return num / den if den else None


def session_totals(s: SessionRecord) -> dict:
    """The ``--by session`` figures of one session, summed from its job rows (so the views agree).

    ``avg_utilization`` is effective GPU-hours over the GPU-hours of the jobs whose utilization was known;
    ``samples`` and ``tokens`` sum what the real jobs reported (None when none did); ``prompt_tokens`` and
    ``generated_tokens`` what their inference servers counted (None when none did).
    """
    cost = math.fsum(j.get("cost_usd") or 0.0 for j in s.jobs)
    energy = math.fsum(j.get("energy_kwh") or 0.0 for j in s.jobs)
    hours = math.fsum(j.get("gpu_hours") or 0.0 for j in s.jobs)
    eff = math.fsum(j.get("effective_gpu_hours") or 0.0 for j in s.jobs)
    util_hours = math.fsum(j.get("gpu_hours") or 0.0 for j in s.jobs if j.get("avg_utilization") is not None)
    real = [j for j in s.jobs if j.get("tag") not in SPECIAL_TAGS]
    samples = [j["samples"] for j in real if j.get("samples") is not None]
    tokens = [j["tokens"] for j in real if j.get("tokens") is not None]
    kinds = {k: [j[k] for j in real if j.get(k) is not None] for k in ("prompt_tokens", "generated_tokens")}
    by_tag = {j.get("tag"): j for j in s.jobs}
    # A session still recording (or one that crashed) lasts until its last committed tick so far.
    end_wall = s.ended_wall if s.ended_wall is not None else s.last_wall
    duration = end_wall - s.started_wall if end_wall is not None and s.started_wall is not None else None
    return {
        "duration_s": duration,
        "jobs": len(real),
        "gpu_count": len(s.gpus),
        "cost_usd": cost,
        "idle_cost_usd": (by_tag.get(IDLE) or {}).get("cost_usd") or 0.0,
        "unobserved_cost_usd": (by_tag.get(UNOBSERVED) or {}).get("cost_usd") or 0.0,
        "unattributed_cost_usd": (by_tag.get(UNATTRIBUTED) or {}).get("cost_usd") or 0.0,
        "gpu_hours": hours,
        "effective_gpu_hours": eff,
        "avg_utilization": _ratio(eff, util_hours),
        "energy_kwh": energy,
        "samples": sum(samples) if samples else None,
        "tokens": sum(tokens) if tokens else None,
        **{k: sum(v) if v else None for k, v in kinds.items()},
        "cost_per_effective_gpu_hour_usd": _ratio(cost, eff),
        "unknown_price": any(j.get("unknown_price") for j in s.jobs) or any(g.get("unknown_price") for g in s.gpus),
    }


def load_session(store: StoreQueries, sid: int) -> SessionRecord:
    """One session with its jobs and GPUs, as of the recorder's last commit.

    Raises:
        NoSuchSession: there is no session ``sid``.
    """
    rows = list(store.db.query(f"SELECT {', '.join(_SESSION_FIELDS)} FROM sessions WHERE id = ?", [sid]))
    if not rows:
        raise NoSuchSession(f"there is no session {sid}; see `gputab sessions` for the ids")
    rec = SessionRecord(**rows[0])
    rec.jobs = store.jobs(sid)
    for job in rec.jobs:
        job["unknown_price"] = bool(job.get("unknown_price"))
    rec.gpus = store.gpus(sid)
    for g in rec.gpus:
        g["energy_kwh"] = (g.get("energy_j") or 0.0) / 3.6e6
    return rec


def iter_sessions(store: StoreQueries, ids: Iterable[int]) -> Iterator[SessionRecord]:
    """Load sessions one at a time, so an export of thousands of them streams in flat memory."""
    for sid in ids:
        yield load_session(store, sid)


def set_samples(store: StoreQueries, sid: int, tag: str, samples: int, tokens: int) -> dict:
    """Set a job's samples and tokens to these totals (a correction), through ``add_samples``.

    The difference to the stored counts goes into the progress log like any other entry, so the log still adds
    up to the job's counts and ``gputab samples`` keeps adding on top of the corrected figures.

    Raises:
        ValueError: a count is negative.
        StoreError: the session is being recorded (its counts are the recorder's to write).
        NoSuchSession: the session has no job ``tag``.
    """
    if samples < 0 or tokens < 0:
        raise ValueError("samples and tokens are counts: 0 or more")
    row = next(
        iter(store.db.query("SELECT samples, tokens FROM jobs WHERE session_id = ? AND tag = ?", [sid, tag])), None
    )
    old_samples = (row or {}).get("samples") or 0
    old_tokens = (row or {}).get("tokens") or 0
    return store.add_samples(sid, tag, samples - old_samples, tokens - old_tokens, reporter="review")


def _sampled_times(end_ms: int, points: int) -> list[int]:
    """``points`` evenly spaced bucket ends over ``(0, end_ms]``."""
    points = max(1, points)
    return [round(end_ms * (i + 1) / points) for i in range(points)]


def session_series(store: StoreQueries, sid: int, points: int = 60) -> dict:
    """At most ``points`` values per GPU and per job over the session, for charts.

    A session whose series fits in a few times ``points`` rows is read whole and averaged per bucket; a longer
    one is read with one index seek per bucket (the series step ending at or after the bucket start), so a
    30-day 8-GPU session costs a few hundred seeks instead of a scan of millions of rows.

    Returns:
        ``{"t": [bucket end, s], "gpus": {index: {"utilization": [0..1 | None], "power_w": [W | None]}},
        "jobs": {tag: [cumulative cost at bucket end]}}``.
    """
    head = next(
        iter(
            store.db.query(
                "SELECT series_interval, started_wall, coalesce(ended_wall, last_wall, started_wall) AS end_wall "
                "FROM sessions WHERE id = ?",
                [sid],
            )
        ),
        None,
    )
    if head is None:
        raise NoSuchSession(f"there is no session {sid}; see `gputab sessions` for the ids")
    end_ms = max(0, int(round(((head["end_wall"] or 0.0) - (head["started_wall"] or 0.0)) * 1000)))
    step_ms = max(1.0, (head["series_interval"] or 10.0) * 1000)
    points = max(1, min(points, int(end_ms // step_ms) or 1))
    ends = _sampled_times(end_ms, points)
    gpu_indexes = [
        r[0]
        for r in store.db.execute(
            "SELECT gpu_index FROM session_gpus WHERE session_id = ? ORDER BY gpu_index", [sid]
        ).fetchall()
    ]
    gpus: dict[int, dict[str, list]] = {}
    whole = end_ms / step_ms <= 4 * points
    for index in gpu_indexes:
        if whole:
            rows = store.db.execute(
                "SELECT t_ms, dt_ms, utilization, power_w FROM gpu_samples WHERE session_id = ? AND gpu_index = ? "
                "ORDER BY t_ms",
                [sid, index],
            ).fetchall()
            gpus[index] = _bucket_means(rows, ends)
        else:
            util, power, lo = [], [], 0
            for end in ends:
                r = store.db.execute(
                    "SELECT utilization, power_w FROM gpu_samples WHERE session_id = ? AND gpu_index = ? AND t_ms > ? "
                    "ORDER BY t_ms LIMIT 1",
                    [sid, index, lo],
                ).fetchone()
                util.append(r[0] if r else None)
                power.append(r[1] if r else None)
                lo = end
            gpus[index] = {"utilization": util, "power_w": power}
    jobs: dict[str, list] = {}
    for job_id, tag in store.db.execute("SELECT id, tag FROM jobs WHERE session_id = ?", [sid]).fetchall():
        cum, last = [], 0.0
        for end in ends:
            r = store.db.execute(
                "SELECT cost_usd FROM job_samples WHERE job_id = ? AND t_ms <= ? ORDER BY t_ms DESC LIMIT 1",
                [job_id, end],
            ).fetchone()
            last = r[0] if r else last
            cum.append(last)
        jobs[tag] = cum
    return {"t": [e / 1000 for e in ends], "gpus": gpus, "jobs": jobs}


def _bucket_means(rows: list, ends: list[int]) -> dict[str, list]:
    """Time-weighted means of utilization and power per bucket; None where a bucket has no known value."""
    sums = [[0.0, 0.0, 0.0, 0.0] for _ in ends]  # util*dt, dt(util known), power*dt, dt(power known)
    b = 0
    for t_ms, dt_ms, util, power in rows:
        while b < len(ends) - 1 and t_ms > ends[b]:
            b += 1
        acc, dt = sums[b], dt_ms or 1
        if util is not None:
            acc[0] += util * dt
            acc[1] += dt
        if power is not None:
            acc[2] += power * dt
            acc[3] += dt
    return {
        "utilization": [a[0] / a[1] if a[1] else None for a in sums],
        "power_w": [a[2] / a[3] if a[3] else None for a in sums],
    }
