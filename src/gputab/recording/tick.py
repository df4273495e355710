"""One tick of the recorder, as its observers get it: an immutable record, safe to hand to another thread."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from gputab.attribution import ProcessInfo
from gputab.cost.ledger import GpuInterval
from gputab.sampling.snapshot import Snapshot


@dataclass(frozen=True)
class Tick:
    """Everything one tick produced; immutable copies, safe to hand to another thread."""

    session_id: int | None
    """None until the session row could be written (the database may be read-only at first)."""
    seq: int
    snapshot: Snapshot
    processes: Mapping[int, ProcessInfo]
    intervals: tuple[GpuInterval, ...]
    jobs: tuple[dict, ...]
    """``JobTotals.to_json()`` dicts, costliest first, the (idle)/(unobserved) buckets last."""
    gpus: tuple[dict, ...]
    """``GpuTotals.to_json()`` dicts: price, model key, unknown flag, energy method, cost."""
    total_cost_usd: float
    burn_rate_usd_per_hour: float
    recording: str
    """``ok``, ``held`` (figures held in memory: database trouble) or ``closed``."""
    notes: tuple[str, ...] = ()
    held_ticks: int = 0
    rejected_reports: tuple[tuple[str, int], ...] = ()
    """Spool reports rejected so far in the session, per reason (see :data:`gputab.progress.spool.REASONS`)."""
    read_faults: tuple[tuple[int, str, str, int], ...] = ()
    """Failed GPU readings so far in the session: (GPU index, call, error, count) per kind
    (:mod:`gputab.recording.read_faults`)."""
    fault_notices: tuple[str, ...] = ()
    """The kinds of failed reading this tick saw for the first time, in words (each is said once per session)."""


class Observer(Protocol):
    """Anything the recorder calls after every tick, in the loop's thread (the TUI, the exporter, alerts)."""

    def on_tick(self, tick: Tick) -> None: ...
