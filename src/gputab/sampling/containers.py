"""Containers: NVML answers with host PIDs, which a container's own PID namespace does not have.

Inside a container (docker without ``--pid=host``, a Kubernetes pod without ``hostPID``) the driver still lists
GPU processes by their PIDs in the host's namespace, so ``/proc/<pid>`` here is missing or, worse, another
process. :class:`PidVisibility` notices NVML PIDs this namespace cannot see, says so once (with the fix), and
maps what it can back to a local PID through a view of the host's /proc (``GPUTAB_HOST_PROC``, e.g. a read-only
bind mount of the host's /proc): the ``NSpid`` line of ``/proc/<host pid>/status`` lists the PID in every nested
namespace, and the start time proves that a local PID is the same process.

The rest stay *hidden*: attribution charges them to :data:`UNATTRIBUTED` under their host PID, never to a user's
untagged job.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

HOST_PROC_ENV = "GPUTAB_HOST_PROC"
"""Environment variable naming a view of the host's /proc inside a container (optional)."""
UNATTRIBUTED = "unattributed:host-pid"
"""The tag of GPU processes whose host PID this namespace cannot see (one bucket: their owners are unknown)."""
INIT_PID_NS = "pid:[4026531836]"
"""``readlink /proc/self/ns/pid`` in the host's (initial) PID namespace: the kernel's fixed PROC_PID_INIT_INO."""
FIX = (
    "run it with --pid=host (docker, podman) or hostPID: true (Kubernetes), or run gputab on the host; "
    f"or set {HOST_PROC_ENV} to a read-only mount of the host's /proc"
)


def in_child_pid_namespace(proc_root: str | Path = "/proc") -> bool | None:
    """True inside a PID namespace other than the host's (a container); None where the kernel does not say."""
    try:
        return os.readlink(f"{proc_root}/self/ns/pid") != INIT_PID_NS
    except OSError:
        return None


GVISOR_NOTE = (
    "the kernel is gVisor (a sandbox): NVML's process list may not match this sandbox's processes, so "
    "per-process figures may be missing or unattributed; run gputab on the host to see them all"
)


def sandboxed_kernel(proc_root: str | Path = "/proc") -> str | None:
    """``gVisor`` when this process runs on gVisor's user-space kernel, else None.

    gVisor answers /proc itself: its /proc/version is a fixed fake ("Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54
    PST 2016") and its boot messages name it. What NVML lists there is not guessed at: the views say so.
    """
    version = _read(f"{proc_root}/version") or b""
    if b"#1 SMP Sun Jan 10 15:06:54 PST 2016" in version or b"gVisor" in version:
        return "gVisor"
    return None


def _start_ticks(stat: bytes) -> int | None:
    """Start time (clock ticks since boot) from a /proc/PID/stat line: the same in every PID namespace."""
    try:
        return int(stat[stat.rfind(b")") + 2 :].split()[19])
    except (IndexError, ValueError):
        return None


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


class PidVisibility:
    """Which NVML (host) PIDs this PID namespace can see, and the local PID of those it can map.

    ``observe`` runs once per poll with the PIDs NVML listed. A PID without ``/proc/<pid>`` counts as hidden when
    this process runs in a child PID namespace, or when it stays missing over two polls (a process that merely
    exited leaves NVML's list by then). Once any PID was hidden, :attr:`note` says so for the rest of the run.

    Args:
        proc_root: this namespace's /proc.
        host_proc: a view of the host's /proc, or None (default: ``$GPUTAB_HOST_PROC`` if set).
    """

    def __init__(self, proc_root: str | Path = "/proc", host_proc: str | Path | None = None) -> None:
        self._proc = str(proc_root)
        env_host = os.environ.get(HOST_PROC_ENV)
        self._host = str(host_proc) if host_proc is not None else (env_host or None)
        self._child_ns = in_child_pid_namespace(self._proc)
        self.sandbox_note: str | None = GVISOR_NOTE if sandboxed_kernel(self._proc) else None
        """Said from the first poll on when the kernel is a sandbox whose process view NVML may not share."""
        self._missing: set[int] = set()
        self._hidden: set[int] = set()
        self._local: dict[int, int] = {}
        self.note: str | None = None
        """One sentence for the views (live header, ``snapshot``, ``record``), set when a hidden PID was seen."""

    def observe(self, pids: Iterable[int]) -> None:
        """Take one poll's NVML PIDs; updates :meth:`hidden`, :meth:`local_pid` and :attr:`note`."""
        pids = set(pids)
        local: dict[int, int] = {}
        if self._child_ns and self._host is not None:
            # Map every PID: a local /proc/<host pid> may be another process of this namespace.
            for pid in pids:
                mapped = self._local.get(pid) or self._map(pid)
                if mapped is not None:
                    local[pid] = mapped
            hidden = pids - local.keys()
        else:
            missing = {pid for pid in pids if not os.path.exists(f"{self._proc}/{pid}")}
            hidden = missing if self._child_ns else missing & self._missing
            self._missing = missing
        self._local = local
        self._hidden = hidden
        if hidden and self.note is None:
            self.note = self._sentence(hidden, len(local))

    def _sentence(self, hidden: set[int], mapped: int) -> str:
        shown = ", ".join(map(str, sorted(hidden)[:5])) + (", ..." if len(hidden) > 5 else "")
        what = (
            f"NVML lists GPU processes this PID namespace cannot see (host PIDs {shown}): gputab runs in a "
            "container without the host's PIDs"
        )
        if mapped:
            return (
                f"{what}; {mapped} found through {HOST_PROC_ENV}, the others are charged to {UNATTRIBUTED}; "
                "run gputab on the host to see them all"
            )
        return f"{what}, so they are charged to {UNATTRIBUTED}; {FIX}"

    def _map(self, host_pid: int) -> int | None:
        """The local PID of ``host_pid`` through the host's /proc view, or None."""
        if self._host is None:
            return None
        status = _read(f"{self._host}/{host_pid}/status")
        host_stat = _read(f"{self._host}/{host_pid}/stat")
        if status is None or host_stat is None:
            return None
        start = _start_ticks(host_stat)
        for line in status.splitlines():
            if line.startswith(b"NSpid:"):
                for candidate in line.split()[2:]:  # [host pid, ..., innermost]: ours is one of the nested ones
                    local = _read(f"{self._proc}/{int(candidate)}/stat")
                    if local is not None and _start_ticks(local) == start:
                        return int(candidate)
        return None

    def hidden(self, pid: int) -> bool:
        """True when ``pid`` (a host PID NVML listed) cannot be seen or mapped here."""
        return pid in self._hidden

    def local_pid(self, pid: int) -> int:
        """The PID to read in this namespace's /proc for the host PID ``pid`` (itself when not mapped)."""
        return self._local.get(pid, pid)
