"""The live views use the terminal: no blank half-screen at 80x24, 120x40 or 200x60, and the panels under the
processes and alerts tables show the selected process and the alert timeline."""

from __future__ import annotations

import pytest
from tui_support import advance, longest_blank_run, make_app, screen_lines

from gputab.tui.details_screen import DetailsScreen
from gputab.tui.widgets.alert_panel import AlertPanel, active_counts
from gputab.tui.widgets.chart import Chart
from gputab.tui.widgets.process_panel import ProcessPanel
from gputab.tui.widgets.processes import ProcessTable


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)], ids=["80x24", "120x40", "200x60"])
@pytest.mark.parametrize("view", ["1", "2", "3", "4"])
@pytest.mark.slow
async def test_no_view_leaves_a_blank_stretch(demo_ctx, clock, size, view):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=size) as pilot:
        await advance(app, clock, 40)
        await pilot.press(view)
        await pilot.pause()
        await advance(app, clock, 2)
        await pilot.pause()
        lines = screen_lines(app)
        assert len(lines) == size[1]
        body = lines[3:-1]  # header (2), title, ... footer
        assert longest_blank_run(body) <= 2, "\n".join(lines)


@pytest.mark.slow
async def test_processes_view_shows_the_selected_process_and_its_history(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 5)
        await pilot.press("3")
        await pilot.pause()
        frame = await advance(app, clock, 30)
        await pilot.pause()
        table = app.screen.query_one(ProcessTable)
        panel = app.screen.query_one(ProcessPanel)
        assert panel.region.height >= 20  # the rows the table leaves are the panel's
        first = sorted(frame.processes, key=lambda p: (p.gpu_index, p.pid))
        for row, proc in enumerate(first[:2]):
            table.focus()
            table.move_cursor(row=row)
            await pilot.pause()
            text = "\n".join(screen_lines(app))
            assert f"pid {proc.pid} · {proc.user}" in text
            assert f"pid {proc.pid} SM" in text and f"GPU {proc.gpu_index} util (all)" in text
            sm_chart, vram_chart = panel.query(Chart)
            # The process's own series: what it reported each tick, not the GPU's.
            (line_gpu, line_pid) = sm_chart.spec.lines
            assert line_pid.values[-1] == pytest.approx(proc.sm_pct)
            assert line_gpu.values[-1] == pytest.approx(
                next(g for g in frame.gpus if g.index == proc.gpu_index).utilization_pct
            )
            assert list(line_pid.times) == list(line_gpu.times)
            known = [v for v in line_pid.values if v == v]
            assert len(known) >= (30 if row == 0 else 1)  # the first process ran from the start
            assert vram_chart.spec.lines[0].values[-1] == pytest.approx(proc.used_memory_bytes / 1024**3)
            assert vram_chart.spec.y_max == pytest.approx(80.0, abs=1)


@pytest.mark.slow
async def test_alerts_view_draws_the_timeline_and_the_waste_and_enter_shows_a_message_in_full(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        frame = await advance(app, clock, 60)
        await pilot.press("4")
        await pilot.pause()
        assert frame.alerts, "the demo raises alerts in its first minute"
        chart = app.screen.query_one(AlertPanel).query_one(Chart)
        warning = next(line for line in chart.spec.lines if line.label == "warning")
        active = sum(1 for a in frame.alerts if a.active and a.severity == "warning")
        assert warning.values[-1] == active and warning.values[0] == 0
        assert max(warning.values) == max(active, max(warning.values))
        text = "\n".join(screen_lines(app))
        assert "Money wasted this session, by job" in text
        top = max((j for j in frame.jobs if j.waste_usd and j.waste_top_reason), key=lambda j: j.waste_usd)
        assert top.tag in text and top.waste_top_reason in text
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailsScreen)
        shown = "\n".join(screen_lines(app))
        first = frame.alerts[0]
        assert first.message[:40] in shown.replace("\n", " ").replace("│", " ") or first.subject in shown


def test_active_alerts_are_counted_as_steps():
    from gputab.live.frame import AlertView

    start = 1000.0
    alerts = (
        AlertView("a", "waste", "warning", "j", "m", start + 10, start + 30),
        AlertView("b", "waste", "warning", "k", "m", start + 20),
        AlertView("c", "budget_exceeded", "critical", "k", "m", start + 25),
    )
    t, v = active_counts(alerts, "warning", start, 0.0, 40.0)
    assert list(zip(t, v)) == [(0, 0), (10, 0), (10, 1), (20, 1), (20, 2), (30, 2), (30, 1), (40, 1)]
    t, v = active_counts(alerts, "warning", start, 15.0, 40.0)  # a window that starts with one active
    assert (t[0], v[0]) == (15.0, 1.0)
    t, v = active_counts(alerts, "critical", start, 0.0, 40.0)
    assert v[-1] == 1.0
