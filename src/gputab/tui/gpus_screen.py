"""The GPU view: a compact card per GPU with its price, bars and utilization / power history; every GPU of the
box (up to 8) fits a 120x40 terminal, and the view scrolls only past that."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from gputab.live.frame import Frame
from gputab.live.history import History
from gputab.tui.live_screen import LiveScreen
from gputab.tui.widgets.gpus import GpuCard

CARD_HEIGHT = 4
"""Rows of a GPU card at least (its top border with the price, three rows of figures and charts), plus one per
MIG instance; taller when the screen has the rows: the cards share the height, their charts grow (a time axis
from 5 rows of chart), and no rows are left blank under them."""


class GpusScreen(LiveScreen):
    """GPU cards in a scrolling grid: one column on a narrow terminal, two from 160 columns."""

    CSS_PATH = ["live_screen.tcss", "gpus_screen.tcss"]
    TITLE_TEXT = "GPUs: price, $/h now, cost; load; utilization (0-100 %) and power (0 to the limit) over time"
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
        """Share the view's rows among the cards (one card a row, two from 160 columns); a card's MIG instance
        lines come on top of its share, and the rows left over by the division go to the first cards."""
        box = self.query_one("#gpu-cards", VerticalScroll)
        cards = list(box.query(GpuCard))
        if not cards or not box.size.height:
            return
        per_row = 2 if self.size.width >= 160 else 1
        grid = [cards[i : i + per_row] for i in range(0, len(cards), per_row)]
        extra = [max(c.mig_lines for c in row) for row in grid]
        share, rest = divmod(box.size.height - sum(extra), len(grid))
        if share < CARD_HEIGHT:
            share, rest = CARD_HEIGHT, 0  # more cards than rows: the view scrolls
        heights = [share + (1 if i < rest else 0) + extra[i] for i in range(len(grid))]
        if (heights, len(cards), per_row) == getattr(self, "_card_heights", None):
            return
        self._card_heights = (heights, len(cards), per_row)
        box.styles.grid_rows = " ".join(map(str, heights))  # the two-column grid sizes its rows itself
        for row, height in zip(grid, heights):
            for card in row:
                card.styles.height = height

    def _fill(self, frame: Frame, history: History) -> None:
        box = self.query_one("#gpu-cards", VerticalScroll)
        cards = {c.index: c for c in box.query(GpuCard)}
        for g in frame.gpus:
            card = cards.get(g.index)
            if card is not None and card.is_mounted:
                card.show(g, history, *self.chart_window())
        self._size_cards()  # after show: a card knows its MIG lines then
