"""The Spend screen: what the last days cost, per day and per job, across sessions (``$`` in the live view and
in the review).

Cost per day as bars stacked by job (the costliest few, then ``other``), idle dollars per day under them, a table
of jobs with a sparkline of each one's daily cost, and the utilization histogram of the job under the cursor.
Figures come from :mod:`gputab.store.spend`, the same as ``gputab spend --by day`` and ``--by tag``. Outside text
(tags, hosts) is drawn as Rich ``Text``, never as markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static

from gputab.cost.buckets import IDLE, SPECIAL_TAGS, UNATTRIBUTED, UNOBSERVED
from gputab.errors import GputabError
from gputab.store.spend import group, latest_wall, open_stores, total
from gputab.store.spend_pieces import job_pieces, utilization_histogram
from gputab.store.spend_window import Window, bucket_wall, last_days, timezone_label
from gputab.tui.format import hours, money, pct, sparkline
from gputab.tui.literal import fit, literal

TOP_TAGS = 5
"""Jobs drawn in their own color in the bars; the rest are summed as ``other``."""
COLORS = ("cyan", "magenta", "yellow", "green", "blue")
OTHER, IDLE_COLOR, OTHER_COLOR = "other", "red", "bright_black"
WINDOWS = (7, 30, 90)
"""Days shown; ``w`` cycles through them."""
_EIGHTHS = " ▁▂▃▄▅▆▇█"
HIST_BINS = 10


class StackedBars(Widget):
    """Cost per day as vertical bars stacked by series (bottom first), with a $ scale and the first/last date."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.days: list[str] = []
        self.stacks: list[tuple[str, str, list[float]]] = []
        """(name, color, cost per day), bottom of the bar first."""
        self.idle: list[float] = []

    def set_data(self, days: list[str], stacks: list[tuple[str, str, list[float]]], idle: list[float]) -> None:
        self.days, self.stacks, self.idle = days, stacks, idle
        self.refresh()

    def render(self) -> Text:
        return stacked_bars(self.days, self.stacks, self.idle, self.size.width, self.size.height)


