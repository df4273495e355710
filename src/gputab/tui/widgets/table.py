"""A DataTable that is updated in place from keyed rows: only changed cells are written, rows come and go.

Rebuilding a table every tick resets the cursor and the scroll position and costs a full re-layout; here a tick
that changes three numbers writes three cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

from gputab.tui.literal import fit, literal
from gputab.tui.textual_version import textual_major

_CACHES = ("_data", "_cell_render_cache", "_row_renderable_cache", "_row_render_cache", "_line_cache")
_FAST_CELLS = textual_major() >= 8
"""The cell caches are keyed ``(row_key, column_key, ...)`` as of Textual 8 (checked on 8.2); older: update_cell."""


def _as_text(value: object, copy: bool = False, width: int | None = None) -> Text:
    """A cell as Text: DataTable parses a plain str as markup on every render, a Text it draws as is.

    A str cell is made :func:`~gputab.tui.literal.literal` here, so no cell of a live table is ever markup. A cell
    wider than its column (``width`` cells) is cut here, in cells, ending in ``…``: DataTable would crop it
    silently (``untagged:alice/pyt``).
    """
    text = value if isinstance(value, Text) else literal(value)
    if width is not None and text.cell_len > width:
        text = text.copy()
        text.truncate(width, overflow="ellipsis")
        return text
    return text.copy() if copy and text is value else text


def _label(label: str, width: int) -> Text:
    """A column header cut to its column with ``…`` (a narrow terminal shrinks the last column)."""
    return Text(fit(label, width))


def pick_columns(
    defined: dict[str, tuple[str, int]], priority: Sequence[str], width: int, fill: str | None = None
) -> list[tuple[str, str, int]]:
    """The whole columns of ``defined`` (key -> (label, width), in display order) that fit ``width`` cells.

    A column cut by the terminal's edge would show half a figure, and a horizontal scrollbar takes a row: columns
    are taken by ``priority`` (the first always) while they fit, with a cell of padding each side and 2 cells for
    a vertical scrollbar. ``fill`` then takes what is left (up to its width, at least 10 cells).
    """
    chosen: set[str] = set()
    used = 2
    for key in priority:
        if key not in defined or key == fill:
            continue
        need = defined[key][1] + 2
        if used + need <= width or not chosen:
            chosen.add(key)
            used += need
    room = width - used - 2
    if fill is not None and fill in defined and room >= 10:
        label, most = defined[fill]
        defined = {**defined, fill: (label, min(most, room))}
        chosen.add(fill)
    return [(key, *defined[key]) for key in defined if key in chosen]


class KeyedTable(DataTable):
    """DataTable with :meth:`sync`: set the rows (by key, in order) and it applies the difference.

    Columns are declared once with fixed widths in :attr:`COLUMNS` so that no tick triggers a width
    recomputation, and the layout (and the snapshot tests) stay stable as figures grow.
    """

    COLUMNS: Sequence[tuple[str, str, int]] = ()
    """(key, label, width) of each column."""
    PRIORITY: Sequence[str] = ()
    """When set, only whole columns that fit the table's width are shown, chosen in this order (most useful
    first) and shown in COLUMNS' order; empty: every column (a narrow terminal scrolls)."""
    FILL: str | None = None
    """A column (not in PRIORITY) that takes what is left, up to its width, once every other column is in."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", False)
        super().__init__(**kwargs)
        self._cells: dict[str, tuple] = {}
        self._order: list[str] = []

    def on_mount(self) -> None:
        self._shown = self.columns_for(self.size.width)
        for key, label, width in self._shown:
            self.add_column(_label(label, width), key=key, width=width)

    def columns_for(self, width: int) -> list[tuple[str, str, int]]:
        """The columns shown at ``width`` cells (all, or by :attr:`PRIORITY`); a subclass drops or widens some."""
        if not self.PRIORITY:
            return list(self.COLUMNS)
        return pick_columns({key: (label, w) for key, label, w in self.COLUMNS}, self.PRIORITY, width, self.FILL)

    def on_resize(self) -> None:
        shown = self.columns_for(self.size.width)
        if shown == getattr(self, "_shown", None):
            return
        # Rare (a terminal resize): rebuild the columns and put the rows back.
        self._shown = shown
        rows = [(k, self._cells[k]) for k in self._order if k in self._cells]
        self.clear(columns=True)
        self._cells, self._order = {}, []
        for key, label, width in shown:
            self.add_column(_label(label, width), key=key, width=width)
        self.sync(rows)

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return row_key.value

    def sync(self, rows: Sequence[tuple[str, tuple]]) -> None:
        """Show exactly ``rows`` (key, cells), in this order, touching only what changed."""
        keys = [k for k, _ in rows]
        wanted = set(keys)
        for gone in [k for k in self._cells if k not in wanted]:
            self.remove_row(gone)
            del self._cells[gone]
        all_keys = [c[0] for c in self.COLUMNS]
        columns = getattr(self, "_shown", self.COLUMNS)
        shown = [all_keys.index(c[0]) for c in columns]
        widths = {all_keys.index(c[0]): c[2] for c in columns}
        added = False
        changed: list[tuple[str, str, Text]] = []
        for key, cells in rows:
            old = self._cells.get(key)
            if old is None:
                # Column 0 gets its own Text object: _sort_to relies on its identity to find the row.
                self.add_row(*(_as_text(cells[i], copy=(i == 0), width=widths[i]) for i in shown), key=key)
                added = True
            else:
                for i in shown:
                    if old[i] != cells[i]:
                        changed.append((key, all_keys[i], _as_text(cells[i], copy=(i == 0), width=widths[i])))
            self._cells[key] = cells
        if changed:
            self._write_cells(changed)
        if added or keys != self._order:
            self._sort_to(keys)
        self._order = keys

    def _write_cells(self, changed: list[tuple[str, str, Text]]) -> None:
        """Write changed cells so that only they are drawn again through Rich.

        ``DataTable.update_cell`` bumps the table's update counter, which is part of every render cache key: one
        changed cell re-renders every cell of the table (with history columns that change every tick, that was
        most of the live view's CPU). Here the new values go in, only the changed cells' cached renders are
        dropped, the cheap per-row and per-line assemblies are rebuilt from the cells' caches, and only the
        changed rows are repainted. The update counter is left alone: no row or column moves or resizes.
        Falls back to ``update_cell`` on a Textual whose internals are not the ones this relies on.
        """
        if not _FAST_CELLS or not all(hasattr(self, a) for a in _CACHES):
            for key, column, value in changed:
                self.update_cell(key, column, value)
            return
        cells = {(row, column) for row, column, _ in changed}
        for row, column, value in changed:
            self._data[RowKey(row)][ColumnKey(column)] = value
        cell_cache = self._cell_render_cache
        for cache_key in [k for k in cell_cache.keys() if (k[0], k[1]) in cells]:
            cell_cache.discard(cache_key)
        self._row_renderable_cache.clear()
        self._row_render_cache.clear()
        self._line_cache.clear()
        for row in {row for row, _, _ in changed}:
            self.refresh_row(self.get_row_index(row))

    def _sort_to(self, keys: list[str]) -> None:
        """Put the rows in the order of ``keys`` and keep the cursor on the row it was on."""
        current = self.selected_key
        first = self.COLUMNS[0][0]
        rank = {id(self.get_cell(k, first)): i for i, k in enumerate(keys)}
        self.sort(first, key=lambda cell: rank.get(id(cell), len(rank)))
        if current is not None and current in self._cells:
            self.move_cursor(row=self.get_row_index(RowKey(current)), animate=False, scroll=False)

    def row_cells(self, key: str) -> tuple | None:
        """The cells last written for ``key`` (what the user sees), for tests and actions."""
        return self._cells.get(key)
