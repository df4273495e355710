"""The review's sessions table fits the terminal: whole columns, no horizontal scrollbar at 80x24, and a cell that
is cut ends in an ellipsis (issue 16, "Text")."""

from __future__ import annotations

import pytest
from test_review import three_sessions

from gputab.tui.review import ReviewApp
from gputab.tui.review.sessions_screen import SessionsScreen, SessionsTable
from gputab.tui.screenshots import record_demo_session as record

LONG_HOST = "gpu-node-with-a-very-long-name.cluster.example.org"


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "review.db"
    three_sessions(path)
    record(path, 40, day=6, host=LONG_HOST)
    return path


def plain(cell) -> str:
    return getattr(cell, "plain", str(cell))


def whole_columns(table, size, must: tuple[str, ...]) -> list[str]:
    """The keys of the columns ``table`` shows, after checking there is no horizontal scrollbar (each is whole)
    and that the columns ``must`` are among them."""
    assert not table.show_horizontal_scrollbar
    assert table.virtual_size.width <= table.scrollable_content_region.width, (size, table.virtual_size)
    shown = [c.key.value for c in table.ordered_columns]
    assert set(must) <= set(shown), (size, shown)
    return shown


def count_cuts(table, shown: list[str], rows) -> int:
    """How many shown cells differ from their whole text; each must be that text cut, ending in "…".

    ``rows``: (row key, whole cells by column key) for every row."""
    cut = 0
    for row_key, full in rows:
        drawn = [plain(c) for c in table.get_row(row_key)]
        assert len(drawn) == len(shown)
        for key, text in zip(shown, drawn, strict=True):
            want = full[key]
            if text != want:
                cut += 1
                assert text.endswith("…") and want.startswith(text[:-1]), (key, text, want)
    return cut


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 50)])
async def test_sessions_table_has_whole_columns_and_cuts_with_an_ellipsis(db, size):
    app = ReviewApp(db)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SessionsScreen)
        table = screen.query_one("#sessions", SessionsTable)
        await pilot.pause()
        shown = whole_columns(table, size, ("id", "start", "cost", "duration", "end"))
        all_keys = [k for k, _, _ in SessionsTable.COLUMNS]
        if size[0] >= 120:
            assert {"host", "GPUs", "jobs"} <= set(shown)
        rows = [(str(row.id), dict(zip(all_keys, map(plain, screen._cells(row)), strict=True))) for row in screen.shown]
        cut = count_cuts(table, shown, rows)
        # The long host is cut at 120 columns (at 80 it is left out): the check above ran on a cut.
        if size[0] == 120:
            assert cut >= 1


async def test_sessions_table_80x24_screen_text_has_no_cut_without_ellipsis(db):
    """What the terminal shows: the end reason of every session is on its row, whole."""
    app = ReviewApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        lines = [
            "".join(seg.text for seg in strip)
            for strip in (screen.query_one(SessionsTable).render_line(y) for y in range(1, 5))
        ]
        for row, line in zip(screen.shown, lines, strict=False):
            assert (row.end_reason or "-") in line, (row.end_reason, line)
            assert len(line.rstrip()) <= 80


async def test_clicking_a_header_sorts_by_that_column_whichever_columns_are_shown(db):
    app = ReviewApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        table = screen.query_one(SessionsTable)
        x = 0
        for column in table.ordered_columns:
            if column.key.value == "cost":
                break
            x += column.get_render_width(table)
        await pilot.click(SessionsTable, offset=(x + 2, 0))
        await pilot.pause()
        assert "sorted by cost ↓" in str(screen.query_one("#sessions-title").render())
        costs = [r.cost_usd for r in screen.shown]
        assert costs == sorted(costs, reverse=True) and len(set(costs)) > 1


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)])
async def test_session_jobs_table_has_whole_columns_and_cuts_with_an_ellipsis(db, size):
    """The session screen's jobs table: whole columns chosen by priority, no horizontal scrollbar, every shown cell
    whole or ending in "…"; at 200 columns every column is shown."""
    from test_review import open_session

    from gputab.tui.review.session_screen import SessionJobsTable, SessionScreen

    app = ReviewApp(db)
    async with app.run_test(size=size) as pilot:
        screen = await open_session(app, pilot, 4)  # the long host's session, the demo's tags
        assert isinstance(screen, SessionScreen)
        table = screen.query_one("#session-jobs", SessionJobsTable)
        await pilot.pause()
        most_useful = ("tag", "cost_usd", "cost_per_effective_gpu_hour_usd", "waste_pct", "cost_per_sample_usd")
        shown = whole_columns(table, size, most_useful)
        all_keys = [k for k, _, _ in SessionJobsTable.COLUMNS]
        if size[0] >= 200:
            assert shown == all_keys
        rows = [(job["tag"], {key: table.cell(job["tag"], key) for key in all_keys}) for job in screen.jobs]
        cut = count_cuts(table, shown, rows)
        assert cut >= 1  # the demo's "untagged:alice/python" is longer than the job column: the check ran on a cut


async def test_session_screen_cuts_each_mig_line_to_the_width_with_an_ellipsis(db):
    from test_review import open_session

    from gputab.tui.mig_text import stored_lines

    gpu = {
        "index": 0,
        "mig": [
            {
                "profile": "1g.10gb+me-with-a-much-longer-profile-name-than-any-real-one",
                "gpu_instance_id": gi,
                "compute_instance_id": 0,
                "slices": 1,
                "rate_per_hour": 0.62,
                "avg_utilization": 0.5,
                "peak_memory_used_bytes": 5 * 2**30,
                "memory_total_bytes": 10 * 2**30,
                "cost_usd": 1.25,
            }
            for gi in (7, 8)
        ],
    }
    full = [line.plain for line in stored_lines(gpu)]
    assert max(len(line) for line in full) > 78  # longer than the screen: cut, not wrapped
    app = ReviewApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_session(app, pilot, 4)
        mig = screen.query_one("#session-mig")
        screen.mig_lines = stored_lines(gpu)
        mig.display = True
        screen._show_mig()
        await pilot.pause()
        lines = str(mig.render()).split("\n")
        assert len(lines) == len(full) and mig.size.height == len(full)
        for text, want in zip(lines, full, strict=True):
            assert len(text) <= 78
            assert text == want or (text.endswith("…") and want.startswith(text[:-1])), (text, want)
        assert any(text.endswith("…") for text in lines)