def stacked_bars(
    days: list[str], stacks: list[tuple[str, str, list[float]]], idle: list[float], width: int, height: int
) -> Text:
    """The chart as text: rows of bars (1/8-cell tops), a row of idle $ per day (its own scale), and the dates."""
    rows = max(1, height - 2)
    totals = [math.fsum(s[2][i] for s in stacks) for i in range(len(days))]
    top = max(totals, default=0.0)
    axis = max(len(money(top)), 5) + 1
    col = max(1, min(3, (width - axis) // max(1, len(days))))
    out = Text(no_wrap=True, overflow="crop")
    if top <= 0:
        out.append("nothing spent in these days" if days else "no days")
        return out
    for r in range(rows - 1, -1, -1):
        label = money(top) if r == rows - 1 else ("$0" if r == 0 else "")
        out.append(f"{label:>{axis - 1}} ")
        for i in range(len(days)):
            bottom, cum = r * 8, 0.0
            glyph, color = " ", ""
            filled = totals[i] / top * rows * 8
            if filled > bottom:
                glyph = _EIGHTHS[min(8, max(1, round(filled - bottom)))]
                # The cell takes the color of the series at its lower edge.
                for _, c, values in stacks:
                    cum += values[i] / top * rows * 8
                    if cum > bottom:
                        color = c
                        break
            out.append(glyph * col, style=color)
        out.append("\n")
    out.append(f"{'idle $':>{axis - 1}} ")
    idle_top = max(idle, default=0.0)
    for v in idle:
        level = round(v / idle_top * 8) if idle_top > 0 else 0
        out.append((_EIGHTHS[max(1, level)] if v > 0 else " ") * col, style=IDLE_COLOR)
    out.append("\n")
    first, last = days[0], days[-1]
    span = col * len(days)
    out.append(" " * axis + first + (last.rjust(span - len(first)) if span > len(first) + len(last) else ""))
    return out


class Histogram(Widget):
    """A utilization histogram drawn to the widget's height."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.bins: list[float] = []

    def set_bins(self, bins: list[float]) -> None:
        self.bins = bins
        self.refresh()

    def render(self) -> Text:
        return histogram(self.bins, self.size.height) if self.bins else Text("")


def histogram(bins: Sequence[float], height: int) -> Text:
    """GPU-hours per utilization bin as vertical bars, 0 % to 100 % left to right, labelled under."""
    top = max(bins, default=0.0)
    out = Text(no_wrap=True, overflow="crop")
    if top <= 0:
        out.append("no utilization series for this job in these days")
        return out
    rows = max(1, height - 1)
    for r in range(rows - 1, -1, -1):
        for v in bins:
            filled = v / top * rows * 8 - r * 8
            out.append((_EIGHTHS[min(8, max(0, round(filled)))] if filled > 0 else " ") * 2, style="green")
        out.append("\n")
    out.append("0%" + " " * (len(bins) * 2 - 6) + "100%")
    return out


class SpendScreen(Screen):
    """Spend over the last days, across the sessions of one or more databases.

    Args:
        db_paths: the databases (opened read-only; never created or migrated).
        days: how many days to show, ending with the newest recorded day.
        utc: cut days at UTC midnight instead of local midnight.
    """

    CSS_PATH = "spend_screen.tcss"
    BINDINGS = [
        Binding("w", "cycle_window", "Days"),
        Binding("g", "reload", "Reload", show=False),
        Binding("escape", "back", "Back"),
    ]
    OFF_ACTIONS = frozenset({"spend"})
    """The live app's ``$`` (this screen again) is off over it."""

    def __init__(self, db_paths: Sequence[Path], days: int = 30, utc: bool = False) -> None:
        super().__init__()
        self.db_paths = [Path(p) for p in db_paths]
        self.days = days
        self.utc = utc
        self.rows: list = []
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="spend-title")
        with Horizontal(id="spend-top"):
            yield StackedBars(id="spend-bars")
            yield Static("", id="spend-legend")
        yield Static("", id="spend-idle")
        with Horizontal(id="spend-bottom"):
            yield DataTable(id="spend-tags", cursor_type="row", zebra_stripes=True)
            with Vertical(id="spend-hist-box"):
                yield Static("", id="spend-hist-title")
                yield Histogram(id="spend-hist")
        yield Footer(show_command_palette=False)  # ctrl+p is under `?`: the footer keeps its room

    def on_mount(self) -> None:
        table = self.query_one("#spend-tags", DataTable)
        # The cost right after the job: at 80 columns it is in view without scrolling (the sparkline is wide).
        for label in ("job", "cost", "daily cost", "util", "idle $", "wasted", "GPU-h", "host"):
            table.add_column(label, key=label)
        self.reload()
        table.focus()

    # -- data ---------------------------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the databases again and redraw everything."""
        try:
            stores = open_stores(self.db_paths)
        except GputabError as exc:
            self.error = str(exc)
            self.query_one("#spend-title", Static).update(Text(f"Spend: {exc}"))
            return
        try:
            end = latest_wall(stores)
            if end is None:
                self.query_one("#spend-title", Static).update(Text("Spend: no sessions recorded yet"))
                return
            self.day_list = last_days(end, self.days, self.utc)
            self.window = Window(since=bucket_wall(date.fromisoformat(self.day_list[0]), self.utc), utc=self.utc)
            pieces = job_pieces(stores, self.window, "day")
            self.rows = group(pieces, "tag")
            self.idle_per_day: dict[str, float] = {}
            for r in group(pieces, "day"):  # one row per host and day: summed over hosts
                self.idle_per_day[r.key] = self.idle_per_day.get(r.key, 0.0) + r.sums["idle_usd"]
            self.totals = total(self.rows)
            self.zone = timezone_label(self.utc)
        finally:
            for s in stores:
                s.close()
        self.redraw()

    def redraw(self) -> None:
        days, rows, t = self.day_list, self.rows, self.totals.sums
        util = t["effective_gpu_hours"] / t["util_gpu_hours"] if t["util_gpu_hours"] > 0 else None
        hosts = sorted({r.host for r in rows})
        title = Text(f"Spend, {days[0]} → {days[-1]} ({len(days)} days, {self.zone}): ", style="bold")
        title.append(
            f"{money(t['cost_usd'])} · idle {money(t['idle_usd'])} · util {pct(util, fraction=True)} · "
            f"{len(self.totals.sessions)} sessions · hosts: "
        )
        title.append(", ".join(hosts) or "-")
        self.query_one("#spend-title", Static).update(title)
        # The bars stack by tag over every host (the table keeps hosts apart).
        by_tag: dict[str, dict[str, float]] = {}
        for r in rows:
            daily = by_tag.setdefault(r.key, {})
            for d, c in r.daily_cost.items():
                daily[d] = daily.get(d, 0.0) + c
        jobs = sorted(
            (tag for tag in by_tag if tag not in SPECIAL_TAGS), key=lambda tag: -math.fsum(by_tag[tag].values())
        )

        def per_day(tags: Sequence[str]) -> list[float]:
            return [math.fsum(by_tag[tag].get(d, 0.0) for tag in tags if tag in by_tag) for d in days]

        stacks = [(tag, COLORS[i], per_day([tag])) for i, tag in enumerate(jobs[:TOP_TAGS])]
        stacks += [
            (OTHER, OTHER_COLOR, per_day([*jobs[TOP_TAGS:], UNOBSERVED, UNATTRIBUTED])),
            (IDLE, IDLE_COLOR, per_day([IDLE])),
        ]
        idle_day = [self.idle_per_day.get(d, 0.0) for d in days]
        self.query_one("#spend-bars", StackedBars).set_data(days, stacks, idle_day)
        legend = Text(no_wrap=True, overflow="ellipsis")
        shown = [s for s in stacks if s[0] != OTHER or any(s[2])]
        for i, (name, color, values) in enumerate(shown):
            legend.append("██ ", style=color)
            legend.append(name)  # a tag: outside text, appended as plain text
            legend.append(f" {money(math.fsum(values))}" + ("\n" if i < len(shown) - 1 else ""))
        self.query_one("#spend-legend", Static).update(legend)
        line = Text("idle $/day ", style="bold")
        line.append("(bottom row): ")
        line.append(f"max {money(max(idle_day, default=0.0))}, total {money(math.fsum(idle_day))}")
        self.query_one("#spend-idle", Static).update(line)
        self.fill_table(days)

    def fill_table(self, days: list[str]) -> None:
        table = self.query_one("#spend-tags", DataTable)
        table.clear()
        top = max((c for r in self.rows for c in r.daily_cost.values()), default=0.0)
        for i, r in enumerate(self.rows):
            s = r.sums
            util = s["effective_gpu_hours"] / s["util_gpu_hours"] if s["util_gpu_hours"] > 0 else None
            daily = [r.daily_cost.get(d, 0.0) for d in days]
            table.add_row(
                literal(fit(r.key, 24)),
                Text(money(s["cost_usd"]), justify="right"),
                Text(sparkline(daily, len(daily), top)),
                Text(pct(util, fraction=True), justify="right"),
                Text(money(s["idle_usd"]), justify="right"),
                # Paid while the job's GPUs did nothing (docs/waste.md); n/a: recorded before the waste split.
                Text(money(s["waste_usd"] if r.reported["waste_usd"] else None), justify="right"),
                Text(hours(s["gpu_hours"]), justify="right"),
                Text(r.host),
                key=str(i),
            )
        self.show_histogram()

    def show_histogram(self) -> None:
        """The utilization histogram of the job under the cursor, from its series in these days."""
        table = self.query_one("#spend-tags", DataTable)
        title = self.query_one("#spend-hist-title", Static)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            title.update("")
            self.query_one("#spend-hist", Histogram).set_bins([])
            return
        row = self.rows[table.cursor_row]
        bins = [0.0] * HIST_BINS
        stores = open_stores(self.db_paths)
        try:
            for source, store in enumerate(stores):
                ids = sorted(sid for src, sid in row.sessions if src == source)
                for b, v in enumerate(utilization_histogram(store, ids, row.key, self.window, HIST_BINS)):
                    bins[b] += v
        finally:
            for s in stores:
                s.close()
        head = Text("utilization ", style="bold")
        head.append(row.key, style="bold")  # a tag: outside text, never markup
        head.append("\non ")
        head.append(row.host)
        head.append(f"\nGPU-h per 10 %: {hours(math.fsum(bins))}")
        title.update(head)
        self.query_one("#spend-hist", Histogram).set_bins(bins)

    @on(DataTable.RowHighlighted, "#spend-tags")
    def _row_changed(self, _event: DataTable.RowHighlighted) -> None:
        self.show_histogram()

    # -- actions ------------------------------------------------------------------------------------------------
    def action_cycle_window(self) -> None:
        self.days = WINDOWS[(WINDOWS.index(self.days) + 1) % len(WINDOWS)] if self.days in WINDOWS else WINDOWS[0]
        self.reload()

    def action_reload(self) -> None:
        self.reload()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        else:
            self.app.exit()


def open_spend(app: App[Any], db_path: Path | None = None) -> None:
    """Push the Spend screen over ``app``, on ``db_path`` or the database the live view records to."""
    from gputab.tui.db_path import review_db_path

    path = db_path if db_path is not None else review_db_path(app)
    if path is None:
        app.notify("this view is not recording (nothing stored to add up)", severity="warning")
        return
    app.push_screen(SpendScreen([path]))
