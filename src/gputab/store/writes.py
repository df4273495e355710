"""The recorder's writes: buffered in memory per tick, written in one transaction per commit.

Per tick the recorder only appends to lists here; :meth:`SessionWriter.flush` (every ``commit_interval``)
writes them with ``executemany`` and upserts the job and GPU totals, all in one transaction. If the
transaction fails (database locked, read-only, disk full) it is rolled back, the buffers are kept, and the
next flush writes everything, so a committed figure is never lost and a failed commit loses nothing either.
Even the session row is created by the first successful flush: a recorder can start on a database it cannot
write yet.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from gputab.store.database import Store
from gputab.store.lock import utc_iso
from gputab.store.mig import write_instances
from gputab.store.schema import JOB_COLUMNS

#: A writer waits this long for a lock before holding its figures for the next commit instead.
WRITE_BUSY_MS = 250

_JOB_INSERT = (
    f"INSERT INTO jobs (session_id, tag, {', '.join(JOB_COLUMNS)}, extra_json, user) "
    f"VALUES (?, ?, {', '.join('?' * len(JOB_COLUMNS))}, ?, ?) "
    f"ON CONFLICT (session_id, tag) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*JOB_COLUMNS, "extra_json", "user"))
)
_GPU_COLUMNS = (
    "uuid",
    "name",
    "model_key",
    "mode",
    "rate_per_hour",
    "charge_energy",
    "price_per_kwh",
    "pue",
    "price_source",
    "price_date",
    "unknown_price",
    "energy_method",
    "cost_usd",
    "idle_cost_usd",
    "unobserved_cost_usd",
    "energy_j",
    "mig_slices",
    "unattributed_cost_usd",
)
_GPU_UPSERT = (
    f"INSERT INTO session_gpus (session_id, gpu_index, {', '.join(_GPU_COLUMNS)}) "
    f"VALUES (?, ?, {', '.join('?' * len(_GPU_COLUMNS))}) ON CONFLICT (session_id, gpu_index) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _GPU_COLUMNS)
)


class StoreWriteError(Exception):
    """A flush failed; the figures are still held in memory. ``kind``: locked, read-only, full or error."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"database {kind}: {detail}" if kind != "error" else f"database error: {detail}")
        self.kind = kind
        self.detail = detail


