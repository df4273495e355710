"""Issue 11, item 6: another user's process with the same tag never trips `gputab run --stop-at-cap`.

Everything is real: the fake libnvidia-ml.so.1 lists real PIDs, one of them a process running as ``nobody`` with
``GPUTAB_TAG=victim``; a real ``gputab record`` charges it to ``victim`` (shown), while a real ``gputab run --tag
victim --budget ... --stop-at-cap`` counts only its own command's cost and signals nothing until its own command is
on the GPU.
"""

from __future__ import annotations

import os
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakenvml import GpuSpec, Proc, Scenario

NOBODY = 65534

# Runs as nobody (who cannot read this test's interpreter or tmp dir): reports every signal on stdout.
OTHER_USERS_JOB = (
    'trap "echo INT" INT; trap "echo TERM; exit 0" TERM; echo ready; i=0; '
    "while [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done"
)

# The run's command: notes its PID, then checkpoints and exits 3 on SIGINT (a training loop's KeyboardInterrupt).
OWN_JOB = """
import os, signal, sys, time
log = sys.argv[1]
def note(text):
    with open(log, "a") as f:
        f.write(text + "\\n")
def on_int(signum, frame):
    note("INT")
    sys.exit(3)
signal.signal(signal.SIGINT, on_int)
signal.signal(signal.SIGTERM, lambda s, f: (note("TERM"), sys.exit(4)))
note(f"ready {os.getpid()}")
end = time.monotonic() + 60
while time.monotonic() < end:
    time.sleep(0.05)
"""

# $1 per GPU-second: whoever holds GPU 0 for one tick is far over a $0.002 budget.
CONFIG = """
[recorder]
interval = 0.2
commit_interval = 0.4
series_interval = 1.0

[prices.gpus."0"]
rate_per_hour = 3600.0
"""
BUDGET = "0.002"


