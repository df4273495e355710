"""Helpers the TUI tests import (fixtures live in conftest.py)."""

from __future__ import annotations


def make_app(ctx, clock, **kwargs):
    """The app on the fake clock, polled by hand (no timers): ``await app.poll_now()`` after ``clock.advance``."""
    from gputab.tui.app import create_app

    kwargs.setdefault("start_polling", False)
    return create_app(ctx, clock=clock, wall_clock=clock.wall, **kwargs)


async def advance(app, clock, steps: int, dt: float = 1.0):
    """Advance the fake clock ``steps`` times, polling after each; returns the last frame."""
    frame = None
    # The session's baseline is polled when the feed opens: that must happen before the clock moves.
    await app.feed_ready()
    for _ in range(steps):
        clock.advance(dt)
        frame = await app.poll_now()
    return frame
