"""The database schema: append-only migrations, recorded in the database itself.

A migration is never edited once released; a change of schema is a new function at the end of the list. The
names applied are kept in ``_sqlite_migrations`` (sqlite-utils' own table), so a database written by a newer
gputab (one that has migrations this code does not know) is recognised and refused instead of being written to.

Size matters (the recorder runs for months at one tick a second), so the series tables are ``WITHOUT ROWID``
tables keyed by small integers: time is milliseconds since the session start, a job is its row id.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from gputab.errors import GputabError

if TYPE_CHECKING:
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

    from gputab.store.connection import Connection

MIGRATIONS_TABLE = "_sqlite_migrations"
"""sqlite-utils' table of the migrations applied (``migration_set``, ``name``, ``applied_at``)."""


class Applied(NamedTuple):
    name: str
    applied_at: str


class MigrationSet:
    """The migrations, registered as sqlite-utils' ``Migrations`` registers them, without importing sqlite-utils.

    Which migrations a database has is read with plain SQL (:meth:`applied`), so a database at the current schema
    (every command but the first after an upgrade) is opened without loading sqlite-utils; only applying a
    migration (:func:`migrate`) hands the functions, in order, to a sqlite-utils ``Migrations``.
    """

    migrations_table = MIGRATIONS_TABLE

    def __init__(self, name: str) -> None:
        self.name = name
        self.functions: list[Callable[[Database], None]] = []

    def __call__(self) -> Callable[[Callable[[Database], None]], Callable[[Database], None]]:
        def register(fn: Callable[[Database], None]) -> Callable[[Database], None]:
            if fn.__name__ in self.names():
                raise ValueError(f"migration {fn.__name__} is registered twice")
            self.functions.append(fn)
            return fn

        return register

    def names(self) -> list[str]:
        return [fn.__name__ for fn in self.functions]

    def applied(self, db: Database | Connection | sqlite3.Connection) -> list[Applied]:
        """The migrations applied to ``db``, in the order they were (read-only, plain SQL)."""
        conn = db if isinstance(db, sqlite3.Connection) else db.conn
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)
        ).fetchone():
            return []
        rows = conn.execute(
            f"SELECT name, applied_at FROM {MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY rowid", (self.name,)
        )
        return [Applied(*r) for r in rows]

    def pending(self, db: Database | Connection | sqlite3.Connection) -> list[str]:
        """Names of the migrations ``db`` has yet to have applied, in order (read-only, plain SQL)."""
        done = {m.name for m in self.applied(db)}
        return [n for n in self.names() if n not in done]

    def sqlite_utils(self) -> Migrations:
        """sqlite-utils' ``Migrations`` with these functions, in order (imports sqlite-utils)."""
        from gputab.store._sqlite_utils import Migrations  # without numpy and pandas

        out = Migrations(self.name)
        for fn in self.functions:
            out()(fn)
        return out


migrations = MigrationSet("gputab")

APPLICATION_ID = 0x47505442
"""``PRAGMA application_id`` of a gputab database ("GPTB"): set by ``m004_identity``, checked before any write."""


class SchemaTooNew(GputabError):
    """The database was written by a newer gputab; this one refuses to touch it."""


