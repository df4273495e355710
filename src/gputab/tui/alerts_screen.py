"""The alerts view: what the rules found this session (budgets, idle money, low utilization, memory pressure)."""

from __future__ import annotations

from textual.app import ComposeResult

from gputab.tui.frame import Frame, GpuHistory
from gputab.tui.live_screen import LiveScreen
from gputab.tui.widgets.alerts import AlertsTable


class AlertsScreen(LiveScreen):
    """Active alerts, then those cleared this session; times in UTC."""

    CSS_PATH = ["live_screen.tcss", "alerts_screen.tcss"]
    TITLE_TEXT = "Alerts: active, then cleared this session (times UTC)"

    def compose_body(self) -> ComposeResult:
        yield AlertsTable(id="alerts")

    def show_frame(self, frame: Frame, history: GpuHistory) -> None:
        # The feed hands back the same tuple while nothing changed: most ticks cost one identity check here.
        if frame.alerts is getattr(self, "_shown", None):
            return
        self._shown = frame.alerts
        self.query_one(AlertsTable).show(frame.alerts)

    def notes_for(self, frame: Frame) -> list[str]:
        notes = super().notes_for(frame)
        if not frame.alerts:
            notes.append("no alerts this session")
        return notes
