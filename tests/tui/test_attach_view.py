"""A viewer attached to a running recorder shows what the recorder's own live view shows (issue 23, item 1): the
charts' history read back from the session's stored series (the current window when it attaches, the older part
when the window widens), each GPU's `now $/h`; when the recorder stops the header says so and `r` records here,
the charts kept. Item 5: a session an exception ended is recorded as `error` with the exception's summary."""

from __future__ import annotations

import asyncio
import math

import pytest
from click.testing import CliRunner
from tui_support import advance, header_text, make_app, screen_lines

from gputab.cli import cli
from gputab.live.attached_feed import AttachedFeed
from gputab.live.feed import RecordingFeed
from gputab.live.frame import ATTACHED, NOT_RECORDING, RECORDING
from gputab.live.history import TOTAL, util_key
from gputab.store import Store
from gputab.tui.gpus_screen import GpusScreen
from gputab.tui.jobs_screen import JobsScreen
from gputab.tui.messages import FrameReady
from support import demo_recorder

LORA = "llama3-8b-lora"


def chart_cells(app) -> int:
    """Cells of the screen a chart line is drawn in (braille with at least one dot)."""
    return sum(1 for line in screen_lines(app) for ch in line if 0x2801 <= ord(ch) <= 0x28FF)


def sessions(db_path) -> list[dict]:
    with Store.open(db_path, readonly=True) as store:
        return store.sessions()


@pytest.mark.slow
async def test_an_attached_viewer_draws_the_recording_views_charts(demo_ctx, clock):
    """`gputab --demo --db X` recording for 100 s, then a second `gputab --demo --db X`: it attaches, and its
    charts draw at least 70 % of the chart cells the first one draws, in the jobs and the GPUs views."""
    recording = make_app(demo_ctx, clock)
    async with recording.run_test(size=(120, 40)) as pilot:
        await advance(recording, clock, 100)
        assert isinstance(recording.poller.feed, RecordingFeed)
        await pilot.pause()
        own = {"jobs": chart_cells(recording)}
        await pilot.press("2")
        await pilot.pause()
        assert isinstance(recording.screen, GpusScreen)
        own["gpus"] = chart_cells(recording)
        own_gpus = recording.frame.gpus

        viewer = make_app(demo_ctx, clock)
        async with viewer.run_test(size=(120, 40)) as vpilot:
            frame = await advance(viewer, clock, 1)
            assert isinstance(viewer.poller.feed, AttachedFeed)
            assert frame.state == ATTACHED and frame.session_id == recording.frame.session_id
            await vpilot.pause()
            seen = {"jobs": chart_cells(viewer)}
            await vpilot.press("2")
            await vpilot.pause()
            assert isinstance(viewer.screen, GpusScreen)
            seen["gpus"] = chart_cells(viewer)
            gpus_text = "\n".join(screen_lines(viewer))
            for view in ("jobs", "gpus"):
                assert own[view] > 50, own  # the recording view draws its charts
                assert seen[view] >= 0.7 * own[view], (view, seen, own)
            assert "n/a" not in gpus_text
            # The same `now $/h` as the recording view's ledger (the demo's prices charge no energy).
            assert [g.burn_rate_usd_per_hour for g in frame.gpus] == pytest.approx(
                [g.burn_rate_usd_per_hour for g in own_gpus], rel=1e-9
            )
            assert f"now ${own_gpus[0].burn_rate_usd_per_hour:.2f}/h" in gpus_text
    assert [s["end_reason"] for s in sessions(demo_ctx.db_path)] == ["clean"]  # one session: the viewer's none


@pytest.mark.slow
async def test_widening_the_window_fills_the_older_part_from_the_store(demo_ctx, clock):
    rec, rclock = demo_recorder(demo_ctx.db_path, store=Store.open(demo_ctx.db_path))
    rec.start()
    try:
        for _ in range(900):  # 15 minutes of the recorder's session, stored every 10 s
            rclock.advance(1.0)
            rec.step()
        rec._commit()
        viewer = make_app(demo_ctx, rclock)
        async with viewer.run_test(size=(120, 40)) as pilot:
            frame = await advance(viewer, rclock, 1)
            assert isinstance(viewer.poller.feed, AttachedFeed)
            history = viewer.history
            now = history.now
            block = frame.stored_series  # the first frame brings the stored points of its window, 5 minutes
            assert block is not None and not block.coarse and block.start == pytest.approx(now - 300)
            assert (await viewer.poll_now()).stored_series is None  # read once
            t, v = history.points(util_key(0), 300)
            assert t[0] <= now - 290 and len(t) >= 30  # the 5-minute window, from the stored steps
            assert len(history.points(util_key(0), 3600)[0]) < 40  # nothing older read yet
            # The total starts where the session stood then, not at 0: what the recorder's view draws.
            stored = rec.store.jobs(rec.session_id)
            total_t, total = history.points(TOTAL, 300)
            assert 0 < total[0] < total[-1] <= sum(j["cost_usd"] for j in stored) * 1.01

            await pilot.press("w")  # 1 h: the rest of the session (40 min) comes with the next frame
            await advance(viewer, rclock, 1)
            t, v = history.points(util_key(0), 3600)
            assert t[0] <= 10.0 and len(t) >= 85
            assert not any(math.isnan(x) for x in v[1:-1])
            await pilot.press("w")  # the whole session: the coarse tier, bucketed
            await advance(viewer, rclock, 1)
            t, v = history.points(TOTAL, None)
            assert t[0] <= 20.0 and len(t) >= 85
            assert list(t) == sorted(t)
    finally:
        rec.close("clean")


