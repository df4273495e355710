"""Alerts stored with the session: the writer's buffered path, the recorder's sink, review, and a real recorder."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from gputab.alerts.observer import BUDGET_EXCEEDED, BUDGET_WARNING, CRITICAL, ENFORCEMENT, WARNING, Alert, AlertObserver
from gputab.cli.main import cli
from gputab.config.settings import Config, RecorderConfig
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DemoBackend, FakeClock
from gputab.store import SessionMeta, SessionWriter, Store, StoreWriteError
from gputab.store.schema import known_names, migrate
from support import gputab_cmd

TAG = "llama3-8b-lora"
# The demo charges this job about $0.0026 per second: a $0.02 cap warns after ~6 s and is exceeded after ~8 s.
CAP = 0.02


def _meta() -> SessionMeta:
    return SessionMeta(
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


def _rows(path: Path) -> list[dict]:
    return Store.open(path, readonly=True).alerts(1)


# -- the writer ---------------------------------------------------------------------------------------------------
def test_raise_and_clear_in_one_flush_and_across_flushes(tmp_path):
    w = SessionWriter(Store(tmp_path / "g.db"), _meta())
    a = Alert(BUDGET_WARNING, WARNING, "job t: 80% spent", 1001.25, tag="t", data={"cap_usd": 1.0})
    b = Alert("memory_pressure", WARNING, "GPU 2: memory 97% used", 1002.5, gpu=2)
    w.add_alert(a)
    w.add_alert(Alert(a.kind, a.severity, a.message, a.started_at, tag="t", data=a.data, ended_at=1003.0))
    w.add_alert(b)
    assert w.pending_alerts == 3
    w.flush()
    assert w.pending_alerts == 0
    rows = _rows(tmp_path / "g.db")
    assert [(r["kind"], r["subject"], r["started_at"], r["ended_at"], r["active"]) for r in rows] == [
        (BUDGET_WARNING, "t", 1001.25, 1003.0, False),
        ("memory_pressure", "gpu 2", 1002.5, None, True),
    ]
    assert rows[0]["data"] == {"cap_usd": 1.0} and rows[0]["start"] == "1970-01-01T00:16:41Z"
    # The clear of an alert committed earlier updates that row instead of adding one.
    w.add_alert(Alert(b.kind, b.severity, b.message, b.started_at, gpu=2, ended_at=1010.0))
    w.flush()
    rows = _rows(tmp_path / "g.db")
    assert len(rows) == 2 and rows[1]["ended_at"] == 1010.0 and rows[1]["end"] == "1970-01-01T00:16:50Z"


def test_same_condition_raised_again_gets_its_own_row(tmp_path):
    w = SessionWriter(Store(tmp_path / "g.db"), _meta())
    for start, end in ((1001.0, 1005.0), (1009.0, None)):
        w.add_alert(Alert("idle_money", WARNING, "GPU 0 idle", start, gpu=0))
        if end is not None:
            w.add_alert(Alert("idle_money", WARNING, "GPU 0 idle", start, gpu=0, ended_at=end))
    w.flush()
    w.add_alert(Alert("idle_money", WARNING, "GPU 0 idle", 1009.0, gpu=0, ended_at=1012.0))
    w.flush()
    assert [(r["started_at"], r["ended_at"]) for r in _rows(tmp_path / "g.db")] == [(1001.0, 1005.0), (1009.0, 1012.0)]


def test_enforcement_records_are_inserted_cleared_even_two_at_one_instant(tmp_path):
    w = SessionWriter(Store(tmp_path / "g.db"), _meta())
    for pid in (11, 12):
        w.add_alert(
            Alert(
                ENFORCEMENT,
                CRITICAL,
                f"job t: SIGTERM to pid {pid} sent: cap",
                1004.0,
                tag="t",
                data={"pid": pid},
                ended_at=1004.0,
            )
        )
    w.flush()
    rows = _rows(tmp_path / "g.db")
    assert [(r["kind"], r["ended_at"], r["data"]["pid"]) for r in rows] == [
        (ENFORCEMENT, 1004.0, 11),
        (ENFORCEMENT, 1004.0, 12),
    ]
    assert not any(r["active"] for r in rows)


def test_alerts_are_held_while_the_database_is_locked_then_written(tmp_path):
    path = tmp_path / "g.db"
    w = SessionWriter(Store(path), _meta())
    w.flush()  # the session row exists
    blocker = sqlite3.connect(path)
    blocker.execute("BEGIN EXCLUSIVE")
    w.add_alert(Alert(BUDGET_EXCEEDED, CRITICAL, "job t: budget exceeded", 1005.0, tag="t"))
    with pytest.raises(StoreWriteError) as err:
        w.flush()
    assert err.value.kind == "locked" and w.pending_alerts == 1
    blocker.rollback()
    blocker.close()
    w.flush()
    assert [r["kind"] for r in _rows(path)] == [BUDGET_EXCEEDED] and w.pending_alerts == 0


def test_a_database_from_before_the_alerts_table_reads_as_no_alerts(tmp_path):
    path = tmp_path / "old.db"
    db = Database(path)
    migrate(db, path, stop_before="m003_alerts")
    db.close()
    assert "m003_alerts" in known_names()
    store = Store.open(path, readonly=True)  # a read-only open does not migrate
    assert store.alerts(1) == [] and store.alert_counts() == {}


# -- the recorder, in process ------------------------------------------------------------------------------------
def _recorder(tmp_path, commit_interval: float = 2.0) -> tuple[Recorder, AlertObserver, list[Alert], FakeClock]:
    clock = FakeClock()
    config = Config(recorder=RecorderConfig(commit_interval=commit_interval))
    seen: list[Alert] = []
    obs = AlertObserver.from_config(config, budgets={TAG: CAP})
    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        Store(tmp_path / "g.db"),
        config,
        clock=clock,
        wall_clock=clock.wall,
        observers=[obs],
        spool=tmp_path / "spool",
    )

    def sink(alert: Alert) -> None:
        seen.append(alert)
        assert rec.record_alert(alert)

    obs.sink = sink
    return rec, obs, seen, clock


def _steps(rec: Recorder, clock: FakeClock, n: int) -> None:
    for _ in range(n):
        clock.advance(1.0)
        rec.step()


def test_recorder_stores_budget_alerts_with_the_clear_matched(tmp_path):
    rec, obs, seen, clock = _recorder(tmp_path)
    rec.start()
    _steps(rec, clock, 20)
    rec.close("clean")
    # The warning gave way to "exceeded": raised, cleared, then the exceeded alert, still active at the end.
    assert [(a.kind, a.active) for a in seen] == [
        (BUDGET_WARNING, True),
        (BUDGET_WARNING, False),
        (BUDGET_EXCEEDED, True),
    ]
    store = Store.open(tmp_path / "g.db", readonly=True)
    rows = store.alerts(rec.session_id)
    warning, exceeded = seen[1], seen[2]
    assert [(r["kind"], r["severity"], r["subject"], r["message"], r["started_at"], r["ended_at"]) for r in rows] == [
        (BUDGET_WARNING, WARNING, TAG, warning.message, warning.started_at, warning.ended_at),
        (BUDGET_EXCEEDED, CRITICAL, TAG, exceeded.message, exceeded.started_at, None),
    ]
    assert warning.started_at < warning.ended_at == exceeded.started_at
    assert rows[1]["data"]["cap_usd"] == CAP and rows[1]["data"]["spent_usd"] >= CAP
    assert store.alert_counts() == {rec.session_id: 2}


def test_an_alert_reaches_the_database_with_the_next_commit_only(tmp_path):
    rec, obs, seen, clock = _recorder(tmp_path, commit_interval=5.0)
    rec.start()
    reader = Store.open(tmp_path / "g.db", readonly=True)
    steps = 0
    while not seen:
        _steps(rec, clock, 1)
        steps += 1
        assert steps < 30, "no budget alert was raised"
    # Raised after this tick's commit check: held with the figures until the next commit.
    assert reader.alerts(rec.session_id) == [] and rec.writer.pending_alerts == 1
    _steps(rec, clock, 5)
    assert [r["kind"] for r in reader.alerts(rec.session_id)][:1] == [BUDGET_WARNING]
    rec.close("clean")


def test_record_alert_outside_a_session_is_refused_not_lost_silently(tmp_path, caplog):
    rec, obs, seen, clock = _recorder(tmp_path)
    alert = Alert(BUDGET_WARNING, WARNING, "job t: early", 1.0, tag="t")
    assert rec.record_alert(alert) is False
    rec.start()
    assert rec.record_alert(alert) is True
    rec.close("clean")
    assert rec.record_alert(alert) is False
    assert "alert not stored" in caplog.text
    assert [r["message"] for r in Store.open(tmp_path / "g.db", readonly=True).alerts(rec.session_id)] == [
        "job t: early"
    ]


# -- review ------------------------------------------------------------------------------------------------------
def test_show_lists_alerts_and_sessions_counts_them(tmp_path):
    rec, obs, seen, clock = _recorder(tmp_path)
    rec.start()
    _steps(rec, clock, 20)
    rec.close("clean")
    # A second session with no alerts, so the count per session is checked, not just "some".
    quiet = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        Store(tmp_path / "g.db"),
        Config(),
        clock=clock,
        wall_clock=clock.wall,
        spool=tmp_path / "spool",
    )
    quiet.start()
    _steps(quiet, clock, 3)
    quiet.close("clean")
    db = ["--db", str(tmp_path / "g.db")]
    runner = CliRunner()
    r = runner.invoke(cli, [*db, "show", str(rec.session_id)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    head = lines.index("Alerts (2, times UTC):")
    assert head > next(i for i, line in enumerate(lines) if line.startswith(TAG))
    warn, exc = lines[head + 1], lines[head + 2]
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ  budget_warning +warning +llama3-8b-lora +job ", warn), warn
    assert re.search(r"\[cleared \d\d:\d\d:\d\dZ\]$", warn), warn
    assert "budget_exceeded" in exc and "critical" in exc and exc.endswith("[active at end]")
    r = runner.invoke(cli, [*db, "show", str(quiet.session_id)])
    assert r.exit_code == 0 and "Alerts" not in r.output
    shown = json.loads(runner.invoke(cli, [*db, "show", str(rec.session_id), "--json"]).output)
    assert [(a["kind"], a["active"]) for a in shown["alerts"]] == [(BUDGET_WARNING, False), (BUDGET_EXCEEDED, True)]
    assert json.loads(runner.invoke(cli, [*db, "show", str(quiet.session_id), "--json"]).output)["alerts"] == []
    listed = json.loads(runner.invoke(cli, [*db, "sessions", "--json"]).output)["sessions"]
    assert {s["id"]: s["alert_count"] for s in listed} == {rec.session_id: 2, quiet.session_id: 0}


# -- gputab record as a subprocess ---------------------------------------------------------------------------------
@pytest.fixture
def budget_config():
    """Fast ticks and commits, and a cap the demo's llama3-8b-lora job passes in about two seconds."""
    path = Path(os.environ["GPUTAB_CONFIG"])
    path.write_text(
        f'[recorder]\ninterval = 0.2\ncommit_interval = 0.4\nseries_interval = 1.0\n\n[budgets]\n"{TAG}" = 0.005\n'
    )
    return path


