"""Sampling: one poll of every GPU becomes one immutable :class:`Snapshot`.

Nothing here knows about tags, money or storage; later layers read snapshots.
"""

from typing import Any

from gputab.sampling.backend import Backend, ProcessFacts, ProcessInspector
from gputab.sampling.snapshot import GpuSample, ProcessSample, Snapshot

__all__ = ["Backend", "GpuSample", "ProcessFacts", "ProcessInspector", "ProcessSample", "Snapshot", "open_backend"]


def open_backend(demo: bool = False, seed: int = 0, **kwargs: Any) -> Backend:
    """Open the demo backend (``demo=True``) or the NVML backend of this machine."""
    if demo:
        from gputab.sampling.demo import DemoBackend

        kwargs.pop("on_wait", None)  # the demo box starts at once
        return DemoBackend(seed=seed, **kwargs)
    from gputab.sampling.nvml import NvmlBackend

    return NvmlBackend(**kwargs)
