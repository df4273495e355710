"""Alerts in the live app (recording and attached), and the attached view's figures read from the recorder's store."""

from __future__ import annotations

import dataclasses

import pytest
from tui_support import advance, header_text, make_app

from gputab.alerts.observer import BUDGET_EXCEEDED, BUDGET_WARNING, AlertObserver
from gputab.config.settings import Config
from gputab.live.alert_log import AlertLog
from gputab.live.attached_feed import AttachedFeed
from gputab.live.feed import RecordingFeed
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DemoBackend
from gputab.store import Store
from gputab.tui.alerts_screen import AlertsScreen
from gputab.tui.widgets.alerts import AlertsTable
from gputab.tui.widgets.processes import ProcessTable
from support import Notified

TAG = "llama3-8b-lora"
# The demo charges this job about $0.0026 a second: a $0.02 cap warns after ~6 s and is exceeded after ~8 s.
CAP = 0.02


@pytest.fixture
def budget_ctx(demo_ctx):
    demo_ctx._config = Config(budgets={TAG: CAP})
    return demo_ctx


def _header(app) -> str:
    return header_text(app)


def _recorder(ctx, clock, alerts: bool = True):
    """A `gputab record` of the demo box in this process, with its alert observer storing into the session."""
    obs = AlertObserver.from_config(ctx.config) if alerts else None
    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        Store.open(ctx.db_path),
        ctx.config,
        clock=clock,
        wall_clock=clock.wall,
        observers=[obs] if obs else [],
    )
    if obs is not None:
        obs.sink = rec.record_alert
    rec.start()
    return rec


def _steps(rec, clock, n: int) -> None:
    for _ in range(n):
        clock.advance(1.0)
        rec.step()
    rec._commit()  # what the recorder does every commit_interval


