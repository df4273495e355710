"""Budgets the recorder keeps: spend carried across sessions (a restart does not reset them), and a warning as soon
as the forecast says the job will exceed its cap."""

from __future__ import annotations

import pytest

import support
from gputab.alerts.observer import BUDGET_PROJECTED, BUDGET_WARNING, AlertEngine, AlertObserver
from gputab.config.settings import Config

LORA = "llama3-8b-lora"


def job(cost, projected=None, eta=None):
    return {
        "tag": "t",
        "cost_usd": cost,
        "burn_rate_usd_per_hour": 2.0,
        "projected_cost_usd": projected,
        "eta_seconds": eta,
    }


def kinds(engine):
    return {a.kind: a for a in engine.active}


def test_projected_to_exceed_warns_with_the_overrun_and_counts_earlier_spend():
    engine = AlertEngine(budgets={"t": 10.0})
    engine.update(0.0, [], [], [job(2.0, projected=9.0, eta=3600)])
    assert BUDGET_PROJECTED not in kinds(engine)
    changes = engine.update(1.0, [], [], [job(2.0, projected=15.0, eta=3600)])
    alert = kinds(engine)[BUDGET_PROJECTED]
    assert alert in changes.raised
    assert "will exceed its $10.00 budget by $5.00 at completion" in alert.message
    assert alert.data["projected_over_usd"] == pytest.approx(5.0)
    engine.update(2.0, [], [], [job(2.1, projected=None)])  # the forecast paused: the warning stays
    assert BUDGET_PROJECTED in kinds(engine)
    engine.update(3.0, [], [], [job(2.2, projected=9.5)])  # faster now: under the cap, cleared
    assert BUDGET_PROJECTED not in kinds(engine)

    carried = AlertEngine(budgets={"t": 10.0})
    carried.book.carry(("total", None), {"t": 3.0, "other": 99.0})  # what earlier sessions spent
    carried.update(0.0, [], [], [job(5.0, projected=9.0)])
    active = kinds(carried)
    assert active[BUDGET_WARNING].data["spent_usd"] == pytest.approx(8.0)  # 3 before + 5 now = 80 %
    assert "by $2.00" in active[BUDGET_PROJECTED].message  # 3 + 9 projected - 10


def demo_recorder(db, observers=()):
    rec, rec.fake_clock = support.demo_recorder(db, observers)
    return rec


def run(rec, seconds):
    tick = rec.start()
    for _ in range(seconds):
        rec.fake_clock.advance(1.0)
        tick = rec.step()
    return next(j for j in tick.jobs if j["tag"] == LORA)


def test_a_recorder_restart_does_not_reset_a_budget(tmp_path):
    db = tmp_path / "g.db"
    first = demo_recorder(db)
    cost1 = run(first, 40)["cost_usd"]
    first.close()
    assert cost1 > 0
    # A cap the first session alone keeps under 80 %, that both together cross.
    cap = cost1 * 1.1
    obs = AlertObserver.from_config(Config(budgets={LORA: cap}))
    second = demo_recorder(db, observers=[obs])
    try:
        now = run(second, 15)
        book = obs.budget_book
        assert book.spent(book.budget_for(LORA), LORA, 0.0, second.fake_clock.wall()) == pytest.approx(cost1)
        spent = {a.kind: a for a in obs.active}
        # 15 s of this session alone is about a third of the cap: only the carried spend puts the job over it.
        assert now["cost_usd"] < 0.8 * cap
        assert "budget_exceeded" in spent
        assert spent["budget_exceeded"].data["spent_usd"] >= cap
        assert spent["budget_exceeded"].data["spent_usd"] - cost1 < 0.8 * cap
        # The fine-tune's forecast (about 2 h to go at ~$9.5/h) is far above the cap: projected alert, or exceeded.
        assert BUDGET_PROJECTED in spent or "budget_exceeded" in spent
    finally:
        second.close()


def test_the_recorder_warns_once_the_forecast_passes_the_cap(tmp_path):
    obs = AlertObserver.from_config(Config(budgets={LORA: 5.0}))
    rec = demo_recorder(tmp_path / "g.db", observers=[obs])
    try:
        early = run(rec, 20)
        assert early["forecast_state"] == "unknown"
        assert BUDGET_PROJECTED not in kinds(obs.engine)
        for _ in range(20):
            rec.fake_clock.advance(1.0)
            tick = rec.step()
        j = next(j for j in tick.jobs if j["tag"] == LORA)
        alert = kinds(obs.engine)[BUDGET_PROJECTED]
        assert j["cost_usd"] < 0.8 * 5.0  # far from the cap today: only the forecast knows
        assert alert.data["projected_over_usd"] == pytest.approx(alert.data["projected_cost_usd"] - 5.0)
        assert alert.data["projected_cost_usd"] > 15.0
    finally:
        rec.close()


def test_the_demo_warns_of_its_budget_within_its_first_minute_and_a_configured_cap_wins(tmp_path):
    obs = AlertObserver.from_config(Config())
    rec = demo_recorder(tmp_path / "a.db", observers=[obs])
    try:
        run(rec, 60)
        alert = kinds(obs.engine)[BUDGET_PROJECTED]
        assert alert.tag == LORA and "will exceed its $15.00 budget" in alert.message
    finally:
        rec.close()
    mine = AlertObserver.from_config(Config(budgets={LORA: 100.0}))
    rec = demo_recorder(tmp_path / "b.db", observers=[mine])
    try:
        run(rec, 60)
        assert mine.engine.budgets[LORA] == 100.0 and BUDGET_PROJECTED not in kinds(mine.engine)
    finally:
        rec.close()
