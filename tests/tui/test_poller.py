"""The poll thread started before the screen (run_app does it, for a quicker first frame)."""

from __future__ import annotations

import threading

from tui_support import advance, make_app

from gputab.live.poller import Poller


def test_start_opens_the_feed_in_its_own_thread_once():
    opened = []
    poller: Poller = Poller(lambda: opened.append(threading.current_thread().name) or "feed")
    poller.start()
    poller.start()  # a second start is a no-op
    assert poller.submit(lambda feed: feed).result(timeout=10) == "feed"
    assert opened == ["gputab-poll"] and poller.started
    poller.stop()
    assert poller.stopped


async def test_an_app_whose_poller_was_started_early_uses_that_thread(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    app.poller.start()
    async with app.run_test(size=(80, 24)) as pilot:
        frame = await advance(app, clock, 2)
        await pilot.pause()
        assert frame.session_id is not None
        assert not [w for w in app.workers if w.name == "poll"]  # no second poll thread


def test_start_feed_records_in_its_thread_without_textual(demo_ctx):
    import subprocess
    import sys

    from gputab.live.feed import RecordingFeed
    from gputab.live.start import start_feed

    poller = start_feed(demo_ctx, interval=1.0)
    try:
        feed = poller.submit(lambda f: f).result(timeout=30)
        assert isinstance(feed, RecordingFeed)
        assert poller.submit(lambda f: f.poll()).result(timeout=30).session_id is not None
    finally:
        poller.stop(close=lambda f: f.close("quit"))
    # The CLI imports the feed before Textual, so that the feed opens while Textual loads: it must not pull it in.
    code = (
        "import sys, gputab.live.feed, gputab.live.poller; "
        "print([m for m in sys.modules if m.split('.')[0] == 'textual'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
