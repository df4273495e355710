"""The budgets table of the alerts view: each budget that holds a job of this session, and where the job stands."""

from __future__ import annotations

from rich.text import Text

from gputab.live.frame import BudgetView
from gputab.tui import format as fmt
from gputab.tui.literal import literal
from gputab.tui.widgets.jobs import eta
from gputab.tui.widgets.table import KeyedTable


def to_cap(b: BudgetView) -> Text:
    """When the job reaches its cap at the burn rate now: ``2h10m`` (under the header ``cap in``), ``over`` once
    past it, ``-`` idle."""
    if b.spent_usd >= b.cap_usd:
        return Text("over", style="bold red")
    if b.seconds_to_cap is None:
        return Text("-", style="dim")
    return Text(eta(b.seconds_to_cap), style="yellow" if b.spent_pct >= 80 else "")


def at_end(b: BudgetView) -> Text:
    """What the forecast says at completion: ``+$3.20 over`` or ``$1.10 under``; ``-`` without a forecast."""
    over = b.projected_over_usd
    if over is None:
        return Text("-", style="dim")
    if over > 0:
        return Text(f"+{fmt.money(over)} over", style="bold red")
    return Text(f"{fmt.money(-over)} under")


def budget_cells(b: BudgetView) -> tuple:
    """One row: the job, its budget's glob, the cap and period, spent in the period and its share, when the cap is
    reached, how the job ends against it, and whether the recorder stops it there."""
    pct_style = "bold red" if b.spent_pct >= 100 else "yellow" if b.spent_pct >= 80 else ""
    return (
        literal(b.tag),
        literal(b.glob, style="dim" if b.glob == b.tag else ""),
        fmt.money(b.cap_usd),
        b.period,
        fmt.money(b.spent_usd),
        Text(f"{b.spent_pct:.0f}%", style=pct_style),
        to_cap(b),
        at_end(b),
        Text("stops", style="bold") if b.stops else Text("warns", style="dim"),
    )


class BudgetsTable(KeyedTable):
    """Budgets holding this session's jobs (``gputab budget list`` has every budget); whole columns only.

    Not focusable: the alerts table under it keeps the cursor (Enter: an alert's message); it is a few rows."""

    can_focus = False

    COLUMNS = (
        ("job", "job", 16),
        ("budget", "budget", 14),
        ("cap", "cap", 8),
        ("period", "period", 6),
        ("spent", "spent", 8),
        ("pct", "%", 5),
        ("to_cap", "cap in", 7),
        ("at_end", "at end", 12),
        ("stop", "at cap", 6),
    )
    PRIORITY = ("job", "spent", "pct", "cap", "to_cap", "stop", "at_end", "period", "budget")
    """At 80 columns: job, cap, spent, %, cap in, at end, at cap (tested in tests/tui)."""

    def show(self, budgets: tuple[BudgetView, ...]) -> None:
        self.sync([(f"{b.tag}\0{b.glob}", budget_cells(b)) for b in budgets])
