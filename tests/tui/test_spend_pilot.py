"""Pilot tests of the Spend screen: reached from the live view and the review, the same figures as `gputab spend`,
days cycled, the histogram following the cursor, hostile tags and hosts shown as text, and no database."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from rich.text import Text
from textual.widgets import DataTable
from tui_support import advance, make_app, until

from gputab.cli.main import cli
from gputab.config.settings import Config
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DEMO_START_WALL, DemoBackend, FakeClock
from gputab.store import Store
from gputab.tui.format import money
from gputab.tui.literal import fit
from gputab.tui.review import ReviewApp, SessionsScreen
from gputab.tui.screenshots import record_demo_session
from gputab.tui.spend_screen import SpendScreen

EVIL_TAG = "[bold red]pwn[/bold red] $(x)"
EVIL_HOST = "[link=https://example.invalid]box[/link]"


@pytest.fixture(autouse=True)
def _utc(utc):
    """Days cut in UTC, whatever the machine's zone."""


def record_evil(db, day: int = 3) -> None:
    """A demo session on a host with a markup-like name, with the LoRA job retagged to a markup-like tag."""
    clock = FakeClock(wall_start=DEMO_START_WALL + day * 86400.0)
    backend = DemoBackend(clock=clock, wall_clock=clock.wall)
    backend.host = EVIL_HOST
    rec = Recorder(backend, Store(db), Config(), clock=clock, wall_clock=clock.wall)
    rec.start()
    assert rec.attributor.retag("llama3-8b-lora", EVIL_TAG)
    for _ in range(60):
        clock.advance(1.0)
        rec.step()
    rec.close()


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "spend.db"
    record_demo_session(path, 120)
    record_demo_session(path, 60, day=2, seed=1)
    record_demo_session(path, 90, day=4, host="gpu-node-7")
    return path


async def open_spend(app, pilot) -> SpendScreen:
    """Press $ over the review's sessions screen; the Spend screen it opens."""
    await pilot.pause()
    await pilot.press("dollar_sign")
    await pilot.pause()
    assert isinstance(app.screen, SpendScreen)
    return app.screen


def _cells(table: DataTable) -> list[list[str]]:
    return [[c.plain if isinstance(c, Text) else str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_from_the_review_with_the_cli_figures(db):
    app = ReviewApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        # The key is in the sessions screen's footer (composed after the screen's bindings are known).
        await until(pilot, lambda: "Spend" in app.export_screenshot(), what="Spend in the footer")
        await pilot.press("dollar_sign")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SpendScreen)
        assert screen.day_list[-1] == "2026-01-05" and len(screen.day_list) == 30
        rows = _cells(screen.query_one("#spend-tags", DataTable))
        out = json.loads(
            CliRunner().invoke(cli, ["spend", "--db", str(db), "--since", screen.day_list[0], "--utc", "--json"]).output
        )
        # The same rows as `gputab spend --by tag`, in the same order, with the same costs.
        assert [(r[0], r[7], r[1]) for r in rows] == [(r["tag"], r["host"], money(r["cost_usd"])) for r in out["rows"]]
        # Wasted dollars: the CLI's waste_usd, row by row.
        assert [r[5] for r in rows] == [money(r["waste_usd"]) for r in out["rows"]]
        assert any(r["waste_usd"] for r in out["rows"])
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, SessionsScreen)


async def test_from_the_live_view(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 30)
        assert "Spend" in app.export_screenshot()
        await pilot.press("dollar_sign")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SpendScreen)
        tags = [r[0] for r in _cells(screen.query_one("#spend-tags", DataTable))]
        # The session being recorded, as of its last commit: the demo's jobs are there.
        assert "llama3-8b-lora" in tags and "(idle)" in tags
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, SpendScreen)


@pytest.mark.slow
async def test_days_cycle_and_the_histogram_follows_the_cursor(db):
    app = ReviewApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_spend(app, pilot)
        table = screen.query_one("#spend-tags", DataTable)
        first = screen.rows[0].key
        assert first in str(screen.query_one("#spend-hist-title").render())
        bins = list(screen.query_one("#spend-hist").bins)
        assert sum(bins) > 0
        await pilot.press("down")
        await pilot.pause()
        assert table.cursor_row == 1
        second = screen.rows[1]
        assert (second.key, second.host) != (screen.rows[0].key, screen.rows[0].host)
        title = str(screen.query_one("#spend-hist-title").render())
        assert second.key in title and second.host in title
        assert screen.query_one("#spend-hist").bins != bins
        await pilot.press("w")
        await pilot.pause()
        assert len(screen.day_list) == 90 and "(90 days" in str(screen.query_one("#spend-title").render())
        await pilot.press("w")
        await pilot.pause()
        # 7 days ending Jan 5: the first session (Jan 1) is still in, and every day is a column of the bars.
        assert len(screen.day_list) == 7 and screen.query_one("#spend-bars").days == screen.day_list


async def test_hostile_tags_and_hosts_are_text(tmp_path):
    db = tmp_path / "evil.db"
    record_evil(db)
    app = ReviewApp(db)
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await open_spend(app, pilot)
        rows = _cells(screen.query_one("#spend-tags", DataTable))
        assert (
            fit(EVIL_TAG, 24) in [r[0] for r in rows]
            and fit(EVIL_TAG, 24).endswith("…")
            and EVIL_HOST in [r[7] for r in rows]
        )
        svg = app.export_screenshot()
        # Markup would have been eaten (bold, a link); as text, the brackets are on screen.
        assert "[bold&#160;red]pwn" in svg or "[bold red]pwn" in svg
        assert "[link=https://example.invalid]box" in svg.replace("&#160;", " ")
        legend = screen.query_one("#spend-legend").render()
        assert EVIL_TAG in str(legend)


async def test_no_database_and_an_empty_one(tmp_path):
    app = ReviewApp(tmp_path / "none.db")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.push_screen(SpendScreen([tmp_path / "missing.db"]))
        await pilot.pause()
        assert "no gputab database" in str(app.screen.query_one("#spend-title").render())
        assert not (tmp_path / "missing.db").exists()
    Store.open(tmp_path / "empty.db").close()
    app = ReviewApp(tmp_path / "empty.db")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("dollar_sign")
        await pilot.pause()
        assert "no sessions recorded yet" in str(app.screen.query_one("#spend-title").render())


async def test_80x24_shows_each_jobs_cost_without_scrolling(db):
    from tui_support import screen_lines

    app = ReviewApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_spend(app, pilot)
        lines = screen_lines(app)
        header = next(i for i, ln in enumerate(lines) if ln.startswith(" job ") and " cost " in ln)
        for r, line in zip(screen.rows[:3], lines[header + 1 :], strict=False):
            assert line.startswith(f" {fit(r.key, 24)}") and money(r.sums["cost_usd"]) in line, line
