"""Harness of the fault suite: the real recorder, on the fake NVML or the demo box, against a real SQLite file.

Two ways to drive it:

- :class:`RecorderDriver`: one ``Recorder`` in a subprocess (the fake NVML needs LD_LIBRARY_PATH at process start),
  stepped on command, so a test rewrites the scenario between two exact ticks and reads every tick back as JSON.
  No sleeps, no timing: each ``step()`` is one tick.
- :class:`RecordProcess`: ``gputab record`` itself, for the faults that are about the process and the file
  system (signals, disk full, locks, permissions); its stderr is collected line by line.

Both read the database only through a separate read-only connection, as ``gputab show`` would: what a test sees
there is what was committed.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

# Fast timings so each scenario takes a second or two: every tick is 0.1 s, a commit every 0.2 s.
FAST_CONFIG = """
[recorder]
interval = 0.1
commit_interval = 0.2
series_interval = 0.5
gap_factor = 5.0
"""


@pytest.fixture
def fast_config(tmp_path) -> Path:
    p = tmp_path / "config.toml"  # the path GPUTAB_CONFIG points at (tests/conftest.py)
    p.write_text(FAST_CONFIG)
    return p


def committed(db: Path) -> dict | None:
    """The last session as committed: ``ticks``, ``total_cost_usd``, ``end_reason``, jobs {tag: cost}."""
    if not db.exists():
        return None
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute(
            "SELECT id, ticks, total_cost_usd, end_reason, energy_j FROM sessions ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        jobs = dict(conn.execute("SELECT tag, cost_usd FROM jobs WHERE session_id = ?", (row[0],)).fetchall())
        gpus = {
            r[0]: {"cost_usd": r[1], "energy_j": r[2], "energy_method": r[3]}
            for r in conn.execute(
                "SELECT gpu_index, cost_usd, energy_j, energy_method FROM session_gpus WHERE session_id = ?", (row[0],)
            )
        }
        procs = conn.execute("SELECT count(*) FROM processes WHERE session_id = ?", (row[0],)).fetchone()[0]
        return {
            "id": row[0],
            "ticks": row[1],
            "total_cost_usd": row[2],
            "end_reason": row[3],
            "energy_j": row[4],
            "jobs": jobs,
            "gpus": gpus,
            "processes": procs,
        }
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    finally:
        conn.close()


def wait_until(pred: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# --- in-process recorder, stepped -------------------------------------------------------------------------------

_DRIVER = r"""
import json, os, sys, traceback
from pathlib import Path
from gputab.config.settings import load_config
from gputab.recording.recorder import Recorder
from gputab.sampling import open_backend
from gputab.store import Store

demo = os.environ.get("FAULT_DEMO") == "1"
backend = open_backend(demo=demo)
overrides = Path(os.environ["FAULT_FACTS"]) if os.environ.get("FAULT_FACTS") else None
if overrides is not None:
    # PID reuse cannot be forced on a real kernel without privileges: the host facts of listed PIDs come from a
    # file the test rewrites (create_time and environment), everything else is real.
    from gputab.sampling.backend import ProcessFacts
    inner = backend.inspector()
    class Inspector:
        def facts(self, pid):
            table = json.loads(overrides.read_text()) if overrides.exists() else {}
            d = table.get(str(pid))
            if d is None:
                return inner.facts(pid)
            return ProcessFacts(pid=pid, create_time=d["create_time"], name=d.get("name", "python"),
                                user="tester", uid=os.getuid(), cmdline=("python", "train.py"),
                                environ=d.get("environ", {}), ppid=1)
    backend.inspector = lambda: Inspector()
rec = Recorder(backend, Store(os.environ["GPUTAB_DB"]), load_config(os.environ["GPUTAB_CONFIG"]))

