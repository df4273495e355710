"""What every view shares: the session header on top, the footer with the keys below, the latest frame."""

from __future__ import annotations

from typing import cast

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Static

from gputab.live.frame import Frame
from gputab.live.history import WINDOWS, History
from gputab.tui.literal import literal
from gputab.tui.live_app import LiveApp
from gputab.tui.widgets.header import SessionHeader


class LiveScreen(Screen):
    """A view of the live session. Subclasses compose their body and implement :meth:`show_frame`.

    Only the visible view is refreshed on a tick; a view coming back into sight refreshes from the app's latest
    frame (and the history the app keeps), so hiding a view loses nothing.
    """

    CSS_PATH = ["live_screen.tcss"]
    TITLE_TEXT = ""
    NARROW_TITLE_TEXT = ""
    """The title under 100 columns, where it says what the narrow columns are (the wide title when empty)."""

    @property
    def gputab_app(self) -> LiveApp:
        """The app that shows this screen (always a GputabApp), typed."""
        return cast("LiveApp", self.app)

    def chart_window(self) -> tuple[float | None, str]:
        """The charts' time window (seconds, None for the whole session) and its label; ``w`` cycles it."""
        return WINDOWS[self.gputab_app.chart_window % len(WINDOWS)]

    def action_window(self) -> None:
        """Show the next time window in the charts: 5 min, 1 h, the whole session."""
        app = self.gputab_app
        app.chart_window = (app.chart_window + 1) % len(WINDOWS)
        if app.frame is not None:
            self.refresh_frame(app.frame, app.history)
        self.notify(f"charts: {self.chart_window()[1]}", timeout=2)

    def compose(self) -> ComposeResult:
        yield SessionHeader(id="session-header")
        yield Static(self._title(self.app.size.width), id="view-title")
        yield from self.compose_body()
        yield Static("", id="notes")
        yield Footer(show_command_palette=False)

    def _title(self, width: int) -> Text:
        narrow = width < 100 and self.NARROW_TITLE_TEXT
        return Text(self.NARROW_TITLE_TEXT if narrow else self.TITLE_TEXT, no_wrap=True, overflow="ellipsis")

    def on_resize(self) -> None:
        self.query_one("#view-title", Static).update(self._title(self.size.width))

    def compose_body(self) -> ComposeResult:
        """The view's own widgets."""
        yield from ()

    def on_screen_resume(self) -> None:
        app = self.gputab_app
        if app.frame is not None:
            self.refresh_frame(app.frame, app.history)

    def refresh_frame(self, frame: Frame, history: History) -> None:
        """Show ``frame`` in the header, the body and the notes line."""
        self.query_one(SessionHeader).show(frame)
        self.show_frame(frame, history)
        notes = " · ".join(self.notes_for(frame))
        if notes != getattr(self, "_notes", None):  # rare: only then is a layout pass worth it
            self._notes = notes
            note = self.query_one("#notes", Static)
            note.display = bool(notes)
            note.update(literal(notes, wrap=True))  # poll errors and notes quote process names and paths

    def show_frame(self, frame: Frame, history: History) -> None:
        """Refresh the body from ``frame``."""

    def notes_for(self, frame: Frame) -> list[str]:
        """Short lines under the body: poll errors, unknown prices."""
        notes = list(frame.notes)
        if any(g.unknown_price for g in frame.gpus):
            notes.append("? = GPU model not in the price table: charged at the default rate")
        return notes
