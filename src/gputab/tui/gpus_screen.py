"""The GPU view: a card per GPU with its price, bars and utilization / power history."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from gputab.live.frame import Frame
from gputab.live.history import History
from gputab.tui.live_screen import LiveScreen
from gputab.tui.widgets.gpus import GpuCard

CARD_HEIGHT = 12
"""Rows of a GPU card at least (border, name, two rows of figures, seven of charts); taller when the screen has
the rows: the cards share the height, their charts grow, and no rows are left blank under them."""


class GpusScreen(LiveScreen):
    """GPU cards in a scrolling grid: one column on a narrow terminal, two from 160 columns."""

    CSS_PATH = ["live_screen.tcss", "gpus_screen.tcss"]
    TITLE_TEXT = "GPUs: price, load, and utilization (0-100 %) and power (0 to the limit) over time"
    BINDINGS = [Binding("w", "window", "Window")]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (160, "-wide")]

    def compose_body(self) -> ComposeResult:
        yield VerticalScroll(id="gpu-cards")

    def show_frame(self, frame: Frame, history: History) -> None:
        box = self.query_one("#gpu-cards", VerticalScroll)
        cards = {c.index: c for c in box.query(GpuCard)}
        wanted = {g.index for g in frame.gpus}
        for index, card in cards.items():
            if index not in wanted:
                card.remove()
        new = [GpuCard(g.index) for g in frame.gpus if g.index not in cards]
        if new:
            # Mounting is asynchronous: fill the new cards once they exist, the next tick refreshes them anyway.
            box.mount_all(new)
            self.call_after_refresh(self._fill, frame, history)
            return
        self._fill(frame, history)

    def on_resize(self) -> None:
        super().on_resize()
        self._size_cards()

    def _size_cards(self) -> None:
        """Share the view's rows among the cards' rows (one card a row, two from 160 columns)."""
        box = self.query_one("#gpu-cards", VerticalScroll)
        cards = list(box.query(GpuCard))
        if not cards or not box.size.height:
            return
        per_row = 2 if self.size.width >= 160 else 1
        rows = -(-len(cards) // per_row)
        height = max(CARD_HEIGHT, box.size.height // rows)
        if (height, len(cards)) == getattr(self, "_card_height", None):
            return
        self._card_height = (height, len(cards))
        box.styles.grid_rows = str(height)  # the two-column grid sizes its rows itself
        for card in cards:
            card.styles.height = height

    def _fill(self, frame: Frame, history: History) -> None:
        box = self.query_one("#gpu-cards", VerticalScroll)
        cards = {c.index: c for c in box.query(GpuCard)}
        self._size_cards()
        for g in frame.gpus:
            card = cards.get(g.index)
            if card is not None and card.is_mounted:
                card.show(g, history, *self.chart_window())
