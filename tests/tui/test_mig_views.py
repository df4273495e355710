"""MIG in the live views, on the demo box: the GPU view lists GPU 4's instances under it (profile, share of the
slices, $/h, SM activity, memory), the jobs view says which instance a job runs on (``4:3g``); the review lists each stored
instance. The profile is the driver's text, so it reaches the screen as literal text."""

from __future__ import annotations

from tui_support import advance, make_app

from gputab.sampling.snapshot import MigSample
from gputab.tui.frame import GpuView
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
