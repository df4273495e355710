"""The names of the buckets that are not jobs, and of the reasons for waste: each defined here once.

A bucket is a tag the ledger charges when no job can pay (docs/cost-model.md, "Who pays"). A waste reason says
why a job's GPU did nothing (docs/cost-model.md, "Waste"). Every layer that needs one of these names imports it
from here; none spells the string again.
"""

from __future__ import annotations

IDLE = "(idle)"
"""The bucket of a GPU interval in which no process held the GPU."""
UNOBSERVED = "(unobserved)"
"""The bucket of time the recorder could not see (a gap, a lost GPU, a reading that failed)."""
SPECIAL_TAGS = (IDLE, UNOBSERVED)
"""Buckets, not jobs: they hold money but nobody's work."""

INPUT_BOUND = "input_bound"
SMALL_BATCH = "small_batch"
NO_TENSOR_CORES = "no_tensor_cores"
MEMORY_BOUND = "memory_bound"
COMM_STALL = "comm_stall"
STRANDED_MEMORY = "stranded_memory"
OVERSIZED = "oversized"
UNEXPLAINED = "unexplained"
IDLE_REASON = "idle"
"""The waste of ``(idle)``: a GPU nobody held."""
UNOBSERVED_REASON = "unobserved"
"""The waste of ``(unobserved)``: time the recorder could not see."""

REASONS = (INPUT_BOUND, SMALL_BATCH, NO_TENSOR_CORES, MEMORY_BOUND, COMM_STALL, STRANDED_MEMORY, OVERSIZED, UNEXPLAINED)
"""The reasons a job's waste can have, most specific first (the order the diagnosis checks them)."""
ALL_REASONS = REASONS + (IDLE_REASON, UNOBSERVED_REASON)
"""Every reason a waste figure can carry, the buckets' own included."""
