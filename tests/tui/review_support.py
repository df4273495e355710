"""Sessions recorded for the review tests: the in-process Recorder on the demo backend and a fake clock."""

from __future__ import annotations

from pathlib import Path

from gputab.config import Config
from gputab.recorder import Recorder
from gputab.sampling.demo import DEMO_START_WALL, DemoBackend, FakeClock
from gputab.store import Store

DAY = 86400.0


def record(db: Path, seconds: int, *, day: int = 0, host: str | None = None, seed: int = 0) -> None:
    """Record one demo session of ``seconds`` one-second ticks, starting ``day`` days after 2026-01-01 UTC."""
    clock = FakeClock(wall_start=DEMO_START_WALL + day * DAY)
    backend = DemoBackend(clock=clock, wall_clock=clock.wall, seed=seed)
    if host is not None:
        backend.host = host  # the demo box's name is a class attribute; another host is another box
    rec = Recorder(backend, Store(db), Config(), clock=clock, wall_clock=clock.wall)
    rec.start()
    for _ in range(seconds):
        clock.advance(1.0)
        rec.step()
    rec.close()


def three_sessions(db: Path) -> None:
    """Sessions 1-3: 120 s on demo-box (Jan 1), 30 s on demo-box (Jan 3), 90 s on gpu-node-7 (Jan 5)."""
    record(db, 120)
    record(db, 30, day=2)
    record(db, 90, day=4, host="gpu-node-7")
