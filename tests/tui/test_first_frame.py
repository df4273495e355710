"""The live view's first paint: with the feed open by the time the screen starts (the CLI opens it while Textual
loads), the first poll is shown in the screen's first paint, not after an empty "starting…" one (issue 16 item 7:
first frame); a first poll slower than that is shown when it comes and holds nothing up for long."""

from __future__ import annotations

import threading
import time

from tui_support import header_text

from gputab.live.start import open_feed
from gputab.tui.app import FIRST_FRAME_WAIT, GputabApp, create_app
from gputab.tui.widgets.header import SessionHeader


def _spy_on_header(monkeypatch) -> list[bool]:
    """One entry per paint of the session header: True when it showed a frame, False for "starting…"."""
    painted: list[bool] = []
    original = SessionHeader.render

    def render(self):
        shown = original(self)
        painted.append("starting…" not in str(shown))  # what it paints before the first frame
        return shown

    monkeypatch.setattr(SessionHeader, "render", render)
    return painted


async def test_the_first_paint_has_the_figures_when_the_feed_is_open(demo_ctx, clock, monkeypatch):
    painted = _spy_on_header(monkeypatch)
    # A long interval: the one poll this test sees is the first.
    app = create_app(demo_ctx, clock=clock, wall_clock=clock.wall, interval=600)
    app.poller.start()
    app.poller.submit(lambda feed: feed).result(timeout=30)  # the poll thread opened the feed while Textual loaded
    app.poll_before_start(wait=30)  # as run_app does
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.frames_shown == 1
        assert painted and all(painted), painted
        assert "spent" in header_text(app)


class SlowFeed:
    """A real feed whose polls wait until the test releases them (a slow driver), however loaded the machine."""

    def __init__(self, feed) -> None:
        self.feed = feed
        self.release = threading.Event()

    def poll(self):
        assert self.release.wait(60), "the test never released the poll"
        return self.feed.poll()

    def __getattr__(self, name):
        return getattr(self.feed, name)


async def test_a_slow_first_poll_is_shown_when_it_comes(demo_ctx, clock, monkeypatch):
    painted = _spy_on_header(monkeypatch)
    slow: list[SlowFeed] = []

    def opened() -> SlowFeed:
        slow.append(SlowFeed(open_feed(demo_ctx, clock=clock, wall_clock=clock.wall)))
        return slow[0]

    app = GputabApp(opened, interval=600)
    app.poller.start()
    app.poller.submit(lambda feed: feed).result(timeout=30)
    started = time.monotonic()
    app.poll_before_start()  # waits FIRST_FRAME_WAIT for a poll that is still held, then goes on
    waited = time.monotonic() - started
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.frames_shown == 0 and painted and not any(painted)  # "starting…" while the poll runs
        slow[0].release.set()
        deadline = time.monotonic() + 30
        while app.frames_shown == 0 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert app.frames_shown == 1
        await pilot.pause()
        assert painted[-1]
    # The start waited for the poll FIRST_FRAME_WAIT, not until it came (it came only when released, above).
    assert FIRST_FRAME_WAIT <= waited < FIRST_FRAME_WAIT + 5


async def test_the_first_paint_has_the_figures_when_the_feed_is_still_opening(demo_ctx, clock, monkeypatch):
    """The poll thread is still opening the feed when the screen would start: the start waits for it (up to
    FEED_OPEN_WAIT), so no "starting…" paint takes the interpreter from the thread that opens the feed."""
    painted = _spy_on_header(monkeypatch)

    def slow_open():
        time.sleep(0.3)  # the database, the session and the recorder's imports, on a slow box
        return open_feed(demo_ctx, clock=clock, wall_clock=clock.wall)

    app = GputabApp(slow_open, interval=600)
    app.poller.start()
    assert app.poller.feed is None
    app.poll_before_start(wait=30, opening=30)
    assert app.frames_shown == 1  # before the screen started
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.frames_shown == 1
        assert painted and all(painted), painted
        assert "spent" in header_text(app)


def test_a_feed_slower_to_open_than_the_wait_holds_the_start_up_no_longer(demo_ctx, clock):
    def slower_open():
        time.sleep(3.0)
        return open_feed(demo_ctx, clock=clock, wall_clock=clock.wall)

    app = GputabApp(slower_open, interval=600)
    app.poller.start()
    started = time.monotonic()
    app.poll_before_start(wait=0.1, opening=0.4)
    assert time.monotonic() - started < 2.5 and app.frames_shown == 0  # the screen starts with "starting…"
    app.poller.stop(close=lambda feed: feed.close("quit"))


async def test_a_feed_still_opening_holds_nothing_up(demo_ctx, clock):
    """With no poll thread running yet the first poll is queued and not waited for (nothing would answer); it is
    shown once it comes."""
    app = create_app(demo_ctx, clock=clock, wall_clock=clock.wall, interval=600)
    release = app.poller.submit(lambda feed: None)  # queued first: runs once the feed is open
    started = time.monotonic()
    app.poll_before_start(wait=30)  # the poll thread has not even started: the feed cannot be open
    assert time.monotonic() - started < 1.0 and app.frames_shown == 0
    app.poller.start()
    release.result(timeout=30)
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 30
        while app.frames_shown == 0 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert app.frames_shown == 1
