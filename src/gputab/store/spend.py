"""Spend over time: what each job, user, GPU and host cost across sessions, and per day or week.

Reads the stored totals (``jobs``, ``session_gpus``) of every session that overlaps the window, from one or more
databases opened read-only through :class:`gputab.store.Store`. A job is a tag on a host: the same tag in two
sessions of one host (a recorder restart, a multi-day run) is one row; the same tag on two hosts is two rows, so
databases copied from several boxes never mix their hosts.

Pro-rating (when a session is cut by the window, or by a day/week boundary): a job's stored totals are split in
proportion to its stored series time, the GPU-seconds (``job_samples.gpu_s``) of the series steps that end in each
piece (a step ending exactly at midnight is the old day's last); a GPU's totals in proportion to its series steps'
length (``gpu_samples.dt_ms``). A job or GPU without a series (a session recorded with none, or the
``(unobserved)`` bucket, which holds no GPU) is split in proportion to wall time over its session's span. Every
additive figure of the job (cost, GPU-hours, effective GPU-hours, idle figures, energy, samples, tokens, busy and
wasted dollars and the waste by reason) is split by the same fraction, so a job's pieces sum to its totals; a
session wholly in the window and in one day (or week, or with no day cut) is never split: its figures are the stored
ones, to the last bit.

Waste: a job's busy and wasted dollars (``jobs.busy_usd``/``waste_usd``, and ``waste_by_reason`` in
``extra_json``) are summed only over the sessions that recorded them; sessions from before the waste split (NULL
figures, or no such columns in an old database) count in the cost but not in the waste, and a row none of whose
sessions recorded waste has None. ``--by gpu`` rows have no waste: the store keeps waste per job, not per GPU (a
GPU's ``(idle)`` cost is only part of the waste of the jobs on it).

Days and weeks are local (the zone of this process) unless ``utc``; a week starts on Monday.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from itertools import pairwise

from gputab.store.database import Store
from gputab.store.queries import SPECIAL_TAGS
from gputab.store.review import session_ids

GROUPS = ("tag", "user", "gpu", "host", "day", "week")
"""What ``gputab spend --by`` can group by."""
UNKNOWN_USER = "?"
"""The user of a job recorded before gputab stored users (or whose processes' owner could not be read)."""
IDLE, UNOBSERVED = SPECIAL_TAGS
_END_WALL = "coalesce(s.ended_wall, s.last_wall, s.started_wall)"


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


def _cuts(start: float, end: float, window: Window, by: str | None) -> list[tuple[float, float, str | None, bool]]:
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


# -- pieces: a job's (or GPU's) totals, scaled to the part of it in one bucket of the window -----------------------
#: The additive figures of a piece, in the order of :attr:`Piece.figures`.
FIGURES = (
    "cost_usd",
    "gpu_hours",
    "effective_gpu_hours",
    "util_gpu_hours",
    "idle_usd",
    "idle_gpu_hours",
    "energy_kwh",
    "samples",
    "tokens",
    "busy_usd",
    "waste_usd",
)
#: Figures that may be None (not reported), and their positions in :data:`FIGURES`.
_OPTIONAL = {k: FIGURES.index(k) for k in ("samples", "tokens", "waste_usd")}
_COST = FIGURES.index("cost_usd")


@dataclass
class Piece:
    """The part of one stored job (or GPU) that falls in one bucket of the window.

    ``figures`` follow :data:`FIGURES`; samples and tokens are None where the job reported none, busy and
    wasted dollars where its session recorded none (and for GPUs).
    """

    source: int
    """Index of the database it came from."""
    session_id: int
    host: str
    tag: str
    user: str
    gpu: str | None
    bucket: str | None
    fraction: float
    figures: list
    first_wall: float
    last_wall: float
    waste_by_reason: dict[str, float] | None = None
    """Waste dollars by reason, scaled like ``figures`` (None where busy/waste are None)."""


def _job_figures(r: dict) -> list:
    cost = r["cost_usd"] or 0.0
    hours = r["gpu_hours"] or 0.0
    special_idle = r["tag"] == IDLE
    idle_h = hours if special_idle else (r["idle_gpu_hours"] or 0.0)
    # A job's idle dollars: its cost pro-rated by the GPU-hours it held a GPU at 0 % (exact when its GPUs share
    # one rate); the (idle) bucket is idle through and through.
    idle_usd = cost if special_idle else (cost * idle_h / hours if hours > 0 else 0.0)
    waste = r["waste_usd"]
    busy = None if waste is None else (r["busy_usd"] or 0.0)
    return [
        cost,
        hours,
        r["effective_gpu_hours"] or 0.0,
        hours if r["avg_utilization"] is not None else 0.0,
        idle_usd,
        idle_h,
        r["energy_kwh"] or 0.0,
        r["samples"],
        r["tokens"],
        busy,
        waste,
    ]


def _job_reasons(r: dict) -> dict[str, float] | None:
    """The job's waste by reason from ``extra_json`` (None when its session recorded no waste)."""
    if r["waste_usd"] is None:
        return None
    extra = json.loads(r["extra_json"]) if r["extra_json"] else {}
    reasons = extra.get("waste_by_reason") if isinstance(extra, dict) else None
    return {str(k): float(v) for k, v in reasons.items() if v is not None} if isinstance(reasons, dict) else {}


def _scale(figures: list, f: float) -> list:
    return [None if v is None else v * f for v in figures]


def _has_column(store: Store, table: str, column: str) -> bool:
    return any(r[1] == column for r in store.db.execute(f"PRAGMA table_info({table})"))


def _split(
    store: Store,
    series_sql: str,
    ids: Sequence[object],
    start: float,
    cuts: list[tuple[float, float, str | None, bool]],
) -> dict[int, dict[str | None, float]]:
    """Fractions of each series owner (a job id, or a GPU index) per bucket in the window, from its series.

    ``series_sql`` selects ``owner, t_ms, weight`` rows of one session (``ids`` are its parameters). A step belongs
    to the piece its end falls in; one ending exactly on a cut belongs to the earlier piece (the step that ends at
    midnight is the old day's last). One range query per piece, on the series' (owner, t_ms) key: no per-row
    date arithmetic, so a month of 10 s steps splits in a fraction of a second. Owners with no series weight are
    absent (the caller splits them by wall time).
    """
    weights: dict[int, list[tuple[str | None, bool, float]]] = {}
    for i, (lo, hi, bucket, inside) in enumerate(cuts):
        conds = []
        if i > 0:
            conds.append(f"t_ms > {(lo - start) * 1000!r}")
        if i < len(cuts) - 1:
            conds.append(f"t_ms <= {(hi - start) * 1000!r}")
        where = " AND ".join(conds) or "1"
        for owner, w in store.db.execute(
            f"SELECT owner, sum(weight) FROM ({series_sql}) WHERE {where} GROUP BY owner", ids
        ):
            if w:
                weights.setdefault(owner, []).append((bucket, inside, w))
    out: dict[int, dict[str | None, float]] = {}
    for owner, parts in weights.items():
        total = math.fsum(w for _, _, w in parts)
        shares = out.setdefault(owner, {})
        for bucket, inside, w in parts:
            if inside:
                shares[bucket] = shares.get(bucket, 0.0) + w / total
    return out


def _wall_split(start: float, end: float, cuts: list[tuple[float, float, str | None, bool]]) -> dict[str | None, float]:
    """Fractions per bucket of ``[start, end]`` in the window, by wall time (for owners with no series)."""
    out: dict[str | None, float] = {}
    for lo, hi, bucket, inside in cuts:
        if inside:
            out[bucket] = out.get(bucket, 0.0) + ((hi - lo) / (end - start) if end > start else 1.0)
    return out


def _whole(cuts: list[tuple[float, float, str | None, bool]]) -> tuple[bool, str | None]:
    """(True, its bucket) when a session is one piece, wholly in the window; else (False, None)."""
    return (True, cuts[0][2]) if len(cuts) == 1 and cuts[0][3] else (False, None)


def job_pieces(stores: Sequence[Store], window: Window, by: str | None = None) -> list[Piece]:
    """Every stored job of the sessions overlapping ``window``, as pieces per bucket (day/week when ``by``).

    Args:
        by: ``day`` or ``week`` to cut pieces at local (or UTC) midnights; anything else keeps one piece per job.
    """
    out: list[Piece] = []
    for source, store in enumerate(stores):
        ids = session_ids(store, since=window.since, until=window.until)
        if not ids:
            continue
        user_col = "j.user" if _has_column(store, "jobs", "user") else "NULL"
        # Readers never migrate: a database from before m006_waste has no busy/waste columns (no waste figures).
        waste_cols = (
            "j.busy_usd, j.waste_usd"
            if _has_column(store, "jobs", "waste_usd")
            else "NULL AS busy_usd, NULL AS waste_usd"
        )
        tag_where = " AND j.tag GLOB ?" if window.tag is not None else ""
        rows = store.db.query(
            f"SELECT j.id, j.session_id, j.tag, {user_col} AS user, j.cost_usd, j.gpu_hours, j.effective_gpu_hours, "
            f"j.avg_utilization, j.idle_gpu_hours, j.energy_kwh, j.samples, j.tokens, {waste_cols}, j.extra_json, "
            f"s.host, "
            f"s.started_wall AS start, {_END_WALL} AS end_wall FROM jobs j JOIN sessions s ON s.id = j.session_id "
            f"WHERE j.session_id IN (SELECT value FROM json_each(?)){tag_where} ORDER BY j.session_id, j.id",
            [_json_ids(ids)] + ([window.tag] if window.tag is not None else []),
        )
        by_session: dict[int, list[dict]] = {}
        for r in rows:
            by_session.setdefault(r["session_id"], []).append(r)
        for sid, jobs in by_session.items():
            start, end = jobs[0]["start"] or 0.0, jobs[0]["end_wall"] or jobs[0]["start"] or 0.0
            cuts = _cuts(start, end, window, by)
            whole, bucket = _whole(cuts)
            fractions: dict[int, dict[str | None, float]] = {}
            if not whole:
                job_ids = [j["id"] for j in jobs]
                fractions = _split(
                    store,
                    "SELECT job_id AS owner, t_ms, gpu_s AS weight FROM job_samples "
                    "WHERE job_id IN (SELECT value FROM json_each(?))",
                    [_json_ids(job_ids)],
                    start,
                    cuts,
                )
            wall = None
            for j in jobs:
                if whole:
                    parts: dict[str | None, float] = {bucket: 1.0}
                elif j["id"] in fractions:
                    parts = fractions[j["id"]]
                else:
                    wall = wall if wall is not None else _wall_split(start, end, cuts)
                    parts = wall
                figures = _job_figures(j)
                reasons = _job_reasons(j)
                user = j["tag"] if j["tag"] in SPECIAL_TAGS else (j["user"] or UNKNOWN_USER)
                for b, f in parts.items():
                    out.append(
                        Piece(
                            source,
                            sid,
                            j["host"] or "?",
                            j["tag"],
                            user,
                            None,
                            b,
                            f,
                            figures if f == 1.0 else _scale(figures, f),
                            start,
                            end,
                            reasons if reasons is None or f == 1.0 else {k: v * f for k, v in reasons.items()},
                        )
                    )
    return out


def gpu_pieces(stores: Sequence[Store], window: Window, by: str | None = None) -> list[Piece]:
    """Every GPU of the sessions overlapping ``window``, as pieces (``gpu`` = ``index model``).

    A GPU's GPU-hours are its recorded hours (the series steps' length, else the session's span); effective
    GPU-hours weight them by the device utilization of the series (0 without a series, which then counts no
    utilization); idle dollars are the GPU's ``(idle)`` cost and idle GPU-hours its hours pro-rated by them.
    Busy and wasted dollars are None: the store keeps waste per job, not per GPU.
    """
    out: list[Piece] = []
    for source, store in enumerate(stores):
        ids = session_ids(store, since=window.since, until=window.until)
        if not ids:
            continue
        rows = list(
            store.db.query(
                f"SELECT g.session_id, g.gpu_index, g.model_key, g.name, g.cost_usd, g.idle_cost_usd, g.energy_j, s.host, "
                f"s.started_wall AS start, {_END_WALL} AS end_wall FROM session_gpus g JOIN sessions s "
                f"ON s.id = g.session_id WHERE g.session_id IN (SELECT value FROM json_each(?)) "
                f"ORDER BY g.session_id, g.gpu_index",
                [_json_ids(ids)],
            )
        )
        stats = {
            (sid, gi): (dt, eff, known)
            for sid, gi, dt, eff, known in store.db.execute(
                "SELECT session_id, gpu_index, sum(dt_ms), sum(utilization * dt_ms), sum(CASE WHEN utilization IS NULL "
                "THEN 0 ELSE dt_ms END) FROM gpu_samples WHERE session_id IN (SELECT value FROM json_each(?)) "
                "GROUP BY session_id, gpu_index",
                [_json_ids(ids)],
            )
        }
        for r in rows:
            sid, gi = r["session_id"], r["gpu_index"]
            start, end = r["start"] or 0.0, r["end_wall"] or r["start"] or 0.0
            dt, eff, known = stats.get((sid, gi), (0, 0.0, 0))
            hours = (dt / 3.6e6) if dt else max(0.0, end - start) / 3600
            cost, idle = r["cost_usd"] or 0.0, r["idle_cost_usd"] or 0.0
            figures = [
                cost,
                hours,
                (eff or 0.0) / 3.6e6,
                (known or 0) / 3.6e6,
                idle,
                hours * idle / cost if cost > 0 else 0.0,
                (r["energy_j"] or 0.0) / 3.6e6,
                None,
                None,
                None,
                None,
            ]
            cuts = _cuts(start, end, window, by)
            whole, bucket = _whole(cuts)
            if whole:
                parts: dict[str | None, float] = {bucket: 1.0}
            else:
                series = _split(
                    store,
                    "SELECT gpu_index AS owner, t_ms, dt_ms AS weight FROM gpu_samples "
                    "WHERE session_id = ? AND gpu_index = ?",
                    [sid, gi],
                    start,
                    cuts,
                )
                parts = series[gi] if gi in series else _wall_split(start, end, cuts)
            label = f"{gi} {r['model_key'] or r['name'] or '?'}"
            for b, f in parts.items():
                out.append(
                    Piece(
                        source,
                        sid,
                        r["host"] or "?",
                        "",
                        "",
                        label,
                        b,
                        f,
                        figures if f == 1.0 else _scale(figures, f),
                        start,
                        end,
                    )
                )
    return out


def _json_ids(ids: Iterable[int]) -> str:
    # One bound parameter for any number of ids (SQLite limits the count of parameters, not a JSON text's size).
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


# -- rows: pieces summed per host and key ----------------------------------------------------------------------
@dataclass
class SpendRow:
    """The spend of one key (a tag, user, GPU, day or week) on one host, or of a host (``--by host``)."""

    host: str
    key: str
    sums: dict = field(default_factory=lambda: dict.fromkeys(FIGURES, 0.0))
    reported: dict = field(default_factory=lambda: dict.fromkeys(_OPTIONAL, False))
    """Per optional figure (samples, tokens, waste_usd): whether any piece of the row reported it."""
    sessions: set = field(default_factory=set)
    daily_cost: dict = field(default_factory=dict)
    """Bucket -> cost, when the pieces were cut by day or week."""
    first_wall: float = math.inf
    last_wall: float = -math.inf
    waste_by_reason: dict | None = None
    """The row's waste dollars by reason, summed over its pieces that have waste figures (None: none has)."""

    def add(self, p: Piece) -> None:
        sums, figures = self.sums, p.figures
        for k, v in zip(FIGURES, figures, strict=True):
            if v is not None:
                sums[k] += v
        for k, i in _OPTIONAL.items():
            if figures[i] is not None:
                self.reported[k] = True
        if p.waste_by_reason is not None:
            self._add_reasons(p.waste_by_reason)
        self.sessions.add((p.source, p.session_id))
        if p.bucket is not None:
            self.daily_cost[p.bucket] = self.daily_cost.get(p.bucket, 0.0) + p.figures[_COST]
        self.first_wall = min(self.first_wall, p.first_wall)
        self.last_wall = max(self.last_wall, p.last_wall)

    def _add_reasons(self, reasons: dict[str, float]) -> None:
        mine = self.waste_by_reason if self.waste_by_reason is not None else {}
        for k, v in reasons.items():
            mine[k] = mine.get(k, 0.0) + v
        self.waste_by_reason = mine

    def to_json(self, by: str) -> dict:
        """The row with the project's JSON keys (``*_usd``, ``gpu_hours``, fractions 0..1)."""
        s = self.sums
        samples = _count(s["samples"]) if self.reported["samples"] else None
        tokens = _count(s["tokens"]) if self.reported["tokens"] else None
        out: dict[str, object] = {"host": self.host} if by == "host" else {"host": self.host, by: self.key}
        out.update(
            {
                "cost_usd": s["cost_usd"],
                "gpu_hours": s["gpu_hours"],
                "effective_gpu_hours": s["effective_gpu_hours"],
                "avg_utilization": s["effective_gpu_hours"] / s["util_gpu_hours"] if s["util_gpu_hours"] > 0 else None,
                "idle_usd": s["idle_usd"],
                "idle_gpu_hours": s["idle_gpu_hours"],
                "energy_kwh": s["energy_kwh"],
                "samples": samples,
                "tokens": tokens,
                "cost_per_sample_usd": s["cost_usd"] / samples if samples else None,
                "cost_per_1m_tokens_usd": s["cost_usd"] / tokens * 1e6 if tokens else None,
                "cost_per_effective_gpu_hour_usd": (
                    s["cost_usd"] / s["effective_gpu_hours"] if s["effective_gpu_hours"] > 0 else None
                ),
                "busy_usd": s["busy_usd"] if self.reported["waste_usd"] else None,
                "waste_usd": s["waste_usd"] if self.reported["waste_usd"] else None,
                "waste_by_reason": (
                    None
                    if self.waste_by_reason is None
                    else dict(sorted(self.waste_by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
                ),
                "sessions": len(self.sessions),
            }
        )
        return out


def _count(v: float) -> int | float:
    """A summed count: whole when it is (pro-rated pieces of a split job may leave a fraction)."""
    return round(v) if abs(v - round(v)) < 1e-6 else v


def group(pieces: Iterable[Piece], by: str) -> list[SpendRow]:
    """Sum pieces into rows per host and ``by`` key, costliest first (days and weeks in time order)."""
    rows: dict[tuple[str, str], SpendRow] = {}
    for p in pieces:
        key = {"tag": p.tag, "user": p.user, "gpu": p.gpu, "host": "", "day": p.bucket, "week": p.bucket}[by] or ""
        row = rows.get((p.host, key))
        if row is None:
            row = rows[(p.host, key)] = SpendRow(p.host, key)
        row.add(p)
    out = list(rows.values())
    if by in ("day", "week"):
        out.sort(key=lambda r: (r.key, r.host))
    else:
        out.sort(key=lambda r: (r.key in SPECIAL_TAGS, -r.sums["cost_usd"], r.host, r.key))
    return out


def total(rows: Iterable[SpendRow]) -> SpendRow:
    """All rows summed into one (``host`` and ``key`` ``total``)."""
    t = SpendRow("total", "total")
    for r in rows:
        for k in FIGURES:
            t.sums[k] += r.sums[k]
        for k in t.reported:
            t.reported[k] = t.reported[k] or r.reported[k]
        if r.waste_by_reason is not None:
            t._add_reasons(r.waste_by_reason)
        t.sessions |= r.sessions
        for b, c in r.daily_cost.items():
            t.daily_cost[b] = t.daily_cost.get(b, 0.0) + c
        t.first_wall = min(t.first_wall, r.first_wall)
        t.last_wall = max(t.last_wall, r.last_wall)
    return t


def spend(stores: Sequence[Store], by: str, window: Window) -> list[SpendRow]:
    """The rows of ``gputab spend --by BY`` over ``window``."""
    if by not in GROUPS:
        raise ValueError(f"by must be one of {', '.join(GROUPS)}, not {by!r}")
    cut = by if by in ("day", "week") else None
    pieces = gpu_pieces(stores, window, cut) if by == "gpu" else job_pieces(stores, window, cut)
    return group(pieces, by)


def utilization_histogram(
    store: Store, session_ids_: Sequence[int], tag: str, window: Window, bins: int = 10
) -> list[float]:
    """GPU-hours of job ``tag`` per device-utilization bin (``bins`` equal bins over 0..100 %), from its series.

    Each series step counts its GPU-seconds in the bin of its utilization (effective / held GPU-seconds); steps
    whose utilization is unknown are left out. Only steps ending in ``window`` count.
    """
    if not session_ids_:
        return [0.0] * bins
    clip: list[str] = []
    params: list[object] = [_json_ids(session_ids_), tag]
    if window.since is not None:
        clip.append("js.t_ms > (? - s.started_wall) * 1000")
        params.append(window.since)
    if window.until is not None:
        clip.append("js.t_ms <= (? - s.started_wall) * 1000")
        params.append(window.until)
    where = "".join(f" AND {c}" for c in clip)
    out = [0.0] * bins
    for b, gpu_s in store.db.execute(
        f"SELECT min({bins - 1}, max(0, CAST(js.effective_gpu_s / js.gpu_s * {bins} AS INTEGER))) AS b, "
        f"sum(js.gpu_s) FROM jobs j JOIN sessions s ON s.id = j.session_id JOIN job_samples js ON js.job_id = j.id "
        f"WHERE j.session_id IN (SELECT value FROM json_each(?)) AND j.tag = ? AND js.gpu_s > 0 "
        f"AND js.effective_gpu_s IS NOT NULL{where} GROUP BY b",
        params,
    ):
        out[int(b)] += gpu_s / 3600
    return out


def open_stores(paths: Sequence[os.PathLike | str]) -> list[Store]:
    """Open each database read-only (never created, migrated or written), once even when named twice.

    Raises:
        NoDatabase, SchemaTooNew, StoreError: as :meth:`Store.open`; the stores opened so far are closed.
    """
    stores: list[Store] = []
    seen: set[tuple[int, int]] = set()
    try:
        for p in paths:
            try:
                st = os.stat(p)
                ident = (st.st_dev, st.st_ino)
            except OSError:
                ident = None
            if ident is not None and ident in seen:
                continue
            stores.append(Store.open(p, readonly=True))
            if ident is not None:
                seen.add(ident)
    except BaseException:
        for s in stores:
            s.close()
        raise
    return stores


def latest_wall(stores: Sequence[Store]) -> float | None:
    """The newest recorded moment across ``stores`` (a session's end, or its last commit while it records)."""
    ends = [
        r[0]
        for s in stores
        for r in s.db.execute("SELECT max(coalesce(ended_wall, last_wall, started_wall)) FROM sessions")
        if r[0] is not None
    ]
    return max(ends) if ends else None


def last_days(end: float, days: int, utc: bool) -> list[str]:
    """The ``days`` days (ISO dates) ending with the day of ``end``, oldest first."""
    last = bucket_start(end, "day", utc)
    return [(last - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
