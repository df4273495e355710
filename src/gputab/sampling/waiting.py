"""Saying that a driver call is slow while it runs: ``nvmlInit`` with persistence mode off takes seconds.

NVML calls cannot be interrupted, so the only honest thing is to say what gputab waits for, from another thread,
until the call returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SLOW_INIT_HINT = (
    "the NVIDIA driver is slow to start: with persistence mode off it loads on first use; "
    "`sudo nvidia-smi -pm 1` or the nvidia-persistenced service keeps it loaded"
)


@contextmanager
def waiting(what: str, on_wait: Callable[[str], None] | None, after: float = 1.0, every: float = 1.0) -> Iterator[None]:
    """Run the block; if it takes longer than ``after`` seconds, call ``on_wait(message)`` then and every
    ``every`` seconds until it returns (from a daemon thread: ``on_wait`` must be thread-safe)."""
    if on_wait is None:
        yield
        return
    done = threading.Event()
    start = time.monotonic()

    def watch() -> None:
        wait = after
        while not done.wait(wait):
            on_wait(f"{what}: still waiting after {time.monotonic() - start:.0f} s ({SLOW_INIT_HINT})")
            wait = every

    thread = threading.Thread(target=watch, name="gputab-wait", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(1.0)
