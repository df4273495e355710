"""``gputab`` with no command: the live view."""

from __future__ import annotations

from gputab.cli.context import AppContext


def run_live(app: AppContext, interval: float | None = None) -> None:
    """Open the Textual app (imported here so headless commands never load textual)."""
    from gputab.tui.app import run_app

    run_app(app, interval=interval)
