"""MIG in the live views, on the demo box: the GPU view lists GPU 4's instances under it (profile, share of the
slices, $/h, SM activity, memory), the jobs view says which instance a job runs on (``4:3g``); the review lists each stored
instance. The profile is the driver's text, so it reaches the screen as literal text."""

from __future__ import annotations

import pytest
from tui_support import advance, make_app

from gputab.live.frame import GpuView
from gputab.sampling.snapshot import MigSample
from gputab.tui.gpus_screen import GpusScreen
from gputab.tui.jobs_screen import JobsScreen
from gputab.tui.widgets.gpus import GpuCard
from gputab.tui.widgets.jobs import JobsTable


async def test_gpu_view_lists_instances_and_jobs_view_names_them(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        frame = await advance(app, clock, 5)
        await pilot.pause()
        assert isinstance(app.screen, JobsScreen)
        table = app.screen.query_one(JobsTable)
        col = [key for key, _, _ in JobsTable.COLUMNS].index("gpus")
        assert str(table.row_cells("mistral-7b-serve")[col]) == "4:3g"
        assert str(table.row_cells("ci-gpu-tests")[col]) == "4:1g"
        assert str(table.row_cells("llama3-8b-lora")[col]) == "0,1"  # no MIG: the GPU indices as before
        await pilot.press("2")
        await pilot.pause()
        assert isinstance(app.screen, GpusScreen)
        await advance(app, clock, 1)
        await pilot.pause()
        cards = {c.index: c for c in app.screen.query(GpuCard)}
        assert not cards[0].query_one("#gpu-mig").display  # not in MIG mode: no instance lines
        lines = str(cards[4].query_one("#gpu-mig").render()).splitlines()
        g4 = next(g for g in frame.gpus if g.index == 4)
        rate = g4.rate_per_hour
        assert [ln.split()[1] for ln in lines] == ["3g.40gb", "2g.20gb", "1g.10gb"]
        assert "3/7" in lines[0] and f"${rate * 3 / 7:.2f}/h" in lines[0] and "SM 0%" in lines[1]
        assert "39.5G" in lines[0]  # its own memory, not the GPU's


async def test_a_hostile_profile_is_drawn_as_written(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 2)
        await pilot.press("2")
        await pilot.pause()
        card = app.screen.query_one("#gpu-card-4", GpuCard)
        evil = "[bold red]x[/]\x1b[2J"
        view = GpuView(4, "GPU-x", "H100", rate_per_hour=7.0, mig=(MigSample(1, 0, 7, profile=evil),), mig_slices=7)
        card._show_mig(view)
        text = str(card.query_one("#gpu-mig").render())
        assert "[bold red]x[/]" in text and "\x1b" not in text


def _mig_proc(pid, tag, gi, memory, sm=None, gpu=4):
    from gputab.live.frame import ProcessView

    return ProcessView(
        pid=pid, gpu_index=gpu, user="u", command="c", used_memory_bytes=memory, sm_pct=sm, tag=tag, source="env",
        gpu_instance_id=gi, compute_instance_id=0,
    )  # fmt: skip


def _mig_gpu(*instances: tuple[int, float | None]) -> GpuView:
    migs = tuple(
        MigSample(gpu_instance_id=gi, compute_instance_id=0, slices=1, sm_active_pct=sm) for gi, sm in instances
    )
    return GpuView(index=4, uuid="GPU-4", name="H100", mig=migs, mig_slices=7)


def test_own_sm_on_mig_is_the_instances_activity_or_its_share_by_memory():
    from gputab.live.sm_share import own_sm_share

    gpu = _mig_gpu((1, 60.0), (2, 40.0), (3, 30.0), (5, None))
    procs = [
        _mig_proc(1, "alone", 1, 10 << 30),  # the only job on GI 1 (two processes): all of its SM activity
        _mig_proc(2, "alone", 1, 2 << 30),
        _mig_proc(3, "big", 2, 3 << 30),  # GI 2 shared 3:1 by memory
        _mig_proc(4, "small", 2, 1 << 30),
        _mig_proc(5, "p", 3, None),  # GI 3 shared, memory unknown: equal
        _mig_proc(6, "q", 3, 5 << 30),
        _mig_proc(7, "no-gpm", 5, 1 << 30),  # no GPM on its instance: unknown, not 0
        _mig_proc(8, "whole", None, 1 << 30, sm=25.0, gpu=0),  # off MIG: as the driver reports it
    ]
    share = own_sm_share(procs, (gpu,))
    assert share["alone"] == pytest.approx(60.0)
    assert share["big"] == pytest.approx(30.0) and share["small"] == pytest.approx(10.0)
    assert share["p"] == pytest.approx(15.0) and share["q"] == pytest.approx(15.0)
    assert "no-gpm" not in share
    assert share["whole"] == pytest.approx(25.0)
    assert own_sm_share(procs) == {"whole": 25.0}  # without the GPUs, no instance is known


async def test_jobs_view_shows_a_mig_jobs_own_sm_from_its_instance(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        frame = await advance(app, clock, 5)
        await pilot.pause()
        table = app.screen.query_one(JobsTable)
        g4 = next(g for g in frame.gpus if g.index == 4)
        for tag in ("mistral-7b-serve", "ci-gpu-tests"):
            procs = [p for p in frame.processes if p.tag == tag]
            assert procs and all(p.gpu_index == 4 and p.sm_pct is None for p in procs)  # NVML: none per process
            (gi,) = {p.gpu_instance_id for p in procs}
            mig = next(m for m in g4.mig if m.gpu_instance_id == gi)
            assert mig.sm_active_pct is not None
            assert table.get_cell(tag, "sm").plain == f"{mig.sm_active_pct:.0f}%"
