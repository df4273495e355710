"""The braille chart and the history it draws: fixed scales, gaps, time axes, bounded memory, windows."""

from __future__ import annotations

import math

import pytest
from rich.text import Text

from gputab.live.frame import Frame, GpuView, JobView
from gputab.live.history import BURN, COARSE_POINTS, History, job_key, power_key, util_key
from gputab.tui.widgets.chart import DASHES, ChartSpec, Line, clock, dash_on, nice_ceiling, render_chart, style_marker

NAN = float("nan")


def _rows_with_dots(lines) -> list[int]:
    """Indexes of plot rows (between legend and axis) that hold any braille dot."""
    return [i for i, t in enumerate(lines[1:-1]) if any(0x2800 < ord(c) <= 0x28FF for c in t.plain)]


def _spec(values, top=100.0, times=None):
    times = times or [float(i) for i in range(len(values))]
    return ChartSpec("util", (Line("GPU 0", times, values, "green"),), top, 0.0, times[-1], lambda v: f"{v:.0f}%")


def test_a_gpu_between_30_and_31_percent_draws_a_flat_line_at_30():
    values = [30.0 + (i % 2) for i in range(120)]
    lines = render_chart(_spec(values), 60, 12)
    assert len(lines) == 12 and all(t.cell_len <= 60 for t in lines)
    rows = _rows_with_dots(lines)
    assert len(rows) == 1  # one row of cells: 1 % of a 0-100 scale, not a full swing
    plot_rows = 10
    assert rows[0] == (plot_rows * 4 - 1 - round(0.30 * (plot_rows * 4 - 1))) // 4  # the cell row of 30 %


def test_fixed_scale_labels_and_a_full_swing_spans_every_row():
    values = [0.0, 100.0] * 30
    lines = render_chart(_spec(values), 60, 8)
    assert lines[1].plain.lstrip().startswith("100%┤") and lines[-2].plain.lstrip().startswith("0%┤")
    assert _rows_with_dots(lines) == list(range(6))


def test_values_off_the_scale_are_clamped_not_rescaled():
    lines = render_chart(_spec([250.0] * 50), 40, 6)
    assert _rows_with_dots(lines) == [0]
    assert "100%" in lines[1].plain


def test_a_gap_is_not_joined():
    values = [10.0] * 20 + [NAN] * 20 + [90.0] * 20
    lines = render_chart(_spec(values), 42, 8)
    # Without the gap the jump from 10 to 90 would draw a vertical stroke through the middle rows.
    assert 2 not in _rows_with_dots(lines) and 3 not in _rows_with_dots(lines)
    middle = lines[1 + 3].plain
    assert not any(0x2800 < ord(c) <= 0x28FF for c in middle)


def test_time_axis_writes_start_middle_end_in_session_time():
    spec = ChartSpec("x", (), 1.0, 3600.0, 7200.0)
    axis = render_chart(spec, 60, 5)[-1].plain
    assert "1:00:00" in axis and "1:30:00" in axis and axis.rstrip().endswith("2:00:00")


def test_legend_is_literal_and_cut_with_an_ellipsis():
    lines = [Line("[bold]x[/]" + "y" * 40, [0.0, 1.0], [1.0, 2.0], "red"), Line("second", [0.0], [1.0], "blue")]
    head = render_chart(ChartSpec("$ per job", tuple(lines), 10.0, 0.0, 1.0), 50, 6)[0]
    assert "[bold]x[/]" in head.plain and "…" in head.plain and head.cell_len <= 50


@pytest.mark.parametrize(
    "value,top",
    [(0.0, 1.0), (0.7, 1.0), (1.0, 1.0), (1.2, 2.0), (2.1, 2.5), (3.0, 5.0), (7.0, 10.0), (0.031, 0.05), (16.73, 20.0)],
)
def test_nice_ceiling(value, top):
    assert nice_ceiling(value) == pytest.approx(top)


def test_clock():
    assert (
        clock(0) == "0:00" and clock(65) == "1:05" and clock(3725) == "1:02:05" and clock(2 * 86400 + 7200) == "2d02h"
    )


