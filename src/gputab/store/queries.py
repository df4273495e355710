"""Reading sessions back: the list, one session's jobs and GPUs, a job's series; and counts entered later.

Every figure read here was committed by a recorder; a live session reads as of its last commit.
"""

from __future__ import annotations

import json
import os
import time

from gputab.cost.buckets import SPECIAL_TAGS as SPECIAL_TAGS  # where store callers have found it
from gputab.errors import GputabError
from gputab.report import MAX_COUNT
from gputab.store.connection import Connection
from gputab.store.lock import WriterInfo, utc_iso
from gputab.store.mig import read_instances
from gputab.store.schema import JOB_COLUMNS


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
        out[c] = row.get(c)  # readers never migrate: a database from before a column was added lacks it
    if row.get("extra_json"):
        out.update(json.loads(row["extra_json"]))
    return out


def live_refusal(session_id: int) -> str:
    """Why counts cannot be entered by hand for the session being recorded, and what to do instead."""
    return (
        f"session {session_id} is still being recorded: let the job report its counts with "
        f"gputab.report(samples=..., tokens=...), or enter them after the session ends "
        f"(gputab samples TAG --add N --session {session_id})"
    )


def per_unit(cost: float | None, count: int | None, unit: float) -> float | None:
    """Cost per ``unit`` counted things, as the ledger computes it (None without a count)."""
    return cost / count * unit if cost is not None and count else None


