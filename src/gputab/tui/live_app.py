"""What the live screens and their widgets read of the app that shows them, typed.

The live screens run only in :class:`gputab.tui.app.GputabApp`. They reach it through ``gputab_app``, typed as
:class:`LiveApp` rather than as the App class itself: ``tui/app.py`` imports the screens, so a screen that
imported ``app.py``, even for types only, would close an import cycle (tests/test_layering.py counts those too).
``tui/app.py`` checks statically that GputabApp is a LiveApp.
"""

from __future__ import annotations

from typing import Protocol

from gputab.live.frame import Frame
from gputab.live.history import History


class LiveApp(Protocol):
    """The live app's state, as its screens see it."""

    frame: Frame | None
    """The newest frame (None before the first poll)."""
    history: History
    """The frames so far, for the charts."""
    chart_window: int
    """Index into :data:`gputab.live.history.WINDOWS`: the charts' time window (``w`` cycles it)."""
    readonly: bool
    """``--readonly``: no process actions (signals)."""
    start_polling: bool
    """False when tests drive the polls by hand (no timers)."""
    interval: float
    """Seconds between the end of one poll and the start of the next."""