@migrations()
def m001_sessions(db: Database) -> None:
    """Sessions, their GPUs, GPU and job series, job totals and the processes seen."""
    db["sessions"].create(
        {
            "id": int,
            "host": str,
            "backend": str,
            "pid": int,
            "gputab_version": str,
            "started_at": str,
            "ended_at": str,
            "end_reason": str,
            "end_detail": str,
            "started_wall": float,
            "last_wall": float,
            "ended_wall": float,
            "interval": float,
            "commit_interval": float,
            "series_interval": float,
            "prices_json": str,
            "ticks": int,
            "total_cost_usd": float,
            "energy_j": float,
        },
        pk="id",
    )
    db["session_gpus"].create(
        {
            "session_id": int,
            "gpu_index": int,
            "uuid": str,
            "name": str,
            "model_key": str,
            "mode": str,
            "rate_per_hour": float,
            "charge_energy": int,
            "price_per_kwh": float,
            "pue": float,
            "price_source": str,
            "price_date": str,
            "unknown_price": int,
            "energy_method": str,
            "cost_usd": float,
            "idle_cost_usd": float,
            "unobserved_cost_usd": float,
            "energy_j": float,
        },
        pk=("session_id", "gpu_index"),
        foreign_keys=[("session_id", "sessions", "id")],
    )
    # One row per GPU per series step: averages and maxima over the step, energy and money within it.
    db.execute(
        """CREATE TABLE gpu_samples (
            session_id INTEGER NOT NULL REFERENCES sessions(id),
            gpu_index INTEGER NOT NULL,
            t_ms INTEGER NOT NULL,          -- end of the step, ms since the session start
            dt_ms INTEGER NOT NULL,         -- length of the step
            utilization REAL,               -- time-weighted mean fraction
            memory_used_bytes INTEGER,      -- max over the step
            power_w REAL,                   -- mean over the step
            temperature_c REAL,             -- max over the step
            energy_j REAL NOT NULL,
            cost_usd REAL NOT NULL,
            PRIMARY KEY (session_id, gpu_index, t_ms)
        ) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id),
            tag TEXT NOT NULL,
            cost_usd REAL, burn_rate_usd_per_hour REAL, gpu_hours REAL, effective_gpu_hours REAL,
            avg_utilization REAL, energy_kwh REAL, peak_vram_bytes INTEGER, samples INTEGER, tokens INTEGER,
            cost_per_sample_usd REAL, cost_per_1k_samples_usd REAL, cost_per_1m_tokens_usd REAL,
            cost_per_effective_gpu_hour_usd REAL, idle_gpu_hours REAL,
            extra_json TEXT,                -- the other keys of JobTotals.to_json()
            UNIQUE (session_id, tag)
        )"""
    )
    # One row per job per series step in which it held a GPU or its cost moved.
    db.execute(
        """CREATE TABLE job_samples (
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            t_ms INTEGER NOT NULL,
            cost_usd REAL NOT NULL,         -- cumulative at t_ms
            gpu_s REAL NOT NULL,            -- GPU-seconds held within the step (sum of share * dt)
            effective_gpu_s REAL,           -- gpu_s weighted by utilization
            vram_bytes INTEGER,             -- max over the step
            burn_rate_usd_per_hour REAL,    -- at t_ms
            PRIMARY KEY (job_id, t_ms)
        ) WITHOUT ROWID"""
    )
    db["processes"].create(
        {
            "id": int,
            "session_id": int,
            "pid": int,
            "create_time": float,
            "gpu_index": int,
            "user": str,
            "name": str,
            "cmdline": str,
            "tag": str,
            "tag_source": str,
            "first_wall": float,
            "last_wall": float,
        },
        pk="id",
        foreign_keys=[("session_id", "sessions", "id")],
    )
    db["processes"].create_index(["session_id", "pid", "create_time", "gpu_index"], unique=True)


@migrations()
def m002_progress(db: Database) -> None:
    """Samples and tokens reported by jobs, manual tags, and what the recorder has read from the spool."""
    db["progress"].create(
        {
            "id": int,
            "session_id": int,
            "tag": str,
            "samples": int,
            "tokens": int,
            "wall": float,
            "source": str,
            "reporter": str,
        },
        pk="id",
        foreign_keys=[("session_id", "sessions", "id")],
    )
    db["progress"].create_index(["session_id", "tag"])
    db["tag_changes"].create(
        {"id": int, "session_id": int, "pid": int, "create_time": float, "tag": str, "wall": float, "source": str},
        pk="id",
        foreign_keys=[("session_id", "sessions", "id")],
    )
    # Spool file name -> cumulative counts already counted, so re-reading a file only adds what is new.
    db["spool_seen"].create({"name": str, "counts_json": str, "wall": float}, pk="name")


@migrations()
def m003_alerts(db: Database) -> None:
    """Alerts raised during a session (filled by the alerts layer)."""
    db["alerts"].create(
        {
            "id": int,
            "session_id": int,
            "wall": float,
            "kind": str,
            "severity": str,
            "subject": str,
            "message": str,
            "data_json": str,
            "cleared_wall": float,
        },
        pk="id",
        foreign_keys=[("session_id", "sessions", "id")],
    )
    db["alerts"].create_index(["session_id", "wall"])


@migrations()
def m004_identity(db: Database) -> None:
    """Mark the file as a gputab database, so another program's SQLite file is never mistaken for one."""
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def identify(conn: sqlite3.Connection) -> str:
    """What the database on ``conn`` is, read without writing anything.

    Returns:
        ``ours`` (marked with :data:`APPLICATION_ID`, or an earlier gputab's: it has gputab's migrations),
        ``empty`` (no schema at all and no other program's mark: gputab may make it its own) or ``foreign``.
    """
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}  # reads the schema: page 1 is sound
    if app_id == APPLICATION_ID:
        return "ours"
    if app_id != 0:
        return "foreign"
    if not names:
        # gputab never sets user_version: a schema-less file that has one was claimed by another program
        return "empty" if conn.execute("PRAGMA user_version").fetchone()[0] == 0 else "foreign"
    if MIGRATIONS_TABLE in names:
        found = conn.execute(
            f"SELECT count(*) FROM {MIGRATIONS_TABLE} WHERE migration_set = ?", (migrations.name,)
        ).fetchone()[0]
        if found:
            return "ours"
    return "foreign"


