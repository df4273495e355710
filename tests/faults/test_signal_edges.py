"""Signals at the edges of ``gputab record`` (issue 11, item 14), with real processes and real signals.

- A stop signal at any moment of start-up (importing, opening the backend and the database, the first commit)
  never prints a KeyboardInterrupt traceback and never leaves a session open: either nothing was recorded, or the
  session is closed ``clean``.
- A second signal while the recorder shuts down (during the close, after the session is closed ``clean``, while the
  interpreter exits) does not turn the clean exit into death by signal: the exit status stays 0.

Start-up delays are counted from the moment gputab's own first lines have taken over SIGINT and SIGTERM (seen in
``/proc/PID/status``): before that the interpreter itself is starting (site, runpy; a few tens of ms), and a
Ctrl-C there is Python's to report, before any gputab code has run.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from support import gputab_cmd

FAST = "[recorder]\ninterval = 0.1\ncommit_interval = 0.2\nseries_interval = 0.5\n"
START_DELAYS = [0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.1, 0.1, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5]


@pytest.fixture(autouse=True)
def fast_config():
    Path(os.environ["GPUTAB_CONFIG"]).write_text(FAST)


def _caught(pid: int) -> int:
    """The process's mask of signals with a handler (SigCgt), 0 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return int(re.search(r"^SigCgt:\s*([0-9a-f]+)", text, re.M).group(1), 16)


def _wait_gputab_in_charge(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Until the process handles SIGTERM (Python alone handles only SIGINT): gputab's first lines have run."""
    bit = 1 << (signal.SIGTERM - 1)
    deadline = time.monotonic() + timeout
    while not _caught(proc.pid) & bit:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "gputab never took over SIGTERM"
        time.sleep(0.001)


def _sessions(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT id, end_reason FROM sessions ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []  # the file was made but the schema never committed
    finally:
        conn.close()


def _record(db: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*gputab_cmd(), "--db", str(db), "--demo", "record"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
@pytest.mark.parametrize("sig,codes", [(signal.SIGINT, {0, 130}), (signal.SIGTERM, {0, 143, -signal.SIGTERM})])
def test_a_stop_signal_at_any_moment_of_start_up_exits_cleanly(tmp_path, sig, codes):
    outcomes = []
    for i, delay in enumerate(START_DELAYS):
        db = tmp_path / f"start{i}.db"
        proc = _record(db)
        try:
            _wait_gputab_in_charge(proc)
            time.sleep(delay)
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        where = f"{sig.name} {delay} s after gputab took over: rc {proc.returncode}, stdout {out!r}, stderr {err!r}"
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, where
        assert proc.returncode in codes, where
        # click's own "Aborted." when a Ctrl-C lands while it parses the command line, or gputab's one-liners
        assert all(line.startswith("gputab: ") or line.strip() in ("", "Aborted.") for line in err.splitlines()), where
        sessions = _sessions(db)
        assert all(reason == "clean" for _, reason in sessions), f"a session left open or not clean: {where}"
        if sessions:
            assert proc.returncode == 0 and f"closed (clean, {sig.name})" in out, where
        outcomes.append("recorded" if sessions else f"rc {proc.returncode}")
    print(f"\n{sig.name} at start-up: {outcomes}")


@pytest.mark.parametrize(
    "first,second", [(signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGINT), (signal.SIGINT, signal.SIGTERM)]
)
def test_signals_during_shutdown_keep_the_clean_exit(tmp_path, first, second):
    """After the first signal, the second one is sent every 2 ms until the process is gone: it lands during the
    close, after the session is closed and while the interpreter exits."""
    db = tmp_path / "g.db"
    proc = _record(db)
    try:
        line = proc.stdout.readline()
        assert "recording session" in line, line
        time.sleep(0.5)
        proc.send_signal(first)
        sent = 0
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
            try:
                proc.send_signal(second)
                sent += 1
            except ProcessLookupError:
                break
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert sent > 0
    assert proc.returncode == 0, (proc.returncode, out, err)
    assert "Traceback" not in err, err
    assert f"closed (clean, {first.name})" in out, out
    assert [reason for _, reason in _sessions(db)] == ["clean"]
