"""The tagging dialog: give a process (or every process of a job) a tag, from now on."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from gputab.attribution import validate_tag
from gputab.tui.literal import literal


class TagScreen(ModalScreen[str | None]):
    """Asks for a tag; dismisses with the valid tag, or None when cancelled.

    Args:
        target: what is being tagged, in words ("process 34500 (alice: python -m ipykernel…)").
        current: the tag it has now, offered as a starting point unless it is an automatic ``untagged:`` one.
    """

    CSS_PATH = "tag_screen.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, target: str, current: str | None = None) -> None:
        super().__init__()
        self.target = target
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="tag-dialog"):
            yield Label("Charge to tag", id="tag-heading")
            yield Static(literal(self.target, wrap=True), id="tag-target")
            start = "" if not self.current or self.current.startswith("untagged:") else self.current
            yield Input(value=start, placeholder="e.g. llama3-lora", id="tag-input", max_length=64)
            yield Static("Enter: apply from now on, recorded in the session · Esc: cancel", id="tag-help")
            yield Static("", id="tag-error")

    @on(Input.Submitted, "#tag-input")
    def submit(self, event: Input.Submitted) -> None:
        try:
            tag = validate_tag(event.value)
        except ValueError as exc:
            self.query_one("#tag-error", Static).update(literal(exc, wrap=True))
            return
        self.dismiss(tag)

    def action_cancel(self) -> None:
        self.dismiss(None)
