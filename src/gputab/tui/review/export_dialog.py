"""The dialog that asks where review's ``e`` writes its CSV: the default path offered, editable, then said."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Label, Static

from gputab.tui.literal import literal

HELP = "Enter: write the CSV here · Esc: cancel"


class ExportDialog(ModalScreen[Path | None]):
    """Offers ``default`` as the CSV's path; dismisses with the path typed (None on Esc or an empty field).

    Args:
        what: what is exported, for the heading (``session 3``).
        default: the path offered (absolute).
    """

    DEFAULT_CSS = """
    ExportDialog { align: center middle; }
    #export-dialog { width: 80; max-width: 100%; height: auto; border: round $accent; padding: 0 1;
                     background: $surface; }
    #export-heading { text-style: bold; }
    #export-help { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, what: str, default: Path) -> None:
        super().__init__()
        self.what = what
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="export-dialog"):
            yield Label(Text.assemble("Export ", literal(self.what), " as CSV to:"), id="export-heading")
            yield Input(value=str(self.default), id="export-path")
            yield Static(HELP, id="export-help", markup=False)

    @on(Input.Submitted)
    def submit(self) -> None:
        text = self.query_one("#export-path", Input).value.strip()
        self.dismiss(Path(text) if text else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


def offer_export(screen: Screen, db_path: Path, ids: list[int], what: str) -> None:
    """Ask where to write sessions ``ids`` as CSV (the default path offered), write it, and say where it went."""
    from gputab.tui.review.data import default_export_path, export_sessions

    def write(target: Path | None) -> None:
        if target is None:
            screen.notify("export cancelled", timeout=2)
            return
        try:
            path, rows = export_sessions(db_path, ids, target=target)
        except Exception as exc:  # noqa: BLE001 - any failure (disk full, permissions) is told, not raised
            screen.notify(f"{type(exc).__name__}: {exc}", title="export failed", severity="error", markup=False)
            return
        screen.notify(f"wrote {rows} rows to {path}", title="exported", markup=False)

    screen.app.push_screen(ExportDialog(what, default_export_path(ids)), write)
