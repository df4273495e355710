"""The pure budget model: periods on the UTC calendar, which budget holds a tag, layers, and spend per period with
rollover (gputab/budgets/model.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gputab.alerts.observer import BUDGET_EXCEEDED, BUDGET_PROJECTED, BUDGET_WARNING, AlertEngine
from gputab.budgets.model import (
    Budget,
    BudgetBook,
    from_caps,
    merge,
    next_period_start,
    period_start,
    resolve,
)


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("period", "wall", "start", "end"),
    [
        ("day", ts(2026, 3, 15, 13, 5, 9), ts(2026, 3, 15), ts(2026, 3, 16)),
        ("day", ts(2026, 3, 15), ts(2026, 3, 15), ts(2026, 3, 16)),  # midnight itself opens the new day
        ("day", ts(2026, 3, 14, 23, 59, 59), ts(2026, 3, 14), ts(2026, 3, 15)),
        ("day", ts(2024, 2, 29, 12), ts(2024, 2, 29), ts(2024, 3, 1)),  # leap day
        ("day", ts(2026, 12, 31, 23), ts(2026, 12, 31), ts(2027, 1, 1)),
        # Weeks start on Monday: 2026-11-30 is a Monday, 2026-12-06 a Sunday.
        ("week", ts(2026, 12, 6, 23, 59), ts(2026, 11, 30), ts(2026, 12, 7)),
        ("week", ts(2026, 11, 30), ts(2026, 11, 30), ts(2026, 12, 7)),
        ("week", ts(2026, 11, 29, 23, 59, 59), ts(2026, 11, 23), ts(2026, 11, 30)),
        ("week", ts(2027, 1, 2), ts(2026, 12, 28), ts(2027, 1, 4)),  # across a new year
        ("week", ts(2024, 2, 29), ts(2024, 2, 26), ts(2024, 3, 4)),
        ("month", ts(2024, 2, 29, 23, 59, 59), ts(2024, 2, 1), ts(2024, 3, 1)),  # leap February
        ("month", ts(2025, 2, 28, 12), ts(2025, 2, 1), ts(2025, 3, 1)),
        ("month", ts(2026, 1, 31, 23), ts(2026, 1, 1), ts(2026, 2, 1)),
        ("month", ts(2026, 4, 30, 23, 59), ts(2026, 4, 1), ts(2026, 5, 1)),
        ("month", ts(2026, 12, 31, 23, 59), ts(2026, 12, 1), ts(2027, 1, 1)),  # December rolls into January
        ("month", ts(2026, 3, 1), ts(2026, 3, 1), ts(2026, 4, 1)),
        ("total", ts(2026, 3, 1), None, None),
    ],
)
def test_period_start_and_end_on_the_utc_calendar(period, wall, start, end):
    assert period_start(period, wall) == start
    assert next_period_start(period, wall) == end


@given(
    st.sampled_from(["day", "week", "month"]),
    st.floats(min_value=ts(1990, 1, 1), max_value=ts(2100, 1, 1), allow_nan=False),
)
def test_a_period_holds_its_instant_and_the_next_one_starts_where_it_ends(period, wall):
    start, end = period_start(period, wall), next_period_start(period, wall)
    assert start is not None and end is not None
    assert start <= wall < end
    assert period_start(period, end) == end  # the next period begins exactly there
    assert period_start(period, end - 1e-3) == start
    d = datetime.fromtimestamp(start, UTC)
    assert (d.hour, d.minute, d.second) == (0, 0, 0)
    if period == "week":
        assert d.weekday() == 0
    if period == "month":
        assert d.day == 1


def test_the_exact_tag_wins_then_the_glob_with_the_most_literal_characters():
    budgets = [Budget("*", 100.0), Budget("sweep-*", 20.0), Budget("sweep-1*", 10.0), Budget("sweep-12", 5.0)]
    assert resolve(budgets, "sweep-12").cap_usd == 5.0
    assert resolve(budgets, "sweep-13").cap_usd == 10.0
    assert resolve(budgets, "sweep-2").cap_usd == 20.0
    assert resolve(budgets, "eval").cap_usd == 100.0
    assert resolve(budgets, "(idle)") is None and resolve(budgets, "(unobserved)") is None  # gputab's own rows
    assert resolve([Budget("Sweep-*", 1.0)], "sweep-1") is None  # case-sensitive, like tags
    assert resolve([Budget("a?c", 1.0), Budget("?bc", 2.0)], "abc").cap_usd == 1.0  # equals: the first
    # A tag may itself hold glob characters: its own budget is its own, not a pattern that misses it.
    assert resolve([Budget("*", 1.0), Budget("x[/y]", 2.0)], "x[/y]").cap_usd == 2.0
    assert resolve([Budget("run[1]", 3.0)], "run[1]").cap_usd == 3.0
    # The demo's own budget for its fine-tune holds it only where no other budget matches it.
    demo = Budget("llama3-8b-lora", 15.0, origin="demo")
    assert resolve([demo, Budget("llama3-*", 5.0)], "llama3-8b-lora").cap_usd == 5.0
    assert resolve([demo, Budget("eval", 5.0)], "llama3-8b-lora") is demo


def test_a_later_layer_wins_for_the_same_glob_in_the_first_ones_place():
    config = [Budget("a", 1.0), Budget("b*", 2.0, period="week")]
    stored = [Budget("b*", 9.0, period="day", origin="database"), Budget("c", 3.0, origin="database")]
    merged = merge(from_caps({"a": 0.5}, origin="demo"), config, stored)
    assert [(b.tag, b.cap_usd, b.period, b.origin) for b in merged] == [
        ("a", 1.0, "total", "config"),
        ("b*", 9.0, "day", "database"),
        ("c", 3.0, "total", "database"),
    ]


@pytest.mark.parametrize(
    "kwargs", [{"cap_usd": 0.0}, {"cap_usd": float("inf")}, {"period": "year"}, {"grace_seconds": -1.0}]
)
def test_a_budget_refuses_nonsense(kwargs):
    with pytest.raises(ValueError):
        Budget("t", **{"cap_usd": 1.0, **kwargs})


def test_the_book_counts_carried_spend_and_restarts_at_a_rollover():
    day = Budget("sweep-*", 10.0, period="day")
    book = BudgetBook([day])
    t0 = ts(2026, 3, 15, 23, 59, 50)
    key = ("day", ts(2026, 3, 15))
    assert book.uncarried(t0) == [key]
    book.carry(key, {"sweep-1": 4.0, "sweep-2": 1.0})  # earlier sessions today
    assert book.uncarried(t0) == []
    assert book.roll(t0, {"sweep-1": 2.0}) == set()  # first sight: nothing rolled
    assert book.spent(day, "sweep-1", 2.0, t0) == 6.0
    assert book.spent(day, "sweep-3", 0.5, t0) == 0.5
    t1 = ts(2026, 3, 16, 0, 0, 1)
    new = ("day", ts(2026, 3, 16))
    assert book.uncarried(t1) == []  # a pending rollover is the book's own business first
    assert book.roll(t1, {"sweep-1": 3.0}) == {"day"}
    assert book.spent(day, "sweep-1", 3.5, t1) == pytest.approx(0.5)  # only what came after midnight
    assert book.base(new) == {"sweep-1": 3.0}
    assert book.uncarried(t1) == [new]  # the keeper may now add what other sessions spent today
    book.carry(new, {"sweep-1": 0.25})
    assert book.spent(day, "sweep-1", 3.5, t1) == pytest.approx(0.75)


def test_an_engine_clears_its_budget_alerts_when_the_period_rolls_over():
    eng = AlertEngine(budgets=[Budget("train", 10.0, period="day")])
    job = {"tag": "train", "burn_rate_usd_per_hour": 1.0, "projected_cost_usd": 30.0}
    ch = eng.update(ts(2026, 3, 15, 23, 58), [], [], [{**job, "cost_usd": 9.0}])
    assert {a.kind for a in ch.raised} == {BUDGET_WARNING, BUDGET_PROJECTED}
    ch = eng.update(ts(2026, 3, 15, 23, 59), [], [], [{**job, "cost_usd": 12.0}])
    assert [a.kind for a in ch.raised] == [BUDGET_EXCEEDED]  # exceeded: no projection beyond it
    assert "spent this day" in ch.raised[0].message
    ch = eng.update(ts(2026, 3, 16, 0, 0, 1), [], [], [{**job, "cost_usd": 12.5, "projected_cost_usd": 13.0}])
    assert [a.kind for a in ch.cleared] == [BUDGET_EXCEEDED] and ch.raised == ()  # a new day starts from zero
    ch = eng.update(ts(2026, 3, 16, 6), [], [], [{**job, "cost_usd": 21.0, "projected_cost_usd": 25.0}])
    warn = next(a for a in ch.raised if a.kind == BUDGET_WARNING)
    # The baseline is the job's cost at the first tick of the new day: the tick that straddles midnight stays
    # in the old day (a tick is a second; here it is made to cost $0.50 so the rule shows).
    assert warn.data["spent_usd"] == pytest.approx(21.0 - 12.5)
    assert warn.data["period_start"] == ts(2026, 3, 16) and "of its $10.00 daily budget" in warn.message
    proj = next(a for a in ch.raised if a.kind == BUDGET_PROJECTED)
    assert proj.data["projected_over_usd"] == pytest.approx(25.0 - 12.5 - 10.0)


def test_each_tag_a_glob_matches_is_held_to_the_whole_cap():
    eng = AlertEngine(budgets=[Budget("sweep-*", 10.0)])
    jobs = [
        {"tag": "sweep-1", "cost_usd": 9.0, "burn_rate_usd_per_hour": 1.0},
        {"tag": "sweep-2", "cost_usd": 9.0, "burn_rate_usd_per_hour": 1.0},
        {"tag": "eval", "cost_usd": 50.0, "burn_rate_usd_per_hour": 1.0},
    ]
    ch = eng.update(ts(2026, 3, 15), [], [], jobs)
    assert sorted((a.kind, a.tag) for a in ch.raised) == [(BUDGET_WARNING, "sweep-1"), (BUDGET_WARNING, "sweep-2")]
    assert all(a.data["budget_tag"] == "sweep-*" for a in ch.raised)