class StoreQueries:
    """Read methods of :class:`gputab.store.Store` (mixed in; ``self.db`` is the connection)."""

    @property
    def db(self) -> Connection:  # pragma: no cover - defined by Store
        raise NotImplementedError

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
            "clock_step_seconds": r.get("clock_step_seconds"),
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
            raise NoSuchSession(
                f"{ref!r} is not a session; give a session id or `last` (see `gputab sessions`)"
            ) from None
        if not 0 < sid < 1 << 63:  # beyond SQLite's integers: no such row, and binding it would raise
            raise NoSuchSession(f"there is no session {sid}; see `gputab sessions` for the ids")
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
        """The session's GPUs: identity, price in force and totals; ``mig``: its MIG instances (None when it
        recorded none, or the database is from before MIG was stored)."""
        rows = self.db.query("SELECT * FROM session_gpus WHERE session_id = ? ORDER BY gpu_index", [session_id])
        migs = read_instances(self.db, session_id)  # {} before m009_mig
        out = []
        for r in rows:
            d = dict(r)
            d.pop("session_id")
            d["index"] = d.pop("gpu_index")
            d["charge_energy"] = bool(d["charge_energy"])
            d["unknown_price"] = bool(d["unknown_price"])
            d["mig"] = migs.get(d["index"])
            out.append(d)
        return out

    def job_series(self, session_id: int, tag: str) -> list[dict]:
        """A job's stored series: t (seconds since start), cumulative cost, GPU-seconds, utilization, VRAM."""
        rows = self.db.query(
            "SELECT s.* FROM job_samples s JOIN jobs j ON j.id = s.job_id WHERE j.session_id = ? AND j.tag = ? "
            "ORDER BY s.t_ms",
            [session_id, tag],
        )
        return [
            {
                "t": r["t_ms"] / 1000.0,
                "cost_usd": r["cost_usd"],
                "gpu_s": r["gpu_s"],
                "utilization": (r["effective_gpu_s"] / r["gpu_s"])
                if r["gpu_s"] and r["effective_gpu_s"] is not None
                else None,
                "vram_bytes": r["vram_bytes"],
                "burn_rate_usd_per_hour": r["burn_rate_usd_per_hour"],
            }
            for r in rows
        ]

    def add_samples(self, session_id: int, tag: str, samples: int = 0, tokens: int = 0, reporter: str = "cli") -> dict:
        """Add counts to a job of a closed session after the fact; returns the job's updated figures.

        The live session is the recorder's to write (it would overwrite the job's row at its next commit), so
        the CLI sends counts for it through the spool instead.
        """
        if session_id == self.live_session_id():
            raise StoreError(live_refusal(session_id))
        row = next(iter(self.db.query("SELECT * FROM jobs WHERE session_id = ? AND tag = ?", [session_id, tag])), None)
        if row is None:
            known = ", ".join(j["tag"] for j in self.jobs(session_id) if j["tag"] not in SPECIAL_TAGS) or "none"
            raise NoSuchSession(
                f"session {session_id} has no job {tag!r} (its jobs: {known}); pick the session with --session"
            )
        new_samples = (row["samples"] or 0) + samples if samples or row["samples"] is not None else None
        new_tokens = (row["tokens"] or 0) + tokens if tokens or row["tokens"] is not None else None
        for what, total in (("samples", new_samples), ("tokens", new_tokens)):
            if total is not None and not 0 <= total <= MAX_COUNT:
                raise GputabError(
                    f"{what} of job {tag!r} would come to {total:,}; counts are 0 to {MAX_COUNT:,}", exit_code=2
                )
        served = (row.get("prompt_tokens") or 0) + (row.get("generated_tokens") or 0)
        if new_tokens is not None and new_tokens < served:
            raise GputabError(
                f"tokens of job {tag!r} would come to {new_tokens:,}, fewer than the {served:,} prompt and generated "
                f"tokens its inference servers counted; a count by hand adds to or sets the total with them",
                exit_code=2,
            )
        cost = row["cost_usd"]
        with self.db.atomic():
            self.db.table("progress").insert(
                {
                    "session_id": session_id,
                    "tag": tag,
                    "samples": samples,
                    "tokens": tokens,
                    "wall": time.time(),
                    "source": "cli",
                    "reporter": reporter,
                    "owner_uid": os.getuid(),
                }
            )
            self.db.execute(
                "UPDATE jobs SET samples = ?, tokens = ?, cost_per_sample_usd = ?, cost_per_1k_samples_usd = ?, "
                "cost_per_1m_tokens_usd = ? WHERE id = ?",
                [
                    new_samples,
                    new_tokens,
                    per_unit(cost, new_samples, 1),
                    per_unit(cost, new_samples, 1000),
                    per_unit(cost, new_tokens, 1_000_000),
                    row["id"],
                ],
            )
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
        return [
            {
                "id": r["id"],
                "kind": r["kind"],
                "severity": r["severity"],
                "subject": r["subject"],
                "message": r["message"],
                "started_at": r["wall"],
                "ended_at": r["cleared_wall"],
                "start": utc_iso(r["wall"]),
                "end": utc_iso(r["cleared_wall"]) if r["cleared_wall"] is not None else None,
                "active": r["cleared_wall"] is None,
                "data": json.loads(r["data_json"]) if r["data_json"] else {},
            }
            for r in rows
        ]

    def rejected_reports(self, session_id: int) -> list[dict]:
        """Spool reports the session's recorder ignored, per reason and file owner, as of its last commit.

        Each dict: ``reason`` (a key of :data:`gputab.progress.spool.REASONS`; :func:`gputab.progress.spool.explain` adds the
        words), ``owner_uid`` (the spool file's owner), ``reports``, and ``samples`` and ``tokens`` (what the
        rejected reports claimed). Empty for a database from before ``m005_spool_trust``.
        """
        if not self.db["rejected_reports"].exists():
            return []
        rows = self.db.query(
            "SELECT * FROM rejected_reports WHERE session_id = ? ORDER BY reports DESC, reason, owner_uid", [session_id]
        )
        return [
            {
                "reason": r["reason"],
                "owner_uid": r["owner_uid"],
                "reports": r["reports"],
                "samples": r["samples"],
                "tokens": r["tokens"],
            }
            for r in rows
        ]

    def read_faults(self, session_id: int) -> list[dict]:
        """The GPU readings that failed in the session, per GPU, call and error, as of its last commit.

        Each dict: ``gpu_index``, ``call``, ``error`` (``NVML_ERROR_...`` or ``no_answer``), ``count``,
        ``first_at`` and ``last_at`` (ISO 8601 UTC), ``detail`` (the first one in words). Empty for a database from
        before ``m011_read_faults``.
        """
        if not self.db["read_faults"].exists():
            return []
        rows = self.db.query(
            "SELECT * FROM read_faults WHERE session_id = ? ORDER BY gpu_index, first_wall, call, error", [session_id]
        )
        return [
            {
                "gpu_index": r["gpu_index"],
                "call": r["call"],
                "error": r["error"],
                "count": r["count"],
                "first_at": utc_iso(r["first_wall"]),
                "last_at": utc_iso(r["last_wall"]),
                "detail": r["detail"],
            }
            for r in rows
        ]

    def alert_counts(self) -> dict[int, int]:
        """Session id -> number of alerts stored (sessions without any are absent)."""
        if not self._has_alerts_table():
            return {}
        return {r[0]: r[1] for r in self.db.execute("SELECT session_id, count(*) FROM alerts GROUP BY session_id")}

    def _has_alerts_table(self) -> bool:
        # A read-only open does not migrate, so a database from before m003_alerts has no such table.
        return self.db["alerts"].exists()

    def latest_gpu_samples(self, session_id: int) -> list[dict]:
        """Each GPU's newest stored series point, by GPU index: the recorder's last series step, not its last tick.

        The recorder stores hardware figures once per ``series_interval`` (10 s by default) as aggregates over the
        step, so these lag by up to one step. Each dict: ``index``, ``t`` (seconds since the session start, end of
        the step), ``dt`` (length of the step, s), ``utilization`` (time-weighted mean, 0..1), ``memory_used_bytes``
        (max over the step), ``power_w`` (mean), ``temperature_c`` (max), ``energy_j`` and ``cost_usd`` (within the
        step). A GPU with no step stored yet is absent. The store has no memory total or power limit.
        """
        # One index seek per GPU (max over the primary key's last column), not a scan of months of series:
        # CROSS JOIN makes session_gpus the outer loop, so the series table is only ever probed by its full key.
        rows = self.db.query(
            "SELECT g.* FROM session_gpus s CROSS JOIN gpu_samples g ON g.session_id = s.session_id "
            "AND g.gpu_index = s.gpu_index AND g.t_ms = (SELECT max(t_ms) FROM gpu_samples "
            "WHERE session_id = s.session_id AND gpu_index = s.gpu_index) "
            "WHERE s.session_id = ? ORDER BY g.gpu_index",
            [session_id],
        )
        return [
            {
                "index": r["gpu_index"],
                "t": r["t_ms"] / 1000.0,
                "dt": r["dt_ms"] / 1000.0,
                "utilization": r["utilization"],
                "memory_used_bytes": r["memory_used_bytes"],
                "power_w": r["power_w"],
                "temperature_c": r["temperature_c"],
                "energy_j": r["energy_j"],
                "cost_usd": r["cost_usd"],
            }
            for r in rows
        ]

    def live_processes(self, session_id: int) -> list[dict]:
        """The GPU processes the session's recorder saw last, with the tag it charges them to and how it found it.

        The recorder writes a process when it first sees it, when its tag or tag source changes (a manual tag,
        recorded at once) and, for every process still running, at each series step. So a process counts as live
        while its ``last_wall`` is within one series step (plus two ticks of slack) of the session's last commit;
        one that exited lingers here for up to that long. The store holds no per-process VRAM or SM figures.

        Returns:
            Dicts sorted by GPU then pid: ``pid``, ``gpu_index``, ``create_time``, ``user``, ``name``, ``cmdline``
            (already redacted), ``tag``, ``source`` (env, inherited, key, rule, container, manual, untagged,
            gone), ``first_wall``, ``last_wall``. One per (pid, GPU): the newest, should a PID have been reused.
        """
        rows = self.db.query(
            "SELECT p.* FROM processes p JOIN sessions s ON s.id = p.session_id WHERE p.session_id = ? "
            "AND p.last_wall >= coalesce(s.last_wall, s.started_wall) - (s.series_interval + 2 * s.interval) "
            "ORDER BY p.last_wall",
            [session_id],
        )
        newest: dict[tuple[int, int], dict] = {}
        for r in rows:
            newest[(r["pid"], r["gpu_index"])] = {
                "pid": r["pid"],
                "gpu_index": r["gpu_index"],
                "create_time": r["create_time"],
                "user": r["user"],
                "name": r["name"],
                "cmdline": r["cmdline"],
                "tag": r["tag"],
                "source": r["tag_source"],
                "first_wall": r["first_wall"],
                "last_wall": r["last_wall"],
            }
        return [newest[k] for k in sorted(newest, key=lambda k: (k[1], k[0]))]

    def cost_by_tag(self) -> dict[str, float]:
        """Tag -> dollars charged to it over every session of this database (budgets count a job's whole life)."""
        return {
            r["tag"]: r["cost"] or 0.0
            for r in self.db.query("SELECT tag, SUM(cost_usd) AS cost FROM jobs GROUP BY tag")
        }

    def session_tags(self, tag: str) -> list[int]:
        """Ids of the sessions that have a job ``tag``, newest first."""
        return [
            r["session_id"]
            for r in self.db.query("SELECT session_id FROM jobs WHERE tag = ? ORDER BY session_id DESC", [tag])
        ]
