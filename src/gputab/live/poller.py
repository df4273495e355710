"""The poll thread: one long-lived thread owns the feed (recorder or viewer) and runs every call on it.

Why one thread and a queue rather than a fresh worker per poll: the recorder's ledger, attributor and SQLite
connection are then touched by exactly one thread, so a tag given from the UI can never interleave with a tick
half-way through, and shutdown (closing the session) runs after the last tick, in order. No textual here: the
app hands in callbacks and drives the cadence (the next poll is requested only after the last one finished).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

F = TypeVar("F")
_STOP = object()


class Poller(Generic[F]):
    """Runs calls on one feed, in order, in the thread that calls :meth:`run`.

    Args:
        open_feed: builds the feed; called in the poll thread, so a slow NVML init never blocks the UI.
    """

    def __init__(self, open_feed: Callable[[], F]) -> None:
        self._open_feed = open_feed
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.feed: F | None = None
        self.open_error: BaseException | None = None
        self._done = threading.Event()
        self._started = False

    def submit(self, fn: Callable[[F], Any]) -> Future:
        """Queue ``fn(feed)``; the future holds its result or exception.

        After :meth:`stop` the future fails at once (the feed is closed), rather than waiting for ever.
        """
        fut: Future = Future()
        if self._done.is_set():
            fut.set_exception(RuntimeError("the poll thread has stopped"))
        else:
            self._queue.put((fn, fut))
        return fut

    def replace_feed(self, fn: Callable[[F], F]) -> Future:
        """Queue ``fn(feed)`` and make what it returns the feed for every later call (the attached view starting
        to record: :meth:`gputab.live.feed.Feed.record_here`); when it raises, the feed stays as it was."""

        def swap(feed: F) -> F:
            self.feed = fn(feed)
            return self.feed

        return self.submit(swap)

    def start(self) -> None:
        """Run :meth:`run` in a thread of its own, now: the CLI starts it before the screen is set up, so opening
        the feed (NVML, the database, the session's baseline poll) overlaps Textual's start-up."""
        if not self._started:
            self._started = True
            threading.Thread(target=self.run, name="gputab-poll", daemon=True).start()

    @property
    def started(self) -> bool:
        """True once :meth:`run` was started (by :meth:`start` or by the caller's own thread)."""
        return self._started

    def run(self) -> None:
        """The thread body: open the feed, then serve calls until :meth:`stop`."""
        self._started = True
        try:
            try:
                self.feed = self._open_feed()
            except BaseException as exc:  # noqa: BLE001 - handed to every caller as the reason nothing works
                log.debug("opening the feed failed", exc_info=True)
                self.open_error = exc
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                fn, fut = item
                if not fut.set_running_or_notify_cancel():
                    continue
                if self.feed is None:
                    fut.set_exception(self.open_error or RuntimeError("no feed"))
                    continue
                try:
                    fut.set_result(fn(self.feed))
                except BaseException as exc:  # noqa: BLE001 - the caller decides what a failed poll means
                    fut.set_exception(exc)
        finally:
            self._done.set()
            # Fail anything queued behind the stop so no caller waits on a dead thread.
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    item[1].set_exception(RuntimeError("the poll thread has stopped"))

    def stop(self, close: Callable[[F], Any] | None = None, timeout: float = 10.0) -> None:
        """Run ``close(feed)`` after every queued call, end the thread and wait for it (up to ``timeout``)."""
        if self._done.is_set():
            return
        if close is not None:
            self._queue.put((close, Future()))
        self._queue.put(_STOP)
        if self._started:
            self._done.wait(timeout)

    @property
    def stopped(self) -> bool:
        return self._done.is_set()