def _start_record() -> subprocess.Popen:
    return subprocess.Popen(
        [*gputab_cmd(), "--demo", "record"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_line(proc: subprocess.Popen, pattern: str, timeout: float = 30.0) -> str:
    """Read stdout until a line matches (the recorder flushes every alert line)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if re.search(pattern, line):
            return line
    proc.kill()
    raise AssertionError(f"no line matching {pattern!r}: {seen} {proc.stderr.read()}")


def _show_last() -> dict:
    r = subprocess.run([*gputab_cmd(), "--demo", "show", "last", "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_gputab_record_stores_alerts_then_sigterm(budget_config):
    proc = _start_record()
    _wait_line(proc, r"ALERT \[critical\] job llama3-8b-lora: budget exceeded")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    shown = _show_last()
    assert shown["session"]["end_reason"] == "clean"
    kinds = [(a["kind"], a["subject"], a["active"]) for a in shown["alerts"]]
    # A tick delayed on a loaded box can jump past the warning band straight to the cap, so the warning may be
    # missing; when it is there it cleared at the instant the exceeded alert was raised.
    assert kinds in ([(BUDGET_WARNING, TAG, False), (BUDGET_EXCEEDED, TAG, True)], [(BUDGET_EXCEEDED, TAG, True)]), (
        kinds
    )
    if len(kinds) == 2:
        assert shown["alerts"][0]["ended_at"] == shown["alerts"][1]["started_at"]
    assert "budget exceeded" in shown["alerts"][-1]["message"]


def test_a_committed_alert_survives_kill_9(budget_config):
    proc = _start_record()
    _wait_line(proc, r"ALERT \[critical\] job llama3-8b-lora: budget exceeded")
    time.sleep(1.5)  # past the next commit (every 0.4 s)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    shown = _show_last()
    assert shown["session"]["end_reason"] == "crashed"
    assert [a["kind"] for a in shown["alerts"]][-1:] == [BUDGET_EXCEEDED]  # the warning may be skipped, as above
    assert shown["alerts"][-1]["data"]["cap_usd"] == 0.005 and shown["alerts"][-1]["active"]
