"""The jobs view (the default): what each job costs, the GPUs that explain it, and the money over time."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from gputab.live.frame import Frame, process_counts
from gputab.live.history import History
from gputab.live.sm_share import own_sm_share
from gputab.tui.live_screen import LiveScreen
from gputab.tui.widgets.gpus import GpuTable
from gputab.tui.widgets.jobs import JobsTable
from gputab.tui.widgets.money import MoneyCharts


class JobsScreen(LiveScreen):
    """Jobs by cost on top; one line per GPU with its $/h, bars and history; then cost and burn-rate charts in
    the rows left (the tables come first: on a short terminal the charts shrink to a line that says so)."""

    CSS_PATH = ["live_screen.tcss", "jobs_screen.tcss"]
    TITLE_TEXT = "Jobs by cost · GPU util: its GPUs, whole · own SM: its processes' share now · enter: details"
    NARROW_TITLE_TEXT = "Jobs by cost · waste: share paid while its GPUs idled · enter: details"
    BINDINGS = [
        Binding("w", "window", "Window"),
        Binding("enter", "details", "Details", show=False),
    ]

    def compose_body(self) -> ComposeResult:
        yield JobsTable(id="jobs")
        yield GpuTable(id="gpus", cursor_type="none")
        yield MoneyCharts(id="money")

    def show_frame(self, frame: Frame, history: History) -> None:
        self.query_one(JobsTable).show(
            frame.jobs, own_sm_share(frame.processes, frame.gpus), process_counts(frame.processes)
        )
        self.query_one(GpuTable).show(frame.gpus, history, frame.processes)
        self.query_one(MoneyCharts).show(frame, history, *self.chart_window())

    def selected_job(self) -> str | None:
        """The tag under the cursor in the jobs table."""
        return self.query_one(JobsTable).selected_key

    @on(DataTable.RowSelected, "#jobs")
    def _row_selected(self) -> None:
        self.action_details()  # enter on a row (the table takes the key before the screen's binding would)

    def action_details(self) -> None:
        """The selected job in full: its whole tag (the table caps it) and every figure."""
        from gputab.tui.details_screen import DetailsScreen, job_details

        frame, tag = getattr(self.app, "frame", None), self.selected_job()
        job = next((j for j in frame.jobs if j.tag == tag), None) if frame is not None else None
        if frame is not None and job is not None:
            count = process_counts(frame.processes).get(job.tag, 0)
            self.app.push_screen(DetailsScreen("Job", job_details(job, count)))