async def test_a_budget_alert_is_notified_listed_counted_and_stored(budget_ctx, clock):
    app = make_app(budget_ctx, clock)
    notified = Notified()
    async with app.run_test(size=(120, 40), message_hook=notified) as pilot:
        frame = await advance(app, clock, 3)
        await pilot.pause()
        assert isinstance(app.poller.feed, RecordingFeed)
        assert frame.active_alerts == 0 and "alert" not in _header(app)
        assert not [n for n in notified if "budget" in n.message]
        frame = await advance(app, clock, 12)
        await pilot.pause()
        # Warning first, then exceeded: two notifications, the second an error (critical).
        toasts = [(n.title, n.severity) for n in notified if "budget" in n.message]
        assert toasts == [("warning: budget warning", "warning"), ("critical: budget exceeded", "error")]
        assert [(a.kind, a.active) for a in frame.alerts] == [(BUDGET_EXCEEDED, True), (BUDGET_WARNING, False)]
        assert (frame.active_alerts, frame.critical_alerts) == (1, 1)
        assert "▲ 1 alert (4)" in _header(app)
        await pilot.press("4")
        await pilot.pause()
        assert isinstance(app.screen, AlertsScreen)
        table = app.screen.query_one(AlertsTable)
        assert table.row_count == 2
        first, second = (table.row_cells(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in (0, 1))
        assert [c if isinstance(c, str) else c.plain for c in first[1:5]] == [
            "active",
            "critical",
            "budget exceeded",
            TAG,
        ]
        assert second[1].plain != "active" and second[3].plain == "budget warning"
        assert "budget exceeded" in first[5].plain
        # A tick that changes no alert hands the view the same tuple: the table is not touched.
        before = frame.alerts
        frame = await advance(app, clock, 1)
        assert frame.alerts is before
        sid = frame.session_id
    with Store.open(budget_ctx.db_path, readonly=True) as store:
        stored = [(a["kind"], a["active"]) for a in store.alerts(sid)]
    assert stored == [(BUDGET_WARNING, False), (BUDGET_EXCEEDED, True)]


async def test_no_budget_no_alerts_and_the_view_says_so(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        frame = await advance(app, clock, 15)
        await pilot.press("4")
        await pilot.pause()
        assert frame.alerts == () and app.screen.query_one(AlertsTable).row_count == 0
        assert "no alerts this session" in str(app.screen.query_one("#notes").render())


async def test_attached_shows_the_recorders_alerts_without_evaluating_rules(budget_ctx, clock):
    rec = _recorder(budget_ctx, clock)
    try:
        _steps(rec, clock, 12)
        app = make_app(budget_ctx, clock)
        notified = Notified()
        async with app.run_test(size=(120, 40), message_hook=notified) as pilot:
            frame = await advance(app, clock, 1)
            await pilot.pause()
            feed = app.poller.feed
            assert isinstance(feed, AttachedFeed) and not hasattr(feed, "alerts")  # no engine of its own
            assert [(a.kind, a.active) for a in frame.alerts] == [(BUDGET_EXCEEDED, True), (BUDGET_WARNING, False)]
            assert frame.alerts[0].key.startswith("s")  # the store's rows, by id
            assert "▲ 1 alert (4)" in _header(app)
            assert any(n.title == "critical: budget exceeded" for n in notified)
            # The recorder lifts the cap: its clear reaches the app with its next commit.
            rec.observers[0].engine.book.define([])
            _steps(rec, clock, 1)
            frame = await advance(app, clock, 1)
            await pilot.pause()
            assert frame.active_alerts == 0 and all(not a.active for a in frame.alerts)
            assert "alert" not in _header(app)
    finally:
        rec.close("clean")


async def test_attached_shows_a_manual_tag_from_the_recorders_session(demo_ctx, clock):
    rec = _recorder(demo_ctx, clock, alerts=False)
    try:
        _steps(rec, clock, 20)  # the notebook (pid 34500, untagged) started at t=15 s
        rec.attributor.set_manual(34500, "notebook-alice")
        _steps(rec, clock, 1)
        app = make_app(demo_ctx, clock)
        async with app.run_test(size=(120, 40)) as pilot:
            # Each demo backend simulates from its own start: this app's box shows the notebook from its t=15 s.
            frame = await advance(app, clock, 16)
            proc = next(p for p in frame.processes if p.pid == 34500)
            # This app's own rules would say untagged; the recorder's session says manual.
            assert (proc.tag, proc.source) == ("notebook-alice", "manual")
            assert proc.used_memory_bytes  # VRAM still from this app's poll: the store has none per process
            await pilot.press("3")
            await pilot.pause()
            cells = app.screen.query_one(ProcessTable).row_cells("34500@0")
            assert (cells[5].plain, cells[6].plain) == ("notebook-alice", "manual")
    finally:
        rec.close("clean")


async def test_attached_without_a_gpu_poll_shows_the_recorders_last_step(demo_ctx, clock, monkeypatch):
    rec = _recorder(demo_ctx, clock, alerts=False)
    try:
        _steps(rec, clock, 25)

        def no_backend(**kwargs):
            raise RuntimeError("NVML: insufficient permissions")

        monkeypatch.setattr(demo_ctx, "open_backend", no_backend)
        app = make_app(demo_ctx, clock)
        async with app.run_test(size=(120, 40)):
            frame = await advance(app, clock, 1)
            assert isinstance(app.poller.feed, AttachedFeed) and app.poller.feed.backend is None
            with Store.open(demo_ctx.db_path, readonly=True) as store:
                step = {g["index"]: g for g in store.latest_gpu_samples(rec.session_id)}
            assert step[0]["t"] == 20.0  # the last 10 s series step, not the last tick
            assert [g.utilization_pct for g in frame.gpus] == [step[i]["utilization"] * 100 for i in range(5)]
            assert all(g.memory_total_bytes is None for g in frame.gpus)  # not in the store
            assert any("cannot poll the GPUs here" in n and "insufficient permissions" in n for n in frame.notes)
            assert {(p.pid, p.tag) for p in frame.processes} >= {(31001, TAG), (34500, "untagged:alice/python")}
    finally:
        rec.close("clean")


def test_live_processes_drop_an_exited_process_after_a_series_step(demo_ctx, clock):
    rec = _recorder(demo_ctx, clock, alerts=False)
    try:
        _steps(rec, clock, 20)
        with Store.open(demo_ctx.db_path, readonly=True) as store:
            assert 34500 in {p["pid"] for p in store.live_processes(rec.session_id)}
        _steps(rec, clock, 70)  # the notebook exits at t=75 s; its row stops being refreshed
        with Store.open(demo_ctx.db_path, readonly=True) as store:
            live = store.live_processes(rec.session_id)
        assert 34500 not in {p["pid"] for p in live}
        assert {p["pid"] for p in live} >= {31001, 31002, 32010}
    finally:
        rec.close("clean")


def test_the_alert_log_keeps_active_ones_and_a_bounded_tail_of_cleared():
    from gputab.alerts.observer import WARNING, Alert

    log = AlertLog(keep_cleared=3)
    for i in range(5):
        a = Alert("idle_money", WARNING, f"GPU 0 idle #{i}", 100.0 + i, gpu=0)
        log.add(a)
        log.add(dataclasses.replace(a, ended_at=100.5 + i))
    log.add(Alert("idle_money", WARNING, "GPU 1 idle", 200.0, gpu=1))
    views = log.views
    assert [v.message for v in views] == ["GPU 1 idle", "GPU 0 idle #4", "GPU 0 idle #3", "GPU 0 idle #2"]
    assert views[1].key == "a5"  # the fifth raise; its clear kept that key rather than taking a new one
    raised, cleared = log.take_changes()
    assert (len(raised), len(cleared)) == (6, 5) and log.take_changes() == ((), ())
    assert log.views is views and log.active_count == 1 and log.critical_count == 0


async def test_an_unwritable_database_still_raises_alerts_in_memory(budget_ctx, clock, tmp_path):
    from gputab.live.feed import MemoryFeed

    (tmp_path / "not-a-dir").write_text("")
    budget_ctx.db_path = tmp_path / "not-a-dir" / "demo.db"
    app = make_app(budget_ctx, clock)
    notified = Notified()
    async with app.run_test(size=(80, 24), message_hook=notified) as pilot:
        frame = await advance(app, clock, 12)
        await pilot.pause()
        assert isinstance(app.poller.feed, MemoryFeed)
        assert [a.kind for a in frame.alerts if a.active] == [BUDGET_EXCEEDED]
        assert any(n.title == "critical: budget exceeded" for n in notified)
