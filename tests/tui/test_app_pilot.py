"""Pilot tests of the live app on the demo backend: what a user sees and does, and what lands in the store."""

from __future__ import annotations

import time

import pytest
from tui_support import advance, header_text, make_app

from gputab.live.attached_feed import AttachedFeed
from gputab.live.feed import MemoryFeed, RecordingFeed
from gputab.live.frame import ATTACHED, NOT_RECORDING, RECORDING
from gputab.store import Store
from gputab.tui.gpus_screen import GpusScreen
from gputab.tui.jobs_screen import JobsScreen
from gputab.tui.processes_screen import ProcessesScreen
from gputab.tui.widgets.gpus import GpuCard, GpuTable
from gputab.tui.widgets.jobs import JobsTable
from gputab.tui.widgets.processes import ProcessTable
from support import Notified


def _sessions(db_path) -> list[dict]:
    with Store.open(db_path, readonly=True) as store:
        return store.sessions()


async def test_start_on_demo_records_and_job_costs_grow(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        first = await advance(app, clock, 5)
        assert isinstance(app.poller.feed, RecordingFeed)
        assert first.state == RECORDING and first.session_id is not None
        await pilot.pause()
        table = app.screen.query_one(JobsTable)
        assert "llama3-8b-lora" in table.row_cells("llama3-8b-lora")[0].plain
        cost_before = next(j.cost_usd for j in first.jobs if j.tag == "llama3-8b-lora")
        later = await advance(app, clock, 30)
        await pilot.pause()
        cost_after = next(j.cost_usd for j in later.jobs if j.tag == "llama3-8b-lora")
        assert cost_after > cost_before > 0
        # The table shows the frame's figure, not a stale one.
        assert table.row_cells("llama3-8b-lora")[1].plain.startswith(f"${cost_after:.4f}"[:6])
        # Most expensive real job first, the (idle) bucket after the jobs.
        tags = [j.tag for j in later.jobs]
        assert tags[0] == "llama3-8b-lora" and tags.index("(idle)") > tags.index("eval-mmlu")
        header = header_text(app)
        assert "demo-box" in header and "0:00:35" in header and "recording" in header
        assert f"${later.total_cost_usd:.4f}"[:5] in header
    # Same numbers as the store (what `gputab show` prints), after the app closed the session.
    with Store.open(demo_ctx.db_path, readonly=True) as store:
        stored = {j["tag"]: j["cost_usd"] for j in store.jobs(later.session_id)}
    assert stored["llama3-8b-lora"] == pytest.approx(cost_after, rel=1e-9)


async def test_rows_are_updated_in_place_and_the_cursor_stays(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 3)
        await pilot.pause()
        table = app.screen.query_one(JobsTable)
        table.move_cursor(row=table.get_row_index("eval-mmlu"))
        adds = []
        original = table.add_row
        table.add_row = lambda *a, **k: adds.append(k.get("key")) or original(*a, **k)
        await advance(app, clock, 20)  # the notebook appears at t=15 s: one new row, the others updated
        await pilot.pause()
        assert adds == ["untagged:alice/python"]
        assert table.selected_key == "eval-mmlu"


async def test_polling_runs_by_itself_in_the_poll_thread(demo_ctx):
    from gputab.tui.app import create_app

    app = create_app(demo_ctx, interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        deadline = time.monotonic() + 30  # generous: the suite may share the machine with heavy tests
        while app.frames_shown < 3 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert app.poller.open_error is None
        assert app.frames_shown >= 3
        assert [w.name for w in app.workers if w.name == "poll"] == ["poll"]


async def test_switching_views(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await advance(app, clock, 20)
        assert isinstance(app.screen, JobsScreen)
        await pilot.press("2")
        await pilot.pause()
        assert isinstance(app.screen, GpusScreen)
        await advance(app, clock, 1)
        await pilot.pause()
        assert len(app.screen.query(GpuCard)) == 5
        await pilot.press("3")
        await pilot.pause()
        assert isinstance(app.screen, ProcessesScreen)
        table = app.screen.query_one(ProcessTable)
        assert table.row_cells("34500@0")[6].plain == "untagged"
        assert "***" in table.row_cells("31001@0")[7]  # the W&B key in the command line is redacted
        await pilot.press("1")
        await pilot.pause()
        assert isinstance(app.screen, JobsScreen)
        assert app.screen.query_one(GpuTable).row_count == 5


async def test_tagging_an_untagged_process(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 20)
        await pilot.press("3")
        await pilot.pause()
        table = app.screen.query_one(ProcessTable)
        table.move_cursor(row=table.get_row_index("34500@0"))
        await pilot.press("t")
        await pilot.pause()
        await pilot.press(*"(bad")
        await pilot.press("enter")
        await pilot.pause()
        assert "reserved" in str(app.screen.query_one("#tag-error").render())
        app.screen.query_one("#tag-input").value = "notebook-alice"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ProcessesScreen)
        for _ in range(50):  # the tag is applied in the poll thread
            frame = await advance(app, clock, 1)
            if any(p.tag == "notebook-alice" for p in frame.processes):
                break
        proc = next(p for p in frame.processes if p.pid == 34500)
        assert (proc.tag, proc.source) == ("notebook-alice", "manual")
        before = next(j.cost_usd for j in frame.jobs if j.tag == "notebook-alice")
        frame = await advance(app, clock, 5)
        assert next(j.cost_usd for j in frame.jobs if j.tag == "notebook-alice") > before
        sid = frame.session_id
    with Store.open(demo_ctx.db_path, readonly=True) as store:
        rows = list(store.db.query("SELECT pid, tag, source FROM tag_changes WHERE session_id = ?", [sid]))
    assert {"pid": 34500, "tag": "notebook-alice", "source": "manual"} in rows


async def test_tagging_a_job_moves_its_processes(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 3)
        await pilot.pause()
        table = app.screen.query_one(JobsTable)
        table.move_cursor(row=table.get_row_index("eval-mmlu"))
        await pilot.press("t")
        await pilot.pause()
        app.screen.query_one("#tag-input").value = "eval-mmlu-v2"
        await pilot.press("enter")
        await pilot.pause()
        for _ in range(20):
            frame = await advance(app, clock, 1)
            if any(p.tag == "eval-mmlu-v2" for p in frame.processes):
                break
        assert next(p for p in frame.processes if p.pid == 32010).tag == "eval-mmlu-v2"


async def test_attaching_to_a_running_recorder_writes_no_second_session(demo_ctx, clock):
    from gputab.recording.recorder import Recorder
    from gputab.sampling.demo import DemoBackend

    store = Store.open(demo_ctx.db_path)
    recorder = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall), store, demo_ctx.config, clock=clock, wall_clock=clock.wall
    )
    recorder.start()
    try:
        for _ in range(10):
            clock.advance(1.0)
            recorder.step()
        recorder._commit()  # what the recorder does every commit_interval
        app = make_app(demo_ctx, clock)
        notified = Notified()
        async with app.run_test(size=(120, 40), message_hook=notified) as pilot:
            frame = await advance(app, clock, 2)
            assert isinstance(app.poller.feed, AttachedFeed)
            assert frame.state == ATTACHED and frame.session_id == recorder.session_id
            assert frame.total_cost_usd == pytest.approx(recorder.ledger.total_cost_usd, rel=1e-9)
            llama = next(j for j in frame.jobs if j.tag == "llama3-8b-lora")
            assert llama.cost_usd == pytest.approx(recorder.ledger.jobs["llama3-8b-lora"].cost_usd, rel=1e-9)
            assert "attached" in header_text(app)
            await pilot.press("t")  # read-only: says so instead of opening the dialog
            await pilot.pause()
            assert isinstance(app.screen, JobsScreen)
            assert any("read-only" in n.message for n in notified)
        assert len(_sessions(demo_ctx.db_path)) == 1
    finally:
        recorder.close("clean")
    assert [s["end_reason"] for s in _sessions(demo_ctx.db_path)] == ["clean"]


async def test_quitting_closes_the_session_cleanly(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await advance(app, clock, 5)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    (session,) = _sessions(demo_ctx.db_path)
    assert session["end_reason"] == "clean" and session["cost_usd"] > 0


async def test_a_hangup_ends_the_session_as_signalled(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await advance(app, clock, 3)
        app._exit_on_signal("sighup")  # what the SIGHUP handler of run_app calls
        await pilot.pause()
    (session,) = _sessions(demo_ctx.db_path)
    assert session["end_reason"] == "signal" and session["end_detail"] == "SIGHUP"


async def test_an_unwritable_database_still_shows_costs_and_says_why(demo_ctx, clock, tmp_path):
    (tmp_path / "not-a-dir").write_text("")
    demo_ctx.db_path = tmp_path / "not-a-dir" / "demo.db"
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        frame = await advance(app, clock, 5)
        await pilot.pause()
        assert isinstance(app.poller.feed, MemoryFeed)
        assert frame.state == NOT_RECORDING and "cannot write" in frame.state_note
        assert frame.total_cost_usd > 0
        assert "not recording" in header_text(app)
