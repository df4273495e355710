"""`?` on every review screen (sessions, session, compare, spend) and in the fleet (fleet, host) lists that
screen's own keys, grouped, as the live view's does: every key a screen takes is in its footer or under `?`."""

from __future__ import annotations

import pytest
from test_fleet_screen import make, settle
from test_review import three_sessions
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from fleet_fake import FakePrometheus, load
from gputab.tui.fleet_screen import FleetScreen, HostScreen
from gputab.tui.keys_screen import KeysScreen, own_bindings
from gputab.tui.review import ReviewApp
from gputab.tui.review.compare_screen import CompareScreen
from gputab.tui.review.session_screen import SessionScreen
from gputab.tui.review.sessions_screen import SessionsScreen
from gputab.tui.spend_screen import SpendScreen

GENERIC = ("Copy selected text", "Page Left", "Focus Next", "Scroll Up")


async def check_keys(app, pilot, screen_type: type) -> str:
    """Every binding of the screen on top (and of the app) is in its footer or under `?`; `?` closes again."""
    screen = app.screen
    assert isinstance(screen, screen_type), screen
    applies = getattr(app, "binding_applies", lambda action, screen: True)
    app_keys = [b for b in own_bindings(type(app)) if applies(b.action.split("(")[0], screen)]
    bindings = app_keys + own_bindings(type(screen))
    assert own_bindings(type(screen)), f"{screen_type.__name__} declares no keys"
    in_footer = {k.key for k in screen.query_one(Footer).query(FooterKey)}
    assert "question_mark" in in_footer, f"? not in the footer of {screen_type.__name__}"
    await pilot.press("question_mark")
    await pilot.pause()
    assert isinstance(app.screen, KeysScreen), f"? does nothing on {screen_type.__name__}"
    listed = "\n".join(str(s.render()) for s in app.screen.query("Static"))
    for b in bindings:
        assert b.key in in_footer or (b.tooltip or b.description) in listed, f"{b.key} is nowhere"
        if b.key not in in_footer:
            assert app.get_key_display(b) in listed
    assert "This view" in listed and "Tables" in listed
    for generic in GENERIC:
        assert generic not in listed
    # The screen's own keys come first, under "This view", and each of them is there.
    view_part = listed.split("This view", 1)[1]
    for b in own_bindings(type(screen)):
        assert (b.tooltip or b.description) in view_part
    await pilot.press("escape")
    await pilot.pause()
    assert app.screen is screen
    return listed


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
@pytest.mark.slow
async def test_every_review_screen_lists_its_own_keys_under_question_mark(tmp_path, size):
    db = tmp_path / "review.db"
    three_sessions(db)
    app = ReviewApp(db)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        listed = await check_keys(app, pilot, SessionsScreen)
        assert "Review" in listed and "Sort" not in listed.split("Review", 1)[1]  # the app's keys, apart
        await pilot.press("enter")
        await pilot.pause()
        await check_keys(app, pilot, SessionScreen)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("m", "down", "m", "c")
        await pilot.pause()
        await check_keys(app, pilot, CompareScreen)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("dollar_sign")
        await pilot.pause()
        await check_keys(app, pilot, SpendScreen)


async def test_fleet_and_host_screens_list_their_keys_under_question_mark():
    with FakePrometheus(load()) as fake:
        app = make(fake)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            listed = await check_keys(app, pilot, FleetScreen)
            assert "Fleet" in listed and "ctrl+c" in listed.replace("^c", "ctrl+c")
            await pilot.press("enter")
            await pilot.pause()
            await check_keys(app, pilot, HostScreen)


@pytest.mark.slow
async def test_review_screens_over_the_live_view_keep_their_footer_within_80_columns(demo_ctx, clock):
    """Over the live view the app's view keys (1234, t, s, r) are off: the review's footer fits 80 columns with
    `?` and q, and `?` lists no live-view keys there."""
    from tui_support import advance, make_app, screen_lines

    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await advance(app, clock, 3)
        await pilot.press("s")
        await pilot.pause()
        steps = ((SessionsScreen, "enter"), (SessionScreen, "escape"), (SessionsScreen, "dollar_sign"))
        for screen_type, then in (*steps, (SpendScreen, "escape")):
            screen = app.screen
            assert isinstance(screen, screen_type)
            keys = {k.key: k for k in screen.query_one(Footer).query(FooterKey)}
            assert "q" in keys and "question_mark" in keys and "1" not in keys and "t" not in keys
            assert max(k.region.right for k in keys.values()) <= 80, screen_type.__name__
            # Nothing drawn over the footer's keys (the command palette's corner is under `?`, not here).
            last = screen_lines(app)[-1]
            assert "Quit" in last and "palette" not in last, last
            if screen_type is SpendScreen:
                assert "dollar_sign" not in keys  # not the Spend screen again over itself
            listed = await check_keys(app, pilot, screen_type)
            assert "Views" not in listed and "Poll now" not in listed
            await pilot.press(then)
            await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("2")  # back on a live view: its keys work again
        await pilot.pause()
        assert app.current_mode == "gpus"