def classify(exc: BaseException) -> str:
    """Name the trouble behind a SQLite or OS error, for the one line the user sees."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return "locked"
    if "readonly" in text or "read-only" in text or "permission" in text or "unable to open" in text:
        return "read-only"
    if "full" in text or "disk i/o" in text or "no space" in text or "too large" in text:
        return "full"
    return "error"


@dataclass(frozen=True)
class SessionMeta:
    """What a session row says about the recording."""

    host: str
    backend: str
    pid: int
    gputab_version: str
    started_wall: float
    interval: float
    commit_interval: float
    series_interval: float
    prices_json: str


def job_values(session_id: int, job: dict) -> tuple:
    """A ``JobTotals.to_json()`` dict as the parameters of ``_JOB_INSERT``.

    ``user`` (added by the recorder: who owns the job's processes, ``a,b`` for several) has its own column.
    """
    extra = {k: v for k, v in job.items() if k not in ("tag", "user") and k not in JOB_COLUMNS}
    return (
        session_id,
        job["tag"],
        *(job.get(c) for c in JOB_COLUMNS),
        json.dumps(extra, sort_keys=True),
        job.get("user"),
    )


class SessionWriter:
    """Buffers one session's figures and writes them at each :meth:`flush`.

    Args:
        store: the database (the writer reconnects through it after a failure).
        meta: the session row's description.
    """

    def __init__(self, store: Store, meta: SessionMeta) -> None:
        self.store = store
        store.busy_ms = WRITE_BUSY_MS
        self.meta = meta
        self.session_id: int | None = None
        self.ended = False
        self._job_ids: dict[str, int] = {}
        self._gpu_rows: list[tuple] = []
        self._job_rows: list[tuple] = []
        self._new_procs: list[tuple] = []
        self._proc_updates: dict[tuple, tuple] = {}
        self._progress: list[tuple] = []
        self._tag_changes: list[tuple] = []
        self._rejected: list[tuple] = []
        self._read_faults: list[tuple] = []
        # Raises and clears in arrival order: a clear must find the row its raise inserted, even in one flush.
        self._alerts: list[tuple] = []
        self._jobs: list[dict] = []
        self._gpus: list[dict] = []
        self._totals: tuple = (None, 0, 0.0, 0.0)  # last_wall, ticks, total_cost_usd, energy_j
        self._end: tuple | None = None
        self.clock_step_seconds: float | None = None
        """How far the wall clock was stepped while recording (None: it was not); see SessionClock."""
        self.held_ticks = 0
        """Ticks recorded since the last successful flush."""

    # -- buffering (cheap: called per tick) --------------------------------------------------------------------
    def add_gpu_sample(
        self,
        gpu_index: int,
        t_ms: int,
        dt_ms: int,
        utilization: float | None,
        memory_used_bytes: int | None,
        power_w: float | None,
        temperature_c: float | None,
        energy_j: float,
        cost_usd: float,
    ) -> None:
        self._gpu_rows.append(
            (gpu_index, t_ms, dt_ms, utilization, memory_used_bytes, power_w, temperature_c, energy_j, cost_usd)
        )

    def add_job_sample(
        self,
        tag: str,
        t_ms: int,
        cost_usd: float,
        gpu_s: float,
        effective_gpu_s: float | None,
        vram_bytes: int | None,
        burn_rate: float,
    ) -> None:
        self._job_rows.append((tag, t_ms, cost_usd, gpu_s, effective_gpu_s, vram_bytes, burn_rate))

    def see_process(
        self,
        pid: int,
        create_time: float,
        gpu_index: int,
        user: str | None,
        name: str | None,
        cmdline: str | None,
        tag: str,
        tag_source: str,
        wall: float,
        new: bool,
    ) -> None:
        """A process seen on a GPU: inserted the first time, its tag and last-seen time updated after."""
        key = (pid, create_time, gpu_index)
        if new:
            self._new_procs.append((*key, user, name, cmdline, tag, tag_source, wall))
        self._proc_updates[key] = (tag, tag_source, wall)

    def add_progress(
        self, tag: str, samples: int, tokens: int, wall: float, source: str, reporter: str, owner_uid: int | None = None
    ) -> None:
        """Counts reported for a job; ``owner_uid``: the spool file's owner (from the file system)."""
        self._progress.append((tag, samples, tokens, wall, source, reporter, owner_uid))

    def set_rejected(self, rows: list[dict]) -> None:
        """The session's rejected spool reports so far (replacing the previous ones): written at the next flush.

        Each row: ``reason``, ``owner_uid``, ``reports``, ``samples``, ``tokens`` (see :mod:`gputab.progress.spool`).
        """
        self._rejected = [(r["reason"], r["owner_uid"], r["reports"], r["samples"], r["tokens"]) for r in rows]

    def set_read_faults(self, rows: list[dict]) -> None:
        """The session's failed GPU readings so far, per kind (replacing the previous ones): written at the next
        flush. Each row: ``gpu_index``, ``call``, ``error``, ``count``, ``first_wall``, ``last_wall``, ``detail``
        (see :mod:`gputab.recording.read_faults`)."""
        self._read_faults = [
            (r["gpu_index"], r["call"], r["error"], r["count"], r["first_wall"], r["last_wall"], r["detail"])
            for r in rows
        ]

    def add_tag_change(self, pid: int, create_time: float, tag: str, wall: float, source: str = "manual") -> None:
        self._tag_changes.append((pid, create_time, tag, wall, source))

    def add_alert(self, alert: Any) -> None:
        """An alert raised or cleared (a :class:`gputab.alerts.observer.Alert`, or anything with its attributes).

        A raised alert (``ended_at`` None) becomes a row; a cleared one sets ``cleared_wall`` on the active row
        with the same kind, subject and start, or, when there is none (an enforcement record, raised and ended at
        once, or a clear whose raise this session never saw), becomes a row that is already cleared.
        """
        data = json.dumps(dict(alert.data or {}), sort_keys=True, default=str)
        self._alerts.append(
            (
                alert.kind,
                alert.severity,
                alert.subject,
                alert.message,
                float(alert.started_at),
                data,
                None if alert.ended_at is None else float(alert.ended_at),
            )
        )

    @property
    def pending_alerts(self) -> int:
        """Alert raises and clears held for the next flush."""
        return len(self._alerts)

    def set_totals(
        self,
        jobs: list[dict],
        gpus: list[dict],
        last_wall: float | None,
        ticks: int,
        total_cost_usd: float,
        energy_j: float,
    ) -> None:
        """The current totals (replacing the previous ones): written at the next flush."""
        self._jobs = jobs
        self._gpus = gpus
        self._totals = (last_wall, ticks, total_cost_usd, energy_j)

    def end(self, reason: str, detail: str | None, wall: float) -> None:
        """Mark the session ended; the next flush writes the end with everything else."""
        self._end = (reason, detail, wall)

    @property
    def pending_rows(self) -> int:
        return len(self._gpu_rows) + len(self._job_rows) + len(self._new_procs) + len(self._progress)

    def drop_oldest_series(self, keep: int) -> int:
        """Bound the memory of a long outage: drop the oldest series points beyond ``keep`` (totals stay exact)."""
        dropped = 0
        for rows in (self._gpu_rows, self._job_rows):
            if len(rows) > keep:
                n = len(rows) - keep
                del rows[:n]
                dropped += n
        return dropped

    # -- writing -------------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write everything held in one transaction; raises :class:`StoreWriteError` and keeps it all on failure."""
        try:
            db = self.store.connect()
            conn = db.conn
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now, not half-way through
            try:
                sid = self.session_id if self.session_id is not None else self._create_session(conn)
                job_ids = self._write(conn, sid)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:
            self.store.close()  # reconnect next time: permissions or the file may have been fixed meanwhile
            raise StoreWriteError(classify(exc), str(exc)) from exc
        self.session_id = sid
        self._job_ids = job_ids
        self._gpu_rows, self._job_rows, self._new_procs = [], [], []
        self._proc_updates, self._progress, self._tag_changes = {}, [], []
        self._alerts = []
        self.held_ticks = 0
        if self._end is not None:
            self.ended = True

    def _create_session(self, conn: sqlite3.Connection) -> int:
        # We hold the writer lock, so any open session belongs to a recorder that died.
        self.store.close_orphans(held=True)
        m = self.meta
        cur = conn.execute(
            "INSERT INTO sessions (host, backend, pid, gputab_version, started_at, started_wall, interval, "
            "commit_interval, series_interval, prices_json, ticks, total_cost_usd, energy_j) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0.0, 0.0)",
            (
                m.host,
                m.backend,
                m.pid,
                m.gputab_version,
                utc_iso(m.started_wall),
                m.started_wall,
                m.interval,
                m.commit_interval,
                m.series_interval,
                m.prices_json,
            ),
        )
        assert cur.lastrowid is not None  # an INSERT always sets it
        return cur.lastrowid

    def _write(self, conn: sqlite3.Connection, sid: int) -> dict[str, int]:
        conn.executemany(_GPU_UPSERT, [(sid, g["index"], *(g.get(c) for c in _GPU_COLUMNS)) for g in self._gpus])
        write_instances(conn, sid, self._gpus)
        conn.executemany(_JOB_INSERT, [job_values(sid, j) for j in self._jobs])
        job_ids = self._job_ids if self.session_id == sid else {}
        tags = {r[0] for r in self._job_rows} | {j["tag"] for j in self._jobs}
        if not tags <= job_ids.keys():
            job_ids = {r[1]: r[0] for r in conn.execute("SELECT id, tag FROM jobs WHERE session_id = ?", (sid,))}
        conn.executemany(
            "INSERT OR REPLACE INTO gpu_samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(sid, *r) for r in self._gpu_rows],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO job_samples VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(job_ids[r[0]], *r[1:]) for r in self._job_rows if r[0] in job_ids],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO processes (session_id, pid, create_time, gpu_index, user, name, cmdline, tag, "
            "tag_source, first_wall, last_wall) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(sid, *r, r[-1]) for r in self._new_procs],
        )
        conn.executemany(
            "UPDATE processes SET tag = ?, tag_source = ?, last_wall = ? "
            "WHERE session_id = ? AND pid = ? AND create_time = ? AND gpu_index = ?",
            [(*v, sid, *k) for k, v in self._proc_updates.items()],
        )
        conn.executemany(
            "INSERT INTO progress (session_id, tag, samples, tokens, wall, source, reporter, owner_uid) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(sid, *r) for r in self._progress],
        )
        conn.executemany(
            "INSERT INTO tag_changes (session_id, pid, create_time, tag, wall, source) VALUES (?, ?, ?, ?, ?, ?)",
            [(sid, *r) for r in self._tag_changes],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO rejected_reports (session_id, reason, owner_uid, reports, samples, "
            "tokens) VALUES (?, ?, ?, ?, ?, ?)",
            [(sid, *r) for r in self._rejected],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO read_faults (session_id, gpu_index, call, error, count, first_wall, last_wall, "
            "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(sid, *r) for r in self._read_faults],
        )
        self._write_alerts(conn, sid)
        last_wall, ticks, total, energy = self._totals
        conn.execute(
            "UPDATE sessions SET last_wall = ?, ticks = ?, total_cost_usd = ?, energy_j = ?, clock_step_seconds = ? "
            "WHERE id = ?",
            (last_wall, ticks, total, energy, self.clock_step_seconds, sid),
        )
        if self._end is not None:
            reason, detail, wall = self._end
            conn.execute(
                "UPDATE sessions SET ended_wall = ?, ended_at = ?, end_reason = ?, end_detail = ? WHERE id = ?",
                (wall, utc_iso(wall), reason, detail, sid),
            )
        return job_ids

    def _write_alerts(self, conn: sqlite3.Connection, sid: int) -> None:
        insert = (
            "INSERT INTO alerts (session_id, wall, kind, severity, subject, message, data_json, cleared_wall) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        for kind, severity, subject, message, wall, data, cleared in self._alerts:
            if cleared is not None:
                # Walls are stored as the same REAL they were raised with, so equality matches exactly.
                cur = conn.execute(
                    "UPDATE alerts SET cleared_wall = ? WHERE id = (SELECT id FROM alerts WHERE session_id = ? "
                    "AND kind = ? AND subject = ? AND wall = ? AND cleared_wall IS NULL ORDER BY id LIMIT 1)",
                    (cleared, sid, kind, subject, wall),
                )
                if cur.rowcount:
                    continue
            conn.execute(insert, (sid, wall, kind, severity, subject, message, data, cleared))
