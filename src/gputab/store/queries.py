"""Reading sessions back: the list, one session's jobs and GPUs, a job's series; and counts entered later.

Every figure read here was committed by a recorder; a live session reads as of its last commit.
"""

from __future__ import annotations

import json
import time

from sqlite_utils import Database

from gputab.errors import GputabError
from gputab.store.lock import WriterInfo, utc_iso
from gputab.store.schema import JOB_COLUMNS

SPECIAL_TAGS = ("(idle)", "(unobserved)")


class StoreError(GputabError):
    """The database cannot be opened or read."""


class NoDatabase(StoreError):
    """There is no database at the path (nothing was recorded yet)."""


class NoSuchSession(StoreError):
    """A session id or reference that names no session."""


def job_from_row(row: dict) -> dict:
    """A ``jobs`` row back as the JSON dict of ``JobTotals.to_json()`` (same keys, same order first)."""
    out = {"tag": row["tag"]}
    for c in JOB_COLUMNS:
        out[c] = row[c]
    if row.get("extra_json"):
        out.update(json.loads(row["extra_json"]))
    return out


def per_unit(cost: float | None, count: int | None, unit: float) -> float | None:
    """Cost per ``unit`` counted things, as the ledger computes it (None without a count)."""
    return cost / count * unit if cost is not None and count else None


