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


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 50)])
async def test_sessions_table_has_whole_columns_and_cuts_with_an_ellipsis(db, size):
    app = ReviewApp(db)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SessionsScreen)
        table = screen.query_one("#sessions", SessionsTable)
        await pilot.pause()
        # No horizontal scrollbar: every column shown is whole.
        assert not table.show_horizontal_scrollbar
        assert table.virtual_size.width <= table.scrollable_content_region.width, (size, table.virtual_size)
        shown = [c.key.value for c in table.ordered_columns]
        all_keys = [k for k, _, _ in SessionsTable.COLUMNS]
        for must in ("id", "start", "cost", "duration", "end"):
            assert must in shown, f"{must} not shown at {size}"
        if size[0] >= 120:
            assert {"host", "GPUs", "jobs"} <= set(shown)
        cut = 0
        for row in screen.shown:
            full = [plain(c) for c in screen._cells(row)]
            drawn = [plain(c) for c in table.get_row(str(row.id))]
            assert len(drawn) == len(shown)
            for key, text in zip(shown, drawn, strict=True):
                want = full[all_keys.index(key)]
                if text != want:
                    cut += 1
                    assert text.endswith("…") and want.startswith(text[:-1]), (key, text, want)
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
