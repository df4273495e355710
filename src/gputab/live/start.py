"""Which feed the live view gets: record when no recorder holds the database, attach when one does, memory only
when it cannot be written."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gputab.live.feed import Feed, MemoryFeed, RecordingFeed

if TYPE_CHECKING:
    from gputab.app_context import AppContext
    from gputab.config.settings import Config
    from gputab.live.poller import Poller
    from gputab.sampling.backend import Backend
    from gputab.store import Store


def start_feed(ctx: AppContext, *, interval: float, backend: Backend | None = None) -> Poller[Feed]:
    """The poll thread, started now on :func:`open_feed`: the CLI calls this before it imports the screen's code
    (Textual), so the database, the session and its baseline poll are ready as soon as the screen is."""
    from gputab.live.poller import Poller

    poller: Poller[Feed] = Poller(lambda: open_feed(ctx, interval=interval, backend=backend))
    poller.start()
    return poller


def open_feed(
    ctx: AppContext,
    *,
    clock: Callable[[], float] | None = None,
    wall_clock: Callable[[], float] | None = None,
    interval: float = 1.0,
    backend: Backend | None = None,
) -> Feed:
    """Record when no recorder holds the database, attach when one does, memory only when it cannot be written.

    Args:
        ctx: the CLI context (``demo``, ``seed``, ``db_path``, ``config``).
        clock: monotonic clock for the backend and recorder (a ``FakeClock`` in tests).
        wall_clock: Unix time (``FakeClock.wall`` in tests).
        interval: the poll interval; it replaces the config's recorder interval for this session.
        backend: a backend the caller opened already (the feed closes it); None: opened here.
    """
    import dataclasses

    from gputab.store import RecorderRunning, Store, StoreError

    config = ctx.config
    config = dataclasses.replace(config, recorder=dataclasses.replace(config.recorder, interval=interval))
    kwargs = {}
    if ctx.demo and clock is not None:
        kwargs = {"clock": clock, "wall_clock": wall_clock}
    try:
        backend = backend if backend is not None else ctx.open_backend(**kwargs)
    except Exception as exc:
        # Someone who cannot poll the GPUs (no NVML for this user) can still watch a running recorder's session.
        from gputab.live.attached_feed import attach_without_backend

        feed = attach_without_backend(ctx, config, wall_clock, f"{type(exc).__name__}: {exc}")
        if feed is None:
            raise
        return feed

    def record(backend: Backend, store: Store | None = None) -> Feed:
        """Record into the database with ``backend`` (raises RecorderRunning when a recorder holds it)."""
        own = store is None
        store = Store.open(ctx.database) if store is None else store
        try:
            return recording_feed(backend, store, config, clock, wall_clock)
        except BaseException:
            if own:
                store.close()
            raise

    try:
        try:
            store = Store.open(ctx.database)
        except (StoreError, OSError) as exc:
            # The live view is still worth having when the database cannot be written; the header says why.
            why = str(exc) if isinstance(exc, StoreError) else f"cannot write {ctx.db_path}: {exc.strerror or exc}"
            return MemoryFeed(backend, config, interval, why, wall_clock=wall_clock)
        if store.writer_info() is None:
            try:
                return record(backend, store)
            except RecorderRunning:
                pass  # a recorder started between the check and our lock: attach to it instead
        store.close()
        from gputab.live.attached_feed import AttachedFeed

        feed = AttachedFeed(Store.open(ctx.database, readonly=True), backend, config, wall_clock=wall_clock)
        feed.start_recording = record  # `r` once that recorder stops
        return feed
    except BaseException:
        backend.close()
        raise


def recording_feed(
    backend: Backend,
    store: Store,
    config: Config,
    clock: Callable[[], float] | None = None,
    wall_clock: Callable[[], float] | None = None,
) -> RecordingFeed:
    """This app records: a started :class:`Recorder` on ``store`` with the same rules, budgets and alert command as
    `gputab record`; nothing printed (the UI owns the terminal): each alert is stored with the session and handed
    to the UI. Raises ``RecorderRunning`` when another recorder holds the database."""
    from gputab.alerts.observer import AlertObserver
    from gputab.recording.recorder import Recorder
    from gputab.store import RecorderRunning

    alerts = AlertObserver.from_config(config, backend=backend)
    recorder = Recorder(
        backend,
        store,
        config,
        clock=clock or time.monotonic,
        wall_clock=wall_clock or time.time,
        observers=[alerts],
    )
    try:
        return RecordingFeed(recorder, recorder.start(), alerts)
    except RecorderRunning:
        alerts.close()
        raise
