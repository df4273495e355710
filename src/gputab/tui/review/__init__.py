"""Review of recorded sessions (ISSUE 6): the sessions list, one session, samples entry, compare, export.

Reached from the live view with ``s`` and on its own as ``gputab review``. Everything reads the stored totals and
the downsampled series of :mod:`gputab.store.review`, never the raw samples, so a month-long session opens at once.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from gputab.tui.db_path import review_db_path
from gputab.tui.keys_screen import KeysAction
from gputab.tui.literal import LiteralNotifications
from gputab.tui.review.sessions_screen import SessionsScreen

__all__ = ["ReviewApp", "SessionsScreen", "open_review", "run_review"]


class ReviewApp(KeysAction, LiteralNotifications, App):
    """``gputab review``: the sessions screen on its own, over the database at ``db_path``."""

    TITLE = "gputab review"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [KeysAction.KEYS_BINDING, Binding("q", "quit", "Quit")]
    KEYS_GROUP = "Review"
    """The group of the app's own keys under ``?``."""

    def __init__(self, db_path: Path) -> None:
        super().__init__()
        self.db_path = Path(db_path)

    def on_mount(self) -> None:
        self.push_screen(SessionsScreen(self.db_path, standalone=True))


def open_review(app: App) -> None:
    """Push the sessions screen over the live view, on the database the live view records to."""
    path = review_db_path(app)
    if path is None:
        app.notify("this view is not recording (nothing stored to review)", severity="warning")
        return
    app.push_screen(SessionsScreen(path))


def run_review(db_path: Path) -> None:
    """Run ``gputab review`` in this terminal until the user quits."""
    ReviewApp(db_path).run()
