"""The processes view on MIG: the driver reports no per-process utilization there, so a process on a MIG instance
shows its part of its instance's SM activity (GPM), marked ``~`` as derived; the title and ``?`` say what ``~``
means; n/a stays where even the instance has no GPM figure."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_mig_views import _mig_gpu, _mig_proc
from tui_support import advance, dialog_words, make_app

from gputab.live.history import process_sm_key
from gputab.live.sm_share import own_sm_share
from gputab.tui.keys_screen import KeysScreen
from gputab.tui.processes_screen import ProcessesScreen
from gputab.tui.widgets.process_panel import process_facts, sm_spec
from gputab.tui.widgets.processes import ProcessTable, derived_sm, process_cells

SM_COLUMN = [key for key, _, _ in ProcessTable.COLUMNS].index("sm")


def sm_cell(p, derived) -> str:
    return str(process_cells(p, derived.get(p.key))[SM_COLUMN])


def test_each_process_gets_its_part_of_its_instances_activity_and_n_a_without_gpm():
    gpu = _mig_gpu((1, 60.0), (2, 40.0), (5, None))
    procs = [
        _mig_proc(1, "alone", 1, 10 << 30),  # GI 1's only job, two processes: 30 % each (60 % for the job)
        _mig_proc(2, "alone", 1, 2 << 30),
        _mig_proc(3, "big", 2, 3 << 30),  # GI 2 shared 3:1 by memory
        _mig_proc(4, "small", 2, 1 << 30),
        _mig_proc(7, "no-gpm", 5, 1 << 30),  # its instance has no GPM figure: n/a, not 0 and not ~
        _mig_proc(8, "whole", None, 1 << 30, sm=25.0, gpu=0),  # off MIG: the driver's figure, unmarked
    ]
    derived = derived_sm(procs, (gpu,))
    assert derived == pytest.approx({"1@4": 30.0, "2@4": 30.0, "3@4": 30.0, "4@4": 10.0})
    assert [sm_cell(p, derived) for p in procs] == ["~30%", "~30%", "~30%", "~10%", "n/a", "25%"]
    # The same figures as the jobs view's own SM: a job's processes on one instance add up to its share there.
    assert own_sm_share(procs, (gpu,))["alone"] == pytest.approx(derived["1@4"] + derived["2@4"])
    assert derived_sm(procs, ()) == {}  # without the frame's GPUs no instance is known: n/a, as before


def test_a_reported_figure_is_never_replaced():
    """Should a driver report per-process SM % on MIG, that figure is shown as it is, without the mark."""
    gpu = _mig_gpu((1, 60.0))
    p = _mig_proc(1, "a", 1, 1 << 30, sm=12.0)
    assert derived_sm([p], (gpu,)) == {}
    assert sm_cell(p, {}) == "12%"


async def test_processes_view_marks_the_derived_figures_and_says_why(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await advance(app, clock, 3)
        await pilot.press("3")
        await pilot.pause()
        assert isinstance(app.screen, ProcessesScreen)
        frame = await advance(app, clock, 1)
        await pilot.pause()
        table = app.screen.query_one(ProcessTable)
        g4 = next(g for g in frame.gpus if g.index == 4)
        on_mig = [p for p in frame.processes if p.gpu_instance_id is not None]
        assert {p.tag for p in on_mig} == {"mistral-7b-serve", "ci-gpu-tests"}
        for p in on_mig:
            assert p.sm_pct is None  # NVML reports none per process on MIG
            mig = next(m for m in g4.mig if m.gpu_instance_id == p.gpu_instance_id)
            # Each is its instance's only process: all of the instance's SM activity.
            assert table.get_cell(p.key, "sm").plain == f"~{mig.sm_active_pct:.0f}%"
        for p in frame.processes:
            if p.gpu_instance_id is None:
                assert not table.get_cell(p.key, "sm").plain.startswith("~")
        title = app.screen.query_one("#view-title").render()
        assert str(title).startswith("Processes · ~SM: from its MIG instance (?)")

        # The panel says it too, for the selected process on an instance.
        serve = next(p for p in on_mig if p.tag == "mistral-7b-serve")
        # Its SM chart draws the same ~SM over time (the history keeps the derived figure, not a gap).
        await advance(app, clock, 2)
        _, sm_points = app.history.points(process_sm_key(serve.key), None)
        assert sm_points and 0 < sm_points[-1] <= 100, list(sm_points)  # NaN (a gap) before
        assert sm_spec(serve, app.history, None, "session").lines[1].label == f"pid {serve.pid} ~SM"
        facts = process_facts(serve, frame, derived_sm(frame.processes, frame.gpus)[serve.key]).plain
        assert "GPU 4 MIG 3g.40gb" in facts and ", from its MIG instance" in facts and "SM ~" in facts

        # Enter's details say it in words.
        table.move_cursor(row=table.get_row_index(serve.key))
        await pilot.press("enter")
        await pilot.pause()
        details = dialog_words(app, "Static")
        assert "its part of its MIG instance's SM activity" in details and "~" in details
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ProcessesScreen)

        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, KeysScreen)
        shown = "\n".join(str(s.render()) for s in app.screen.query("Static"))
        assert "This view's figures" in shown and "~SM: a process on a MIG instance" in shown


async def test_without_mig_the_title_stays_as_it_was(demo_ctx, clock):
    """A frame with no MIG instance has nothing derived: back to the usual title, no ``~`` anywhere."""
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        frame = await advance(app, clock, 2)
        await pilot.press("3")
        await pilot.pause()
        screen = app.screen
        assert str(screen.query_one("#view-title").render()).startswith("Processes · ~SM")
        plain = replace(frame, gpus=tuple(replace(g, mig=()) for g in frame.gpus))
        screen.refresh_frame(plain, app.history)
        await pilot.pause()
        assert str(screen.query_one("#view-title").render()) == ProcessesScreen.TITLE_TEXT
        table = screen.query_one(ProcessTable)
        sm = {p.key: table.get_cell(p.key, "sm").plain for p in frame.processes}
        assert not any(v.startswith("~") for v in sm.values())
        assert all(sm[p.key] == "n/a" for p in frame.processes if p.gpu_instance_id is not None)
