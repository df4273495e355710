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


def screen_lines(app) -> list[str]:
    """The screen as text, one string a row (what a terminal of the test size shows)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def longest_blank_run(lines: list[str]) -> int:
    """The most consecutive rows that show nothing but blanks and box lines (a chart's empty plot rows count as
    content: they carry its axis and scale)."""
    run = best = 0
    for line in lines:
        if set(line) <= set(" ─"):
            run += 1
            best = max(best, run)
        else:
            run = 0
    return best


def header_text(app) -> str:
    """The live view's session header as the user reads it (its rendered text)."""
    from gputab.tui.widgets.header import SessionHeader

    return str(app.screen.query_one(SessionHeader).render())


async def until(pilot, condition, timeout: float = 10.0, what: str = "the condition"):
    """Pause until ``condition()`` holds (a widget laid out, a footer composed): an awaited event instead of a fixed
    pause, so a loaded machine waits longer and an idle one not at all. Fails with ``what`` after ``timeout`` s."""
    import time

    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await pilot.pause(0.02)


def dialog_words(app, selector: str = "Label, Static") -> str:
    """The words of the dialog on top (its widgets' content, wrapped lines joined by one space): the compositor
    paints a new modal later than its widgets have their content."""
    return " ".join(" ".join(str(w.render()).split()) for w in app.screen.query(selector))
