"""The sessions screen: every recorded session with its stored totals; filter, sort, open, mark, compare, export."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from gputab.tui.format import duration, money, pct
from gputab.tui.literal import clean, fit, literal
from gputab.tui.review.data import (
    SORTS,
    SessionRow,
    load_rows,
    parse_filter,
    session_figures,
    sort_rows,
)
from gputab.tui.review.export_dialog import offer_export
from gputab.tui.widgets.table import KeyedTable

SORT_GROUP = Binding.Group("Sort", compact=True)
# Which sort each column's header sorts by (the mark and jobs columns do not sort).
_HEADER_SORT = {k: k for k in ("id", "start", "duration", "host", "GPUs", "cost", "idle", "util", "end")}


class SessionsTable(KeyedTable):
    """The sessions, one row each, in whole columns that fit the terminal (no horizontal scrollbar at 80 columns:
    host, GPUs and the jobs' tags are the first left out; Enter opens a session with every figure)."""

    COLUMNS = (
        ("mark", "", 1),
        ("id", "id", 4),
        ("start", "start (UTC)", 16),
        ("duration", "duration", 9),
        ("host", "host", 14),
        ("GPUs", "GPUs", 4),
        ("cost", "cost", 9),
        ("idle", "idle", 8),
        ("util", "util", 4),
        ("end", "end", 9),
        ("jobs", "jobs", 200),
    )
    PRIORITY = ("mark", "id", "start", "cost", "duration", "idle", "util", "end", "host", "GPUs")
    FILL = "jobs"


def session_preview(sid: int, jobs: list[dict]) -> Text:
    """Under the list: session ``sid``'s jobs, costliest first, each with its cost, utilization, wasted dollars and
    share, and the likely reason (Enter opens the session with every figure)."""
    text = Text(f"Session {sid}: {len(jobs)} jobs (Enter: every figure and the charts)", style="bold")
    for j in jobs:
        text.append("\n")
        text.append_text(literal(fit(clean(j["tag"]), 28).ljust(28), style="dim" if j["tag"].startswith("(") else ""))
        text.append(f" {money(j.get('cost_usd')):>9}  util {pct(j.get('avg_utilization'), fraction=True):>4}")
        if j.get("waste_usd") is not None:
            text.append(f"  wasted {money(j['waste_usd']):>8} {pct(j.get('waste_pct')):>4}  ")
            text.append_text(literal(j.get("waste_top_reason") or "-", style="dim"))
    return text


class SessionsScreen(Screen):
    """Past sessions, newest first.

    Args:
        db_path: the session database to read.
        standalone: True in ``gputab review`` (Esc quits); False over the live view (Esc goes back to it).
    """

    CSS_PATH = "sessions_screen.tcss"
    BINDINGS = [
        Binding("enter", "open", "Open", show=False),
        Binding("slash", "focus_filter", "Filter"),
        # o and R share one footer entry ("o/R Sort") and e says "CSV": the footer then fits 80 columns, q included.
        Binding("o", "cycle_sort", "Sort", key_display="o/", group=SORT_GROUP),  # "o/R Sort", not "oR Sort"
        Binding("R", "reverse_sort", "Reverse sort", group=SORT_GROUP),
        Binding("m", "mark", "Mark"),
        Binding("c", "compare", "Diff", tooltip="Compare the two marked sessions"),  # short: o/R fits 80 columns
        Binding("e", "export", "CSV", tooltip="Export the marked sessions (or this one) as CSV"),
        Binding("dollar_sign", "spend", "Spend"),
        Binding("g", "reload", "Reload", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, db_path: Path, standalone: bool = False) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.standalone = standalone
        self.rows: list[SessionRow] = []
        self.shown: list[SessionRow] = []
        self.marked: list[int] = []
        self.sort_index = 0
        self.descending = True

    def compose(self) -> ComposeResult:
        yield Static("", id="sessions-title")
        yield Input(
            placeholder="press / to filter (e.g. tag:llama host:box since:7d until:2026-02-01)",
            id="sessions-filter",
        )
        yield Static("", id="sessions-filter-error")
        yield SessionsTable(id="sessions", zebra_stripes=True)
        yield Static("", id="sessions-empty")
        yield Static("", id="sessions-preview")
        yield Footer(show_command_palette=False)  # ctrl+p is under `?`: the footer keeps its room

    def on_mount(self) -> None:
        self.reload()
        self.query_one("#sessions", DataTable).focus()

    # -- data ---------------------------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the sessions again (a live session moves on) and redraw with the current filter and sort."""
        self.rows = load_rows(self.db_path)
        known = {r.id for r in self.rows}
        self.marked = [m for m in self.marked if m in known]
        self.redraw()

    def redraw(self) -> None:
        """Filter, sort and fill the table, keeping the cursor on the same session when it is still listed."""
        table = self.query_one("#sessions", SessionsTable)
        current = self.selected_id()
        filt = parse_filter(self.query_one("#sessions-filter", Input).value)
        err = self.query_one("#sessions-filter-error", Static)
        err.update(literal(filt.error or "", wrap=True))  # quotes what the user typed
        err.display = bool(filt.error)
        label, attr = SORTS[self.sort_index]
        self.shown = sort_rows([r for r in self.rows if filt.matches(r)], attr, self.descending)
        table.sync([(str(r.id), self._cells(r)) for r in self.shown])
        if current is not None and any(r.id == current for r in self.shown):
            table.move_cursor(row=table.get_row_index(str(current)))
        arrow = "↓" if self.descending else "↑"
        self.query_one("#sessions-title", Static).update(
            f"Sessions: {len(self.shown)} of {len(self.rows)} · sorted by {label} {arrow} · {len(self.marked)} marked"
        )
        empty = self.query_one("#sessions-empty", Static)
        empty.display = not self.shown
        empty.update(
            literal(
                "No sessions match the filter."
                if self.rows
                else f"No sessions yet in {self.db_path}; record one with `gputab record`.",
                wrap=True,
            )
        )

    @on(DataTable.RowHighlighted, "#sessions")
    def _preview(self) -> None:
        """The session under the cursor, in the rows the list leaves: its jobs, what each cost and wasted, why."""
        from gputab.store import Store

        sid = self.selected_id()
        preview = self.query_one("#sessions-preview", Static)
        if sid is None:
            preview.update("")
            return
        try:
            with Store.open(self.db_path, readonly=True) as store:
                jobs = store.jobs(sid)
        except Exception as exc:  # noqa: BLE001 - a preview that cannot be read says so, the list stays
            preview.update(literal(f"session {sid}: {exc}"))
            return
        preview.update(session_preview(sid, jobs))

    def _cells(self, r: SessionRow) -> tuple:
        # Every str cell is made literal by the table (KeyedTable): hosts and tags are anyone's text; a cell wider
        # than its column ends in an ellipsis.
        tags = ", ".join(r.tags[:3]) + (f" +{len(r.tags) - 3}" if len(r.tags) > 3 else "")
        start = (r.start or "-").replace("T", " ").removesuffix("Z")[:16]
        return (
            "*" if r.id in self.marked else " ",
            str(r.id),
            start,
            duration(r.duration_s),
            clean(r.host),
            str(r.gpus),
            Text(money(r.cost_usd), justify="right"),
            Text(money(r.idle_cost_usd), justify="right"),
            Text(pct(r.avg_utilization, fraction=True), justify="right"),
            r.end_reason or "-",
            clean(tags) or "-",
        )

    def selected_id(self) -> int | None:
        """The session under the cursor, or None when the list is empty."""
        table = self.query_one("#sessions", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return int(key.value) if key.value is not None else None

    def row(self, sid: int) -> SessionRow:
        """The listed session ``sid``."""
        return next(r for r in self.rows if r.id == sid)

    # -- events -------------------------------------------------------------------------------------------------
    @on(Input.Changed, "#sessions-filter")
    def _filter_changed(self) -> None:
        self.redraw()

    @on(Input.Submitted, "#sessions-filter")
    def _filter_done(self) -> None:
        self.query_one("#sessions", DataTable).focus()

    @on(DataTable.RowSelected, "#sessions")
    def _row_selected(self) -> None:
        self.action_open()

    @on(DataTable.HeaderSelected, "#sessions")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        label = _HEADER_SORT.get(str(event.column_key.value))
        if label is None:
            return
        index = next(i for i, (name, _) in enumerate(SORTS) if name == label)
        # A second click on the sorted column turns the order round, as in a spreadsheet.
        self.descending = not self.descending if index == self.sort_index else True
        self.sort_index = index
        self.redraw()

    def on_screen_resume(self) -> None:
        # Back from a session whose samples were edited: its totals may have changed.
        if self.is_mounted and self.rows:
            self.reload()

    # -- actions ------------------------------------------------------------------------------------------------
    def action_open(self) -> None:
        from gputab.tui.review.session_screen import SessionScreen

        sid = self.selected_id()
        if sid is not None:
            self.app.push_screen(SessionScreen(self.db_path, sid))

    def action_spend(self) -> None:
        from gputab.tui.spend_screen import open_spend

        open_spend(self.app, self.db_path)

    def action_focus_filter(self) -> None:
        self.query_one("#sessions-filter", Input).focus()

    def action_cycle_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.descending = SORTS[self.sort_index][0] not in ("host", "end")  # text sorts A-Z first
        self.redraw()

    def action_reverse_sort(self) -> None:
        self.descending = not self.descending
        self.redraw()

    def action_reload(self) -> None:
        self.reload()

    def action_mark(self) -> None:
        """Mark or unmark the session under the cursor, for compare (two) and export (any number)."""
        sid = self.selected_id()
        if sid is None:
            return
        if sid in self.marked:
            self.marked.remove(sid)
        else:
            self.marked.append(sid)
        self.redraw()

    def action_compare(self) -> None:
        from gputab.tui.review.compare_screen import CompareScreen

        if len(self.marked) != 2:
            self.notify(f"mark two sessions with m to compare them ({len(self.marked)} marked)", severity="warning")
            return
        a, b = (self.row(sid) for sid in self.marked)
        self.app.push_screen(
            CompareScreen(f"session {a.id}", session_figures(a), f"session {b.id}", session_figures(b))
        )

    def action_export(self) -> None:
        """Export the marked sessions, or the one under the cursor, as the ``gputab export --csv`` job rows."""
        selected = self.selected_id()
        ids = sorted(self.marked) or ([selected] if selected is not None else [])
        if not ids:
            self.notify("nothing to export", severity="warning")
            return
        what = f"session {ids[0]}" if len(ids) == 1 else f"sessions {', '.join(map(str, ids))}"
        offer_export(self, self.db_path, ids, what)

    def action_back(self) -> None:
        if self.focused is self.query_one("#sessions-filter", Input):
            self.query_one("#sessions", DataTable).focus()
        elif self.standalone:
            self.app.exit()
        else:
            self.app.pop_screen()