async def test_when_the_recorder_stops_r_records_here_and_keeps_the_charts(demo_ctx, clock):
    rec, rclock = demo_recorder(demo_ctx.db_path, store=Store.open(demo_ctx.db_path))
    rec.start()
    for _ in range(60):
        rclock.advance(1.0)
        rec.step()
    rec._commit()
    viewer = make_app(demo_ctx, rclock)
    async with viewer.run_test(size=(120, 40)) as pilot:
        frame = await advance(viewer, rclock, 3)
        assert frame.state == ATTACHED and not frame.can_record
        rec.close("clean")  # the recorder stops (Ctrl-C in its terminal)
        frame = await advance(viewer, rclock, 1)
        await pilot.pause()
        assert frame.state == NOT_RECORDING and frame.can_record
        assert "not recording (recorder stopped; r records here)" in header_text(viewer)
        assert "the recorder ended session 1 (clean)" in frame.notes
        before = viewer.history.points(TOTAL, None)
        assert before[0][0] <= 10.0  # the stored minute is on screen

        await pilot.press("r")
        await pilot.pause()
        frame = await advance(viewer, rclock, 5)
        await pilot.pause()
        assert isinstance(viewer.poller.feed, RecordingFeed)
        assert frame.state == RECORDING and frame.session_id == 2
        assert "recording" in header_text(viewer)
        t, _ = viewer.history.points(TOTAL, None)
        assert t[0] == before[0][0] and t[-1] > before[0][-1]  # what was on screen is kept, the new points follow
        assert isinstance(viewer.screen, JobsScreen)
    assert [(s["id"], s["end_reason"]) for s in sessions(demo_ctx.db_path)] == [(2, "clean"), (1, "clean")]


async def test_r_polls_while_a_recorder_runs(demo_ctx, clock):
    """`r` offers recording only once the recorder is gone: while it runs, the view stays attached."""
    rec, rclock = demo_recorder(demo_ctx.db_path, store=Store.open(demo_ctx.db_path))
    rec.start()
    try:
        rclock.advance(1.0)
        rec.step()
        rec._commit()
        viewer = make_app(demo_ctx, rclock)
        async with viewer.run_test(size=(100, 30)) as pilot:
            await advance(viewer, rclock, 1)
            await pilot.press("r")
            frame = await advance(viewer, rclock, 1)
            assert isinstance(viewer.poller.feed, AttachedFeed) and frame.state == ATTACHED
        assert len(sessions(demo_ctx.db_path)) == 1
    finally:
        rec.close("clean")


async def test_an_exception_inside_the_app_ends_its_session_as_error(demo_ctx, clock, monkeypatch):
    app = make_app(demo_ctx, clock)

    def broken(self, frame, history) -> None:
        raise ValueError("the jobs view broke\nsecond line")

    with pytest.raises(ValueError, match="the jobs view broke"):
        async with app.run_test(size=(100, 30)) as pilot:
            await advance(app, clock, 3)
            monkeypatch.setattr(JobsScreen, "show_frame", broken)
            clock.advance(1.0)
            frame = await asyncio.wrap_future(app.poller.submit(lambda feed: feed.poll()))
            app.post_message(FrameReady(frame, 0.0))  # as a poll's frame reaches the app
            await pilot.pause()
    (session,) = sessions(demo_ctx.db_path)
    assert (session["end_reason"], session["end_detail"]) == ("error", "ValueError: the jobs view broke")
    db = ["--db", str(demo_ctx.db_path)]
    listed = CliRunner().invoke(cli, [*db, "sessions"])
    assert listed.exit_code == 0 and " error " in listed.output, listed.output
    shown = CliRunner().invoke(cli, [*db, "show", "1"])
    assert shown.exit_code == 0 and "(error: ValueError: the jobs view broke)" in shown.output, shown.output