def _frame(t, util=50.0, cost=0.0, lost=False):
    return Frame(
        host="h",
        state="recording",
        elapsed_s=t,
        total_cost_usd=cost,
        burn_rate_usd_per_hour=4.0,
        gpus=(
            GpuView(
                index=0,
                uuid="u",
                name="n",
                utilization_pct=util,
                power_w=300.0,
                power_limit_w=700.0,
                rate_per_hour=4.0,
                lost=lost,
            ),
        ),
        jobs=(JobView("a", cost, 4.0, 0, 0, None, None),),
    )


def test_history_windows_and_the_whole_session():
    h = History()
    for t in range(1, 4001):
        h.add(_frame(float(t), util=float(t % 100), cost=t / 1000))
    times, values = h.points(util_key(0), 300.0)
    assert times[0] >= 3700 and times[-1] == 4000 and len(times) == 301
    assert values[-1] == 4000 % 100
    times, _ = h.points(util_key(0), 3600.0)
    assert times[0] >= 400 - 1e-9 and times[-1] == 4000
    times, values = h.points(job_key("a"), None)
    assert times[0] <= 5 and times[-1] == 4000 and values[-1] == pytest.approx(4.0)
    assert list(times) == sorted(times)
    assert h.power_limits == {0: 700.0} and h.max_burn == 4.0
    assert h.window(300.0) == (3700.0, 4000.0) and h.window(None) == (0.0, 4000.0)


def test_a_young_session_keeps_the_windows_span():
    h = History()
    h.add(_frame(10.0))
    assert h.window(300.0) == (0.0, 300.0)


def test_history_memory_is_bounded_over_a_long_session():
    h = History()
    for t in range(1, 3 * 86400, 7):  # three days at one point every 7 s
        h.add(_frame(float(t)))
    assert len(h.coarse.t) < COARSE_POINTS
    assert len(h.fine.t) <= 3600 / 7 + 260
    times, _ = h.points(BURN, None)
    assert times[0] < 600 and times[-1] > 3 * 86400 - 10


def test_a_lost_gpu_is_a_gap_and_a_repeated_tick_is_not_added():
    h = History()
    h.add(_frame(1.0))
    h.add(_frame(2.0, lost=True))
    h.add(_frame(2.0))
    _, values = h.points(power_key(0), 300.0)
    assert len(values) == 2 and values[0] == 300.0 and math.isnan(values[1])
    _, util = h.points(util_key(0), 300.0)
    assert util[0] == 50.0 and math.isnan(util[1])


async def test_a_chart_is_not_drawn_again_until_its_span_moved_a_dot_column():
    from textual.app import App

    from gputab.tui.widgets.chart import Chart

    class A(App):
        def compose(self):
            yield Chart()

    def spec(t1, title="util"):
        return ChartSpec(title, (Line("g", [0.0, t1], [1.0, 2.0], "green"),), 100.0, t1 - 300.0, t1)

    async with A().run_test(size=(60, 10)) as pilot:
        chart = pilot.app.query_one(Chart)
        await pilot.pause()
        assert chart.plot(spec(300.0))
        # 300 s over 2 x 60 dot columns: 2.5 s a column
        assert not chart.plot(spec(301.0))
        assert chart.plot(spec(303.0))
        assert chart.plot(spec(303.5, title="power"))  # another picture: drawn whatever the time
        young = ChartSpec("young", (Line("g", [0.0, 1.0], [1.0, 2.0], "green"),), 100.0, 0.0, 300.0)
        older = ChartSpec("young", (Line("g", [0.0, 1.0, 2.0, 3.0, 4.0], [1.0] * 5, "green"),), 100.0, 0.0, 300.0)
        assert chart.plot(young)
        # The axis (0-300 s) did not move, but the data grew by more than a dot column: drawn.
        assert chart.plot(older)
        await pilot.pause()
        chart.plot(spec(303.5, title="power"))
        await pilot.pause()
        lines = [chart.render_line(y).text for y in range(chart.size.height)]
        assert lines[0].startswith("power") and lines[-1].strip().startswith("└")


