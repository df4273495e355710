"""Spend's pieces: each stored job's (or GPU's) totals, scaled to the part of it in one bucket of the window.

Reads the stored totals (``jobs``, ``session_gpus``) of every session that overlaps the window, from databases
opened read-only through :class:`gputab.store.Store`.

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
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gputab.cost.buckets import IDLE, SPECIAL_TAGS
from gputab.store.database import Store
from gputab.store.review import session_ids
from gputab.store.spend_window import Window, window_cuts

UNKNOWN_USER = "?"
"""The user of a job recorded before gputab stored users (or whose processes' owner could not be read)."""
_END_WALL = "coalesce(s.ended_wall, s.last_wall, s.started_wall)"


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
    "unmeasured_usd",
    "prompt_tokens",
    "generated_tokens",
)
#: Figures that may be None (not reported), and their positions in :data:`FIGURES`.
OPTIONAL_FIGURES = {
    k: FIGURES.index(k) for k in ("samples", "tokens", "waste_usd", "prompt_tokens", "generated_tokens")
}
COST_INDEX = FIGURES.index("cost_usd")


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
        # Sessions from before m011_unmeasured counted the unmeasured part as waste: 0 here.
        None if waste is None else (r["unmeasured_usd"] or 0.0),
        r["prompt_tokens"],
        r["generated_tokens"],
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
        waste_cols += (
            ", j.unmeasured_usd" if _has_column(store, "jobs", "unmeasured_usd") else ", NULL AS unmeasured_usd"
        )
        # Tokens by kind: NULL before m014_token_kinds, and where no inference server counted any.
        waste_cols += "".join(
            f", j.{c}" if _has_column(store, "jobs", c) else f", NULL AS {c}"
            for c in ("prompt_tokens", "generated_tokens")
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
            cuts = window_cuts(start, end, window, by)
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
                None,
                None,
                None,
            ]
            cuts = window_cuts(start, end, window, by)
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
