"""Budgets in the live view attached to a running recorder (`gputab` while `gputab record` writes the database):
the alerts view shows the same budgets table as the recording view (the database's and the config's budgets, each
job's spend in the period over every session, where it is heading, whether it stops), read from the store alone:
the viewer never creates, migrates or writes anything."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner
from sqlite_utils import Database
from test_alerts_tui import _recorder as recorder  # a `gputab record` of the demo box in this process
from tui_support import make_app

from gputab.budgets.model import Budget
from gputab.cli import cli
from gputab.config.settings import Config
from gputab.live.attached_feed import AttachedFeed
from gputab.live.frame import budget_views
from gputab.recording.budget_keeper import stored_book
from gputab.recording.recorder import Recorder
from gputab.store import Store
from gputab.store.schema import migrate
from gputab.tui.alerts_screen import AlertsScreen
from gputab.tui.format import money
from gputab.tui.widgets.budgets import BudgetsTable

LORA = "llama3-8b-lora"
EVAL = "eval-mmlu"


def steps(rec: Recorder, clock, n: int):
    tick = None
    for _ in range(n):
        clock.advance(1.0)
        tick = rec.step()
    rec._commit()  # what the recorder does every commit_interval
    return tick


def data_version(db) -> tuple[int, ...]:
    """What would change if anything wrote the database: its size, and every table's row count."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return tuple(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)
    finally:
        conn.close()


async def test_attached_view_shows_the_recorders_budgets(demo_ctx, clock):
    demo_ctx._config = Config(budgets={EVAL: 50.0})
    first = recorder(demo_ctx, clock)
    steps(first, clock, 20)
    first.close("clean")
    with Store.open(demo_ctx.db_path, readonly=True) as store:
        before = {j["tag"]: j["cost_usd"] for j in store.jobs(1)}
    r = CliRunner().invoke(
        cli, ["--db", str(demo_ctx.db_path), "budget", "set", "llama3-*", "500", "--period", "month", "--stop"]
    )
    assert r.exit_code == 0, r.output
    clock.advance(60.0)
    rec = recorder(demo_ctx, clock)
    try:
        tick = steps(rec, clock, 15)
        own = {b.tag: b for b in budget_views(rec.observers[0], clock.wall(), tick.jobs)}  # the recording view's
        assert set(own) == {LORA, EVAL}
        versions = data_version(demo_ctx.db_path)
        app = make_app(demo_ctx, clock)
        async with app.run_test(size=(120, 40)) as pilot:
            await app.feed_ready()
            frame = await app.poll_now()
            assert isinstance(app.poller.feed, AttachedFeed)
            shown = {b.tag: b for b in frame.budgets}
            assert set(shown) == set(own)
            for tag, b in shown.items():
                o = own[tag]
                assert (b.glob, b.cap_usd, b.period, b.stops) == (o.glob, o.cap_usd, o.period, o.stops)
                assert b.spent_usd == pytest.approx(o.spent_usd, rel=1e-9)
                assert b.seconds_to_cap == pytest.approx(o.seconds_to_cap, rel=1e-9)
                assert b.projected_over_usd == pytest.approx(o.projected_over_usd, rel=1e-9)
            lora = shown[LORA]
            assert (lora.glob, lora.period, lora.stops) == ("llama3-*", "month", True)  # the database's
            now = next(j["cost_usd"] for j in tick.jobs if j["tag"] == LORA)
            assert lora.spent_usd == pytest.approx(before[LORA] + now)  # both sessions: this month's spend
            assert (shown[EVAL].glob, shown[EVAL].cap_usd, shown[EVAL].stops) == (EVAL, 50.0, False)  # the config's

            await pilot.press("4")
            await pilot.pause()
            assert isinstance(app.screen, AlertsScreen)
            table = app.screen.query_one(BudgetsTable)
            assert table.display and table.row_count == 2
            key = f"{LORA}\0llama3-*"
            assert table.get_cell(key, "budget").plain == "llama3-*"
            assert table.get_cell(key, "stop").plain == "stops"
            assert table.get_cell(key, "spent").plain == money(lora.spent_usd)
            assert table.get_cell(key, "period").plain == "month"
            assert table.get_cell(f"{EVAL}\0{EVAL}", "cap").plain == "$50.00"
            assert data_version(demo_ctx.db_path) == versions  # the viewer wrote nothing

            # A budget set while both run reaches the attached view with the recorder's next commit.
            r = CliRunner().invoke(cli, ["--db", str(demo_ctx.db_path), "budget", "set", EVAL, "0.01", "--stop"])
            assert r.exit_code == 0, r.output
            steps(rec, clock, 1)
            versions = data_version(demo_ctx.db_path)
            frame = await app.poll_now()
            await pilot.pause()
            ev = next(b for b in frame.budgets if b.tag == EVAL)
            assert (ev.cap_usd, ev.stops, ev.spent_pct >= 100) == (0.01, True, True)
            assert table.get_cell(f"{EVAL}\0{EVAL}", "to_cap").plain == "over"
        assert data_version(demo_ctx.db_path) == versions  # the viewer wrote nothing
    finally:
        rec.close("clean")


def test_a_reader_of_a_database_from_before_budgets_were_stored_migrates_nothing(tmp_path):
    old = tmp_path / "old.db"
    db = Database(old)
    migrate(db, old, stop_before="m008_budgets")
    db.close()
    conn = sqlite3.connect(old)
    names = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY name")]
    conn.close()
    with Store.open(old, readonly=True, create=False) as store:
        book = stored_book(store, [Budget(EVAL, 5.0, origin="config")], 0.0, None)
    assert [b.tag for b in book.budgets] == [EVAL]
    conn = sqlite3.connect(old)
    assert [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY name")] == names
    assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'budgets'").fetchone()
    conn.close()