@migrations()
def m005_spool_trust(db: Database) -> None:
    """Spool reports trusted by their file's owner: the owner on each progress row, rejected reports per session.

    ``spool_seen`` remembered per database what was taken from each spool file, so a new database counted old
    reports again; a session now takes its baseline from the spool when it starts and keeps it in memory.
    """
    db.execute("ALTER TABLE progress ADD COLUMN owner_uid INTEGER")  # the spool file's owner, from the file system
    db.execute(
        """CREATE TABLE rejected_reports (
            session_id INTEGER NOT NULL REFERENCES sessions(id),
            reason TEXT NOT NULL,           -- a key of gputab.progress.spool.REASONS
            owner_uid INTEGER NOT NULL,     -- the spool file's owner
            reports INTEGER NOT NULL,
            samples INTEGER NOT NULL,
            tokens INTEGER NOT NULL,
            PRIMARY KEY (session_id, reason, owner_uid)
        ) WITHOUT ROWID"""
    )
    db["spool_seen"].drop()


@migrations()
def m007_job_user(db: Database) -> None:
    """The user who owns a job's processes (``a,b`` when several do; NULL in sessions recorded before)."""
    db.execute("ALTER TABLE jobs ADD COLUMN user TEXT")


def known_names() -> list[str]:
    """Names of the migrations this gputab knows, oldest first."""
    return migrations.names()


def check_not_newer(db: Database | Connection, path: object) -> None:
    """Raise :class:`SchemaTooNew` when ``db`` has migrations this code does not know."""
    applied = [m.name for m in migrations.applied(db)]
    unknown = [n for n in applied if n not in known_names()]
    if unknown:
        raise SchemaTooNew(
            f"database {path} was written by a newer gputab (schema {len(applied)}, this gputab knows "
            f"{len(known_names())}; unknown migration {unknown[0]}); upgrade gputab, or record into another "
            f"database with --db"
        )


def migrate(db: Database | Connection, path: object = "", stop_before: str | None = None) -> list[str]:
    """Bring ``db`` up to this code's schema; returns the names applied. Refuses a newer database.

    A database at this code's schema is only read (plain SQL): sqlite-utils is loaded only to apply migrations.
    """
    check_not_newer(db, path)
    pending = migrations.pending(db)
    if not pending or (stop_before is not None and pending[0] == stop_before):
        return []
    from gputab.store.connection import Connection

    full = db.sqlite_utils() if isinstance(db, Connection) else db
    migrations.sqlite_utils().apply(full, stop_before=stop_before)
    applied = {m.name for m in migrations.applied(db)}
    return [n for n in pending if n in applied]


#: The waste keys of ``JobTotals.to_json()`` kept as columns (added by m006_waste).
WASTE_JOB_COLUMNS = ("busy_usd", "waste_usd", "tensor_active_usd")

#: The honest-bucket keys of ``JobTotals.to_json()`` kept as columns (added by m012_unmeasured).
UNMEASURED_JOB_COLUMNS = ("unmeasured_usd",)

#: The tokens by kind of ``JobTotals.to_json()`` kept as columns (added by m014_token_kinds).
TOKEN_KIND_JOB_COLUMNS = ("prompt_tokens", "generated_tokens")

#: Keys of ``JobTotals.to_json()`` kept as columns of ``jobs``; any other key goes to ``extra_json``.
JOB_COLUMNS = (
    "cost_usd",
    "burn_rate_usd_per_hour",
    "gpu_hours",
    "effective_gpu_hours",
    "avg_utilization",
    "energy_kwh",
    "peak_vram_bytes",
    "samples",
    "tokens",
    "cost_per_sample_usd",
    "cost_per_1k_samples_usd",
    "cost_per_1m_tokens_usd",
    "cost_per_effective_gpu_hour_usd",
    "idle_gpu_hours",
    *WASTE_JOB_COLUMNS,
    *UNMEASURED_JOB_COLUMNS,
    *TOKEN_KIND_JOB_COLUMNS,
)


@migrations()
def m006_waste(db: Database) -> None:
    """Where each job's dollars went: busy and wasted dollars and tensor-active dollars as columns (the waste by
    reason, its evidence and the throttled dollars are in ``extra_json``, like every other key of a job)."""
    for column in WASTE_JOB_COLUMNS:
        db.execute(f"ALTER TABLE jobs ADD COLUMN {column} REAL")


