"""Render the README screenshots from the demo backend: ``python -m gputab.tui.screenshots [OUT_DIR]``.

The demo box runs on a fake clock for a fixed number of one-second polls, with a fixed wall clock, so the
SVGs are the same on every machine and change only when the app does. Nothing touches the user's database:
the session is recorded into a temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.pilot import Pilot

    from gputab.sampling.demo import FakeClock
    from gputab.tui.app import GputabApp

STEPS = 90
"""Simulated seconds before the pictures are taken: long enough for every demo job to have appeared."""

SHOTS = (
    # (file name, terminal size, keys pressed before the picture, theme); keys of the processes view are pressed
    # before the polls (:data:`FIRST`): its charts keep history from when it was first opened.
    ("jobs-120x40.svg", (120, 40), (), None),
    ("gpus-120x40.svg", (120, 40), ("2",), None),
    ("processes-120x40.svg", (120, 40), ("3",), None),
    ("alerts-120x40.svg", (120, 40), ("4",), None),
    ("jobs-80x24.svg", (80, 24), (), None),
    ("gpus-80x24.svg", (80, 24), ("2",), None),
    ("job-details-120x40.svg", (120, 40), ("enter",), None),
    ("jobs-light-120x40.svg", (120, 40), (), "textual-light"),
)

FIRST = {"processes-120x40.svg"}
"""Shots whose keys are pressed before the polls rather than after."""

REVIEW_SHOTS = (
    # (file name, terminal size, keys pressed in `gputab review` before the picture)
    ("session-120x40.svg", (120, 40), ("enter",)),
)
"""Pictures of the review screens, over one demo session of :data:`STEPS` seconds recorded for them."""

SPEND_SHOTS = (
    # (file name, terminal size): the Spend screen ($ in `gputab review`) over :func:`record_demo_month`.
    ("spend-120x40.svg", (120, 40)),
)
SPEND_DAYS = (
    (0, 120, 0),
    (2, 60, 1),
    (5, 90, 2),
    (8, 150, 0),
    (11, 60, 3),
    (13, 100, 1),
    (16, 90, 0),
    (19, 120, 2),
    (22, 60, 1),
    (24, 150, 3),
    (27, 90, 0),
    (29, 120, 1),
)
"""(day, seconds, seed) of the demo sessions of :func:`record_demo_month`."""


async def render(
    name: str, size: tuple[int, int], keys: tuple[str, ...], out_dir: Path, work: Path, theme: str | None = None
) -> Path:
    """Run the demo app for :data:`STEPS` polls, press ``keys``, and save an SVG as ``out_dir/name`` (in
    ``theme``, one of Textual's, when given)."""
    from gputab.app_context import AppContext
    from gputab.sampling.demo import FakeClock
    from gputab.tui.app import create_app

    clock = FakeClock()
    ctx = AppContext(demo=True, seed=0, db_path=work / f"{name}.db", config_path=work / "none.toml")
    app = create_app(ctx, clock=clock, wall_clock=clock.wall, start_polling=False)
    if theme is not None:
        app.theme = theme
    async with app.run_test(size=size) as pilot:
        if name in FIRST:
            await drive(app, pilot, clock, STEPS, first=keys)
        else:
            await drive(app, pilot, clock, STEPS, keys)
        app.save_screenshot(filename=name, path=str(out_dir))
    return out_dir / name


async def drive(
    app: GputabApp,
    pilot: Pilot[Any],
    clock: FakeClock,
    steps: int,
    keys: Iterable[str] = (),
    first: Iterable[str] = (),
) -> None:
    """The deterministic run shared with the snapshot tests: ``first`` pressed, ``steps`` polls, then ``keys``,
    then one poll."""
    await app.feed_ready()
    for key in first:
        await pilot.press(key)
        await pilot.pause()
    for _ in range(steps):
        clock.advance(1.0)
        await app.poll_now()
    for key in keys:
        await pilot.press(key)
        await pilot.pause()
    clock.advance(1.0)
    await app.poll_now()
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


def record_demo_session(db: Path, seconds: int, *, day: int = 0, host: str | None = None, seed: int = 0) -> None:
    """Record one closed demo session of ``seconds`` one-second ticks on a fake clock, ``day`` days after 2026-01-01.

    Args:
        db: the database to record into.
        host: stored as the session's host instead of ``demo-box`` (another box, for filters).
    """
    from gputab.config.settings import Config
    from gputab.recording.recorder import Recorder
    from gputab.sampling.demo import DEMO_START_WALL, DemoBackend, FakeClock
    from gputab.store import Store

    clock = FakeClock(wall_start=DEMO_START_WALL + day * 86400.0)
    backend = DemoBackend(clock=clock, wall_clock=clock.wall, seed=seed)
    if host is not None:
        backend.host = host  # a class attribute of the demo box; the recorder stores what it finds
    rec = Recorder(backend, Store(db), Config(), clock=clock, wall_clock=clock.wall)
    rec.start()
    for _ in range(seconds):
        clock.advance(1.0)
        rec.step()
    rec.close()


def record_demo_month(db: Path) -> None:
    """A month of short demo sessions (:data:`SPEND_DAYS`) on demo-box, and one on gpu-node-7 on day 13."""
    for day, seconds, seed in SPEND_DAYS:
        record_demo_session(db, seconds, day=day, seed=seed)
    record_demo_session(db, 80, day=13, host="gpu-node-7", seed=2)


async def render_review(
    name: str,
    size: tuple[int, int],
    keys: tuple[str, ...],
    out_dir: Path,
    work: Path,
    record: Callable[[Path], object] | None = None,
) -> Path:
    """Record a demo session (or what ``record(db)`` records), open ``gputab review``, press ``keys``, save ``name``."""
    from gputab.tui.review import ReviewApp

    db = work / f"{name}.db"
    if record is not None:
        record(db)
    else:
        record_demo_session(db, STEPS)
    app = ReviewApp(db)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        app.save_screenshot(filename=name, path=str(out_dir))
    return out_dir / name


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out_dir = Path(argv[0]) if argv else Path("docs/screenshots")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, size, keys, theme in SHOTS:
            path = asyncio.run(render(name, size, keys, out_dir, Path(tmp), theme))
            print(path)
        for name, size, keys in REVIEW_SHOTS:
            print(asyncio.run(render_review(name, size, keys, out_dir, Path(tmp))))
        # Days are local: cut them in UTC so the picture is the same in every zone.
        os.environ["TZ"] = "UTC"
        time.tzset()
        for name, size in SPEND_SHOTS:
            print(asyncio.run(render_review(name, size, ("dollar_sign",), out_dir, Path(tmp), record_demo_month)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
