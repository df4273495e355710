"""A job that holds several processes says how many, in its row and in its details (issue 23): untagged processes
of one user and command on several GPUs stay one job (DDP workers look like this), but not silently."""

from __future__ import annotations

from tui_support import advance, make_app

from gputab.live.frame import JobView, ProcessView, process_counts
from gputab.tui.details_screen import job_details
from gputab.tui.widgets.jobs import JobsTable, tag_cell


def _proc(pid: int, gpu: int, tag: str) -> ProcessView:
    return ProcessView(pid, gpu, "root", "sleep 600", 1 << 30, 0.0, tag, "untagged")


def _job(tag: str) -> JobView:
    return JobView(tag, 1.0, 2.0, 0.1, 0.05, 0.5, None, gpus=(1, 2))


def test_processes_are_counted_per_job_once_each():
    procs = (_proc(10, 1, "untagged:root/sleep"), _proc(11, 2, "untagged:root/sleep"), _proc(12, 0, "a"))
    procs += (_proc(12, 3, "a"),)  # one process on two GPUs is one process
    assert process_counts(procs) == {"untagged:root/sleep": 2, "a": 1}


def test_the_count_stays_in_view_when_the_tag_is_cut():
    job = _job("untagged:root/sleep-with-a-long-name")
    cell = tag_cell(job, 2, width=22)
    assert cell.plain.endswith(" ×2") and cell.cell_len == 22 and "…" in cell.plain
    assert tag_cell(_job("untagged:root/sleep"), 2, width=22).plain == "untagged:root/sleep ×2"
    assert tag_cell(_job("solo"), 1, width=22).plain == "solo"  # one process: nothing added
    assert ("processes now", "2") in job_details(_job("untagged:root/sleep"), processes=2)


async def test_the_demo_fine_tune_row_and_details_say_it_runs_two_processes(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 3)
        await pilot.pause()
        table = app.screen.query_one(JobsTable)
        assert table.get_cell("llama3-8b-lora", "tag").plain == "llama3-8b-lora ×2"  # ranks 0 and 1
        assert table.get_cell("eval-mmlu", "tag").plain == "eval-mmlu"
        table.move_cursor(row=table.get_row_index("llama3-8b-lora"))
        await pilot.press("enter")
        await pilot.pause()
        text = " ".join(str(w.render()) for w in app.screen.query("Label, Static"))
        assert "processes now" in text
