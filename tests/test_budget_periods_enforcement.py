"""Stopping a job at its cap, per budget period: a process signalled in one period and still over the cap in a
later one is signalled again (SIGINT, then SIGTERM after the grace); within one period it is signalled once; a
SIGTERM still due when the period ends is cancelled (the new period's spend starts from zero), and said so.

Real child processes that ignore SIGINT and SIGTERM (they report each on stdout and keep running), real signals;
the periods are UTC days crossed by a fake clock, first through the alert observer, then through a real recorder
polling a GPU that runs the real child, with the budget set by `gputab budget set`."""

from __future__ import annotations

import json
import os
import select
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import psutil
import pytest
from click.testing import CliRunner

from gputab.alerts.observer import BUDGET_EXCEEDED, ENFORCEMENT, AlertEngine, AlertObserver
from gputab.budgets.enforcement import CANCELLED, SENT, BudgetEnforcer
from gputab.budgets.model import Budget
from gputab.cli.main import cli
from gputab.config.settings import parse_config
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import FakeClock
from gputab.sampling.snapshot import Snapshot
from gputab.store import Store
from test_enforcement import Proc, Tick
from test_spool_trust import HostGpu  # one GPU running real host processes, on the test's clock

# Reports SIGINT and SIGTERM and keeps running: a job only SIGKILL (never sent by gputab) could stop.
DEAF = """
import os, signal, time
signal.signal(signal.SIGINT, lambda signum, frame: os.write(1, b"INT\\n"))
signal.signal(signal.SIGTERM, lambda signum, frame: os.write(1, b"TERM\\n"))
os.write(1, b"ready\\n")
for _ in range(1200):
    time.sleep(0.05)
"""

MIDNIGHT = datetime(2026, 3, 16, tzinfo=UTC).timestamp()


def read_line(proc: subprocess.Popen, timeout: float = 20.0) -> str | None:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().decode().strip() if ready else None


def heard(proc: subprocess.Popen) -> str | None:
    """What the child printed right after a signal (a short wait: none may come)."""
    return read_line(proc, timeout=0.3)


@pytest.fixture
def deaf():
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", DEAF],
            stdout=subprocess.PIPE,
            bufsize=0,
            env={**os.environ, "GPUTAB_TAG": "train"},
        )
        procs.append(proc)
        assert read_line(proc) == "ready"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)


def stopping(child: subprocess.Popen, grace: float):
    """An alert observer holding ``train`` to a $5 daily budget that stops it; ``tick(wall, session_cost)``."""
    stored: list = []
    obs = AlertObserver(
        AlertEngine(budgets=[Budget("train", 5.0, period="day", stop=True, grace_seconds=grace)]),
        sink=stored.append,
        enforcer=BudgetEnforcer(),
    )
    procs = {child.pid: Proc("train", psutil.Process(child.pid).create_time())}

    def tick(wall: float, session_cost: float) -> None:
        job = {"tag": "train", "cost_usd": session_cost, "burn_rate_usd_per_hour": 36.0}
        obs.on_tick(Tick(Snapshot(mono=wall - MIDNIGHT, wall=wall), [job], procs))

    return obs, stored, tick


def test_the_observer_signals_again_in_a_new_day_and_once_per_day(deaf):
    child = deaf()
    obs, stored, tick = stopping(child, grace=10.0)

    def signals() -> list[tuple[float, str, str]]:
        return [(a.started_at, a.data["signal"], a.data["outcome"]) for a in stored if a.kind == ENFORCEMENT]

    tick(MIDNIGHT - 100, 4.0)
    tick(MIDNIGHT - 90, 5.5)  # over the day's $5: SIGINT
    assert heard(child) == "INT"
    tick(MIDNIGHT - 80, 6.0)  # the grace is over: SIGTERM; the child keeps running
    assert heard(child) == "TERM" and child.poll() is None
    for wall in range(int(MIDNIGHT) - 70, int(MIDNIGHT), 10):  # the rest of the day, over the cap: nothing more
        tick(wall, 7.0)
    assert heard(child) is None
    assert signals() == [(MIDNIGHT - 90, "SIGINT", SENT), (MIDNIGHT - 80, "SIGTERM", SENT)]

    tick(MIDNIGHT, 7.0)  # a new day: its spend starts from zero, the cap is lifted
    assert BUDGET_EXCEEDED not in {a.kind for a in obs.active} and heard(child) is None
    tick(MIDNIGHT + 30, 11.0)  # $4 today
    assert heard(child) is None
    tick(MIDNIGHT + 40, 12.5)  # $5.50 today: over again, and signalled again
    assert heard(child) == "INT"
    tick(MIDNIGHT + 45, 13.0)
    assert heard(child) is None  # inside the grace
    tick(MIDNIGHT + 50, 13.5)
    assert heard(child) == "TERM"
    for wall in (MIDNIGHT + 60, MIDNIGHT + 3600, MIDNIGHT + 86399):  # once per day, however long it runs over
        tick(wall, 20.0)
    assert heard(child) is None and child.poll() is None
    assert signals()[2:] == [(MIDNIGHT + 40, "SIGINT", SENT), (MIDNIGHT + 50, "SIGTERM", SENT)]


