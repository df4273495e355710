"""The live jobs view shows each job's wasted dollars, the likely reason and its evidence."""

import pytest
from tui_support import advance, make_app

from gputab.tui.widgets.jobs import JobsTable


@pytest.mark.slow
async def test_jobs_view_shows_waste_reason_and_evidence(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(220, 40)) as pilot:  # wide enough for the evidence column in full
        await advance(app, clock, 40)
        await pilot.pause()
        table = app.screen.query_one(JobsTable)

        def cell(tag: str, column: str) -> str:
            return str(table.get_cell(tag, column))

        assert cell("eval-mmlu", "why") == "input_bound"
        assert "pid 32011" in cell("eval-mmlu", "evidence")
        wasted = cell("eval-mmlu", "waste")
        assert wasted.startswith("$") and wasted.endswith("%")
        assert cell("untagged:?/pid35500", "why") == "stranded_memory"
        assert cell("untagged:?/pid35500", "waste").endswith(" 100%")
        assert cell("resnet50-fp32", "why") == "no_tensor_cores"
        assert cell("(idle)", "why") == "idle"
