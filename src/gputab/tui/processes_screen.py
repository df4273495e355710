"""The processes view: every GPU process, its job, and how the job was found; signals to your own processes."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from gputab.live.frame import Frame, ProcessView
from gputab.live.history import History
from gputab.tui.live_screen import LiveScreen
from gputab.tui.widgets.process_panel import ProcessPanel
from gputab.tui.widgets.processes import ProcessTable, derived_sm, sm_text


class ProcessesScreen(LiveScreen):
    """pid, user, GPU, VRAM, SM %, tag and its source, redacted command line; under the table, the selected
    process in brief with its SM % (against its whole GPU's) and VRAM over time (``w``: the time window).

    ``I``, ``T`` and ``K`` send SIGINT, SIGTERM and SIGKILL to the selected process after a confirmation that
    names it; only to the user's own processes, never on the demo box, never with ``--readonly``.
    """

    CSS_PATH = ["live_screen.tcss", "processes_screen.tcss"]
    TITLE_TEXT = "Processes · t: tag · enter: details · I T K: SIGINT SIGTERM SIGKILL (your own processes)"
    MIG_TITLE_TEXT = "Processes · ~SM: from its MIG instance (?) · t: tag · enter: details · I T K: signal"
    """The title while a process's SM % is derived from its MIG instance: it says what ``~`` means."""
    LEGEND = (
        "SM: the process's share of its GPU's SMs now, as the driver reports it.",
        "~SM: a process on a MIG instance, where the driver reports no per-process utilization: its part of its "
        "instance's SM activity (GPM), a % of the instance's SMs, all of it when one job holds the instance, else "
        "shared by the processes' memory (the jobs view's own SM).",
        "n/a: not reported; on MIG, the instance has no GPM figure either (Hopper and newer have one).",
    )
    """What the SM column's figures mean (``?`` shows it under the keys)."""
    BINDINGS = [
        Binding("w", "window", "Window"),
        Binding("enter", "details", "Details", show=False),
        Binding("I", "signal('SIGINT')", "Send SIGINT (interrupt)", show=False),
        Binding("T", "signal('SIGTERM')", "Send SIGTERM (terminate)", show=False),
        Binding("K", "signal('SIGKILL')", "Send SIGKILL (kill)", show=False),
    ]

    def compose_body(self) -> ComposeResult:
        yield ProcessTable(id="processes")
        yield ProcessPanel(id="process-panel")

    def show_frame(self, frame: Frame, history: History) -> None:
        history.track_processes = True  # from now on: the process charts cost nothing until this view is opened
        self._by_key = {p.key: p for p in frame.processes}
        self._derived = derived_sm(frame.processes, frame.gpus)
        self.query_one(ProcessTable).show(frame.processes, self._derived)
        if bool(self._derived) != getattr(self, "_titled_derived", False):
            self._titled_derived = bool(self._derived)
            self.on_resize()
        self._show_selected(frame, history)

    def _title(self, width: int) -> Text:
        if getattr(self, "_titled_derived", False):
            return Text(self.MIG_TITLE_TEXT, no_wrap=True, overflow="ellipsis")
        return super()._title(width)

    def _show_selected(self, frame: Frame, history: History) -> None:
        p = self.selected_process()
        derived = getattr(self, "_derived", {}).get(p.key) if p is not None else None
        self.query_one(ProcessPanel).show(p, frame, history, *self.chart_window(), derived=derived)

    @on(DataTable.RowHighlighted, "#processes")
    def _row_highlighted(self) -> None:
        app = self.gputab_app
        if app.frame is not None:
            self._show_selected(app.frame, app.history)

    def notes_for(self, frame: Frame) -> list[str]:
        notes = super().notes_for(frame)
        if not frame.processes:
            notes.append("no process holds a GPU")
        return notes

    def selected_process(self) -> ProcessView | None:
        """The process under the cursor."""
        key = self.query_one(ProcessTable).selected_key
        return getattr(self, "_by_key", {}).get(key) if key else None

    @on(DataTable.RowSelected, "#processes")
    def _row_selected(self) -> None:
        self.action_details()

    def action_details(self) -> None:
        """The selected process in full: its whole command line (redacted) and tag."""
        from gputab.tui.details_screen import DetailsScreen, process_details

        proc = self.selected_process()
        if proc is not None:
            lines = process_details(proc)
            derived = getattr(self, "_derived", {}).get(proc.key)
            if derived is not None:  # the table's ~SM, said in words
                sm = f"{sm_text(proc, derived)}: its part of its MIG instance's SM activity (no per-process figure on MIG)"
                lines = [(name, sm if name == "SM" else value) for name, value in lines]
            self.app.push_screen(DetailsScreen("Process", lines))

    def action_signal(self, name: str) -> None:
        """Confirm, then send ``name`` to the selected process, if it is the user's own."""
        from gputab.tui.process_actions import NotSignalable, pin, send
        from gputab.tui.signal_screen import SignalScreen

        proc, frame = self.selected_process(), self.gputab_app.frame
        if self.gputab_app.readonly:
            self.notify("read-only (--readonly): process actions are off", severity="warning")
            return
        if proc is None or frame is None:
            self.notify("no process selected", severity="warning")
            return
        if not frame.real_pids:
            self.notify("the demo's processes are simulated: there is nothing to signal", severity="warning")
            return
        try:
            target = pin(proc.pid)
        except NotSignalable as exc:
            self.notify(str(exc), title=f"{name} not offered", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self.notify(send(target, name), title="signal sent")
            except NotSignalable as exc:
                self.notify(str(exc), title="not sent", severity="error")

        self.app.push_screen(SignalScreen(name, target, proc.gpu_index, proc.tag), answered)
