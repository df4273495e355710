"""The jobs view (the default): what each job costs, then the GPUs that explain it."""

from __future__ import annotations

from textual.app import ComposeResult

from gputab.tui.frame import Frame, GpuHistory
from gputab.tui.live_screen import LiveScreen
from gputab.tui.widgets.gpus import GpuTable
from gputab.tui.widgets.jobs import JobsTable


class JobsScreen(LiveScreen):
    """Jobs by cost on top; one line per GPU with its $/h, bars and history below."""

    CSS_PATH = ["live_screen.tcss", "jobs_screen.tcss"]
    TITLE_TEXT = "Jobs by cost"

    def compose_body(self) -> ComposeResult:
        yield JobsTable(id="jobs")
        yield GpuTable(id="gpus", cursor_type="none")

    def show_frame(self, frame: Frame, history: GpuHistory) -> None:
        self.query_one(JobsTable).show(frame.jobs)
        self.query_one(GpuTable).show(frame.gpus, history.utilization, history.power)

    def selected_job(self) -> str | None:
        """The tag under the cursor in the jobs table."""
        return self.query_one(JobsTable).selected_key
