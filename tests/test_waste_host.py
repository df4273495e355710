"""The CPU side of GPU processes, read from the real /proc: trees, rates, exited PIDs (host.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from gputab.sampling.host import HostInspector

PARENT = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time\\nt = time.time() + 30\\nwhile time.time() < t: pass'])\n"
    "time.sleep(30)\n"
)


@pytest.fixture
def job():
    p = subprocess.Popen([sys.executable, "-c", PARENT])
    deadline = time.monotonic() + 10
    kids: list[int] = []
    while not kids and time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True)
        kids = [int(x) for x in out.stdout.split()]
        time.sleep(0.05)
    yield p.pid, kids[0]
    for pid in (kids[0], p.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.wait()


@pytest.mark.parametrize("children_files", [True, False], ids=["task-children", "full-scan"])
def test_the_busy_child_of_a_gpu_process_is_found_and_rated(job, children_files):
    parent, child = job
    host = HostInspector()
    host._children_files = children_files  # both ways of finding a tree: the kernel's lists, or a scan of /proc
    (first,) = host.cpu_samples([parent])
    assert first.alive is True and first.tree_size == 2 and first.cpu_pct is None  # a rate needs two readings
    time.sleep(0.5)
    (s,) = host.cpu_samples([parent])
    assert s.busiest_pid == child and s.busiest_cpu_pct is not None and s.busiest_cpu_pct > 5
    assert s.cpu_pct >= s.busiest_cpu_pct and s.cores == len(os.sched_getaffinity(parent))
    # Running or queued for a CPU nearly all the time, however crowded the machine is.
    assert s.busiest_runnable_pct is None or s.busiest_runnable_pct > 80


def test_exited_pids_are_claimed_only_when_seen_alive_before():
    host = HostInspector()
    p = subprocess.Popen(["true"])
    p.wait()
    (never,) = host.cpu_samples([p.pid])
    assert never.alive is None  # never seen: maybe another PID namespace, so no claim

    q = subprocess.Popen(["sleep", "30"])
    assert host.cpu_samples([q.pid])[0].alive is True
    q.kill()
    time.sleep(0.2)
    (zombie,) = host.cpu_samples([q.pid])  # exited, not yet reaped
    assert zombie.alive is False
    q.wait()
    (gone,) = host.cpu_samples([q.pid])
    assert gone.alive is False
