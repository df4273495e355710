"""Per-process SM utilization from NVML, one GPU at a time: the newer call where the driver has it, the older one
otherwise, each sample counted once, and a reading that stands between the driver's samples.

The driver keeps process-utilization samples with microsecond timestamps and answers with those newer than the
timestamp asked for (NOT_FOUND when there is none). A real H200 (driver 580) takes one every 0.2 s and answers each
query with the newest; a poll sooner than that after the previous one finds nothing newer, which is not an idle
process, so the last reading stands for :data:`PROC_SM_HOLD_S`. Past that, no new sample means the process ran
nothing: it is left out, and the backend reads it as 0 %.

The first query (timestamp 0) gets whatever the driver still holds, which can be old: the H200 answered with a
sample from 9 s earlier, taken while the job was still starting. The driver stamps samples in Unix microseconds, so
on that first read a sample more than :data:`FIRST_READ_MAX_AGE_S` older than this machine's clock is left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pynvml

PROC_SM_HOLD_S = 0.5
"""Seconds a process's last SM % stands when the driver has no newer sample of it."""

FIRST_READ_MAX_AGE_S = 2.0
"""On the first read, samples older than this (by the wall clock) are not the process's reading now."""

_WALL_US = 10**15
"""Timestamps from this on (September 2001 in Unix microseconds) are the wall clock's; below, a counter."""

NO_SAMPLES = frozenset({pynvml.NVML_ERROR_NOT_FOUND, pynvml.NVML_SUCCESS})
"""NOT_FOUND: nothing ran since the timestamp; pynvml also raises ``NVMLError(0)`` when the size query succeeds
with nothing to report. Both mean "no samples"."""


class ProcessSm:
    """One GPU's per-process SM readings between polls."""

    __slots__ = ("supported", "info_call", "last_ts", "held")

    def __init__(self) -> None:
        self.supported = True  # False once process utilization proved unsupported
        # nvmlDeviceGetProcessesUtilizationInfo (driver 550+) until it proves absent; then the older call
        self.info_call = hasattr(pynvml, "nvmlDeviceGetProcessesUtilizationInfo")
        self.last_ts = 0  # newest sample seen (NVML microseconds)
        self.held: dict[int, tuple[float, float]] = {}  # pid -> (SM %, monotonic time it was read)

    def read(
        self, handle: pynvml.c_nvmlDevice_t, absent: frozenset[int], unsupported: Callable[[pynvml.NVMLError], bool]
    ) -> dict[int, float] | None:
        """Mean SM % per PID over the samples since the last read, plus the readings still standing; None when
        unknown (unsupported, or the call failed).

        Args:
            handle: the GPU's NVML handle.
            absent: error codes that say the newer call is missing (then the older one, from now on).
            unsupported: sorts any other error: True when the GPU or driver lacks the call (stop asking); it may
                raise for a lost GPU, or note why the figure is missing.
        """
        if not self.supported:
            return None
        try:
            samples = None
            if self.info_call:
                try:
                    samples = pynvml.nvmlDeviceGetProcessesUtilizationInfo(handle, self.last_ts)
                except pynvml.NVMLError as exc:
                    if exc.value not in absent:
                        raise
                    self.info_call = False  # an older driver: the older call from now on
            if samples is None:
                samples = pynvml.nvmlDeviceGetProcessUtilization(handle, self.last_ts)
        except pynvml.NVMLError as exc:
            if exc.value in NO_SAMPLES:
                return self._standing({})
            if unsupported(exc):
                self.supported = False
            return None
        sums: dict[int, list] = {}
        last = self.last_ts
        oldest = (time.time() - FIRST_READ_MAX_AGE_S) * 1e6 if last == 0 else None
        for s in samples:
            if s.timeStamp > last:
                last = s.timeStamp
            if oldest is not None and _WALL_US <= s.timeStamp < oldest:
                continue  # held by the driver from before: not a reading of now
            acc = sums.setdefault(s.pid, [0, 0])
            acc[0] += s.smUtil
            acc[1] += 1
        self.last_ts = last  # the next read asks only for newer samples, so each interval is counted once
        return self._standing({pid: total / n for pid, (total, n) in sums.items()})

    def _standing(self, fresh: dict[int, float]) -> dict[int, float]:
        """``fresh`` readings, plus the last reading of each PID read under :data:`PROC_SM_HOLD_S` ago."""
        now = time.monotonic()
        for pid, sm in fresh.items():
            self.held[pid] = (sm, now)
        for pid, (_, at) in list(self.held.items()):
            if now - at > PROC_SM_HOLD_S:
                del self.held[pid]
        return {pid: sm for pid, (sm, _) in self.held.items()}
