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


def record_demo_session(db_path, ticks: int = 3):
    """Record one short, cleanly closed demo session into ``db_path`` with the real recorder on a fake clock;
    returns the recorder (its ledger holds what it charged)."""
    from gputab.config import Config
    from gputab.recorder import Recorder
    from gputab.sampling.demo import DemoBackend, FakeClock
    from gputab.store.database import Store

    clock = FakeClock()
    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        Store.open(db_path),
        Config(),
        clock=clock,
        wall_clock=clock.wall,
    )
    rec.start()
    for _ in range(ticks):
        clock.advance(1.0)
        rec.step()
    assert rec.close("clean")
    return rec
