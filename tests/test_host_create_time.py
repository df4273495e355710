"""HostInspector.create_time: cached per pid while the pid's start ticks are the same; a reused pid is read again."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from gputab.sampling import host
from gputab.sampling.host import HostInspector

NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _stop(p: subprocess.Popen) -> None:
    p.kill()
    p.wait()


def test_the_start_time_is_read_once_per_process(monkeypatch):
    p = _sleeper()
    try:
        inspector = HostInspector()
        first = inspector.create_time(p.pid)
        assert first == psutil.Process(p.pid).create_time()
        made = []
        real = psutil.Process

        def counting(pid):
            made.append(pid)
            return real(pid)

        monkeypatch.setattr(host.psutil, "Process", counting)
        assert [inspector.create_time(p.pid) for _ in range(5)] == [first] * 5
        assert made == []  # cached: no psutil.Process, no /proc/stat read for the boot time
    finally:
        _stop(p)
    assert inspector.create_time(p.pid) is None  # gone: not answered from the cache


def _spawn_with_pid(pid: int) -> subprocess.Popen | None:
    """A new process given ``pid`` (the kernel hands out ns_last_pid + 1 next), or None if another took it."""
    with open(NS_LAST_PID, "w") as f:
        f.write(str(pid - 1))
    p = _sleeper()
    if p.pid == pid:
        return p
    _stop(p)
    return None


@pytest.mark.skipif(not os.access(NS_LAST_PID, os.W_OK), reason="needs root to choose a pid (ns_last_pid)")
def test_a_reused_pid_gets_its_new_start_time():
    inspector = HostInspector()
    old = _sleeper()
    pid = old.pid
    old_time = inspector.create_time(pid)
    _stop(old)
    time.sleep(0.05)  # later start ticks (the clock ticks 100 times a second)
    new = None
    for _ in range(50):
        new = _spawn_with_pid(pid)
        if new is not None:
            break
    assert new is not None, f"could not get pid {pid} again (other processes took it 50 times)"
    try:
        got = inspector.create_time(pid)
        assert got == psutil.Process(pid).create_time()
        assert old_time is not None and got is not None and got > old_time
    finally:
        _stop(new)
