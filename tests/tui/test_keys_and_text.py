"""Keys and text of the live app: every key in the footer or under `?`, footers that fit 80 columns, `?` grouped
and over the view (not squeezing it), cells cut with an ellipsis in cells, full text one key away."""

from __future__ import annotations

import pytest
from rich.cells import cell_len
from textual.widgets import Footer
from textual.widgets._footer import FooterKey
from tui_support import advance, make_app

from gputab.live.frame import ProcessView
from gputab.live.sm_share import own_sm_share
from gputab.tui.details_screen import DetailsScreen
from gputab.tui.keys_screen import KeysScreen, own_bindings
from gputab.tui.widgets.jobs import JobsTable
from gputab.tui.widgets.table import KeyedTable

VIEWS = ("1", "2", "3", "4")


def footer_keys(screen) -> dict[str, FooterKey]:
    return {k.key: k for k in screen.query_one(Footer).query(FooterKey)}


def keys_text(app) -> str:
    screen = app.screen
    assert isinstance(screen, KeysScreen)
    return "\n".join(str(s.render()) for s in screen.query("Static"))


@pytest.mark.parametrize("view", VIEWS)
async def test_footer_fits_80_columns_with_quit_and_sessions(demo_ctx, clock, view):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await advance(app, clock, 2)
        await pilot.press(view)
        await pilot.pause()
        keys = footer_keys(app.screen)
        for key in ("q", "s", "question_mark"):
            assert key in keys, f"{key} not in the footer of view {view}"
            region = keys[key].region
            assert region.width > 0 and region.right <= 80, f"{key} cut at 80 columns in view {view}"


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.slow
async def test_every_key_is_in_the_footer_or_under_question_mark(demo_ctx, clock, view):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 2)
        await pilot.press(view)
        await pilot.pause()
        screen = app.screen
        own = own_bindings(type(app)) + own_bindings(type(screen))
        in_footer = set(footer_keys(screen))
        body_width = screen.query_one("#view-title").size.width
        await pilot.press("question_mark")
        await pilot.pause()
        listed = keys_text(app)
        for b in own:
            assert b.key in in_footer or b.description in listed, f"{b.key} ({b.description}) is nowhere"
        # gputab's groups, not Textual's generic keys
        for group in ("Views", "Session", "Tables"):
            assert group in listed
        assert ("This view" in listed) == bool(own_bindings(type(screen)))
        assert "Copy selected text" not in listed and "Page Left" not in listed and "Focus Next" not in listed
        assert "ctrl+p" in listed  # the command palette (themes) is one key away
        # A dialog over the view: the view underneath keeps its full width.
        assert app.screen_stack[-2].query_one("#view-title").size.width == body_width
        await pilot.press("question_mark")
        await pilot.pause()
        assert not isinstance(app.screen, KeysScreen)


async def test_long_tag_is_cut_with_an_ellipsis_and_shown_in_full_on_enter(demo_ctx, clock):
    from gputab.live.frame import Frame, JobView

    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 2)
        tag = "a-very-long-training-run-name/学習"
        app.show(Frame(host="h", state="recording", jobs=(JobView(tag, 1.0, 2.0, 0.5, 0.4, 0.8, None, (0,)),)))
        await pilot.pause()
        table = app.screen.query_one(JobsTable)
        width = dict((k, w) for k, _, w in table._shown)["tag"]
        shown = table.get_cell(tag, "tag")
        assert cell_len(tag) > width and shown.plain.endswith("…") and shown.cell_len <= width
        assert tag.startswith(shown.plain[:-1])
        table.focus()
        table.move_cursor(row=table.get_row_index(tag))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailsScreen)
        assert tag in "\n".join(str(s.render()) for s in app.screen.query("Static"))
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DetailsScreen)


class _Table(KeyedTable):
    COLUMNS = (("tag", "tag", 10), ("n", "a long header", 4))


async def test_cells_are_cut_in_terminal_cells():
    from textual.app import App

    class A(App):
        def compose(self):
            yield _Table(id="t")

    async with A().run_test(size=(40, 10)) as pilot:
        t = pilot.app.query_one(_Table)
        t.sync([("a", ("学習ジョブの名前が長い", "1")), ("b", ("short", "2")), ("c", ("exactly-10", "3"))])
        await pilot.pause()
        cut = t.get_cell("a", "tag")
        assert cut.cell_len <= 10 and cut.plain.endswith("…") and cut.plain.startswith("学習ジョ")
        assert t.get_cell("b", "tag").plain == "short"
        assert t.get_cell("c", "tag").plain == "exactly-10"
        assert str(t.columns["n"].label) == "a l…"  # headers too are cut to their column, with an ellipsis


