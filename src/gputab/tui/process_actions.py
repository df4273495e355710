"""Signals to GPU processes from the processes view: SIGINT, SIGTERM or SIGKILL, to the user's own processes only.

No textual here: what may be signalled, and the signalling itself, are plain functions the tests drive with real
processes. A process is offered only when it belongs to the user running gputab (real uid, as ``kill`` checks it
for an unprivileged user) and the kernel lets us signal it; root is no exception: gputab's view of a shared box
is not the place to kill a colleague's job. The process is pinned when the confirmation opens (pid and start
time), so a pid reused in the meantime by another process never gets the signal.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import psutil

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
"""The signals offered, by name: interrupt (as Ctrl+C), terminate (asks), kill (cannot be caught)."""


class NotSignalable(Exception):
    """This process may not be signalled from here; the message says why, in one line."""


@dataclass(frozen=True)
class Target:
    """A process pinned for signalling: its pid, start time and what it runs now (read from the system)."""

    pid: int
    create_time: float
    username: str
    cmdline: str
    process: psutil.Process


def pin(pid: int, *, uid: int | None = None) -> Target:
    """The process ``pid`` if the user may signal it.

    Args:
        uid: the user gputab acts for (this process's real uid by default).

    Raises:
        NotSignalable: gone, another user's, or the kernel refuses.
    """
    uid = os.getuid() if uid is None else uid
    try:
        proc = psutil.Process(pid)
        owner = proc.uids().real
        with proc.oneshot():
            create_time = proc.create_time()
            name = proc.name()
            try:
                cmdline = " ".join(proc.cmdline()) or name
            except psutil.AccessDenied:
                cmdline = name
        username = _username(proc, owner)
    except psutil.NoSuchProcess:
        raise NotSignalable(f"process {pid} has exited") from None
    except psutil.AccessDenied:
        raise NotSignalable(f"process {pid} is not yours: only your own processes can be signalled") from None
    if owner != uid:
        raise NotSignalable(f"process {pid} belongs to {username}, not you: only your own processes can be signalled")
    try:
        os.kill(pid, 0)  # the kernel's own check, without sending anything
    except ProcessLookupError:
        raise NotSignalable(f"process {pid} has exited") from None
    except PermissionError:
        raise NotSignalable(f"process {pid} cannot be signalled by you (the kernel refuses)") from None
    return Target(pid, create_time, username, cmdline, proc)


def _username(proc: psutil.Process, uid: int) -> str:
    try:
        return proc.username()
    except (psutil.Error, KeyError):
        return f"uid {uid}"


def send(target: Target, name: str) -> str:
    """Send signal ``name`` to the pinned process; returns a line for the user.

    Raises:
        NotSignalable: it exited, or its pid now belongs to another process (nothing is sent then).
    """
    sig = SIGNALS[name]
    try:
        if target.process.create_time() != target.create_time:
            raise NotSignalable(f"process {target.pid} has exited (its pid is another process's now): nothing sent")
        target.process.send_signal(sig)  # psutil checks again that the pid is still this process
    except psutil.NoSuchProcess:
        raise NotSignalable(f"process {target.pid} has exited: nothing sent") from None
    except psutil.AccessDenied:
        raise NotSignalable(f"process {target.pid} cannot be signalled by you (the kernel refuses)") from None
    return f"{name} sent to process {target.pid}"
