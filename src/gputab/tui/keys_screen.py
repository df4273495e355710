"""``?``: gputab's own keys, grouped, over the view (the view keeps its size: this is a dialog, not a panel).

Listed from the bindings themselves (the app's and the view's), so a key added to a screen shows up here without
anyone remembering to document it; only the framework's generic keys (focus next, copy text) are left out.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

TABLE_KEYS = (
    ("↑ ↓", "select a row"),
    ("← →", "scroll a wide table's columns"),
    ("pgup pgdn home end", "page up and down, first and last row"),
)
"""Keys every table takes (Textual's DataTable), said once in words."""
EVERYWHERE = (("ctrl+p", "commands: every view and action by name, with its key; theme"),)


def own_bindings(cls: type) -> list[Binding]:
    """The bindings a class and its gputab bases declare (not Textual's own classes'), first declared first."""
    out: list[Binding] = []
    seen: set[str] = set()
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("gputab."):
            continue
        for b in klass.__dict__.get("BINDINGS", ()):
            b = b if isinstance(b, Binding) else Binding(*b)
            if b.key not in seen and b.description:
                seen.add(b.key)
                out.append(b)
    return out


def key_groups(app: App[Any], screen: Screen[Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """(group, [(keys, what they do)]) for ``screen`` in ``app``: the view's keys, views, the session's, tables."""

    def shown(bindings: list[Binding]) -> list[tuple[str, str]]:
        rows = []
        for b in bindings:
            keys = " ".join(app.get_key_display(Binding(k.strip(), b.action)) for k in b.key.split(","))
            rows.append((keys, (b.tooltip or b.description)))
        return rows

    applies = getattr(app, "binding_applies", None)
    app_keys = [b for b in own_bindings(type(app)) if applies is None or applies(b.action.split("(")[0], screen)]
    views = [b for b in app_keys if b.action.startswith("view(")]
    session = [b for b in app_keys if not b.action.startswith("view(")]
    palette = list(EVERYWHERE) if getattr(app, "ENABLE_COMMAND_PALETTE", False) else []
    groups = [
        ("This view", shown(own_bindings(type(screen)))),
        ("Views", shown(views)),
        (getattr(app, "KEYS_GROUP", "Session"), shown(session) + palette),
        ("Tables", list(TABLE_KEYS)),
    ]
    return [(name, rows) for name, rows in groups if rows]


class KeysScreen(ModalScreen[None]):
    """The keys of the view underneath, grouped; any of escape, ``?`` or ``q`` closes it."""

    DEFAULT_CSS = """
    KeysScreen { align: center middle; }
    #keys { width: 64; max-width: 100%; height: auto; max-height: 100%; border: round $primary;
            background: $surface; padding: 0 1; }
    .keys-group { text-style: bold; margin-top: 1; }
    """
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.view = screen

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="keys"):
            yield Static(Text("Keys  (escape closes)", style="bold"))
            legend = getattr(self.view, "LEGEND", ())  # what the view's marks mean, after its own keys
            for i, (name, rows) in enumerate(key_groups(self.app, self.view)):
                yield Static(name, classes="keys-group")
                width = max(len(k) for k, _ in rows) + 2
                yield Static(Text("\n".join(f"{k.rjust(width)}  {what}" for k, what in rows)))
                if i == 0 and legend:
                    yield Static("This view's figures", classes="keys-group")
                    yield Static(Text("\n".join(legend)))

    def action_close(self) -> None:
        self.dismiss(None)


class KeysAction:
    """For an app other than the live one (``gputab review``, ``gputab fleet``): ``?`` shows the keys of the
    screen on top, grouped, as the live view's ``?`` does. Add ``KEYS_BINDING`` to the app's BINDINGS."""

    KEYS_BINDING = Binding("question_mark", "keys", "Keys")

    def action_keys(self) -> None:
        """Show the keys of the screen on top (``?`` again or escape closes)."""
        app = self if isinstance(self, App) else None
        if app is not None and not isinstance(app.screen, KeysScreen):
            app.push_screen(KeysScreen(app.screen))
