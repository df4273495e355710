"""Budgets in the database (``gputab budget set/list/rm``) and what each tag spent since a period began.

The ``budgets`` table comes with migration ``m008_budgets``: writers (``budget set``, the recorder) create it through
the normal writer path (:meth:`Store.open` with ``create=True``); readers never do, and read a database without
the table as one with no budgets.

Spend since a time, per tag, over every session of the database: a session that ended before it counts nothing, one
that started at or after it counts its jobs' totals, and one that spans it counts each job's total less its
cumulative cost at the last series step ending at or before that time (``job_samples.cost_usd`` is cumulative), so
the figure is exact to one series step (``recorder.series_interval``, 10 s by default).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable

from gputab.cost.buckets import SPECIAL_TAGS
from gputab.store.queries import StoreQueries

_END = "coalesce(s.ended_wall, s.last_wall, s.started_wall)"


def has_budgets_table(store: StoreQueries) -> bool:
    return bool(store.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'budgets'").fetchone())


def read_budgets(store: StoreQueries) -> list[dict]:
    """The stored budgets, oldest first (``users`` a list); [] for a database without the table."""
    if not has_budgets_table(store):
        return []
    rows = store.db.execute(
        "SELECT tag, cap_usd, period, stop, grace_seconds, users_json, set_wall, set_by FROM budgets "
        "ORDER BY set_wall, tag"
    ).fetchall()
    out = []
    for tag, cap, period, stop, grace, users, set_wall, set_by in rows:
        try:
            names = [str(u) for u in json.loads(users or "[]")]
        except (ValueError, TypeError):
            names = []
        out.append(
            {
                "tag": tag,
                "cap_usd": cap,
                "period": period,
                "stop": bool(stop),
                "grace_seconds": grace,
                "users": names,
                "set_wall": set_wall,
                "set_by": set_by,
            }
        )
    return out


def write_budget(
    store: StoreQueries,
    tag: str,
    cap_usd: float,
    period: str,
    stop: bool,
    grace_seconds: float,
    users: Iterable[str],
    wall: float,
    set_by: str | None,
) -> None:
    """Set (or replace) the budget of glob ``tag``, in one transaction."""
    with store.db.conn:
        store.db.execute(
            "INSERT OR REPLACE INTO budgets (tag, cap_usd, period, stop, grace_seconds, users_json, set_wall, set_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [tag, cap_usd, period, int(stop), grace_seconds, json.dumps(list(users)), wall, set_by],
        )


def remove_budget(store: StoreQueries, tag: str) -> bool:
    """Remove the stored budget of glob ``tag``; False when there was none (or no table)."""
    if not has_budgets_table(store):
        return False
    with store.db.conn:
        cur = store.db.execute("DELETE FROM budgets WHERE tag = ?", [tag])
    return cur.rowcount > 0


def spend_since(store: StoreQueries, since: float | None, exclude_session: int | None = None) -> dict[str, float]:
    """Tag -> dollars charged to it since ``since`` (None: ever) over every session but ``exclude_session``.

    ``(idle)`` and ``(unobserved)`` are left out: no budget holds them.
    """
    params: list = [exclude_session if exclude_session is not None else -1]
    where = "s.id != ?"
    if since is not None:
        where += f" AND {_END} >= ?"
        params.append(since)
    rows = store.db.execute(
        f"SELECT j.id, j.tag, j.cost_usd, s.started_wall FROM jobs j JOIN sessions s ON s.id = j.session_id "
        f"WHERE {where}",
        params,
    ).fetchall()
    out: dict[str, float] = {}
    for job_id, tag, cost, started in rows:
        if tag in SPECIAL_TAGS:
            continue
        usd = cost or 0.0
        if since is not None and started is not None and started < since:
            usd -= _cost_at(store, job_id, (since - started) * 1000.0)
        out[tag] = out.get(tag, 0.0) + max(0.0, usd)
    return out


def _cost_at(store: StoreQueries, job_id: int, t_ms: float) -> float:
    row = store.db.execute(
        "SELECT cost_usd FROM job_samples WHERE job_id = ? AND t_ms <= ? ORDER BY t_ms DESC LIMIT 1",
        [job_id, math.floor(t_ms)],
    ).fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0


def session_cost_at(store: StoreQueries, session_id: int, wall: float) -> dict[str, float]:
    """Tag -> what session ``session_id`` had charged it by ``wall`` (its series' cumulative cost then)."""
    row = store.db.execute("SELECT started_wall FROM sessions WHERE id = ?", [session_id]).fetchone()
    if row is None or row[0] is None or wall <= row[0]:
        return {}
    out = {}
    for job_id, tag in store.db.execute("SELECT id, tag FROM jobs WHERE session_id = ?", [session_id]).fetchall():
        usd = _cost_at(store, job_id, (wall - row[0]) * 1000.0)
        if usd:
            out[tag] = usd
    return out


def latest_jobs(store: StoreQueries, tags: Iterable[str]) -> dict[str, dict]:
    """Tag -> its row in the newest session that has it (``live``: that session is being recorded), with the
    forecast keys of ``extra_json``: where ``budget list`` takes the burn rate and the projection from."""
    live = store.live_session_id()
    out: dict[str, dict] = {}
    for tag in tags:
        try:
            row = store.db.execute(
                "SELECT session_id, cost_usd, burn_rate_usd_per_hour, extra_json FROM jobs WHERE tag = ? "
                "ORDER BY session_id DESC LIMIT 1",
                [tag],
            ).fetchone()
        except sqlite3.Error:
            continue
        if row is None:
            continue
        sid, cost, burn, extra = row
        try:
            more = json.loads(extra) if extra else {}
        except ValueError:
            more = {}
        more = more if isinstance(more, dict) else {}
        out[tag] = {
            "session_id": sid,
            "live": sid == live,
            "cost_usd": cost or 0.0,
            "burn_rate_usd_per_hour": burn,
            "projected_cost_usd": more.get("projected_cost_usd"),
            "eta_seconds": more.get("eta_seconds"),
        }
    return out
