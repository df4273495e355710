"""The store: schema from nothing, old and newer databases, permissions, orphans, the writer lock, size."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys

import pytest
from sqlite_utils import Database

from gputab.config.settings import Config, RecorderConfig
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DemoBackend, FakeClock
from gputab.store import (
    NoDatabase,
    NoSuchSession,
    RecorderRunning,
    SchemaTooNew,
    SessionMeta,
    SessionWriter,
    Store,
    StoreWriteError,
)
from gputab.store.schema import known_names, migrate, migrations

EXPECTED = {
    "sessions": {
        "id",
        "host",
        "backend",
        "pid",
        "gputab_version",
        "started_at",
        "ended_at",
        "end_reason",
        "end_detail",
        "started_wall",
        "last_wall",
        "ended_wall",
        "interval",
        "commit_interval",
        "series_interval",
        "prices_json",
        "ticks",
        "total_cost_usd",
        "energy_j",
        "clock_step_seconds",
    },
    "session_gpus": {
        "session_id",
        "gpu_index",
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
    },
    "gpu_samples": {
        "session_id",
        "gpu_index",
        "t_ms",
        "dt_ms",
        "utilization",
        "memory_used_bytes",
        "power_w",
        "temperature_c",
        "energy_j",
        "cost_usd",
    },
    "jobs": {
        "id",
        "session_id",
        "tag",
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
        "extra_json",
        "user",
        "busy_usd",
        "waste_usd",
        "tensor_active_usd",
        "unmeasured_usd",
        "prompt_tokens",
        "generated_tokens",
    },
    "job_samples": {"job_id", "t_ms", "cost_usd", "gpu_s", "effective_gpu_s", "vram_bytes", "burn_rate_usd_per_hour"},
    "processes": {
        "id",
        "session_id",
        "pid",
        "create_time",
        "gpu_index",
        "user",
        "name",
        "cmdline",
        "tag",
        "tag_source",
        "first_wall",
        "last_wall",
    },
    "progress": {"id", "session_id", "tag", "samples", "tokens", "wall", "source", "reporter", "owner_uid"},
    "tag_changes": {"id", "session_id", "pid", "create_time", "tag", "wall", "source"},
    "rejected_reports": {"session_id", "reason", "owner_uid", "reports", "samples", "tokens"},
    "alerts": {"id", "session_id", "wall", "kind", "severity", "subject", "message", "data_json", "cleared_wall"},
}


def _meta(**kw) -> SessionMeta:
    base = dict(
        host="h",
        backend="demo",
        pid=1,
        gputab_version="0",
        started_wall=1000.0,
        interval=1.0,
        commit_interval=2.0,
        series_interval=10.0,
        prices_json="{}",
    )
    return SessionMeta(**{**base, **kw})


def test_schema_from_nothing_has_every_table_and_column(tmp_path):
    store = Store.open(tmp_path / "g.db")
    db = store.db
    for table, columns in EXPECTED.items():
        assert set(db[table].columns_dict) == columns, table
    assert [m.name for m in migrations.applied(db)] == known_names()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # the series tables are keyed by their primary key alone (no rowid): that is what keeps them small
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'gpu_samples'").fetchone()[0]
    assert "WITHOUT ROWID" in sql


def test_file_0600_and_new_directory_0700(tmp_path):
    path = tmp_path / "new" / "dir" / "g.db"
    old = os.umask(0o022)
    try:
        Store.open(path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new" / "dir" / "g.db.lock").stat().st_mode) == 0o600


def test_an_old_database_opens_with_a_newer_gputab(tmp_path):
    path = tmp_path / "old.db"
    db = Database(path)
    migrate(db, path, stop_before=known_names()[1])  # as the first release left it
    assert set(db.table_names()) >= {"sessions", "jobs"} and "progress" not in db.table_names()
    db["sessions"].insert(
        {
            "host": "old",
            "started_at": "2026-01-01T00:00:00Z",
            "started_wall": 1.0e9,
            "ended_at": "2026-01-01T01:00:00Z",
            "ended_wall": 1.0e9 + 3600,
            "end_reason": "clean",
            "total_cost_usd": 4.76,
            "ticks": 3600,
        }
    )
    db.close()
    store = Store.open(path)
    assert "progress" in store.db.table_names() and "alerts" in store.db.table_names()
    (s,) = store.sessions()
    assert s["host"] == "old" and s["cost_usd"] == 4.76 and s["duration_s"] == 3600


def test_a_newer_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "new.db"
    Store.open(path).close()
    db = Database(path)
    db["_sqlite_migrations"].insert(
        {"migration_set": "gputab", "name": "m999_from_the_future", "applied_at": "2030-01-01"}
    )
    db.close()
    before = path.read_bytes()
    with pytest.raises(SchemaTooNew, match="newer gputab.*m999_from_the_future.*upgrade gputab"):
        Store.open(path)
    assert path.read_bytes() == before
    r = subprocess.run([sys.executable, "-m", "gputab", "--db", str(path), "sessions"], capture_output=True, text=True)
    assert r.returncode == 1 and "newer gputab" in r.stderr and "Traceback" not in r.stderr


def test_missing_database_is_not_created_by_readers(tmp_path):
    with pytest.raises(NoDatabase, match="gputab record"):
        Store.open(tmp_path / "none.db", create=False)
    assert not (tmp_path / "none.db").exists()


def test_orphans_close_at_their_last_commit_but_not_under_a_live_writer(tmp_path):
    path = tmp_path / "g.db"
    store = Store.open(path)
    w = SessionWriter(store, _meta(started_wall=1000.0))
    w.set_totals([], [], last_wall=1042.5, ticks=43, total_cost_usd=1.5, energy_j=10.0)
    lock = store.writer_lock()
    lock.acquire()
    w.flush()
    lock.set_session(w.session_id)
    # a live writer holds the lock: nobody may close its session
    assert Store.open(path).close_orphans() == []
    assert Store.open(path).sessions()[0]["end_reason"] == "recording"
    lock.release()  # the recorder "dies"
    (s,) = Store.open(path).sessions()
    assert s["end_reason"] == "crashed" and s["duration_s"] == pytest.approx(42.5)
    assert s["end"] == "1970-01-01T00:17:22Z" and s["cost_usd"] == 1.5


def test_writer_lock_names_its_holder_and_dies_with_it(tmp_path):
    path = tmp_path / "g.db"
    store = Store.open(path)
    code = (
        f"from gputab.store import Store; import time, sys; l = Store({str(path)!r}).writer_lock(); "
        "l.acquire(); l.set_session(7); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        info = store.writer_info()
        assert info.pid == holder.pid and info.session_id == 7 and info.started_at.endswith("Z")
        with pytest.raises(RecorderRunning, match=f"pid {holder.pid} on .* since .*session 7"):
            store.writer_lock().acquire(wait=0.2)
    finally:
        holder.kill()
        holder.wait()
    assert store.writer_info() is None  # kill -9 released it
    lock = store.writer_lock()
    lock.acquire(wait=0.2)
    lock.release()


@pytest.mark.slow
def test_a_failed_flush_keeps_everything_for_the_next(tmp_path):
    path = tmp_path / "g.db"
    store = Store.open(path)
    w = SessionWriter(store, _meta())
    w.flush()
    w.add_gpu_sample(0, 1000, 1000, 0.5, 1, 100.0, 40.0, 100.0, 0.01)
    w.add_job_sample("a", 1000, 0.01, 1.0, 0.5, 10, 1.0)
    w.set_totals([{"tag": "a", "cost_usd": 0.01, "samples": None, "gpus": [0]}], [], 1001.0, 2, 0.01, 100.0)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    with pytest.raises(StoreWriteError) as err:
        w.flush()
    assert err.value.kind == "locked"
    other.execute("ROLLBACK")
    other.close()
    w.flush()
    reader = Store.open(path)
    assert reader.db.execute("SELECT count(*) FROM gpu_samples").fetchone()[0] == 1
    (job,) = reader.jobs(w.session_id)
    assert job["cost_usd"] == 0.01 and job["gpus"] == [0]
    assert reader.job_series(w.session_id, "a") == [
        {"t": 1.0, "cost_usd": 0.01, "gpu_s": 1.0, "utilization": 0.5, "vram_bytes": 10, "burn_rate_usd_per_hour": 1.0}
    ]


def test_resolve_session(tmp_path):
    store = Store.open(tmp_path / "g.db")
    with pytest.raises(NoSuchSession, match="no sessions"):
        store.resolve_session("last")
    w = SessionWriter(store, _meta())
    w.flush()
    assert store.resolve_session("last") == store.resolve_session(str(w.session_id)) == w.session_id
    with pytest.raises(NoSuchSession, match="no session 99"):
        store.resolve_session("99")
    with pytest.raises(NoSuchSession, match="session id or `last`"):
        store.resolve_session("yesterday")


@pytest.mark.slow
def test_bytes_per_gpu_day_at_one_second(tmp_path):
    """Record one simulated hour at 1 s on the 5-GPU demo box; the series must stay under ~5 MB per GPU-day."""
    clock = FakeClock()
    store = Store(tmp_path / "g.db")
    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        store,
        Config(recorder=RecorderConfig()),
        clock=clock,
        wall_clock=clock.wall,
        spool=tmp_path / "spool",
    )
    rec.start()
    ticks = 3600
    for _ in range(ticks):
        clock.advance(1.0)
        rec.step()
    rec.close()
    db = sqlite3.connect(tmp_path / "g.db")
    db.execute("VACUUM")
    try:
        per_table = dict(db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
        growing = sum(v for k, v in per_table.items() if k in ("gpu_samples", "job_samples", "processes"))
    except sqlite3.OperationalError:  # SQLite built without dbstat: count the whole file
        growing = (tmp_path / "g.db").stat().st_size
    per_gpu_day = growing / 4 * (86400 / ticks)
    print(f"series bytes per GPU-day: {per_gpu_day / 1e6:.2f} MB")
    assert per_gpu_day < 5e6
