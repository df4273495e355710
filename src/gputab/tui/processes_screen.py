"""The processes view: every GPU process, its job, and how the job was found."""

from __future__ import annotations

from textual.app import ComposeResult

from gputab.tui.frame import Frame, GpuHistory, ProcessView
from gputab.tui.live_screen import LiveScreen
from gputab.tui.widgets.processes import ProcessTable


class ProcessesScreen(LiveScreen):
    """pid, user, GPU, VRAM, SM %, tag and its source, redacted command line."""

    CSS_PATH = ["live_screen.tcss", "processes_screen.tcss"]
    TITLE_TEXT = "Processes (t: tag the selected one)"

    def compose_body(self) -> ComposeResult:
        yield ProcessTable(id="processes")

    def show_frame(self, frame: Frame, history: GpuHistory) -> None:
        self._by_key = {p.key: p for p in frame.processes}
        self.query_one(ProcessTable).show(frame.processes)

    def notes_for(self, frame: Frame) -> list[str]:
        notes = super().notes_for(frame)
        if not frame.processes:
            notes.append("no process holds a GPU")
        return notes

    def selected_process(self) -> ProcessView | None:
        """The process under the cursor."""
        key = self.query_one(ProcessTable).selected_key
        return getattr(self, "_by_key", {}).get(key) if key else None
