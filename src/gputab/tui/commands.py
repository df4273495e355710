"""gputab's own commands in Textual's command palette (ctrl+p), each with the key it is bound to.

The palette lists what the keys do (views, tag, sessions, spend, the chart window, export, theme), so a user who
does not know the keys finds them by name, and learns the key from the hit's help line. A command that does not
apply over the screen on top (tag over the review, the chart window over the Spend screen) is not offered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from textual.app import App
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher
from textual.screen import Screen


@dataclass(frozen=True)
class Command:
    """One palette entry: its name, what it does, the key it is bound to, and the app action it runs."""

    name: str
    help: str
    key: str
    action: str
    """An action of the app (``view('gpus')``) or of the screen under the palette (``window``)."""
    scope: str = "app"
    """``app``: an app action, offered where the app allows it; ``screen``: offered where the screen has it;
    ``export``: the session's CSV (:func:`export_session`), offered over the live views."""


COMMANDS: tuple[Command, ...] = (
    Command("Jobs view", "what each job costs, the GPUs, the money charts", "1", "view('jobs')"),
    Command("GPUs view", "a card per GPU: price, load, utilization and power over time", "2", "view('gpus')"),
    Command("Processes view", "every process on a GPU and the job it is charged to", "3", "view('processes')"),
    Command("Alerts view", "active and cleared alerts, and the money wasted by job", "4", "view('alerts')"),
    Command("Tag", "tag the selected job's processes (jobs view) or the selected process", "t", "tag"),
    Command("Sessions", "review the recorded sessions (this one too)", "s", "sessions"),
    Command("Spend", "cost per day and per job across the recorded sessions", "$", "spend"),
    Command("Chart window", "the charts' time window: 5 min, 1 h, the whole session", "w", "window", "screen"),
    Command("Export this session as CSV", "its job rows, as `gputab export` writes them", "-", "export", "export"),
    Command("Theme", "pick a color theme (a light one among them)", "-", "change_theme"),
    Command("Keys", "every key of this view", "?", "keys"),
)


def _action_name(action: str) -> str:
    return action.split("(", 1)[0]


def label(command: Command) -> str:
    """What the palette lists: the command's name and its key (``Jobs view (1)``)."""
    return f"{command.name} ({command.key})" if command.key != "-" else command.name


def export_session(app: App) -> None:
    """Write the session this app records (as of its last commit) as CSV job rows, and say where."""
    from gputab.tui.db_path import review_db_path
    from gputab.tui.review.data import export_sessions

    frame = getattr(app, "frame", None)
    path = review_db_path(app)
    if frame is None or frame.session_id is None or path is None:
        app.notify("this view is not recording (nothing stored to export)", severity="warning")
        return
    try:
        out, rows = export_sessions(path, [frame.session_id])
    except Exception as exc:  # noqa: BLE001 - any failure (disk full, permissions) is told, not raised
        app.notify(f"{type(exc).__name__}: {exc}", title="export failed", severity="error")
        return
    app.notify(f"{rows} rows to {out}", title="exported")  # gputab's apps notify literally (LiteralNotifications)


class GputabCommands(Provider):
    """The palette's gputab section: :data:`COMMANDS`, those that apply on the screen under the palette."""

    def available(self) -> list[Command]:
        """The commands that apply over the screen the palette was opened on."""
        app, screen = self.app, self.screen
        applies: Callable[[str, Screen], bool] = getattr(app, "binding_applies", lambda action, screen: True)
        out = []
        for command in COMMANDS:
            name = _action_name(command.action)
            if command.scope == "screen":
                if not hasattr(screen, f"action_{name}"):
                    continue
            elif command.scope == "app" and (not hasattr(app, f"action_{name}") or not applies(name, screen)):
                continue
            elif command.scope == "export" and not applies("sessions", screen):
                continue
            out.append(command)
        return out

    async def _run(self, command: Command) -> None:
        # The palette has closed by now (Textual calls the command after dismissing it).
        if command.scope == "export":
            export_session(self.app)
        elif command.scope == "screen":
            await self.app.run_action(command.action, self.screen)
        else:
            await self.app.run_action(command.action)

    @staticmethod
    def _help(command: Command) -> str:
        key = "no key: from here" if command.key == "-" else f"key {command.key}"
        return f"{key} · {command.help}"

    async def discover(self) -> Hits:
        for command in self.available():
            yield DiscoveryHit(Content(label(command)), partial(self._run, command), help=self._help(command))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self.available():
            text = label(command)
            score = matcher.match(f"{text} {command.help}")
            if score > 0:
                yield Hit(score, self._highlight(matcher, text), partial(self._run, command), text=text,
                          help=self._help(command))  # fmt: skip

    @staticmethod
    def _highlight(matcher: Matcher, text: str) -> Content:
        """``text`` with the query's letters marked, as literal text (Textual's own highlight reads markup)."""
        content = Content(text)
        _, offsets = matcher.fuzzy_search.match(matcher.query, text)
        for offset in offsets:
            if offset < len(text) and not text[offset].isspace():
                content = content.stylize(matcher.match_style, offset, offset + 1)
        return content
