"""The budget alerts of one tick: warning at ``budget_warning_pct``, exceeded at the cap, projected overrun.

Where each budget stands comes from :func:`gputab.budgets.model.budget_statuses`; this module words the alerts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gputab.alerts.record import (
    BUDGET_EXCEEDED,
    BUDGET_PROJECTED,
    BUDGET_WARNING,
    CRITICAL,
    WARNING,
    Alert,
    format_duration,
    format_money,
)
from gputab.budgets.model import ADJECTIVES, BudgetBook, BudgetStatus, budget_statuses

BUDGET_KINDS = (BUDGET_WARNING, BUDGET_EXCEEDED, BUDGET_PROJECTED)


Want = Callable[[tuple, Callable[[], Alert] | None], None]


def budget_alerts(
    book: BudgetBook,
    wall: float,
    jobs: Iterable[Mapping[str, Any]],
    warn_pct: float,
    active: Iterable[tuple],
    want: Want,
) -> None:
    """The budget rules of one tick: warning at ``warn_pct`` %, exceeded at 100 %, projected overrun.

    Args:
        book: the budgets and their carried spend.
        wall: the tick's wall time (periods follow it).
        jobs: ``JobTotals.to_json()`` dicts of this session.
        warn_pct: ``[alerts] budget_warning_pct``.
        active: keys of the alerts active now.
        want: the engine's "make the active set agree" callback.
    """
    by_tag = {str(j["tag"]): j for j in jobs}
    rolled = book.roll(wall, {tag: float(j.get("cost_usd") or 0.0) for tag, j in by_tag.items()})
    for key in [k for k in active if k[0] in BUDGET_KINDS]:
        budget = book.budget_for(key[1])
        if budget is None or budget.period in rolled:  # the cap was lifted, or a new period starts from zero
            want(key, None)
    for status in budget_statuses(book, wall, by_tag):
        _want_status(status, wall, warn_pct, by_tag.get(status.tag), want)


def _want_status(s: BudgetStatus, wall: float, warn_pct: float, job: Mapping[str, Any] | None, want: Want) -> None:
    """Make the three budget alerts of ``s.tag`` agree with ``s``; the text is written only for an alert raised."""
    tag, cap, spent, pct, period = s.tag, s.budget.cap_usd, s.spent_usd, s.spent_pct, s.budget.period
    exceeded = s.exceeded
    in_period = "" if period == "total" else f" this {period}"

    def of_budget() -> str:
        return f"its {format_money(cap)}{ADJECTIVES[period]} budget"

    def warning() -> Alert:
        to_cap, burn = s.seconds_to_cap, s.burn_rate_usd_per_hour or 0.0
        if to_cap is not None:
            eta = f"; at {format_money(burn)}/h it reaches the cap in {format_duration(to_cap)}"
        else:
            eta = "" if burn > 0 else "; not burning now"
        text = f"job {tag}: {format_money(spent)} of {of_budget()} spent{in_period} ({pct:.0f}%){eta}"
        return Alert(BUDGET_WARNING, WARNING, text, wall, tag=tag, data=s.data(wall))

    def over_cap() -> Alert:
        text = f"job {tag}: budget exceeded, {format_money(spent)} spent{in_period} of a {format_money(cap)} cap"
        return Alert(BUDGET_EXCEEDED, CRITICAL, text, wall, tag=tag, data=s.data(wall))

    # A budget warning gives way to the exceeded alert: one budget alert per job at a time.
    want((BUDGET_WARNING, tag, None), warning if pct >= warn_pct and not exceeded else None)
    want((BUDGET_EXCEEDED, tag, None), over_cap if exceeded else None)
    if s.projected_cost_usd is None and not exceeded:
        return  # no forecast now (a pause in the reports): a projection alert stays as it was
    total = s.projected_cost_usd if s.projected_cost_usd is not None and not exceeded else cap
    over = total - cap

    def projected() -> Alert:
        data = {
            **s.data(wall),
            "projected_cost_usd": total,
            "projected_over_usd": over,
            "eta_seconds": job.get("eta_seconds") if job else None,
        }
        text = (
            f"job {tag}: will exceed {of_budget()} by {format_money(over)} at completion "
            f"(projected {format_money(total)})"
        )
        return Alert(BUDGET_PROJECTED, WARNING, text, wall, tag=tag, data=data)

    want((BUDGET_PROJECTED, tag, None), projected if over > 0 else None)
