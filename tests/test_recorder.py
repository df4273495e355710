"""The recorder in-process on a fake clock: exact totals, the schedule, observers, manual tags, held figures."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from gputab.config.settings import Config, RecorderConfig
from gputab.recording.recorder import Recorder
from gputab.recording.tick import Tick
from gputab.sampling.demo import DemoBackend, FakeClock
from gputab.store import RecorderRunning, Store


def _recorder(tmp_path, observers=(), **rc) -> Recorder:
    clock = FakeClock()
    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        Store(tmp_path / "g.db"),
        Config(recorder=RecorderConfig(**rc)),
        clock=clock,
        wall_clock=clock.wall,
        observers=observers,
        spool=tmp_path / "spool",
    )
    rec.fake_clock = clock
    return rec


def _steps(rec: Recorder, n: int, dt: float = 1.0) -> Tick:
    tick = None
    for _ in range(n):
        rec.fake_clock.advance(dt)
        tick = rec.step()
    return tick


def test_stored_totals_equal_the_ledger_exactly(tmp_path):
    rec = _recorder(tmp_path)
    rec.start()
    _steps(rec, 300)
    rec.close("clean")
    store = Store.open(tmp_path / "g.db")
    (s,) = store.sessions()
    assert s["end_reason"] == "clean" and s["ticks"] == 301
    assert s["cost_usd"] == rec.ledger.total_cost_usd
    stored = {j["tag"]: j for j in store.jobs(s["id"])}
    assert stored.keys() == rec.ledger.jobs.keys()
    for tag, job in rec.ledger.jobs.items():
        assert stored[tag] == job.to_json()
    gpus = store.gpus(s["id"])
    assert [g["model_key"] for g in gpus] == ["H100-SXM", "H100-SXM", "A100-80GB", "H100-SXM", "H100-SXM"]
    assert sum(g["cost_usd"] for g in gpus) == pytest.approx(s["cost_usd"], rel=1e-12)
    assert all(g["energy_method"] == "counter" for g in gpus)
    # The series adds up to the totals: per-step GPU costs sum to the session's, the job's last point is its cost.
    step_sum = store.db.execute("SELECT sum(cost_usd) FROM gpu_samples").fetchone()[0]
    assert step_sum == pytest.approx(s["cost_usd"], rel=1e-9)
    series = store.job_series(s["id"], "llama3-8b-lora")
    assert len(series) == 30 and series[-1]["cost_usd"] == stored["llama3-8b-lora"]["cost_usd"]
    assert 0.85 < series[-1]["utilization"] < 0.97
    procs = store.db.execute("SELECT pid, tag, cmdline FROM processes WHERE pid = 31001").fetchone()
    assert procs[1] == "llama3-8b-lora" and "6f1e9cdemo0secret" not in procs[2]


def test_commits_every_commit_interval_only(tmp_path):
    rec = _recorder(tmp_path, commit_interval=2.0)
    rec.start()
    reader = Store.open(tmp_path / "g.db", readonly=True)

    def committed_ticks() -> int:
        return reader.db.execute("SELECT ticks FROM sessions").fetchone()[0]

    assert committed_ticks() == 1
    _steps(rec, 1)
    assert committed_ticks() == 1  # held
    _steps(rec, 1)
    assert committed_ticks() == 3
    _steps(rec, 3)
    assert committed_ticks() == 5


def test_a_second_recorder_in_process_is_refused(tmp_path):
    rec = _recorder(tmp_path)
    rec.start()
    with pytest.raises(RecorderRunning, match="pid .* since"):
        _recorder(tmp_path).start()
    rec.close()
    other = _recorder(tmp_path)
    other.start()
    other.close()
    assert [s["end_reason"] for s in Store.open(tmp_path / "g.db").sessions()] == ["clean", "clean"]


def test_observer_failure_is_logged_once_and_the_loop_goes_on(tmp_path, caplog):
    got: list[Tick] = []

    class Bad:
        def on_tick(self, tick):
            raise RuntimeError("boom")

    class Good:
        def on_tick(self, tick):
            got.append(tick)

    rec = _recorder(tmp_path, observers=[Bad(), Good()])
    rec.start()
    _steps(rec, 5)
    assert len(got) == 5
    assert sum("boom" in r.getMessage() or (r.exc_info and "boom" in str(r.exc_info[1])) for r in caplog.records) == 1
    t = got[-1]
    assert t.session_id == 1 and t.recording == "ok" and t.notes == ()
    assert [j["tag"] for j in t.jobs][-1] == "(idle)"
    assert t.jobs[0]["cost_usd"] >= t.jobs[1]["cost_usd"]
    assert {g["model_key"] for g in t.gpus} == {"H100-SXM", "A100-80GB"} and "unknown_price" in t.gpus[0]
    with pytest.raises(TypeError):
        t.processes[1] = None  # read-only view


def test_manual_tags_are_recorded(tmp_path):
    rec = _recorder(tmp_path)
    rec.start()
    _steps(rec, 2)
    assert rec.attributor.retag("eval-mmlu", "eval-v2")
    _steps(rec, 3)
    rec.close()
    store = Store.open(tmp_path / "g.db")
    change = store.db.execute("SELECT pid, tag, source FROM tag_changes").fetchall()
    assert change == [(32010, "eval-v2", "manual")]
    assert store.db.execute("SELECT tag, tag_source FROM processes WHERE pid = 32010").fetchone() == (
        "eval-v2",
        "manual",
    )
    assert {j["tag"] for j in store.jobs(1)} >= {"eval-mmlu", "eval-v2"}


def test_locked_database_holds_ticks_and_says_so(tmp_path):
    rec = _recorder(tmp_path, commit_interval=1.0)
    rec.start()
    other = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    tick = _steps(rec, 4)
    assert tick.recording == "held" and "database locked: 4 ticks held in memory" in tick.notes[0]
    other.execute("ROLLBACK")
    other.close()
    tick = _steps(rec, 1)
    assert tick.recording == "ok" and tick.held_ticks == 0
    rec.close()
    assert Store.open(tmp_path / "g.db").sessions()[0]["ticks"] == 6


class SlowBackend(DemoBackend):
    """Every third poll takes 2.5 intervals (real time)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.polls: list[float] = []

    def poll(self):
        self.polls.append(time.monotonic())
        if len(self.polls) % 3 == 0:
            time.sleep(self.delay)
        return super().poll()


def test_run_keeps_the_grid_and_never_stacks_ticks(tmp_path):
    interval = 0.05
    backend = SlowBackend(2.5 * interval)
    rec = Recorder(
        backend, Store(tmp_path / "g.db"), Config(recorder=RecorderConfig(interval=interval)), spool=tmp_path / "spool"
    )
    rec.start()
    stop = threading.Event()
    t = threading.Thread(target=rec.run, args=(stop,))
    t.start()
    time.sleep(1.5)
    stop.set()
    t.join(5)
    rec.close()
    starts = backend.polls[1:]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # never two polls back to back after a slow one (no catching up), and polls stay on the grid
    assert min(gaps) > 0.3 * interval
    phases = [((s - starts[0]) / interval) % 1 for s in starts]
    assert all(min(p, 1 - p) < 0.4 for p in phases), phases
    assert len(starts) < 1.5 / interval