def state(tick):
    return {"seq": tick.seq, "session_id": tick.session_id, "recording": tick.recording, "notes": list(tick.notes),
            "errors": list(tick.snapshot.errors),
            "lost": [g.index for g in tick.snapshot.gpus if g.lost and not getattr(g, "unobserved", None)],
            "unobserved": {str(g.index): g.unobserved for g in tick.snapshot.gpus if getattr(g, "unobserved", None)},
            "read_faults": [list(f) for f in getattr(tick, "read_faults", ())],
            "notices": list(getattr(tick, "fault_notices", ())),
            "pids": sorted({p.pid for p in tick.snapshot.processes}),
            "gpus": {str(g["index"]): g for g in tick.gpus}, "jobs": {j["tag"]: j["cost_usd"] for j in tick.jobs},
            "total": tick.total_cost_usd, "energy_j": rec.ledger.total_energy_j, "held": tick.held_ticks}

print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    try:
        if cmd == "start":
            out = state(rec.start())
        elif cmd == "step":
            out = state(rec.step())
        elif cmd == "calls" or cmd == "max_in_flight":
            import ctypes, pynvml
            fn = getattr(pynvml.nvmlLib, "fakeNvmlCallCount" if cmd == "calls" else "fakeNvmlMaxInFlight")
            fn.restype = ctypes.c_long
            out = {cmd: fn(arg.encode())}
        elif cmd == "close":
            out = {"ok": rec.close(), "session_id": rec.session_id}
        else:
            out = {"unknown": cmd}
    except Exception as exc:
        out = {"exception": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    print(json.dumps(out, default=str), flush=True)
"""


class RecorderDriver:
    """A real Recorder in a subprocess: ``start()``, ``step()``, ``close()``, each answering with the tick."""

    def __init__(self, env: Mapping[str, str], timeout: float = 30.0) -> None:
        self._timeout = timeout
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _DRIVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env),
        )
        first = self._read()
        assert first.get("ready"), first

    def _read(self, timeout: float | None = None) -> dict:
        if timeout is not None:
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not ready:
                raise TimeoutError(f"the recorder did not answer within {timeout} s (hung)")
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(self._timeout)
            raise RuntimeError(f"recorder driver died: {self.proc.stderr.read()}")
        return json.loads(line)

    def ask(self, cmd: str, timeout: float | None = None) -> dict:
        """Send one command; with ``timeout``, raise TimeoutError if the recorder does not answer in time."""
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def start(self) -> dict:
        return self.ask("start")

    def step(self, n: int = 1) -> dict:
        out = {}
        for _ in range(n):
            out = self.ask("step")
            assert "exception" not in out, out.get("traceback")
        return out

    def close(self) -> dict:
        out = self.ask("close")
        try:
            self.stderr = self.proc.communicate("", timeout=self._timeout)[1]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.stderr = self.proc.communicate()[1]
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def driver_factory(fast_config):
    """``driver_factory(env)`` -> a started-later :class:`RecorderDriver`; killed at teardown if left running."""
    made: list[RecorderDriver] = []

    def make(env: Mapping[str, str]) -> RecorderDriver:
        d = RecorderDriver(env)
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()


# --- gputab record, as a process -------------------------------------------------------------------------------


class RecordProcess:
    """``gputab record`` in a subprocess; ``lines`` collects its stderr as it comes."""

    def __init__(self, env: Mapping[str, str], args: tuple[str, ...] = (), preexec_fn=None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gputab", "record", *args],
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=preexec_fn,
        )
        self.lines: list[str] = []
        self.out_lines: list[str] = []
        self._t = [
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out_lines), daemon=True),
        ]
        for t in self._t:
            t.start()

    @staticmethod
    def _pump(stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    @property
    def stdout(self) -> str:
        return "\n".join(self.out_lines)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_stderr(self, needle: str, timeout: float = 10.0) -> str:
        return wait_until(
            lambda: next((ln for ln in self.lines if needle in ln), None),
            timeout,
            f"{needle!r} on the recorder's stderr (so far: {self.lines[-5:]})",
        )

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        for t in self._t:
            t.join(5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def record_factory(fast_config):
    made: list[RecordProcess] = []

    def make(env: Mapping[str, str], *args: str, preexec_fn=None) -> RecordProcess:
        r = RecordProcess(env, args, preexec_fn=preexec_fn)
        made.append(r)
        return r

    yield make
    for r in made:
        r.kill()


@pytest.fixture
def db_path(tmp_path) -> Path:
    return Path(os.environ["GPUTAB_DB"])
