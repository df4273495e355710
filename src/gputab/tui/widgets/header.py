"""The session header: where, since when, how much so far, how fast, and whether it is being recorded."""

from __future__ import annotations

from datetime import datetime, timezone

from rich.text import Text
from textual.widgets import Static

from gputab.tui import format as fmt
from gputab.tui.frame import ATTACHED, RECORDING, Frame
from gputab.tui.literal import clean, literal

STATE_STYLES = {RECORDING: "bold green", ATTACHED: "bold cyan"}
STATE_MARKS = {RECORDING: "● recording", ATTACHED: "◆ attached"}


def started_label(wall: float | None) -> str:
    """Session start in UTC: the same on every terminal (and in the snapshot tests), as the CLI prints it."""
    if wall is None:
        return fmt.NA
    return datetime.fromtimestamp(wall, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def header_text(frame: Frame) -> Text:
    """Two lines: the session (host, id, start, elapsed, state), then the money (cost so far, burn rate)."""
    session = f"session {frame.session_id}" if frame.session_id is not None else "no session"
    mark = STATE_MARKS.get(frame.state, "○ not recording")
    state = Text(mark, style=STATE_STYLES.get(frame.state, "bold yellow"))
    if frame.state_note:
        state.append(f" ({clean(frame.state_note)})", style="")
    jobs = sum(1 for j in frame.jobs if not j.special)
    return Text.assemble(
        literal(frame.host, "bold"), f"  {session}  started {started_label(frame.started_wall)}  up ",
        fmt.duration(frame.elapsed_s), "\n",
        "spent ", (fmt.money(frame.total_cost_usd), "bold"),
        "  burn ", (fmt.rate(frame.burn_rate_usd_per_hour), "bold"),
        f"  {len(frame.gpus)} GPUs  {jobs} jobs  ", alerts_label(frame), state,
    )


def alerts_label(frame: Frame) -> Text:
    """``▲ 2 alerts (4)`` while any is active, before the state so a narrow terminal keeps it; else nothing.

    Nothing at zero: a calm header is the normal case, and the alerts view (4) still lists those cleared.
    """
    n = frame.active_alerts
    if not n:
        return Text("")
    style = "bold red" if frame.critical_alerts else "bold yellow"
    return Text.assemble((f"▲ {n} alert{'s' if n != 1 else ''}", style), " (4)  ")


class SessionHeader(Static):
    """Two-line header; re-rendered only when its text changes (the elapsed time changes once a second)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("gputab: starting…", **kwargs)
        self._text: Text | None = None

    def show(self, frame: Frame) -> None:
        text = header_text(frame)
        if text != self._text:
            self._text = text
            # Fixed height (2 lines): no layout pass needed, which keeps a tick's repaint small.
            self.update(text, layout=False)