def test_a_sigterm_due_after_the_period_ended_is_cancelled_and_recorded(deaf):
    child = deaf()
    obs, stored, tick = stopping(child, grace=30.0)
    tick(MIDNIGHT - 10, 5.5)  # SIGINT 10 s before midnight, SIGTERM due 20 s after it
    assert heard(child) == "INT"
    tick(MIDNIGHT + 1, 5.6)
    tick(MIDNIGHT + 25, 5.8)  # the grace is over, but in a day the job is $0.30 into
    assert heard(child) is None and obs.enforcer.pending == []
    (cancel,) = [a for a in stored if a.kind == ENFORCEMENT and a.data["signal"] == "SIGTERM"]
    assert cancel.data["outcome"] == CANCELLED and cancel.data["pid"] == child.pid
    assert "new day" in cancel.message and "SIGTERM" in cancel.message


def test_a_real_recorder_stops_a_job_again_the_next_day(deaf, tmp_path):
    child = deaf()
    db = tmp_path / "g.db"
    result = CliRunner().invoke(
        cli, ["--db", str(db), "budget", "set", "train", "5", "--period", "day", "--stop", "--grace", "2"]
    )
    assert result.exit_code == 0, result.output
    config = parse_config('[prices.gpus."0"]\nrate_per_hour = 3600.0\n')  # $1 a second
    clock = FakeClock(wall_start=MIDNIGHT - 30)
    obs = AlertObserver.from_config(config)
    rec = Recorder(HostGpu(clock, [child.pid]), Store(db), config, clock=clock, wall_clock=clock.wall, observers=[obs])
    sent: list = []

    def sink(alert) -> None:
        rec.record_alert(alert)  # stored with the session, as `gputab record` does
        if alert.kind == ENFORCEMENT and alert.data["outcome"] == SENT:
            sent.append(alert)

    obs.sink = sink
    rec.start()
    heard_at: list[tuple[float, str | None]] = []
    try:
        while clock.wall() < MIDNIGHT + 30:
            clock.advance(1.0)
            before = len(sent)
            rec.step()
            heard_at += [(clock.wall(), read_line(child)) for _ in sent[before:]]  # what the child got, when
    finally:
        rec.close()
    assert heard(child) is None  # nothing it was not told about
    assert child.poll() is None
    # Day one: over $5 about 6 s in, SIGINT, SIGTERM 2 s later; day two the same, from zero at midnight.
    days = [[s for w, s in heard_at if (w >= MIDNIGHT) == second] for second in (False, True)]
    assert days == [["INT", "TERM"], ["INT", "TERM"]], heard_at
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT wall, data_json FROM alerts WHERE kind = ? ORDER BY id", [ENFORCEMENT]).fetchall()
    finally:
        conn.close()
    records = [(wall >= MIDNIGHT, json.loads(d)["signal"], json.loads(d)["outcome"]) for wall, d in rows]
    assert records == [
        (False, "SIGINT", SENT),
        (False, "SIGTERM", SENT),
        (True, "SIGINT", SENT),
        (True, "SIGTERM", SENT),
    ]
    assert {json.loads(d)["pid"] for _, d in rows} == {child.pid}