def test_jobs_on_each_gpu():
    from gputab.live.frame import ProcessView
    from gputab.tui.widgets.gpus import jobs_by_gpu

    def p(pid, gpu, tag):
        return ProcessView(pid, gpu, "u", "c", 1, 1.0, tag, "env")

    assert jobs_by_gpu([p(1, 0, "a"), p(2, 0, "b"), p(3, 0, "a"), p(4, 1, None)]) == {0: "a, b", 1: "?"}


async def test_gpu_card_bars_keep_their_width_from_the_first_frame(demo_ctx, clock):
    from tui_support import advance, make_app

    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 1)
        await pilot.press("2")
        await pilot.pause()
        await advance(app, clock, 1)
        await pilot.pause()
        figures = app.screen.query("#gpu-figures").first()
        first = [len(line) for line in str(figures.render()).splitlines()]
        await advance(app, clock, 5)
        await pilot.pause()
        assert [len(line) for line in str(figures.render()).splitlines()] == first


def _cells_of_row(line: Text) -> str:
    """The plot cells of a chart row (after the y label's ┤ or │)."""
    plain = line.plain
    return plain[max(plain.find("┤"), plain.find("│")) + 1 :]


def _flat_lines_spec(n: int) -> ChartSpec:
    """``n`` flat series, far apart on a 0-100 scale, each in a plot row of its own."""
    t = [float(i) for i in range(200)]
    lines = tuple(Line(f"s{k}", t, [5.0 + 90.0 * k / max(1, n - 1)] * 200, "green") for k in range(n))
    return ChartSpec("x", lines, 100.0, 0.0, 199.0, lambda v: f"{v:.0f}%")


def test_without_color_each_series_has_its_own_line_style_and_the_legend_shows_it():
    n = len(DASHES)
    lines = render_chart(_flat_lines_spec(n), 80, 2 + 4 * n, dashes=True)
    rows = [_cells_of_row(t) for t in lines[1:-1] if any(0x2800 < ord(c) <= 0x28FF for c in _cells_of_row(t))]
    assert len(rows) == n
    # Top row is the last series. A row's strokes follow the series' pattern, dot by dot along the line.
    for k, row in enumerate(reversed(rows)):
        pattern = DASHES[k]
        dots = []
        for c in row.rstrip():
            bits = ord(c) - 0x2800 if 0x2800 <= ord(c) <= 0x28FF else 0
            dots += [bool(bits & 0x47), bool(bits & 0xB8)]  # left column, right column
        expected = [dash_on(pattern, x) for x in range(len(dots))]
        assert dots[2:-2] == expected[2:-2], f"series {k}: {pattern}"
    # Every series' look differs from every other's, and the legend carries each one's marker.
    strokes = [style_marker(p, 12) for p in DASHES]
    assert len(set(strokes)) == n and len({style_marker(p) for p in DASHES}) == n
    legend = render_chart(_flat_lines_spec(2), 80, 10)[0].plain
    assert "━ s0" in legend  # with color: the plain marker
    legend = render_chart(_flat_lines_spec(2), 80, 10, dashes=True)[0].plain
    assert f"{style_marker(DASHES[0])} s0" in legend and f"{style_marker(DASHES[1])} s1" in legend


def test_with_color_every_series_is_solid():
    lines = render_chart(_flat_lines_spec(3), 80, 14)
    rows = [_cells_of_row(t) for t in lines[1:-1] if any(0x2800 < ord(c) <= 0x28FF for c in _cells_of_row(t))]
    assert len(rows) == 3 and all(" " not in row.strip() and "⠀" not in row.strip() for row in rows)


async def test_the_chart_widget_draws_line_styles_when_the_app_has_no_color(monkeypatch):
    from textual.app import App

    from gputab.tui.widgets.chart import Chart

    class A(App):
        def compose(self):
            yield Chart()

    for no_color in (True, False):
        if no_color:
            monkeypatch.setenv("NO_COLOR", "1")
        else:
            monkeypatch.delenv("NO_COLOR", raising=False)
        async with A().run_test(size=(80, 12)) as pilot:
            chart = pilot.app.query_one(Chart)
            chart.plot(_flat_lines_spec(2))
            await pilot.pause()
            legend = chart.render_line(0).text
            assert (style_marker(DASHES[1]) in legend) is no_color
            assert ("━ s1" in legend) is not no_color


