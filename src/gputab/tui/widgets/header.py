"""The session header: where, since when, how much so far, how fast, and whether it is being recorded."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, cast

from rich.text import Text
from textual.widgets import Static

from gputab.live.frame import ATTACHED, RECORDING, Frame
from gputab.tui import format as fmt
from gputab.tui.literal import clean, literal
from gputab.tui.live_app import LiveApp

STATE_STYLES = {RECORDING: "bold green", ATTACHED: "bold cyan"}
STATE_MARKS = {RECORDING: "● recording", ATTACHED: "◆ attached"}


def started_label(wall: float | None) -> str:
    """Session start in UTC: the same on every terminal (and in the snapshot tests), as the CLI prints it."""
    if wall is None:
        return fmt.NA
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%d %H:%M UTC")


def header_text(frame: Frame) -> Text:
    """Two lines: the session (host, id, start, elapsed, state), then the money (cost so far, burn rate)."""
    session = f"session {frame.session_id}" if frame.session_id is not None else "no session"
    mark = STATE_MARKS.get(frame.state, "○ not recording")
    state = Text(mark, style=STATE_STYLES.get(frame.state, "bold yellow"))
    if frame.state_note:
        state.append(f" ({clean(frame.state_note)})", style="")
    jobs = sum(1 for j in frame.jobs if not j.special)
    return Text.assemble(
        literal(frame.host, "bold"),
        f"  {session}  started {started_label(frame.started_wall)}  up ",
        fmt.duration(frame.elapsed_s),
        host_note_label(frame),
        "\n",
        "spent ",
        (fmt.money(frame.total_cost_usd), "bold"),
        "  burn ",
        (fmt.rate(frame.burn_rate_usd_per_hour), "bold"),
        f"  {len(frame.gpus)} GPUs  {jobs} jobs  ",
        alerts_label(frame),
        state,
    )


def host_note_label(frame: Frame) -> Text:
    """``  ⚠ <what>`` for the first standing host note (e.g. a container hiding NVML's PIDs): what is wrong fits
    the header's first line; the notes line below the tables carries the whole sentence with its fix."""
    if not frame.host_notes:
        return Text("")
    return Text.assemble(("  ⚠ ", "bold yellow"), literal(frame.host_notes[0].split(":", 1)[0], "yellow"))


def alerts_label(frame: Frame) -> Text:
    """``▲ 2 alerts (4)`` while any is active, before the state so a narrow terminal keeps it; else nothing.

    Nothing at zero: a calm header is the normal case, and the alerts view (4) still lists those cleared.
    """
    n = frame.active_alerts
    if not n:
        return Text("")
    style = "bold red" if frame.critical_alerts else "bold yellow"
    return Text.assemble((f"▲ {n} alert{'s' if n != 1 else ''}", style), " (4)  ")


STALE_AFTER = 3.0
"""A poll running this many intervals (at least this many seconds) is said in the header: the driver hangs."""


def stale_label(waited_s: float) -> Text:
    """``  ⏳ waiting on the NVIDIA driver: no new poll for 12 s`` (the figures above are that old)."""
    return Text(f"  ⏳ waiting on the NVIDIA driver: no new poll for {waited_s:.0f} s", style="bold yellow")


class SessionHeader(Static):
    """Two-line header; re-rendered only when its text changes (the elapsed time changes once a second).

    The poll runs in its own thread, so a driver call that hangs never freezes the screen; a watch here says so
    when no frame has come for a while, and the figures shown are then that old.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("gputab: starting…", **kwargs)
        self._text: Text | None = None
        self._frame: Frame | None = None
        self._shown_at: float | None = None
        self._stale = False

    @property
    def gputab_app(self) -> LiveApp:
        """The app that shows the header (always a GputabApp: the header belongs to its live screens), typed."""
        return cast("LiveApp", self.app)

    def on_mount(self) -> None:
        self.set_interval(1.0, self._watch)

    def show(self, frame: Frame) -> None:
        if frame is self._frame:
            # The same frame again (its view came back into sight): the "waiting" clock keeps running from when
            # the frame arrived, or a view switch during a hung poll would hide the hang for another 3 s.
            return
        self._frame = frame
        self._shown_at = time.monotonic()
        text = header_text(frame)
        if text != self._text or self._stale:  # a new frame also clears the "waiting" label
            self._stale = False
            self._text = text
            # Fixed height (2 lines): no layout pass needed, which keeps a tick's repaint small.
            self.update(text, layout=False)

    def _watch(self) -> None:
        # Only while the app drives polls itself (tests that poll by hand leave it quiet).
        if self._shown_at is None or self._text is None or not self.gputab_app.start_polling:
            return
        waited = time.monotonic() - self._shown_at
        if waited >= max(STALE_AFTER, STALE_AFTER * self.gputab_app.interval):
            self._stale = True
            self.update(Text.assemble(self._text, stale_label(waited)), layout=False)
