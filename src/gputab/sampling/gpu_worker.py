"""One thread per GPU for the NVML calls, so a call that hangs holds only its own GPU, and only once.

The poll hands each GPU's reading to that GPU's worker and waits until its deadline. A GPU whose reading has not
come back by then is ``(unobserved)`` for the tick; the others are charged as usual. A worker still inside a call
from an earlier poll is not given another reading (no pile-up of threads stuck in the driver): its GPU is skipped
until the call returns (see docs/speed-and-faults.md).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Job(Generic[T]):
    """One reading handed to a worker: ``done`` is set once ``fn`` returned (``result``) or raised (``error``)."""

    __slots__ = ("fn", "done", "result", "error", "started")

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.started: float | None = None
        """Monotonic time the worker began it (None while queued)."""


class GpuWorker(Generic[T]):
    """A daemon thread that runs one job at a time for one GPU.

    Daemon, so a call stuck in the driver never keeps gputab from exiting.

    Args:
        name: the thread's name (``gputab-nvml-gpu0``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.job: Job[T] | None = None
        """The job running now, or the last one."""
        self._queue: queue.SimpleQueue[Job[T] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """True while the last job has not returned (a call may be stuck in the driver)."""
        return self.job is not None and not self.job.done.is_set()

    def busy_for(self, now: float) -> float:
        """Seconds the current job has run (0 when idle or not started yet)."""
        job = self.job
        if job is None or job.done.is_set() or job.started is None:
            return 0.0
        return max(0.0, now - job.started)

    def submit(self, fn: Callable[[], T]) -> Job[T]:
        """Queue ``fn``; the caller must not submit while :attr:`busy`."""
        if self.busy:
            raise RuntimeError(f"{self.name} is still busy")
        job: Job[T] = Job(fn)
        self.job = job
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        self._queue.put(job)
        return job

    def stop(self) -> None:
        """Let the thread end once its current job returns (it is never waited for)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread = None

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            job.started = time.monotonic()
            try:
                job.result = job.fn()
            except BaseException as exc:  # handed back to the poll, which raises it there
                job.error = exc
            finally:
                job.done.set()