def _proc(pid, gpu, tag, sm):
    return ProcessView(
        pid=pid, gpu_index=gpu, user="u", command="c", used_memory_bytes=1, sm_pct=sm, tag=tag, source="env"
    )


def test_own_sm_share_sums_per_gpu_and_averages_over_the_jobs_gpus():
    procs = [
        _proc(1, 0, "a", 40.0),
        _proc(2, 0, "a", 20.0),
        _proc(3, 1, "a", 30.0),
        _proc(4, 1, "nb", 3.0),
        _proc(5, 2, "x", None),
    ]
    share = own_sm_share(procs)
    assert share["a"] == pytest.approx(45.0)  # (60 on GPU 0 + 30 on GPU 1) / 2
    assert share["nb"] == pytest.approx(3.0)
    assert "x" not in share  # not reported: unknown, not 0


async def test_job_columns_say_what_util_is_and_show_the_jobs_own_sm(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        frame = await advance(app, clock, 30)
        await pilot.pause()
        table = app.screen.query_one(JobsTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert "GPU util" in labels and "own SM" in labels
        nb = "untagged:alice/python"
        own = own_sm_share(frame.processes)[nb]
        assert table.get_cell(nb, "sm").plain == f"{own:.0f}%"
        # The notebook shares GPU 0 with the busy job: its GPU util is the whole GPU's, its own SM is small.
        gpu_util = float(table.get_cell(nb, "util").plain.rstrip("%"))
        assert gpu_util > 50 > own


@pytest.mark.slow
async def test_80x24_shows_every_decided_column_whole_and_the_quit_key(demo_ctx, clock):
    """At 80 columns: cost, burn, $/1k samples, waste %, at end (and the GPUs), each whole, and ``q Quit``."""
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        frame = await advance(app, clock, 120)
        await pilot.pause()
        table = app.screen.query_one(JobsTable)
        keys = list(table.columns)
        assert keys == ["tag", "cost", "burn", "forecast_short", "per_1k", "waste_pct", "gpus"]
        labels = [str(c.label) for c in table.columns.values()]
        assert labels == ["job (tag)", "cost", "burn", "at end", "$/1k", "waste", "GPUs"]
        right = 0
        for key in keys:
            right += table.columns[key].get_render_width(table)
            assert right <= table.size.width, f"{key} is past the right edge at 80 columns"
        # Every figure whole (only a tag may be cut, with its ellipsis), and what they say is the frame's.
        for job in frame.jobs:
            for key in keys[1:]:
                assert "…" not in table.get_cell(job.tag, key).plain, (job.tag, key)
            waste = table.get_cell(job.tag, "waste_pct").plain
            assert waste == (f"{job.waste_pct:.0f}%" if job.waste_top_reason else "-")
        running = [j for j in frame.jobs if j.forecast_state == "running"]
        assert running, "the demo has a job with a forecast by now"
        for job in running:
            cell = table.get_cell(job.tag, "forecast_short").plain
            assert cell.startswith(f"${job.projected_cost_usd:.2f}"[:4]) and " in " not in cell
        footer = "".join(str(w.render()) for w in app.screen.query("FooterKey"))
        assert "Quit" in footer
        region = app.screen.query_one("FooterKey:last-of-type").region
        assert region.right <= 80


@pytest.mark.parametrize("width", range(40, 261, 7))
def test_job_columns_drop_the_least_useful_first(width):
    table = JobsTable.__new__(JobsTable)  # columns_for is a pure function of the width
    shown = table.columns_for(width)
    keys = [k for k, _, _ in shown]
    assert sum(w + 2 for _, _, w in shown) + 2 <= width or len(shown) == 1
    assert keys == [k for k, _, _ in JobsTable.COLUMNS if k in keys]  # the table's own order
    narrow = width < JobsTable.NARROW_WIDTH
    assert not set(keys) & (JobsTable.WIDE_ONLY if narrow else JobsTable.NARROW_ONLY)
    assert "tag" in keys and ("cost" in keys or width < 30)
    used = sum(w + 2 for _, _, w in shown) + 2
    widths = {k: w for k, _, w in JobsTable.COLUMNS}
    for key in JobsTable.PRIORITY:
        if key in keys or key == "evidence" or key in (JobsTable.WIDE_ONLY if narrow else JobsTable.NARROW_ONLY):
            continue
        # A column left out did not fit next to the more useful ones.
        w = JobsTable.NARROW.get(key, ("", widths[key]))[1] if narrow else widths[key]
        assert used + w + 2 > width, f"{key} would fit at {width}"
