"""Two sessions or two jobs side by side, with the difference."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static

from gputab.money import per_sample
from gputab.tui.format import NA, hours, money, pct
from gputab.tui.literal import literal


def _per_sample(v: float | None) -> str:
    return per_sample(v, none=NA)


# (label, key, how to write a value, how to write a difference)
ROWS = (
    ("cost", "cost_usd", money, money),
    ("GPU-hours", "gpu_hours", hours, lambda d: f"{d:+.3f}"),
    ("effective GPU-hours", "effective_gpu_hours", hours, lambda d: f"{d:+.3f}"),
    ("avg utilization", "avg_utilization", lambda v: pct(v, fraction=True), lambda d: f"{d * 100:+.0f} pts"),
    ("$/effective GPU-hour", "cost_per_effective_gpu_hour_usd", money, money),
    ("energy kWh", "energy_kwh", lambda v: NA if v is None else f"{v:.3f}", lambda d: f"{d:+.3f}"),
    ("samples", "samples", lambda v: "-" if v is None else f"{v:,}", lambda d: f"{d:+,}"),
    ("$/sample", "cost_per_sample_usd", _per_sample, lambda d: f"{d:+.6f}"),
)


def difference(a: float | None, b: float | None) -> tuple[float | None, float | None]:
    """``b - a`` and the relative change ``(b - a) / a``; None where a side is unknown (or a is 0 for the ratio)."""
    if a is None or b is None:
        return None, None
    return b - a, (b - a) / a if a else None


def compare_bars(a: dict, b: dict, width: int, height: int) -> Text:
    """Each figure as two bars on one scale (the larger of A and B fills the width): which side is bigger, and by
    how much, at a glance. The rows are shared among the figures; n/a draws no bar."""
    rows = [(label, key, fmt) for label, key, fmt, _ in ROWS if a.get(key) is not None or b.get(key) is not None]
    out = Text(no_wrap=True, overflow="ellipsis")
    if not rows:
        return out
    n = len(rows)
    # Rows of each bar: a taller screen draws thicker bars, and what is left spaces the figures, not blank rows.
    thick = max(1, (height - 2 * n + 1) // (2 * n))
    gap = 1 + max(0, height - n * (1 + 2 * thick) - (n - 1)) // max(1, n - 1)
    bar_w = max(4, width - 16)
    for i, (label, key, fmt) in enumerate(rows):
        va, vb = a.get(key), b.get(key)
        top = max(abs(v) for v in (va, vb) if v is not None) or 1.0
        out.append(label + "\n", style="bold")
        for side, v, style in (("A", va, "cyan"), ("B", vb, "magenta")):
            filled = 0 if v is None else round(abs(v) / top * bar_w)
            for row in range(thick):
                out.append(f" {side} " if row == 0 else "   ")
                out.append("█" * filled, style=style)
                out.append(" " * (bar_w - filled) + (f" {fmt(v)}" if row == 0 else "") + "\n")
        if i < len(rows) - 1:
            out.append("\n" * gap)
    return out


class CompareBars(Widget):
    """:func:`compare_bars` drawn at the widget's size."""

    def __init__(self, a: dict[str, Any], b: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.a, self.b = a, b

    def render(self) -> Text:
        return compare_bars(self.a, self.b, self.size.width, self.size.height)


class CompareScreen(Screen):
    """Figure by figure: A, B, B - A and the change in percent.

    Args:
        name_a: what A is ("session 3", a tag).
        a: A's figures (keys of :data:`ROWS`).
        name_b: what B is.
        b: B's figures.
    """

    CSS_PATH = "compare_screen.tcss"
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, name_a: str, a: dict, name_b: str, b: dict) -> None:
        super().__init__()
        self.name_a, self.a, self.name_b, self.b = name_a, a, name_b, b

    def compose(self) -> ComposeResult:
        yield Static(literal(f"Compare  A: {self.name_a}  ·  B: {self.name_b}", wrap=True), id="compare-title")
        yield DataTable(id="compare", cursor_type="row", zebra_stripes=True)
        yield Static("B - A: positive means B is higher; for cost and $/sample lower is better", id="compare-help")
        yield CompareBars(self.a, self.b, id="compare-bars")
        yield Footer(show_command_palette=False)  # ctrl+p is under `?`: the footer keeps its room

    def on_mount(self) -> None:
        table = self.query_one("#compare", DataTable)
        table.add_columns(
            "figure", literal(f"A {self.name_a}", cells=28), literal(f"B {self.name_b}", cells=28), "B - A", "change"
        )
        for label, key, fmt, fmt_diff in ROWS:
            va, vb = self.a.get(key), self.b.get(key)
            diff, rel = difference(va, vb)
            table.add_row(
                Text(label),
                Text(fmt(va), justify="right"),
                Text(fmt(vb), justify="right"),
                Text(NA if diff is None else fmt_diff(diff), justify="right"),
                Text(NA if rel is None else f"{rel * 100:+.1f}%", justify="right"),
                key=key,
            )
        table.focus()

    def action_back(self) -> None:
        self.app.pop_screen()