@migrations()
def m008_budgets(db: Database) -> None:
    """Budgets set with ``gputab budget set`` (they join the config's; for the same glob the database's wins)."""
    db.execute(
        """CREATE TABLE budgets (
            tag TEXT PRIMARY KEY,           -- a tag glob (fnmatch); an exact tag is a glob too
            cap_usd REAL NOT NULL,          -- dollars each matching tag may spend in a period
            period TEXT NOT NULL,           -- day, week, month (UTC calendar) or total
            stop INTEGER NOT NULL,          -- 1: the recorder stops a job at its cap
            grace_seconds REAL NOT NULL,    -- between SIGINT and SIGTERM
            users_json TEXT NOT NULL,       -- login names whose processes may be signalled ([]: the recorder's user)
            set_wall REAL NOT NULL,         -- when it was set
            set_by TEXT                     -- who set it (login name)
        )"""
    )


@migrations()
def m009_mig(db: Database) -> None:
    """Each MIG instance's totals per session (see :mod:`gputab.store.mig`): its ids, profile and slices, its
    memory, its SM activity where GPM reports it, and its part of its GPU's cost."""
    db.execute(
        """CREATE TABLE mig_instances (
            session_id INTEGER NOT NULL REFERENCES sessions(id),
            gpu_index INTEGER NOT NULL,
            gpu_instance_id INTEGER NOT NULL,
            compute_instance_id INTEGER NOT NULL,
            profile TEXT,                   -- 3g.40gb (nvidia-smi's and DCGM's GPU_I_PROFILE)
            slices INTEGER NOT NULL,        -- compute slices: its part of the GPU is slices / the GPU's
            memory_total_bytes INTEGER,
            peak_memory_used_bytes INTEGER,
            avg_utilization REAL,           -- mean SM activity (GPM per MIG instance), 0-1; NULL without GPM
            gpu_hours REAL NOT NULL,        -- hours x its part of the GPU
            rate_per_hour REAL NOT NULL,    -- the GPU's rate x its part
            cost_usd REAL NOT NULL,         -- its part of the GPU's charged cost (time and energy)
            PRIMARY KEY (session_id, gpu_index, gpu_instance_id, compute_instance_id)
        ) WITHOUT ROWID"""
    )


@migrations()
def m010_mig_slices(db: Database) -> None:
    """A GPU's compute slices when it ran in MIG mode (7 on an A100/H100/H200): what an instance's ``slices`` are
    out of (``3/7``), and what its price share was reckoned on. NULL off MIG and in sessions recorded before."""
    db["session_gpus"].add_column("mig_slices", int)


@migrations()
def m011_read_faults(db: Database) -> None:
    """The GPU readings that failed during a session, per GPU, call and error (``gputab show`` prints them): an NVML
    error other than NOT_SUPPORTED on a GPU's process list, utilization or memory, a lost GPU, or a call that did
    not answer within the poll's deadline. Each made its GPU's interval (unobserved)."""
    db.execute(
        """CREATE TABLE read_faults (
            session_id INTEGER NOT NULL REFERENCES sessions(id),
            gpu_index INTEGER NOT NULL,
            call TEXT NOT NULL,             -- compute_processes, utilization, memory... (gputab.sampling.snapshot.ReadFault)
            error TEXT NOT NULL,            -- NVML_ERROR_TIMEOUT..., or no_answer (the poll's deadline passed)
            count INTEGER NOT NULL,         -- failed readings of this kind
            first_wall REAL NOT NULL,
            last_wall REAL NOT NULL,
            detail TEXT NOT NULL,           -- the first one in words
            PRIMARY KEY (session_id, gpu_index, call, error)
        ) WITHOUT ROWID"""
    )


@migrations()
def m012_unmeasured(db: Database) -> None:
    """Honest buckets (cost-model.md, "Waste" and "Who pays"): each job's dollars of intervals whose utilization
    was not reported (neither busy nor waste), and each GPU's cost while it worked with no process listed (its
    ``(unattributed)`` part). NULL in sessions recorded before."""
    for column in UNMEASURED_JOB_COLUMNS:
        db.execute(f"ALTER TABLE jobs ADD COLUMN {column} REAL")
    db["session_gpus"].add_column("unattributed_cost_usd", float)


@migrations()
def m013_clock_steps(db: Database) -> None:
    """How far the wall clock was stepped while a session recorded (seconds, + forward, - back; NULL when it was not):
    its ended_at and every later moment are then its start + the monotonic time since (docs/cost-model.md)."""
    db["sessions"].add_column("clock_step_seconds", float)


@migrations()
def m014_token_kinds(db: Database) -> None:
    """Each job's prompt and generated tokens as its inference servers counted them (part of ``tokens``, which
    also holds what the job reported itself). NULL where no server counted any, and in sessions recorded before."""
    for column in TOKEN_KIND_JOB_COLUMNS:
        db.execute(f"ALTER TABLE jobs ADD COLUMN {column} INTEGER")