def test_a_session_younger_than_the_window_is_drawn_from_every_poll():
    h = History()
    for t in range(1, 41):
        h.add(_frame(float(t), util=float(t)))
    times, values = h.points(util_key(0), 300.0)
    assert list(times) == [float(t) for t in range(1, 41)] and list(values) == [float(t) for t in range(1, 41)]


def test_history_keeps_each_process_sm_and_vram():
    from dataclasses import replace

    from gputab.live.frame import ProcessView
    from gputab.live.history import process_sm_key, process_vram_key

    h = History()
    p = ProcessView(7, 0, "u", "c", 1, 1.0, "a", "env")
    h.add(replace(_frame(0.5), processes=(p,)))
    assert not any(k.startswith(("sm:", "vram:")) for k in h.fine.values)  # no processes view yet: no cost
    h.track_processes = True
    for t in range(1, 6):
        p = ProcessView(7, 0, "u", "c", t * 1024**3, 10.0 * t, "a", "env")
        h.add(replace(_frame(float(t)), processes=(p,) if t != 3 else ()))
    _, sm = h.points(process_sm_key("7@0"), 300.0)
    _, vram = h.points(process_vram_key("7@0"), 300.0)
    # Before tracking: not recorded (NaN); gone for a tick: a gap.
    assert [v if v == v else None for v in sm] == [None, 10.0, 20.0, None, 40.0, 50.0]
    assert vram[-1] == 5.0


def _strips_through_text(spec: ChartSpec, width: int, height: int, base, dashes: bool) -> list:
    """What the chart widget did before :func:`chart_strips`: each Text line through Rich's ``Text.render``."""
    from rich.console import Console
    from rich.segment import Segment
    from textual.strip import Strip

    console = Console(width=1000, color_system="truecolor", legacy_windows=False, force_terminal=True)
    out = []
    for text in render_chart(spec, width, height, dashes=dashes):
        segments = [
            Segment(s.text, base + s.style if s.style else base) for s in text.render(console) if s.text != "\n"
        ]
        out.append(list(Strip(segments).adjust_cell_length(width, base)))
    return out


@pytest.mark.parametrize("dashes", [False, True])
@pytest.mark.parametrize(("width", "height"), [(60, 12), (41, 8), (80, 5), (30, 4), (30, 2), (12, 8), (60, 1)])
def test_the_widgets_strips_are_the_segments_rich_makes_of_the_text_lines(dashes, width, height):
    from rich.style import Style

    from gputab.tui.widgets.chart import chart_strips

    t = [float(i) for i in range(90)]
    gap = [NAN if 30 <= i < 40 else 40 + 30 * math.sin(i / 7) for i in range(90)]
    lines = (
        Line("GPU 0", t, gap, "green"),
        Line("GPU 1", t, [50.0 + (i % 9) for i in range(90)], "magenta"),
        Line("same color", t, [float(i) for i in range(90)], "green"),
        Line("no color", t, [90.0 - i for i in range(90)], ""),
        Line("\x1b[31mred\x07", t, [20.0] * 90, "bold red"),
    )
    base = Style(color="white", bgcolor="black")
    for spec in (
        ChartSpec("util", lines, 100.0, 0.0, 89.0, lambda v: f"{v:.0f}%", more=2),
        ChartSpec("alerts", lines[:2], 100.0, 0.0, 89.0, steps=True, legend=False),
        ChartSpec("empty", (), 1.0, 0.0, 10.0),
    ):
        got = [list(strip) for strip in chart_strips(spec, width, height, base, dashes=dashes)]
        assert got == _strips_through_text(spec, width, height, base, dashes)
        assert all(sum(s.cell_length for s in row) == width for row in got)