def wait_until(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def victim_cost(db: Path) -> float:
    if not db.exists():
        return 0.0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            row = conn.execute("SELECT cost_usd FROM jobs WHERE tag = 'victim' ORDER BY id DESC LIMIT 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0.0
    return float(row[0] or 0.0) if row else 0.0


def stdout_line(proc: subprocess.Popen, timeout: float) -> str | None:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().decode().strip() if ready else None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a process as another user")
@pytest.mark.slow
def test_another_users_same_tag_is_shown_but_never_counted_or_signalled(fake_nvml, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    db = tmp_path / "g.db"
    env = fake_nvml.env(GPUTAB_CONFIG=str(config), GPUTAB_DB=str(db), PYTHONUNBUFFERED="1")
    env.pop("GPUTAB_TAG", None)
    started: list[subprocess.Popen] = []
    try:
        # Another user's job with the same tag, holding GPU 0.
        theirs = subprocess.Popen(
            ["/bin/sh", "-c", OTHER_USERS_JOB],
            stdout=subprocess.PIPE,
            bufsize=0,
            cwd="/",
            user=NOBODY,
            group=NOBODY,
            env={"GPUTAB_TAG": "victim", "PATH": "/usr/bin:/bin"},
        )
        started.append(theirs)
        assert stdout_line(theirs, 10) == "ready"
        fake_nvml.write(Scenario(gpus=[GpuSpec()], processes=[Proc(0, theirs.pid)]))

        # The recorder charges it to `victim`: that is where it is shown.
        recorder = subprocess.Popen(
            [sys.executable, "-m", "gputab", "record"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        started.append(recorder)
        wait_until(lambda: victim_cost(db) > 0.01, 20, "the recorder to charge nobody's process to victim")

        log = tmp_path / "own.log"
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gputab",
                "run",
                "--tag",
                "victim",
                "--budget",
                BUDGET,
                "--stop-at-cap",
                "--grace",
                "2",
                "--",
                sys.executable,
                "-I",
                "-c",
                OWN_JOB,
                str(log),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        started.append(run)
        ready = wait_until(
            lambda: log.exists() and log.read_text().startswith("ready") and log.read_text(),
            20,
            "the run's command to start",
        )
        own_pid = int(ready.split()[1])

        # Several budget readings while only the other user's process holds the GPU: nothing counted, no signal.
        t_end = time.monotonic() + 4.0
        while time.monotonic() < t_end:
            assert run.poll() is None, f"gputab run ended early: {run.communicate()[1].decode()}"
            time.sleep(0.2)
        assert "INT" not in log.read_text() and "TERM" not in log.read_text()
        assert victim_cost(db) > 1.0, "the recorder should still show the tag's total, other user included"

        # Positive control: the run's own command takes the GPU too, and the same budget now stops it.
        fake_nvml.write(Scenario(gpus=[GpuSpec()], processes=[Proc(0, theirs.pid), Proc(0, own_pid)]))
        out, err = run.communicate(timeout=30)
        assert run.returncode == 3, err.decode()
        assert log.read_text().splitlines()[1:] == ["INT"]
        err_text = err.decode()
        assert "Traceback" not in err_text
        assert f"SIGINT to pid {own_pid} sent" in err_text
        assert f"pid {theirs.pid}" not in err_text

        # The other user's process heard nothing, and is still running.
        assert stdout_line(theirs, 0.5) is None and theirs.poll() is None
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                proc.terminate() if proc is not started[0] else proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class ScriptedGpu:
    """A one-GPU backend whose process list the test sets (real PIDs), for RunCost alone; NVML is the fake C
    library's business above."""

    name = "scripted"

    def __init__(self) -> None:
        from gputab.sampling.snapshot import GpuSample

        self.gpu = GpuSample(0, "GPU-0", "Acme X1", utilization_pct=100.0, power_w=300.0)  # default rate
        self.pids: list[int] = []
        self.t = 0.0

    def poll(self):
        from gputab.sampling.snapshot import ProcessSample, Snapshot

        self.t += 1.0
        return Snapshot(
            mono=self.t,
            wall=1e9 + self.t,
            gpus=(self.gpu,),
            processes=tuple(ProcessSample(pid, 0, used_memory_bytes=1 << 30) for pid in self.pids),
        )


# The run's command: starts a launcher that starts a worker and then exits, so the worker is re-parented while the
# command goes on. Each writes its PID to a file; the launcher exits when the file `go` appears.
TREE = """
import os, subprocess, sys, time
d = sys.argv[1]
LAUNCHER = '''
import os, subprocess, sys, time
d = sys.argv[1]
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(os.path.join(d, "worker"), "w").write(str(worker.pid))
while not os.path.exists(os.path.join(d, "go")):
    time.sleep(0.02)
'''
launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, d])
launcher.wait()
open(os.path.join(d, "launcher-done"), "w").close()
time.sleep(60)
"""


def test_a_worker_stays_the_runs_after_its_launcher_exits_and_strangers_never_join(tmp_path):
    from gputab.config.settings import PricesConfig
    from gputab.cost.pricing import PriceTable
    from gputab.recording.run_watch import OUTSIDE, RunCost

    root = subprocess.Popen([sys.executable, "-c", TREE, str(tmp_path)])
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        worker = int(
            wait_until(lambda: (tmp_path / "worker").exists() and (tmp_path / "worker").read_text(), 20, "the worker")
        )
        gpu = ScriptedGpu()
        meter = RunCost(gpu, PriceTable.load(PricesConfig(default_rate=3600.0)), "victim")
        gpu.pids = [worker, stranger.pid]
        meter.measure(root.pid)  # the baseline
        (job,) = meter.measure(root.pid)
        assert worker in meter.members and stranger.pid not in meter.members
        assert job["cost_usd"] == pytest.approx(0.5)  # half the GPU (by memory) for one second at $1/s
        (tmp_path / "go").touch()
        wait_until(lambda: (tmp_path / "launcher-done").exists(), 20, "the launcher to exit")
        import psutil

        assert psutil.Process(worker).ppid() != root.pid  # re-parented: no longer under the run's command
        (job,) = meter.measure(root.pid)
        assert job["cost_usd"] == pytest.approx(1.0)
        assert meter.ledger.jobs[OUTSIDE].cost_usd == pytest.approx(1.0)
    finally:
        for p in (root, stranger):
            p.kill()
            p.wait()
        if (tmp_path / "worker").exists():
            try:
                os.kill(int((tmp_path / "worker").read_text()), 9)
            except ProcessLookupError:
                pass