class StoreQueries:
    """Read methods of :class:`gputab.store.Store` (mixed in; ``self.db`` is the connection)."""

    db: Database

    def writer_info(self) -> WriterInfo | None:  # pragma: no cover - defined by Store
        raise NotImplementedError

    def live_session_id(self) -> int | None:
        """The session a live recorder is writing, or None."""
        info = self.writer_info()
        return info.session_id if info is not None else None

    def sessions(self) -> list[dict]:
        """Every session, newest first: id, host, start, end, end_reason, duration_s, cost_usd and more."""
        live = self.live_session_id()
        rows = self.db.query("SELECT * FROM sessions ORDER BY id DESC")
        return [self._session_dict(r, live) for r in rows]

    @staticmethod
    def _session_dict(r: dict, live: int | None) -> dict:
        end_wall = r["ended_wall"] if r["ended_wall"] is not None else r["last_wall"]
        return {
            "id": r["id"],
            "host": r["host"],
            "backend": r["backend"],
            "start": r["started_at"],
            "end": r["ended_at"],
            "end_reason": r["end_reason"] if r["end_reason"] else ("recording" if r["id"] == live else None),
            "end_detail": r["end_detail"],
            "duration_s": (end_wall - r["started_wall"]) if end_wall is not None else 0.0,
            "cost_usd": r["total_cost_usd"] or 0.0,
            "energy_kwh": (r["energy_j"] or 0.0) / 3.6e6,
            "ticks": r["ticks"] or 0,
            "interval": r["interval"],
            "last_commit": utc_iso(r["last_wall"]) if r["last_wall"] is not None else None,
            "gputab_version": r["gputab_version"],
        }

    def resolve_session(self, ref: str | int) -> int:
        """A session id from ``ref``: an id, or ``last`` (the newest session). Raises NoSuchSession."""
        if isinstance(ref, str) and ref.strip().lower() == "last":
            row = next(iter(self.db.query("SELECT max(id) AS id FROM sessions")), None)
            if row is None or row["id"] is None:
                raise NoSuchSession("no sessions recorded yet; start one with `gputab record`")
            return int(row["id"])
        try:
            sid = int(ref)
        except (TypeError, ValueError):
            raise NoSuchSession(f"{ref!r} is not a session; give a session id or `last` (see `gputab sessions`)") from None
        if next(iter(self.db.query("SELECT id FROM sessions WHERE id = ?", [sid])), None) is None:
            raise NoSuchSession(f"there is no session {sid}; see `gputab sessions` for the ids")
        return sid

    def session(self, session_id: int) -> dict:
        """One session as in :meth:`sessions`, plus the price table in force (``prices``)."""
        row = next(iter(self.db.query("SELECT * FROM sessions WHERE id = ?", [session_id])), None)
        if row is None:
            raise NoSuchSession(f"there is no session {session_id}; see `gputab sessions` for the ids")
        out = self._session_dict(row, self.live_session_id())
        out["prices"] = json.loads(row["prices_json"]) if row["prices_json"] else None
        return out

    def jobs(self, session_id: int) -> list[dict]:
        """The session's jobs as ``JobTotals.to_json()`` dicts, costliest first, ``(idle)``/``(unobserved)`` last."""
        rows = [job_from_row(r) for r in self.db.query("SELECT * FROM jobs WHERE session_id = ?", [session_id])]
        rows.sort(key=lambda j: (j["tag"] in SPECIAL_TAGS, -(j["cost_usd"] or 0.0), j["tag"]))
        return rows

    def gpus(self, session_id: int) -> list[dict]:
        """The session's GPUs: identity, price in force and totals."""
        rows = self.db.query("SELECT * FROM session_gpus WHERE session_id = ? ORDER BY gpu_index", [session_id])
        out = []
        for r in rows:
            d = dict(r)
            d.pop("session_id")
            d["index"] = d.pop("gpu_index")
            d["charge_energy"] = bool(d["charge_energy"])
            d["unknown_price"] = bool(d["unknown_price"])
            out.append(d)
        return out

    def job_series(self, session_id: int, tag: str) -> list[dict]:
        """A job's stored series: t (seconds since start), cumulative cost, GPU-seconds, utilization, VRAM."""
        rows = self.db.query(
            "SELECT s.* FROM job_samples s JOIN jobs j ON j.id = s.job_id WHERE j.session_id = ? AND j.tag = ? "
            "ORDER BY s.t_ms", [session_id, tag])
        return [{"t": r["t_ms"] / 1000.0, "cost_usd": r["cost_usd"], "gpu_s": r["gpu_s"],
                 "utilization": (r["effective_gpu_s"] / r["gpu_s"]) if r["gpu_s"] and r["effective_gpu_s"] is not None
                 else None,
                 "vram_bytes": r["vram_bytes"], "burn_rate_usd_per_hour": r["burn_rate_usd_per_hour"]} for r in rows]

    def add_samples(self, session_id: int, tag: str, samples: int = 0, tokens: int = 0,
                    reporter: str = "cli") -> dict:
        """Add counts to a job of a closed session after the fact; returns the job's updated figures.

        The live session is the recorder's to write (it would overwrite the job's row at its next commit), so
        the CLI sends counts for it through the spool instead.
        """
        if session_id == self.live_session_id():
            raise StoreError(f"session {session_id} is being recorded; its counts go through the recorder")
        row = next(iter(self.db.query("SELECT * FROM jobs WHERE session_id = ? AND tag = ?", [session_id, tag])),
                   None)
        if row is None:
            known = ", ".join(j["tag"] for j in self.jobs(session_id) if j["tag"] not in SPECIAL_TAGS) or "none"
            raise NoSuchSession(f"session {session_id} has no job {tag!r} (its jobs: {known}); "
                                f"pick the session with --session")
        new_samples = (row["samples"] or 0) + samples if samples or row["samples"] is not None else None
        new_tokens = (row["tokens"] or 0) + tokens if tokens or row["tokens"] is not None else None
        cost = row["cost_usd"]
        with self.db.atomic():
            self.db["progress"].insert({"session_id": session_id, "tag": tag, "samples": samples, "tokens": tokens,
                                        "wall": time.time(), "source": "cli", "reporter": reporter})
            self.db.execute(
                "UPDATE jobs SET samples = ?, tokens = ?, cost_per_sample_usd = ?, cost_per_1k_samples_usd = ?, "
                "cost_per_1m_tokens_usd = ? WHERE id = ?",
                [new_samples, new_tokens, per_unit(cost, new_samples, 1), per_unit(cost, new_samples, 1000),
                 per_unit(cost, new_tokens, 1_000_000), row["id"]])
        return next(j for j in self.jobs(session_id) if j["tag"] == tag)

    def alerts(self, session_id: int) -> list[dict]:
        """The session's alerts, oldest first, as committed by its recorder.

        Each is a dict: ``id``, ``kind``, ``severity``, ``subject`` (the tag, ``gpu N`` or ``host``), ``message``,
        ``started_at`` and ``ended_at`` (Unix seconds; ``ended_at`` None while active), ``start`` and ``end``
        (ISO 8601 UTC), ``active`` and ``data`` (the figures behind it). An alert still active when its session
        ended keeps ``ended_at`` None: the recorder stopped watching, the condition did not clear.
        """
        if not self._has_alerts_table():
            return []
        rows = self.db.query("SELECT * FROM alerts WHERE session_id = ? ORDER BY wall, id", [session_id])
        return [{
            "id": r["id"], "kind": r["kind"], "severity": r["severity"], "subject": r["subject"],
            "message": r["message"], "started_at": r["wall"], "ended_at": r["cleared_wall"],
            "start": utc_iso(r["wall"]),
            "end": utc_iso(r["cleared_wall"]) if r["cleared_wall"] is not None else None,
            "active": r["cleared_wall"] is None,
            "data": json.loads(r["data_json"]) if r["data_json"] else {},
        } for r in rows]

    def alert_counts(self) -> dict[int, int]:
        """Session id -> number of alerts stored (sessions without any are absent)."""
        if not self._has_alerts_table():
            return {}
        return {r[0]: r[1] for r in self.db.execute("SELECT session_id, count(*) FROM alerts GROUP BY session_id")}

    def _has_alerts_table(self) -> bool:
        # A read-only open does not migrate, so a database from before m003_alerts has no such table.
        return self.db["alerts"].exists()

    def session_tags(self, tag: str) -> list[int]:
        """Ids of the sessions that have a job ``tag``, newest first."""
        return [r["session_id"] for r in
                self.db.query("SELECT session_id FROM jobs WHERE tag = ? ORDER BY session_id DESC", [tag])]
