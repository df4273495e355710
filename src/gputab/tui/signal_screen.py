"""The confirmation before a signal: names the process (pid, user, GPU, job, command line) as literal text."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from gputab.tui.literal import literal
from gputab.tui.process_actions import Target


class SignalScreen(ModalScreen[bool]):
    """Asks "send SIGTERM to process 1234 …?"; dismisses True on y, False on n or escape.

    Args:
        name: the signal's name (SIGINT, SIGTERM, SIGKILL).
        target: the pinned process (what it runs now, read from the system).
        gpu / tag: where the view showed it, and the job it is charged to.
    """

    DEFAULT_CSS = """
    SignalScreen { align: center middle; }
    #signal-dialog { width: 72; max-width: 100%; height: auto; border: round $error; padding: 0 1;
                     background: $surface; }
    #signal-heading { text-style: bold; }
    #signal-help { color: $text-muted; }
    """
    BINDINGS = [Binding("y", "answer(True)", "Send"), Binding("n,escape", "answer(False)", "Cancel")]

    def __init__(self, name: str, target: Target, gpu: int, tag: str | None) -> None:
        super().__init__()
        self.signal_name = name
        self.target = target
        self.gpu = gpu
        self.tag = tag

    def compose(self) -> ComposeResult:
        t = self.target
        with Vertical(id="signal-dialog"):
            yield Label(f"Send {self.signal_name} to process {t.pid}?", id="signal-heading")
            yield Static(
                Text.assemble(
                    ("user ", "dim"),
                    literal(t.username),
                    ("  GPU ", "dim"),
                    str(self.gpu),
                    ("  job ", "dim"),
                    literal(self.tag or "?"),
                    "\n",
                    literal(t.cmdline, wrap=True),
                ),
                id="signal-target",
            )
            yield Static("y: send · n or escape: cancel", id="signal-help")

    def action_answer(self, send: bool) -> None:
        self.dismiss(send)
