"""Charts that carry information (issue 23): the $/h split into busy, waste and idle; live charts that scroll with
the newest sample at the right edge and say how long ago each label is; y ranges over the visible window with
round labels; a legend that names every series drawn or says how many more; charts that keep their rows."""

from __future__ import annotations

import math

import pytest
from tui_support import advance, make_app, screen_lines

from gputab.live.frame import Frame, GpuView, JobView
from gputab.live.history import History
from gputab.tui.widgets.chart import ChartSpec, Line, render_chart
from gputab.tui.widgets.chart_window import ago, live_span, nice_range
from gputab.tui.widgets.money import cost_spec, split_rates, split_spec

NAN = float("nan")


@pytest.mark.parametrize(
    "low,high",
    [(0.0, 0.37), (0.21, 0.26), (3.2, 3.2), (0.0, 0.0), (97.0, 1234.0), (0.0012, 0.0019), (-3.0, 7.0)],
)
def test_nice_range_holds_the_values_and_its_three_labels_are_round(low, high):
    bottom, top = nice_range(low, high)
    assert bottom <= low + 1e-12 and top >= high - 1e-12 and top > bottom
    step = (top - bottom) / 2
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1.0, 2.0, 2.5, 5.0, 10.0))
    for label in (bottom, bottom + step, top):  # each a whole number of steps: a round figure
        assert math.isclose(label / step, round(label / step), abs_tol=1e-9)
    if low >= 0:
        assert bottom >= 0  # a range of costs never dips under $0


def test_nice_range_follows_the_window_not_zero():
    assert nice_range(10.2, 10.9) == pytest.approx((10.0, 11.0))


def test_ago_labels_say_how_long_ago():
    assert [ago(s) for s in (0, 0.4, 45, 60, 150, 300, 3600, 5400, 86400 + 3 * 3600)] == [
        "now", "now", "-45s", "-1m", "-2m30s", "-5m", "-1h", "-1h30m", "-1d3h",
    ]  # fmt: skip


def _frame(t: float, utils: tuple[float | None, ...], idle_cost: float, rate: float = 4.0) -> Frame:
    gpus = tuple(
        GpuView(index=i, uuid=f"u{i}", name="H100", utilization_pct=u, rate_per_hour=rate, burn_rate_usd_per_hour=rate)
        for i, u in enumerate(utils)
    )
    jobs = (
        JobView("train", t * rate / 3600, rate, 0, 0, None, None),
        JobView("(idle)", idle_cost, rate, 0, 0, None, None, special=True),
    )
    return Frame(
        host="h", state="recording", elapsed_s=t, burn_rate_usd_per_hour=rate * len(utils), gpus=gpus, jobs=jobs
    )


def test_split_rates_busy_waste_and_idle_add_up_to_the_burn_rate():
    # GPU 0 held by "train" at 25 % then 75 %; GPU 1 held by nobody: (idle) grows at its $4/h.
    h = History()
    for t in range(1, 121):
        util = 25.0 if t <= 60 else 75.0
        h.add(_frame(float(t), (util, 0.0), idle_cost=t * 4.0 / 3600))
    frame = _frame(120.0, (75.0, 0.0), idle_cost=120 * 4.0 / 3600)
    times, busy, waste, idle = split_rates(frame, h, 300.0)
    assert len(times) == 120 and math.isnan(idle[0])  # no growth before the first point
    assert busy[30] == pytest.approx(1.0) and waste[30] == pytest.approx(3.0) and idle[30] == pytest.approx(4.0)
    assert busy[-1] == pytest.approx(3.0) and waste[-1] == pytest.approx(1.0) and idle[-1] == pytest.approx(4.0)
    for i in range(1, 120):
        assert busy[i] + waste[i] + idle[i] == pytest.approx(8.0)  # the burn rate, split
    spec = split_spec(frame, h, 300.0, "5 min")
    assert [line.label for line in spec.lines] == ["busy", "waste", "idle"]
    assert spec.y_max == 5.0  # a round figure above the window's highest ($4/h), not the $8/h of every GPU


def test_a_gpu_without_utilization_is_not_claimed_busy_or_waste():
    h = History()
    for t in range(1, 11):
        h.add(_frame(float(t), (None,), idle_cost=0.0))
    _, busy, waste, _ = split_rates(_frame(10.0, (None,), 0.0), h, 300.0)
    assert all(math.isnan(b) for b in busy) and all(math.isnan(w) for w in waste)


