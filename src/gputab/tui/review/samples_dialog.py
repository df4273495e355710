"""The dialog that sets a job's samples and tokens after the session (``gputab samples TAG --set N``).

Like the CLI it says whether it adds or sets, in the same words: it *sets* the job's totals for the session.
The session screen refuses a live session before opening it. The tag is outside text: shown literally.
"""

from __future__ import annotations

import re

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from gputab.tui.literal import literal

# Digits, optionally grouped the way people write big counts (1,000,000 or 1_000_000).
_COUNT = re.compile(r"^\d{1,3}(?:[,_]?\d{3})*$|^\d+$")


def parse_count(text: str) -> int:
    """A non-negative integer from the user's text; an empty field is 0.

    Raises:
        ValueError: anything else (a sign, a decimal point, letters).
    """
    text = text.strip()
    if not text:
        return 0
    if not _COUNT.match(text):
        raise ValueError(f"{text!r} is not a count: a whole number, 0 or more")
    return int(text.replace(",", "").replace("_", ""))


HELP = (
    "--set: these become the job's totals for the session (to add instead: gputab samples TAG --add N) · "
    "Enter: set · Tab: next · Esc: cancel"
)


class SamplesDialog(ModalScreen[tuple[int, int] | None]):
    """Asks for a job's total samples and tokens (set, not added); dismisses with ``(samples, tokens)``, or None.

    Args:
        tag: the job.
        samples: its stored samples (the starting value), None when it never reported any.
        tokens: its stored tokens.
    """

    CSS_PATH = "samples_dialog.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, tag: str, samples: int | None, tokens: int | None) -> None:
        super().__init__()
        self.tag = tag
        self.samples = samples
        self.tokens = tokens

    def compose(self) -> ComposeResult:
        with Vertical(id="samples-dialog"):
            yield Label(Text.assemble("Set samples and tokens of ", literal(self.tag)), id="samples-heading")
            yield Input(
                value="" if self.samples is None else str(self.samples),
                placeholder="samples, e.g. 200000",
                id="samples-input",
            )
            yield Input(
                value="" if self.tokens is None else str(self.tokens),
                placeholder="tokens, e.g. 50000000",
                id="tokens-input",
            )
            yield Static(HELP, id="samples-help", markup=False)
            yield Static("", id="samples-error", markup=False)

    @on(Input.Submitted)
    def submit(self) -> None:
        try:
            samples = parse_count(self.query_one("#samples-input", Input).value)
            tokens = parse_count(self.query_one("#tokens-input", Input).value)
        except ValueError as exc:
            self.query_one("#samples-error", Static).update(literal(exc, wrap=True))
            return
        self.dismiss((samples, tokens))

    def action_cancel(self) -> None:
        self.dismiss(None)
