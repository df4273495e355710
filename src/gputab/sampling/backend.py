"""The small interface every sampling backend implements."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field

from gputab.sampling.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What the host says about a process, read once per (pid, create_time).

    Attribution turns these into a tag. ``environ`` is None when it cannot be read (another user's process
    without root); attribution then falls through to the rules that still work. Facts are never stored as is:
    only tag variables and a redacted command line go further.
    """

    pid: int
    create_time: float
    name: str
    user: str | None = None
    uid: int | None = None
    cmdline: tuple[str, ...] = ()
    environ: Mapping[str, str] | None = None
    environ_denied: bool = False
    """True when ``environ`` is None because this user may not read it (another user's process, no root);
    attribution then says why a process is untagged (``untagged (no permission)``)."""
    ppid: int | None = None
    cgroup: str | None = None
    """Contents of /proc/PID/cgroup, for container detection."""
    extra: Mapping[str, str] = field(default_factory=dict)


class ProcessInspector(abc.ABC):
    """Reads facts about host processes; the demo backend supplies its simulated ones."""

    @abc.abstractmethod
    def facts(self, pid: int) -> ProcessFacts | None:
        """Facts about ``pid``, or None if it no longer exists (it may exit between the NVML list and now)."""


class Backend(abc.ABC):
    """A source of snapshots. ``poll()`` must not raise for per-GPU faults: it marks GPUs lost instead."""

    #: short name shown in the UI and stored with the session: ``nvml`` or ``demo``
    name: str = "?"

    @abc.abstractmethod
    def poll(self) -> Snapshot:
        """Read every GPU once."""

    @abc.abstractmethod
    def inspector(self) -> ProcessInspector:
        """The inspector that explains this backend's PIDs."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the library or resources."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
