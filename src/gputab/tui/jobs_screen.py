"""The jobs view (the default): what each job costs, the GPUs that explain it, and the money over time."""

from __future__ import annotations

import sys

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

MONEY_ROWS = 7
"""Rows the charts keep at least (their border and a 6-row chart with legend, scale and time axis): on a short
terminal the jobs table scrolls rather than the charts shrink."""
MIN_TABLE_ROWS = 3
"""Rows the jobs table keeps at least (its header and two jobs)."""


def table_rows(body: int, gpus: int) -> tuple[int, int]:
    """(jobs table rows at most, GPU table rows at most) for a body of ``body`` rows and ``gpus`` GPUs: the GPU
    table takes its GPUs (up to 40 % of the body), the charts :data:`MONEY_ROWS`, the jobs table up to 45 % of the
    rest of the body (it scrolls past that) and the charts what is left."""
    gpu_rows = min(gpus + 2, max(MIN_TABLE_ROWS, int(body * 0.4)))  # its rows, header and border
    job_rows = max(MIN_TABLE_ROWS, min(int(body * 0.45), body - gpu_rows - MONEY_ROWS))
    return job_rows, gpu_rows


class JobsScreen(LiveScreen):
    """Jobs by cost on top; one line per GPU with its $/h, bars and history; then the cost and $/h charts in the
    rows left, 7 at least (:func:`table_rows`: the jobs table scrolls on a short terminal)."""

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
        self._fit_rows(len(frame.gpus))
        # A job's details over this view follow every tick (their module is loaded only once one was opened).
        details = sys.modules.get("gputab.tui.details_screen")
        top = self.app.screen
        if details is not None and isinstance(top, details.JobDetailsScreen):
            top.show(frame)

    def on_resize(self) -> None:
        super().on_resize()
        frame = getattr(self.app, "frame", None)
        self._fit_rows(len(frame.gpus) if frame is not None else 0)

    def _fit_rows(self, gpus: int) -> None:
        """Cap the two tables so the charts keep their rows (see :func:`table_rows`)."""
        notes = self.query_one("#notes")
        body = self.size.height - 4 - (notes.outer_size.height if notes.display else 0)  # header, title, footer
        fit = table_rows(body, gpus)
        if fit == getattr(self, "_fit", None) or body <= 0:
            return
        self._fit = fit
        self.query_one(JobsTable).styles.max_height = fit[0]
        self.query_one(GpuTable).styles.max_height = fit[1]

    def selected_job(self) -> str | None:
        """The tag under the cursor in the jobs table."""
        return self.query_one(JobsTable).selected_key

    @on(DataTable.RowSelected, "#jobs")
    def _row_selected(self) -> None:
        self.action_details()  # enter on a row (the table takes the key before the screen's binding would)

    def action_details(self) -> None:
        """The selected job in full, live: its whole tag (the table caps it), every figure and its processes."""
        from gputab.tui.details_screen import JobDetailsScreen

        frame, tag = self.gputab_app.frame, self.selected_job()
        if frame is not None and tag is not None and any(j.tag == tag for j in frame.jobs):
            self.app.push_screen(JobDetailsScreen(tag, frame))
