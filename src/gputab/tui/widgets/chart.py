"""A line chart of our own, in braille dots: a title and legend, a fixed y scale with labels, a time axis.

Each terminal cell holds 2 x 4 braille dots, so a 60 x 6 cell chart is a 120 x 24 dot plot, drawn in plain Python
from the series' arrays in well under a millisecond per series (see bench/NOTES.md for the figures against
textual-plotext). The scale is the caller's: 0-100 % for utilization and 0 to the power limit for power (a GPU
moving between 30 and 31 % draws a flat line, as it should); for money, a round range over what the window shows
(:func:`gputab.tui.widgets.chart_window.nice_range`). Live charts put the newest sample at the right edge and
label the time axis with how long ago (:mod:`gputab.tui.widgets.chart_window`).

Series colors are plain ANSI colors. Without color (``NO_COLOR``, or a caller that asks for it) each series gets
its own line style instead: solid, dashed, dotted, dash-dot, short dash, sparse dots, counted in dots along the line's path (so a
steep stroke is dashed too), and the legend draws each name's marker as a few cells of that very style.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.control import strip_control_codes
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from gputab.tui.literal import clean, fit

_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
"""Braille dot bits by (row within the cell, column within the cell)."""
MIN_HEIGHT = 5
"""Rows a chart needs for its time axis (legend, 3 plot rows, time axis); below that a compact chart draws the
legend and plot rows only (its window is said by whoever shows it: a GPU card's title)."""
COMPACT_HEIGHT = 2
"""Rows a compact chart needs (legend, one plot row); below that it draws one line saying so."""
_CONSOLE = Console(width=1000, color_system="truecolor", legacy_windows=False, force_terminal=True)
"""Only used to turn the chart's Text lines into segments (Text.render), never to write anything."""
PALETTE = ("cyan", "magenta", "yellow", "green", "blue", "red", "bright_cyan", "bright_magenta")
DASHES: tuple[tuple[int, ...], ...] = ((), (4, 2), (1, 1), (4, 2, 1, 2), (2, 2), (1, 3))
"""Line styles without color, by series: (on, off, on, off, ...) runs of dots along the path; () is solid."""
LEGEND_DOTS = 8
"""Dots (4 cells) of a series' style drawn as its legend marker without color."""


def dash_on(pattern: tuple[int, ...], n: int) -> bool:
    """Whether dot ``n`` (counted along the line's path) of a line in ``pattern`` is drawn."""
    if not pattern:
        return True
    n %= sum(pattern)
    for i, run in enumerate(pattern):
        if n < run:
            return i % 2 == 0
        n -= run
    return True


def style_marker(pattern: tuple[int, ...], dots: int = LEGEND_DOTS) -> str:
    """A short horizontal stroke in ``pattern``, in braille: the legend's marker of a series without color."""
    cells = [0] * ((dots + 1) // 2)
    for x in range(dots):
        if dash_on(pattern, x):
            cells[x // 2] |= _DOTS[1][x % 2]
    return "".join(chr(0x2800 + c) for c in cells)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value`` (a y scale's top that reads well)."""
    if value <= 0 or math.isnan(value):
        return 1.0
    exp = math.floor(math.log10(value))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        top = m * 10**exp
        if top >= value * (1 - 1e-9):
            return top
    return 10.0 ** (exp + 1)


def clock(seconds: float) -> str:
    """Session time for an axis: ``4:05`` under an hour, ``1:04:05`` under a day, ``2d03h`` beyond."""
    s = max(0, int(round(seconds)))
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


@dataclass(frozen=True)
class Line:
    """One series: its label (outside text, drawn literally), (times, values) with NaN for gaps, and a color."""

    label: str
    times: Sequence[float]
    values: Sequence[float]
    style: str = ""


@dataclass(frozen=True)
class ChartSpec:
    """What a chart draws.

    Args:
        title: bold, top left.
        lines: the series, drawn in order (a later one wins a shared cell's color).
        y_max / y_min: the fixed scale.
        t0 / t1: the time span (session seconds).
        y_fmt: writes a y label.
        t_fmt: writes a time axis label (default: session time, :func:`clock`).
        steps: a count that changes at instants (active alerts): each value is held until the next point, then
            the line steps, rather than sloping from one point to the next.
        more: series the caller left out; the legend says ``+N more``.
    """

    title: str
    lines: tuple[Line, ...]
    y_max: float
    t0: float
    t1: float
    y_fmt: Callable[[float], str] = field(default=lambda v: f"{v:g}")
    y_min: float = 0.0
    legend: bool = True
    steps: bool = False
    t_fmt: Callable[[float], str] = field(default=clock)
    more: int = 0
    """Series left out of the chart (too many to draw): the legend ends with ``+N more``."""


def _columns(times: Sequence[float], values: Sequence[float], t0: float, t1: float, px: int) -> list[float | None]:
    """The series resampled to ``px`` dot columns: the last value falling in each column (None: no point there,
    NaN: a point that was not available)."""
    out: list[float | None] = [None] * px
    n = len(times)
    if not n or px <= 0:
        return out
    span = (t1 - t0) or 1.0
    scale = (px - 1) / span
    # Far more points than dot columns (an hour at 1 Hz on a narrow chart): every k-th point is enough.
    stride = max(1, n // (4 * px))
    for i in range(0, n, stride):
        t = times[i]
        if t < t0:
            continue
        x = int((t - t0) * scale + 0.5)
        if 0 <= x < px:
            out[x] = values[i]
    if stride > 1 and times[n - 1] >= t0:
        out[min(px - 1, int((times[n - 1] - t0) * scale + 0.5))] = values[n - 1]
    return out


Row = tuple[str, list[tuple[str, str]]]
"""A plot row: its y label part (``  $5┤``), then runs of braille cells with the style (color) of each run."""


def _too_small(spec: ChartSpec, width: int, height: int) -> list[Text] | None:
    if width < 16 or height < COMPACT_HEIGHT:
        return [
            Text(fit(clean(spec.title) + ": a taller or wider terminal shows the chart", max(0, width)), style="dim")
        ][:height]
    return None


def render_chart(spec: ChartSpec, width: int, height: int, dashes: bool = False) -> list[Text]:
    """``height`` lines of at most ``width`` cells: legend, plot rows with y labels, time axis.

    Args:
        dashes: tell the series apart by line style (:data:`DASHES`) rather than by color alone.
    """
    small = _too_small(spec, width, height)
    if small is not None:
        return small
    legend, rows, axis = _picture(spec, width, height, dashes)
    out = [legend]
    for label, runs in rows:
        text = Text(label, style="dim")
        for run, style in runs:
            text.append(run, style=style)
        out.append(text)
    if axis is not None:
        out.append(Text(axis, style="dim"))
    return out[:height]


def chart_strips(spec: ChartSpec, width: int, height: int, base: Style, dashes: bool = False) -> list[Strip]:
    """:func:`render_chart`'s lines as strips of exactly ``width`` cells on ``base`` (the widget's style): the
    segments Rich's ``Text.render`` would make of them, built directly for the plot rows (half the cost of a redraw
    went to that conversion). tests/tui/test_chart.py checks both give the same segments."""
    small = _too_small(spec, width, height)
    if small is not None:
        return [_text_strip(text, width, base) for text in small]
    legend, rows, axis = _picture(spec, width, height, dashes)
    dim = base + _CONSOLE.get_style("dim")
    styles: dict[str, Style] = {"": dim}
    out = [_text_strip(legend, width, base)]
    for label, runs in rows:
        # Text.render splits at the spans' edges only: the label and a run without a style (no span) are one piece.
        pieces: list[list[Any]] = [[strip_control_codes(label), ""]]
        for run, style in runs:
            if not style and not pieces[-1][1]:
                pieces[-1][0] += run
            else:
                pieces.append([run, style])
        if len(pieces) == 1:  # no run has a style: a Text without spans renders unstyled
            out.append(Strip([Segment(pieces[0][0], base)]).adjust_cell_length(width, base))
            continue
        segments = []
        for text, style in pieces:
            if style not in styles:
                styles[style] = base + Style.combine(
                    (_CONSOLE.get_style("dim"), _CONSOLE.get_style(style, default=Style.null()))
                )
            segments.append(Segment(text, styles[style]))
        out.append(Strip(segments).adjust_cell_length(width, base))
    if axis is not None:
        out.append(Strip([Segment(axis, base)]).adjust_cell_length(width, base))  # no spans: unstyled, as Rich's
    return out[:height]


def _text_strip(text: Text, width: int, base: Style) -> Strip:
    segments = [Segment(s.text, base + s.style if s.style else base) for s in text.render(_CONSOLE) if s.text != "\n"]
    return Strip(segments).adjust_cell_length(width, base)


def _picture(spec: ChartSpec, width: int, height: int, dashes: bool) -> tuple[Text, list[Row], str | None]:
    """The legend, the plot rows and the time axis (None where there is no room for it)."""
    top_label, bottom_label = spec.y_fmt(spec.y_max), spec.y_fmt(spec.y_min)
    mid_value = (spec.y_max + spec.y_min) / 2
    mid_label = spec.y_fmt(mid_value)
    label_w = max(cell_len(top_label), cell_len(bottom_label), cell_len(mid_label))
    plot_w = width - label_w - 1
    axis = height >= MIN_HEIGHT
    rows = height - 1 - axis  # title/legend line and (when there is room) the time axis line
    px, py = plot_w * 2, rows * 4
    bits = [[0] * plot_w for _ in range(rows)]
    owner = [[-1] * plot_w for _ in range(rows)]
    span = (spec.y_max - spec.y_min) or 1.0
    for n, line in enumerate(spec.lines):
        cols = _columns(line.times, line.values, spec.t0, spec.t1, px)
        prev: tuple[int, int] | None = None
        pattern = DASHES[n % len(DASHES)] if dashes else ()
        walked = 0  # dots along the path so far: where the line is in its dash pattern
        for x, v in enumerate(cols):
            if v is None:
                continue  # no point in this dot column: the line is joined across it
            if v != v:
                prev = None  # NaN, not available: a gap, the line is not joined across it
                continue
            y = int(round(min(1.0, max(0.0, (v - spec.y_min) / span)) * (py - 1)))
            px0, py0 = prev if prev is not None else (x - 1, y)
            last = py0
            for xx in range(px0 + 1, x + 1):
                if spec.steps:
                    at = y if xx == x else py0
                else:
                    at = round(py0 + (y - py0) * (xx - px0) / (x - px0))
                for yy in range(min(last, at), max(last, at) + 1):
                    walked += 1
                    if pattern and not dash_on(pattern, walked - 1):
                        continue
                    r = py - 1 - yy
                    bits[r // 4][xx // 2] |= _DOTS[r % 4][xx % 2]
                    owner[r // 4][xx // 2] = n
                last = at
            prev = (x, y)
    styles = [line.style for line in spec.lines]
    label_rows = {0: top_label, rows // 2: mid_label if rows >= 3 else "", rows - 1: bottom_label}
    if rows == 1:
        label_rows = {0: top_label}
    out: list[Row] = []
    for r in range(rows):
        label = label_rows.get(r, "")
        runs: list[tuple[str, str]] = []
        run_style: str | None = None
        run: list[str] = []
        for c in range(plot_w):
            style = styles[owner[r][c]] if owner[r][c] >= 0 else ""
            if style != run_style and run:
                runs.append(("".join(run), run_style or ""))
                run = []
            run_style = style
            run.append(chr(0x2800 + bits[r][c]) if bits[r][c] else " ")
        if run:
            runs.append(("".join(run), run_style or ""))
        out.append((" " * (label_w - cell_len(label)) + label + ("┤" if label else "│"), runs))
    time_axis = " " * label_w + "└" + _time_axis(spec.t0, spec.t1, plot_w, spec.t_fmt) if axis else None
    return _legend(spec, width, dashes), out, time_axis


def _legend(spec: ChartSpec, width: int, dashes: bool = False) -> Text:
    text = Text(fit(clean(spec.title), width), style="bold", no_wrap=True, overflow="ellipsis")
    if not spec.legend:
        return text
    for n, line in enumerate(spec.lines):
        marker = style_marker(DASHES[n % len(DASHES)]) if dashes else "━"
        room = width - text.cell_len - 3 - len(marker)  # "  ━ " before each label
        more = len(spec.lines) - n + spec.more
        # Keep room for "+N more" after this label unless it is the last one.
        reserve = 0 if more == 1 else len(f"  +{more - 1} more")
        if room - reserve < 4:
            said = f"  +{more} more"
            if text.cell_len + len(said) <= width:
                text.append(said, style="dim")
            elif text.cell_len + 2 <= width:
                text.append(" …", style="dim")
            break
        text.append("  ")
        text.append(marker, style=line.style or "bold")
        text.append(" " + fit(clean(line.label), min(room - reserve, 20)))
    else:
        if spec.more and text.cell_len + len(f"  +{spec.more} more") <= width:
            text.append(f"  +{spec.more} more", style="dim")
    return text


def _time_axis(t0: float, t1: float, width: int, t_fmt: Callable[[float], str] = clock) -> str:
    """``─`` with the start, middle and end times written into it (session times by default)."""
    axis = ["─"] * width
    labels = [(0, t_fmt(t0)), (width // 2, t_fmt((t0 + t1) / 2)), (width, t_fmt(t1))]
    for pos, label in labels:
        start = min(max(0, pos - len(label) // 2), width - len(label)) if pos else 0
        if pos == width:
            start = width - len(label)
        if start < 0 or any(a != "─" for a in axis[max(0, start - 1) : start + len(label) + 1]):
            continue
        axis[start : start + len(label)] = label
    return "".join(axis)


def _last_time(spec: ChartSpec) -> float:
    """The newest point's time over the spec's lines (its start when it has none)."""
    return max((line.times[-1] for line in spec.lines if len(line.times)), default=spec.t0)


class Chart(Widget):
    """Draws a :class:`ChartSpec` at the widget's size, through Textual's line API.

    The lines are rendered to :class:`~textual.strip.Strip` once per spec and size and handed out by
    :meth:`render_line`; a new spec whose time span moved by less than one dot column since the last drawing
    is not drawn again (the picture would be the same), so a chart costs nothing on most ticks.
    """

    DEFAULT_CSS = """
    Chart {
        height: 8;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec: ChartSpec | None = None
        self._strips: tuple[tuple[int, int], list[Strip]] | None = None

    @property
    def dashes(self) -> bool:
        """Series told apart by line style: the app runs without color (``NO_COLOR``; Textual reads and clears
        the variable when the app starts, so the app's flag is the one to ask)."""
        return self.app.no_color

    def plot(self, spec: ChartSpec) -> bool:
        """Draw ``spec`` on the next repaint; returns False when it is skipped as the same picture as the last."""
        old = self.spec
        if old is not None and self._same_picture(old, spec):
            return False
        self.spec = spec
        self._strips = None
        self.refresh()
        return True

    def _same_picture(self, old: ChartSpec, new: ChartSpec) -> bool:
        if (old.title, old.y_max, old.y_min, len(old.lines)) != (new.title, new.y_max, new.y_min, len(new.lines)):
            return False
        if [line.label for line in old.lines] != [line.label for line in new.lines]:
            return False
        dots = max(1, 2 * self.content_size.width)
        step = (new.t1 - new.t0) / dots
        # The axis can stand still while the data moves (a session younger than its window): compare both.
        return (
            abs(new.t1 - old.t1) < step
            and abs(new.t0 - old.t0) < step
            and abs(_last_time(new) - _last_time(old)) < step
        )

    def render_line(self, y: int) -> Strip:
        width, height = self.content_size.width, self.content_size.height
        if self.spec is None or y >= height:
            return Strip.blank(width, self.rich_style)
        if self._strips is None or self._strips[0] != (width, height):
            self._strips = ((width, height), chart_strips(self.spec, width, height, self.rich_style, self.dashes))
        strips = self._strips[1]
        return strips[y] if y < len(strips) else Strip.blank(width, self.rich_style)


def palette(n: int) -> Iterable[str]:
    """``n`` series colors, repeating the palette when there are more series than colors."""
    return (PALETTE[i % len(PALETTE)] for i in range(n))
