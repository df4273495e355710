"""The alerts table: active alerts first, then those cleared this session, newest first within each."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.text import Text

from gputab.live.frame import AlertView
from gputab.tui.literal import literal
from gputab.tui.widgets.table import KeyedTable

SEVERITY_STYLES = {"critical": "bold red", "warning": "yellow"}


def clock_label(wall: float | None) -> str:
    """``HH:MM:SS`` UTC, as the header's session start (the same on every terminal and in the tests)."""
    if wall is None:
        return ""
    return datetime.fromtimestamp(wall, UTC).strftime("%H:%M:%S")


def alert_cells(a: AlertView) -> tuple:
    """One row: when it was raised and cleared, how bad, what rule, about what, and the rule's own line."""
    cleared = Text("active", style="bold") if a.active else Text(clock_label(a.ended_at), style="dim")
    return (
        Text(clock_label(a.started_at)),
        cleared,
        Text(a.severity, style=SEVERITY_STYLES.get(a.severity, "") if a.active else "dim"),
        literal(a.kind.replace("_", " ")),
        literal(a.subject),
        literal(a.message, style="" if a.active else "dim"),
    )


class AlertsTable(KeyedTable):
    """Every alert of the session the panel keeps (see :class:`gputab.live.alert_log.AlertLog`)."""

    COLUMNS = (
        ("raised", "raised", 8),
        ("cleared", "cleared", 8),
        ("severity", "severity", 8),
        ("kind", "kind", 15),
        ("subject", "subject", 16),
        ("message", "message", 40),
    )

    NARROW = {"kind": 10, "subject": 12}
    """Column widths under 100 columns, so that the message still gets 20 cells at 80 (enter: in full)."""

    def columns_for(self, width: int) -> list[tuple[str, str, int]]:
        # The message takes whatever the terminal has left (left/right scroll to the rest of it).
        cols = [(k, label, self.NARROW.get(k, w) if width < 100 else w) for k, label, w in self.COLUMNS[:-1]]
        fixed = sum(c[2] + 2 for c in cols) + 4
        key, label, _ = self.COLUMNS[-1]
        return [*cols, (key, label, max(16, width - fixed))]

    def show(self, alerts: tuple[AlertView, ...]) -> None:
        self.sync([(a.key, alert_cells(a)) for a in alerts])
