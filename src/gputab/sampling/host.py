"""Facts about real host processes, read with psutil for the NVML backend.

NVML only gives PIDs. Attribution needs to know who a PID is (user, name, command line, environment, parent,
cgroup) to give it a tag; this module reads those facts and nothing else. It never raises for a process that
vanished or that it may not read: a vanished process is ``None``, an unreadable field is ``None`` or empty.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from gputab.sampling.backend import ProcessFacts, ProcessInspector

# Errors that mean "this one field cannot be read": another user's process without root (AccessDenied), or a
# process that has exited but not been reaped (ZombieProcess: /proc/PID/environ and cmdline are empty or gone).
_UNREADABLE = (psutil.AccessDenied, psutil.ZombieProcess)


class HostInspector(ProcessInspector):
    """Reads facts about host PIDs with psutil, one ``psutil.Process`` and one ``oneshot()`` per call.

    Besides :meth:`facts`, it offers :meth:`create_time`, a cheap identity check the attributor uses to tell a
    cached process from a new one that reuses its PID without re-reading the environment.

    Args:
        proc_root: where procfs is mounted; tests point it elsewhere to feed cgroup files.
    """

    def __init__(self, proc_root: str | Path = "/proc") -> None:
        self._proc = Path(proc_root)

    def create_time(self, pid: int) -> float | None:
        """Start time of ``pid`` (Unix seconds), or None if no such process: (pid, create_time) names a process."""
        try:
            return psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:  # ZombieProcess is a subclass, but psutil reads a zombie's start time fine
            return None
        except psutil.AccessDenied:
            # Should not happen on Linux (/proc/PID/stat is world-readable); elsewhere, fall back to full facts.
            facts = self.facts(pid)
            return None if facts is None else facts.create_time

    def facts(self, pid: int) -> ProcessFacts | None:
        """Facts about ``pid``, or None if it no longer exists.

        ``environ`` is None (not empty) when it cannot be read, so attribution can tell "no tag" from "cannot
        know". Note that ``environ`` is the environment the process was started with: a variable a program sets
        in itself later is not visible, which is why tags are given at launch (``gputab run``).
        """
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                create_time = proc.create_time()
                name = _read(proc.name, "")
                ppid = _read(proc.ppid, None)
                uids = _read(proc.uids, None)
                user = _read(proc.username, None)
                cmdline = tuple(_read(proc.cmdline, ()) or ())
                environ = _read(proc.environ, None)
        except psutil.NoSuchProcess:
            # It exited between the NVML list and now (ZombieProcess fields are caught one by one in _read).
            return None
        return ProcessFacts(
            pid=pid,
            create_time=create_time,
            name=name,
            user=user,
            uid=None if uids is None else uids.real,
            cmdline=cmdline,
            environ=environ,
            ppid=ppid,
            cgroup=self._cgroup(pid),
        )

    def _cgroup(self, pid: int) -> str | None:
        """Text of /proc/PID/cgroup (container detection), or None where it cannot be read (not Linux, gone)."""
        try:
            return (self._proc / str(pid) / "cgroup").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None


def _read(getter, default):
    """Call one psutil getter, returning ``default`` when that field alone is unreadable."""
    try:
        return getter()
    except _UNREADABLE:
        return default
    except KeyError:
        # username() of a uid with no passwd entry raises KeyError on some psutil versions.
        return default
