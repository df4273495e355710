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


def test_a_large_tree_is_read_again_only_now_and_then():
    """2,000 idle children must not cost the recorder a core: a tree over LARGE_TREE members keeps its figures
    for members / TREE_READS_PER_SECOND seconds, then is read whole again."""
    from gputab.sampling import host

    spawn = "import os,time\nfor _ in range(60):\n    if os.fork() == 0:\n        time.sleep(60); os._exit(0)\nprint('ready', flush=True)\ntime.sleep(60)\n"
    root = subprocess.Popen([sys.executable, "-c", spawn], stdout=subprocess.PIPE, text=True)
    try:
        assert root.stdout is not None and root.stdout.readline().strip() == "ready"

        class Counting(HostInspector):
            reads = 0

            def _read(self, pid, name):
                Counting.reads += 1
                return super()._read(pid, name)

        inspector = Counting()
        inspector.cpu_samples([root.pid], now=0.0)
        (first,) = inspector.cpu_samples([root.pid], now=1.0)  # rated: the tree is large, its figures now stand
        assert first.tree_size == 61 and first.cpu_pct is not None
        Counting.reads = 0
        (again,) = inspector.cpu_samples([root.pid], now=2.0)
        assert again.tree_size == 61 and again.cpu_pct == first.cpu_pct
        assert Counting.reads <= 2  # the root's stat, no member
        later = 1.0 + 61 / host.TREE_READS_PER_SECOND + 0.1
        Counting.reads = 0
        (fresh,) = inspector.cpu_samples([root.pid], now=later)
        assert fresh.tree_size == 61 and Counting.reads > 61  # read whole again, rates over the longer interval
        assert fresh.cpu_pct is not None
    finally:
        root.kill()
        subprocess.run(["pkill", "-KILL", "-P", str(root.pid)], check=False)
        root.wait()
