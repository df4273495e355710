"""Budgets in the recorder: periods that roll over while it records, sessions of earlier days, and budgets set with
`gputab budget set` while it runs (read again within seconds). The clock is injected: the demo box and the recorder
take wall time from a FakeClock set just before midnight UTC, so no test sleeps a day."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from gputab.alerts.observer import BUDGET_EXCEEDED, AlertObserver
from gputab.cli.main import cli
from gputab.config.settings import Config
from gputab.recording.budget_keeper import REREAD_SECONDS
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import FakeClock
from support import demo_recorder

LORA = "llama3-8b-lora"


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def budget(db, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--db", str(db), "budget", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def recorder(db, wall_start: float) -> tuple[Recorder, AlertObserver, FakeClock]:
    obs = AlertObserver.from_config(Config())
    rec, clock = demo_recorder(db, [obs], wall_start)
    obs.sink = rec.record_alert  # stored with the session, as `gputab record` does
    return rec, obs, clock


def steps(rec: Recorder, clock: FakeClock, n: int):
    tick = None
    for _ in range(n):
        clock.advance(1.0)
        tick = rec.step()
    return tick


def lora(tick) -> dict:
    return next(j for j in tick.jobs if j["tag"] == LORA)


def active(obs) -> dict:
    return {a.kind: a for a in obs.active if a.tag == LORA}


def stored_alerts(db, kind: str) -> list[tuple[float, float | None]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT wall, cleared_wall FROM alerts WHERE kind = ? AND subject = ? ORDER BY id", [kind, LORA]
        ).fetchall()
    finally:
        conn.close()


def test_a_daily_budget_rolls_over_at_utc_midnight_while_recording(tmp_path):
    db = tmp_path / "g.db"
    budget(db, "set", LORA, "0.05", "--period", "day")
    midnight = ts(2026, 3, 16)
    rec, obs, clock = recorder(db, midnight - 60)
    rec.start()
    try:
        before = lora(steps(rec, clock, 50))  # 23:59:50
        assert before["cost_usd"] > 0.05  # the fine-tune burns about $9.5/h
        exceeded = active(obs)[BUDGET_EXCEEDED]
        assert exceeded.data["period_start"] == ts(2026, 3, 15) and "this day" in exceeded.message
        steps(rec, clock, 9)  # 23:59:59: still the old day
        assert BUDGET_EXCEEDED in active(obs)
        at_midnight = lora(steps(rec, clock, 1))  # 00:00:00: a new day, and the spend starts again
        assert clock.wall() == midnight
        assert BUDGET_EXCEEDED not in active(obs)
        book = obs.budget_book
        b = book.budget_for(LORA)
        assert book.spent(b, LORA, at_midnight["cost_usd"], midnight) == pytest.approx(0.0, abs=1e-12)
        later = lora(steps(rec, clock, 3))
        spent = book.spent(b, LORA, later["cost_usd"], clock.wall())
        assert spent == pytest.approx(later["cost_usd"] - at_midnight["cost_usd"])
        assert book.uncarried(clock.wall()) == []  # the keeper carried the store's spend into the new day
        for _ in range(60):  # about 20 s of the new day puts it over $0.05 again
            tick = steps(rec, clock, 1)
            if BUDGET_EXCEEDED in active(obs):
                break
        again = active(obs)[BUDGET_EXCEEDED]
        assert again.started_at > midnight and again.data["period_start"] == midnight
        assert again.data["spent_usd"] == pytest.approx(lora(tick)["cost_usd"] - at_midnight["cost_usd"])
    finally:
        rec.close()
    # Both exceeded alerts are stored: the first cleared at midnight, the second raised in the new day.
    (first_raised, first_cleared), (second_raised, second_cleared) = stored_alerts(db, BUDGET_EXCEEDED)
    assert first_raised < midnight and first_cleared == midnight
    assert second_raised > midnight and second_cleared is None
    # `budget list` counts the same from the store: the session's cost since midnight (exact to its series step).
    listed = json.loads(budget(db, "list", "--json"))  # a reader of the real "now": its own day, nothing spent
    assert listed["budgets"][0]["period"] == "day" and listed["budgets"][0]["jobs"][0]["spent_usd"] == 0.0
    from gputab.cli.budget import budget_report
    from gputab.cli.context import AppContext

    report = budget_report(AppContext(db_path=db), clock.wall())
    (row,) = report["budgets"][0]["jobs"]
    assert row["spent_usd"] == pytest.approx(spent_total(db) - at_midnight["cost_usd"], rel=1e-9)


def spent_total(db) -> float:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT sum(cost_usd) FROM jobs WHERE tag = ?", [LORA]).fetchone()[0]
    finally:
        conn.close()


def test_yesterdays_sessions_count_in_a_total_budget_not_in_a_daily_one_set_while_recording(tmp_path):
    db = tmp_path / "g.db"
    noon = ts(2026, 3, 16, 12)
    first, _, clock = recorder(db, noon - 86400)  # yesterday at noon
    first.start()
    yesterday = lora(steps(first, clock, 60))["cost_usd"]
    first.close()
    assert yesterday > 0

    budget(db, "set", LORA, "1000", "--period", "day")
    rec, obs, clock = recorder(db, noon)
    rec.start()
    try:
        book = obs.budget_book
        now = lora(steps(rec, clock, 3))
        b = book.budget_for(LORA)
        assert (b.period, b.origin) == ("day", "database")
        assert book.spent(b, LORA, now["cost_usd"], clock.wall()) == pytest.approx(now["cost_usd"])  # today only
        # Changed while recording: the recorder reads the table again within REREAD_SECONDS.
        budget(db, "set", LORA, "1000", "--period", "total")
        steps(rec, clock, int(REREAD_SECONDS) + 1)
        now = lora(steps(rec, clock, 1))
        b = book.budget_for(LORA)
        assert b.period == "total"
        assert book.spent(b, LORA, now["cost_usd"], clock.wall()) == pytest.approx(yesterday + now["cost_usd"])
        # A cap below what was spent: exceeded within seconds, no restart.
        budget(db, "set", LORA, f"{yesterday:.6f}")
        steps(rec, clock, int(REREAD_SECONDS) + 1)
        assert BUDGET_EXCEEDED in active(obs)
        budget(db, "rm", LORA)  # back to the demo's own $15 budget, which it is far under
        steps(rec, clock, int(REREAD_SECONDS) + 1)
        assert BUDGET_EXCEEDED not in active(obs) and book.budget_for(LORA).origin == "demo"
    finally:
        rec.close()
