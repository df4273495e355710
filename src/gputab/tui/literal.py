"""Text from outside gputab on screen: tags, host, user and process names, command lines, alert messages, paths.

Such text is data. Anyone on a shared box can name a process ``[/x]`` or set ``GPUTAB_TAG='[@click=app.quit]q'``,
so it must never reach a widget as a ``str`` (Textual parses a ``str`` as markup in a ``Static``, a ``Label``, a
``DataTable`` cell or column label, a border title and a notification). Every such string goes through
:func:`literal`, which returns a Rich :class:`~rich.text.Text`: drawn exactly as written, markup never parsed.

Control characters would reach the terminal as they are: an ``ESC [2J`` in a command line would clear the
screen and ESC sequences could move the cursor or retitle the window. :func:`clean` shows them instead, as the
Unicode control pictures (``ESC`` -> ``␛``, line feed -> ``␊``) or as a ``<U+202E>`` escape for the invisible
format characters (bidirectional overrides, zero-width characters) that would silently reorder or hide text.
Right-to-left and double-width (CJK) text is left as it is; :func:`fit` cuts in terminal cells, not characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.text import Text

ELLIPSIS = "…"

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0 and C1 controls, DEL (ESC and CSI among them)
    "\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"  # invisible format characters
    "\ud800-\udfff"  # lone surrogates (undecodable bytes of a command line): the terminal cannot encode them
    "\U000e0000-\U000e007f]"  # tag characters
)


def _shown(match: re.Match) -> str:
    ch = match.group()
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ .. ␟: one cell each, as the character's own picture
    if code == 0x7F:
        return "␡"
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return f"<U+{code:04X}>"


def clean(value: Any) -> str:
    """``value`` as a string that is safe to draw: every control or invisible character replaced by a visible
    stand-in. Printable text (brackets included) is kept exactly; ``None`` is the empty string."""
    text = "" if value is None else str(value)
    return _UNSAFE.sub(_shown, text) if _UNSAFE.search(text) else text


def fit(text: str, cells: int) -> str:
    """``text`` cut to at most ``cells`` terminal cells, ending in ``…`` where it was cut (CJK counts 2)."""
    if cell_len(text) <= cells:
        return text
    if cells <= 0:
        return ""
    # set_cell_size never splits a double-width character: it pads with a space instead.
    return set_cell_size(text, cells - 1).rstrip(" ") + ELLIPSIS


def pad(text: str, cells: int) -> str:
    """``text`` fitted to ``cells`` and padded with spaces to exactly that width (a label column)."""
    return set_cell_size(fit(text, cells), cells)


def literal(value: Any, style: str = "", *, cells: int | None = None, wrap: bool = False) -> Text:
    """Outside text as a :class:`Text` that is drawn exactly as written (after :func:`clean`).

    Args:
        value: the outside string (anything else is written with ``str``).
        style: a Rich style for the whole text (ours, never taken from the value).
        cells: cut to this many terminal cells with an ellipsis.
        wrap: False (the default) keeps it on one line and ends it with ``…`` where a narrower widget (a table
            column) cuts it; True wraps it (a dialog's description of a process).
    """
    text = clean(value)
    if cells is not None:
        text = fit(text, cells)
    if wrap:
        return Text(text, style=style)
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def literal_row(cells: Iterable[Any]) -> list:
    """A table row with every ``str`` cell made :func:`literal`; a cell that is already a Text is kept."""
    return [c if isinstance(c, Text) else literal(c) for c in cells]


class LiteralNotifications:
    """Mixin for gputab's Apps: every notification (``app.notify`` and every widget's ``notify``) is literal.

    A notification's message is parsed as markup by default, and gputab's notifications carry tags, alert
    messages, error text and paths; none of them ever uses markup, so the switch is turned off here for all.
    """

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        super().notify(  # type: ignore[misc]  # a mixin: the App or Widget it is mixed into has notify
            clean(message), title=clean(title), severity=severity, timeout=timeout, markup=False
        )
