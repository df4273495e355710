"""Helpers shared by test modules (import as `from support import ...`; conftest names are ambiguous)."""

from __future__ import annotations

import os
import sys


def gputab_cmd() -> list[str]:
    """The gputab CLI as a subprocess argv (same interpreter as the tests)."""
    return [sys.executable, "-m", "gputab"]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def demo_recorder(db_path, observers=(), wall_start: float | None = None, store=None):
    """The real recorder of the demo box into ``db_path`` on a fake clock (default config), not started;
    returns ``(recorder, clock)``.

    Args:
        observers: the recorder's observers (an ``AlertObserver`` for alert and budget tests).
        wall_start: the fake clock's wall time at its start (default: FakeClock's).
        store: the store to write into (default: ``Store(db_path)``, opened when the recorder starts).
    """
    from gputab.config.settings import Config
    from gputab.recording.recorder import Recorder
    from gputab.sampling.demo import DemoBackend, FakeClock
    from gputab.store.database import Store

    clock = FakeClock() if wall_start is None else FakeClock(wall_start=wall_start)
    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        Store(db_path) if store is None else store,
        Config(),
        clock=clock,
        wall_clock=clock.wall,
        observers=list(observers),
    )
    return rec, clock


def record_demo_session(db_path, ticks: int = 3):
    """Record one short, cleanly closed demo session into ``db_path`` with the real recorder on a fake clock;
    returns the recorder (its ledger holds what it charged)."""
    from gputab.store.database import Store

    rec, clock = demo_recorder(db_path, store=Store.open(db_path))
    rec.start()
    for _ in range(ticks):
        clock.advance(1.0)
        rec.step()
    assert rec.close("clean")
    return rec


class Notified(list):
    """Every notification the app posted, in order, from the message stream: pass it as
    ``app.run_test(message_hook=notified)`` and read it like a list of ``textual.notifications.Notification``."""

    def __call__(self, message: object) -> None:
        from textual.notifications import Notify

        if isinstance(message, Notify):
            self.append(message.notification)
