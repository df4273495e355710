"""The session's failed GPU readings: each said once per GPU and kind, all of them counted.

A kind is (GPU, call, error): ``GPU 1 compute_processes NVML_ERROR_TIMEOUT``. The first time a kind occurs the
recorder says it (one line on ``record``'s stderr, a notice in the live view); every occurrence counts, for
``gputab_gpu_read_errors_total`` in /metrics and for the note ``gputab show`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from gputab.sampling.snapshot import ReadFault, Snapshot

Kind = tuple[int, str, str]
"""(GPU index, call, error)."""


@dataclass
class FaultTally:
    """One kind of failed reading over the session."""

    gpu_index: int
    call: str
    error: str
    count: int
    first_wall: float
    last_wall: float
    detail: str
    """The first occurrence in words."""

    def to_row(self) -> dict:
        """The store's row (see :meth:`gputab.store.writes.SessionWriter.set_read_faults`)."""
        return {
            "gpu_index": self.gpu_index,
            "call": self.call,
            "error": self.error,
            "count": self.count,
            "first_wall": self.first_wall,
            "last_wall": self.last_wall,
            "detail": self.detail,
        }


def notice(fault: ReadFault) -> str:
    """What the recorder says the first time a kind of fault occurs."""
    return f"{fault.detail}; GPU {fault.gpu_index}'s time goes to (unobserved) while it cannot be read"


class FaultBook:
    """Counts the failed readings of one session and tells which kinds are new."""

    def __init__(self) -> None:
        self.tallies: dict[Kind, FaultTally] = {}

    def observe(self, snap: Snapshot) -> tuple[str, ...]:
        """Count ``snap``'s faults; returns a notice for each kind seen for the first time."""
        new: list[str] = []
        for f in snap.read_faults:
            t = self.tallies.get(f.kind)
            if t is None:
                self.tallies[f.kind] = FaultTally(f.gpu_index, f.call, f.error, 1, snap.wall, snap.wall, f.detail)
                new.append(notice(f))
            else:
                t.count += 1
                t.last_wall = snap.wall
        return tuple(new)

    def counts(self) -> tuple[tuple[int, str, str, int], ...]:
        """(GPU, call, error, count) for every kind so far, in a stable order."""
        return tuple((t.gpu_index, t.call, t.error, t.count) for _, t in sorted(self.tallies.items()))

    def rows(self) -> list[dict]:
        return [t.to_row() for _, t in sorted(self.tallies.items())]
