"""Budgets in the live view (issue 14 in the TUI): the alerts view lists each budget that holds a job of this
session, with its glob, cap, period, spend in the period (earlier sessions included), share, when the cap is
reached, how the job ends against it, and whether the recorder stops it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from tui_support import advance, make_app

from gputab.cli import cli
from gputab.live.frame import BudgetView
from gputab.sampling.demo import DEMO_BUDGETS
from gputab.tui.alerts_screen import AlertsScreen
from gputab.tui.format import money
from gputab.tui.widgets.budgets import BudgetsTable, budget_cells
from gputab.tui.widgets.jobs import eta

(LORA, CAP) = next(iter(DEMO_BUDGETS.items()))


def cell(table: BudgetsTable, key: str, column: str) -> str:
    return table.get_cell(key, column).plain


@pytest.mark.slow
async def test_alerts_view_shows_the_demos_budget_with_this_sessions_spend(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        frame = await advance(app, clock, 30)
        await pilot.press("4")
        await pilot.pause()
        assert isinstance(app.screen, AlertsScreen)
        job = next(j for j in frame.jobs if j.tag == LORA)
        (b,) = [b for b in frame.budgets if b.tag == LORA]
        assert (b.glob, b.cap_usd, b.period, b.stops) == (LORA, CAP, "total", False)
        assert b.spent_usd == pytest.approx(job.cost_usd)  # one session: what the job cost
        table = app.screen.query_one(BudgetsTable)
        assert table.display and table.row_count == len(frame.budgets)
        key = f"{LORA}\0{LORA}"
        assert cell(table, key, "cap") == "$15.00" and cell(table, key, "period") == "total"
        assert cell(table, key, "pct") == f"{100 * job.cost_usd / CAP:.0f}%"
        want = (CAP - job.cost_usd) / job.burn_rate_usd_per_hour * 3600
        assert cell(table, key, "to_cap") == eta(want)  # under the header "cap in": not "cap in in 1h36m"
        assert cell(table, key, "stop") == "warns"
        # Every budgeted job of the frame is a row; jobs without a budget are not.
        assert {b.tag for b in frame.budgets} <= {j.tag for j in frame.jobs}


@pytest.mark.slow
async def test_a_stored_glob_budget_counts_earlier_sessions_and_says_it_stops(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)):
        first = await advance(app, clock, 20)
    spent_before = next(j.cost_usd for j in first.jobs if j.tag == LORA)
    r = CliRunner().invoke(
        cli, ["--db", str(demo_ctx.db_path), "budget", "set", "llama3-*", "500", "--period", "month", "--stop"]
    )
    assert r.exit_code == 0, r.output
    clock.advance(60.0)
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        frame = await advance(app, clock, 10)
        await pilot.press("4")
        await pilot.pause()
        job = next(j for j in frame.jobs if j.tag == LORA)
        (b,) = [b for b in frame.budgets if b.tag == LORA]
        assert (b.glob, b.cap_usd, b.period, b.stops) == ("llama3-*", 500.0, "month", True)
        assert b.spent_usd == pytest.approx(spent_before + job.cost_usd)  # a restart resets nothing
        table = app.screen.query_one(BudgetsTable)
        key = f"{LORA}\0llama3-*"
        assert cell(table, key, "budget") == "llama3-*" and cell(table, key, "stop") == "stops"
        assert cell(table, key, "spent") == money(b.spent_usd)


async def test_80x24_shows_the_budget_columns_whole(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await advance(app, clock, 30)
        await pilot.press("4")
        await pilot.pause()
        table = app.screen.query_one(BudgetsTable)
        shown = [c.key.value for c in table.ordered_columns]
        for must in ("job", "cap", "spent", "pct", "to_cap", "at_end", "stop"):
            assert must in shown
        assert not table.show_horizontal_scrollbar
        assert sum(c.get_render_width(table) for c in table.ordered_columns) <= table.size.width


def test_budget_cells_are_literal_and_say_over_and_projected_overrun():
    over = BudgetView("[bold]job", "[red]job*", 10.0, "day", 12.5, 0.0, 4.0, True)
    cells = [getattr(c, "plain", c) for c in budget_cells(over)]
    assert cells[0] == "[bold]job" and cells[1] == "[red]job*"  # outside text, not markup
    assert cells[5] == "125%" and cells[6] == "over" and cells[7] == "+$4.00 over" and cells[8] == "stops"
    under = BudgetView("a", "a", 10.0, "total", 2.0, 3600.0, -1.5, False)
    cells = [getattr(c, "plain", c) for c in budget_cells(under)]
    assert cells[6] == "1h00m" and cells[7] == "$1.50 under" and cells[8] == "warns"
    idle = BudgetView("a", "a", 10.0, "total", 2.0, None, None, False)
    cells = [getattr(c, "plain", c) for c in budget_cells(idle)]
    assert cells[6] == "-" and cells[7] == "-"


def test_a_four_digit_share_fits_its_column_and_the_time_to_cap_does_not_repeat_in():
    from gputab.tui.widgets.budgets import BudgetsTable

    widths = {key: (label, w) for key, label, w in BudgetsTable.COLUMNS}
    far_over = BudgetView("a", "a", 10.0, "total", 118.8, None, None, False)
    pct = budget_cells(far_over)[5].plain
    assert pct == "1188%" and len(pct) <= widths["pct"][1]  # not cut to "118…"
    soon = BudgetView("a", "a", 10.0, "total", 2.0, 5760.0, None, False)
    assert widths["to_cap"][0] == "cap in" and budget_cells(soon)[6].plain == "1h36m"
