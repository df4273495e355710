"""Checks of option values shared by several commands, so each bound and its message is defined once."""

from __future__ import annotations

import math

from gputab.cli.context import fail

MIN_INTERVAL = 0.05
"""Seconds: faster polling costs more CPU than it tells (NVML itself refreshes most counters far less often)."""
MAX_INTERVAL = 86400.0
"""Seconds: one poll a day; anything longer leaves a session that shows $0 for days."""


def check_interval(interval: float) -> float:
    """``interval`` (seconds between polls) when it is within bounds; else a one-line usage error (exit 2).

    Used by ``gputab record --interval`` and the live view's ``gputab --interval``. NaN and infinity are refused
    like any other value out of bounds.
    """
    if not (math.isfinite(interval) and MIN_INTERVAL <= interval <= MAX_INTERVAL):
        fail(f"--interval must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds, got {interval:g}", code=2)
    return interval
