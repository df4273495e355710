"""The alerts view: what the rules found this session (budgets, idle money, low utilization, memory pressure)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from gputab.live.frame import Frame
from gputab.live.history import History
from gputab.tui.live_screen import LiveScreen
from gputab.tui.widgets.alert_panel import AlertPanel
from gputab.tui.widgets.alerts import AlertsTable, clock_label
from gputab.tui.widgets.budgets import BudgetsTable


class AlertsScreen(LiveScreen):
    """The budgets holding this session's jobs (when any), then active alerts, then those cleared this session;
    times in UTC. Under the table: how many were active over time (``w``: the window) and the money wasted by job
    with its likely reason."""

    CSS_PATH = ["live_screen.tcss", "alerts_screen.tcss"]
    TITLE_TEXT = "Alerts: active, then cleared this session (times UTC) · enter: the whole message"
    BINDINGS = [Binding("w", "window", "Window"), Binding("enter", "details", "Details", show=False)]

    def compose_body(self) -> ComposeResult:
        yield BudgetsTable(id="budgets")
        yield AlertsTable(id="alerts")
        yield AlertPanel(id="alert-panel")

    def show_frame(self, frame: Frame, history: History) -> None:
        self.query_one(AlertPanel).show(frame, history, *self.chart_window())
        budgets = self.query_one(BudgetsTable)
        budgets.display = bool(frame.budgets)
        if frame.budgets != getattr(self, "_budgets", None):
            self._budgets = frame.budgets
            budgets.show(frame.budgets)
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

    @on(DataTable.RowSelected, "#alerts")
    def _row_selected(self) -> None:
        self.action_details()

    def action_details(self) -> None:
        """The selected alert in full: its whole message (the table cuts it)."""
        from gputab.tui.details_screen import DetailsScreen

        frame, key = self.gputab_app.frame, self.query_one(AlertsTable).selected_key
        alert = next((a for a in frame.alerts if a.key == key), None) if frame is not None else None
        if alert is not None:
            lines = [
                ("raised (UTC)", clock_label(alert.started_at)),
                ("cleared (UTC)", "active" if alert.active else clock_label(alert.ended_at)),
                ("severity", alert.severity),
                ("kind", alert.kind.replace("_", " ")),
                ("subject", alert.subject),
                ("message", alert.message),
            ]
            self.app.push_screen(DetailsScreen("Alert", lines))