def test_live_charts_put_the_newest_sample_at_the_right_edge():
    h = History()
    for t in range(1, 31):
        h.add(_frame(float(t), (50.0,), 0.0))
    assert live_span(h, 300.0) == (30.0 - 300.0, 30.0)  # a young session: the line grows from the right
    assert live_span(h, None) == (30.0 - 60.0, 30.0)
    spec = cost_spec(_frame(30.0, (50.0,), 0.0), h, 300.0, "5 min")
    assert spec.t1 == 30.0 and spec.lines[0].times[-1] == 30.0
    axis = render_chart(spec, 60, 8)[-1].plain
    assert "-5m" in axis and "-2m30s" in axis and axis.rstrip().endswith("now")
    assert spec.y_min == 0.0 and spec.y_max >= max(spec.lines[0].values)


def test_the_legend_says_how_many_series_it_could_not_name():
    t = [0.0, 1.0]
    lines = tuple(Line(f"job-{k}", t, [1.0, 2.0], "red") for k in range(6))
    head = render_chart(ChartSpec("$ per job", lines, 10.0, 0.0, 1.0, more=3), 50, 6)[0].plain
    named = [k for k in range(6) if f"job-{k}" in head]
    assert named and named == list(range(len(named)))
    assert head.rstrip().endswith(f"+{6 - len(named) + 3} more") and len(head) <= 50
    wide = render_chart(ChartSpec("$ per job", lines, 10.0, 0.0, 1.0, more=3), 200, 6)[0].plain
    assert all(f"job-{k}" in wide for k in range(6)) and wide.rstrip().endswith("+3 more")


def test_a_compact_chart_keeps_its_legend_and_plot_rows_without_an_axis():
    spec = ChartSpec("util % (5 min)", (Line("util", [0.0, 10.0], [0.0, 100.0], "green"),), 100.0, 0.0, 10.0)
    lines = render_chart(spec, 40, 3)
    assert len(lines) == 3 and lines[0].plain.startswith("util % (5 min)")
    assert lines[1].plain.lstrip().startswith("100┤") and lines[2].plain.lstrip().startswith("0┤")
    assert "└" not in "".join(t.plain for t in lines)
    assert "taller" in render_chart(spec, 40, 1)[0].plain


async def test_jobs_view_at_80x24_keeps_a_six_row_chart_and_the_table_scrolls(demo_ctx, clock):
    from gputab.tui.widgets.chart import Chart
    from gputab.tui.widgets.jobs import JobsTable

    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        frame = await advance(app, clock, 60)
        await pilot.pause()
        assert len([j for j in frame.jobs if not j.special]) >= 10
        charts = list(app.screen.query(Chart))
        assert charts and all(c.region.height >= 6 for c in charts)
        assert all(c.region.bottom <= 23 for c in charts)  # above the footer, on screen
        text = "\n".join(screen_lines(app))
        legend = next(line for line in text.splitlines() if "$ per job" in line)
        assert "taller or wider" not in text and all(name in legend for name in ("busy", "waste", "idle"))
        table = app.screen.query_one(JobsTable)
        assert table.row_count > table.region.height - 1  # more jobs than rows: the table scrolls
        table.focus()
        for _ in range(table.row_count - 1):
            await pilot.press("down")
        await pilot.pause()
        assert table.scroll_y > 0 and frame.jobs[-1].tag[:12] in "\n".join(screen_lines(app))


@pytest.mark.parametrize("size,columns", [((120, 40), 1), ((160, 40), 2)], ids=["120x40", "160x40"])
async def test_gpus_view_shows_every_gpu_at_once(demo_ctx, clock, size, columns):
    from gputab.tui.widgets.chart import Chart
    from gputab.tui.widgets.gpus import GpuCard

    app = make_app(demo_ctx, clock)
    async with app.run_test(size=size) as pilot:
        await advance(app, clock, 10)
        await pilot.press("2")
        await pilot.pause()
        await advance(app, clock, 2)
        await pilot.pause()
        cards = sorted(app.screen.query(GpuCard), key=lambda c: c.index)
        assert len(cards) == 5
        screen = app.screen.region
        for card in cards:
            assert screen.contains_region(card.region) and card.region.bottom <= size[1] - 1, card.index
            assert all(chart.region.height >= 3 for chart in card.query(Chart))
        assert len({c.region.x for c in cards}) == columns
        text = "\n".join(screen_lines(app))
        assert all(f"GPU {c.index} " in text for c in cards) and "n/a" not in text
