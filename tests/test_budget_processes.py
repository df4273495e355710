"""Budgets with real processes: a real `gputab record` restarted keeps a budget's spend, and a real recorder stops a
job at its cap, signalling only the processes of the users the budget names (a real `nobody` process with the same
tag gets a refused record and keeps running). The stopping budget is set with `gputab budget set` while the
recorder runs, on the fake libnvidia-ml.so.1 listing the real PIDs."""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakenvml import GpuSpec, Proc, Scenario

NOBODY = 65534
LORA = "llama3-8b-lora"

# Reports every signal on stdout; exits on SIGTERM. Runs as root (the named user) or as nobody.
JOB = (
    'trap "echo INT" INT; trap "echo TERM; exit 0" TERM; echo ready; i=0; '
    "while [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done"
)

# $1 per GPU-second, so a job on GPU 0 is over a $1 cap within seconds.
CONFIG = """
[recorder]
interval = 0.2
commit_interval = 0.4
series_interval = 1.0

[prices.gpus."0"]
rate_per_hour = 3600.0
"""


def wait_until(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def query(db: Path, sql: str, params=()) -> list[tuple]:
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []


def job_cost(db: Path, tag: str, session: int | None = None) -> float:
    where = " AND session_id = ?" if session is not None else ""
    rows = query(db, f"SELECT sum(cost_usd) FROM jobs WHERE tag = ?{where}", (tag, *([session] if session else [])))
    return float(rows[0][0] or 0.0) if rows else 0.0


def line(proc: subprocess.Popen, timeout: float) -> str | None:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().decode().strip() if ready else None


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_a_real_recorder_restart_keeps_the_budgets_spend(tmp_path):
    db = tmp_path / "g.db"
    config = tmp_path / "config.toml"
    config.write_text("[recorder]\ninterval = 0.2\ncommit_interval = 0.4\nseries_interval = 1.0\n")
    env = dict(os.environ, GPUTAB_CONFIG=str(config), GPUTAB_DB=str(db), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "gputab", "--demo", "--db", str(db), "record"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: job_cost(db, LORA) > 0.005, 30, "the first session to charge the fine-tune")
    finally:
        stop(first)
    assert first.returncode == 0, first.stderr.read().decode()
    cost1 = job_cost(db, LORA)
    # A total cap the first session alone puts at 90 %: a second session starts with a warning, at once.
    cap = cost1 / 0.9
    subprocess.run(
        [sys.executable, "-m", "gputab", "--db", str(db), "budget", "set", LORA, f"{cap:.9f}"], env=env, check=True
    )
    out = tmp_path / "second.out"
    with out.open("wb") as fh:
        second = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        try:
            rows = wait_until(
                lambda: query(
                    db,
                    "SELECT session_id, data_json FROM alerts WHERE kind = 'budget_warning' AND subject = ?",
                    (LORA,),
                ),
                30,
                "the second session's budget warning",
            )
        finally:
            stop(second)
    assert second.returncode == 0, out.read_text()
    (session, data), *_ = rows
    assert session == 2
    spent = json.loads(data)["spent_usd"]
    assert spent >= cost1 and spent >= 0.8 * cap
    # The second session alone was far from 80 % when it warned: the first session's spend was carried.
    assert spent - cost1 < 0.5 * cap
    assert f"job {LORA}: $" in out.read_text() and "of its $" in out.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a process as another user")
@pytest.mark.slow
def test_the_recorder_stops_only_the_named_users_processes(fake_nvml, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    db = tmp_path / "g.db"
    env = fake_nvml.env(GPUTAB_CONFIG=str(config), GPUTAB_DB=str(db), PYTHONUNBUFFERED="1")
    env.pop("GPUTAB_TAG", None)
    job_env = {"GPUTAB_TAG": "sweep-1", "PATH": "/usr/bin:/bin"}
    started: list[subprocess.Popen] = []
    try:
        mine = subprocess.Popen(["/bin/sh", "-c", JOB], stdout=subprocess.PIPE, bufsize=0, cwd="/", env=job_env)
        started.append(mine)
        theirs = subprocess.Popen(
            ["/bin/sh", "-c", JOB],
            stdout=subprocess.PIPE,
            bufsize=0,
            cwd="/",
            user=NOBODY,
            group=NOBODY,
            env=job_env,
        )
        started.append(theirs)
        assert line(mine, 10) == "ready" and line(theirs, 10) == "ready"
        fake_nvml.write(Scenario(gpus=[GpuSpec()], processes=[Proc(0, mine.pid), Proc(0, theirs.pid)]))

        log = tmp_path / "record.out"
        with log.open("wb") as fh:
            recorder = subprocess.Popen(
                [sys.executable, "-m", "gputab", "record"], env=env, stdout=fh, stderr=subprocess.STDOUT
            )
        started.append(recorder)
        wait_until(lambda: job_cost(db, "sweep-1") > 0.05, 30, "the recorder to charge sweep-1")
        assert line(mine, 0.5) is None  # no budget yet: nothing signalled

        # Set while it records: the recorder reads it within seconds. root's processes only; nobody's are reported.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gputab",
                "budget",
                "set",
                "sweep-*",
                "1",
                "--stop",
                "--grace",
                "1",
                "--user",
                "root",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        assert line(mine, 20) == "INT"  # checkpoint first ...
        assert line(mine, 10) == "TERM" and mine.wait(timeout=10) == 0  # ... and SIGTERM after the grace period
        assert line(theirs, 1.0) is None and theirs.poll() is None  # never signalled, still running

        def records():
            return query(
                db, "SELECT severity, message, data_json FROM alerts WHERE kind = 'budget_enforcement' ORDER BY id"
            )

        wait_until(lambda: len(records()) >= 3, 10, "the enforcement records to be committed")
        done = {(d["pid"], d["signal"]): d for _, _, d in ((s, m, json.loads(d)) for s, m, d in records())}
        assert done[(mine.pid, "SIGINT")]["outcome"] == "sent"
        assert done[(mine.pid, "SIGTERM")]["outcome"] == "sent"
        refused = done[(theirs.pid, "SIGINT")]
        assert refused["outcome"] == "refused" and refused["uid"] == NOBODY
        assert "nobody" in refused["reason"] and "root" in refused["reason"]
        assert (theirs.pid, "SIGTERM") not in done
        stop(recorder)
        text = log.read_text()
        assert f"STOP [warning] job sweep-1: SIGINT to pid {theirs.pid} refused" in text  # a line in the log
        assert f"SIGINT to pid {mine.pid} sent" in text and "Traceback" not in text
        assert theirs.poll() is None
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
