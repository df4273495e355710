"""Each alert rule on scripted traces: raised at the threshold, not before, and cleared when the cause goes away."""

from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import dataclass, field

import pytest

from gputab.alerts.observer import (
    BUDGET_EXCEEDED,
    BUDGET_WARNING,
    CRITICAL,
    ENFORCEMENT,
    IDLE_MONEY,
    LOW_UTILIZATION,
    MEMORY_PRESSURE,
    WARNING,
    WASTE,
    AlertCommand,
    AlertEngine,
    AlertObserver,
    RollingSums,
    format_duration,
    format_money,
)
from gputab.budgets.model import Budget
from gputab.config.settings import AlertsConfig, Config
from gputab.cost.ledger import IDLE, UNOBSERVED, GpuInterval
from gputab.sampling.snapshot import GpuSample, Snapshot

GIB = 1024**3
T0 = 1_767_225_600.0


def gpu(index=0, used_gib=10.0, total_gib=80.0, lost=False) -> GpuSample:
    return GpuSample(
        index=index,
        uuid=f"GPU-{index}",
        name="NVIDIA H100 80GB HBM3",
        lost=lost,
        memory_used_bytes=None if used_gib is None else int(used_gib * GIB),
        memory_total_bytes=int(total_gib * GIB),
    )


def interval(index=0, shares=None, util=0.9, dt=1.0, rate=3.6, unobserved=0.0) -> GpuInterval:
    return GpuInterval(
        index,
        dt,
        rate * dt / 3600,
        0.0,
        unobserved,
        300.0 * dt,
        "counter",
        util,
        shares if shares is not None else {"train": 1.0},
    )


def run(engine, seconds, gpus=(), intervals_fn=None, jobs_fn=None, start=0.0, step=1.0):
    """Feed ``seconds`` ticks; return every change as (t, 'cleared'|'raised', kind, subject), clears first."""
    events = []
    t = start
    while t < start + seconds:
        t += step
        ivs = intervals_fn(t) if intervals_fn else []
        jobs = jobs_fn(t) if jobs_fn else []
        ch = engine.update(T0 + t, gpus(t) if callable(gpus) else gpus, ivs, jobs, mono=t)
        events += [(t, "cleared", a.kind, a.tag if a.tag is not None else a.gpu) for a in ch.cleared]
        events += [(t, "raised", a.kind, a.tag if a.tag is not None else a.gpu) for a in ch.raised]
    return events, t


# -- memory pressure ----------------------------------------------------------------------------------------
def test_memory_pressure_raised_after_60s_above_85pct_and_cleared_below():
    eng = AlertEngine()
    trace = lambda t: [gpu(0, used_gib=70.0 if 10 < t <= 100 else 40.0), gpu(1, used_gib=20.0)]  # 87.5 %
    events, _ = run(eng, 120, gpus=trace)
    assert events == [(71.0, "raised", MEMORY_PRESSURE, 0), (101.0, "cleared", MEMORY_PRESSURE, 0)]


def test_memory_pressure_needs_an_unbroken_stretch():
    eng = AlertEngine()
    # Above the threshold for 50 s, one dip, 50 s more: never 60 s in a row.
    trace = lambda t: [gpu(0, used_gib=40.0 if t == 51 else 70.0)]
    events, _ = run(eng, 101, gpus=trace)
    assert events == []
    assert eng.active == []


def test_memory_pressure_unknown_reading_or_lost_gpu_clears():
    eng = AlertEngine(AlertsConfig(memory_pressure_pct=50.0, memory_pressure_seconds=5.0))
    trace = lambda t: [gpu(0, used_gib=None if t > 10 else 60.0), gpu(1, used_gib=60.0, lost=t > 10)]
    events, _ = run(eng, 12, gpus=trace)
    assert [e[1:] for e in events] == [
        ("raised", MEMORY_PRESSURE, 0),
        ("raised", MEMORY_PRESSURE, 1),
        ("cleared", MEMORY_PRESSURE, 0),
        ("cleared", MEMORY_PRESSURE, 1),
    ]


def test_memory_pressure_alert_carries_figures():
    eng = AlertEngine()
    run(eng, 61, gpus=[gpu(0, used_gib=78.0)])
    (a,) = eng.active
    assert a.gpu == 0 and a.tag is None
    assert a.data["used_pct"] == pytest.approx(97.5)
    assert "97%" in a.message or "98%" in a.message
    assert a.started_at == T0 + 61.0


# -- idle money ---------------------------------------------------------------------------------------------
def test_idle_money_after_30_minutes_with_the_money_spent():
    eng = AlertEngine()
    busy_after = 40 * 60
    ivs = lambda t: [interval(3, {IDLE: 1.0} if t <= busy_after else {"job": 1.0}, util=0.0, rate=3.6)]
    events, _ = run(eng, busy_after + 5, intervals_fn=ivs)
    # The first interval (t=0..1) was already idle, so 30 min of idle is complete at t=1800.
    assert events == [(1800.0, "raised", IDLE_MONEY, 3), (busy_after + 1.0, "cleared", IDLE_MONEY, 3)]


def test_idle_money_alert_message_and_data():
    eng = AlertEngine(AlertsConfig(idle_minutes=1.0))
    run(eng, 60, intervals_fn=lambda t: [interval(2, {IDLE: 1.0}, util=0.0, rate=7.2)])
    (a,) = eng.active
    assert a.kind == IDLE_MONEY and a.gpu == 2
    assert a.data["idle_cost_usd"] == pytest.approx(7.2 / 60)  # one minute at $7.20/h
    assert a.data["burn_rate_usd_per_hour"] == pytest.approx(7.2)
    assert "$0.12" in a.message and "1m" in a.message


def test_idle_gpu_that_costs_nothing_is_not_money():
    eng = AlertEngine(AlertsConfig(idle_minutes=1.0))
    events, _ = run(eng, 120, intervals_fn=lambda t: [interval(0, {IDLE: 1.0}, util=0.0, rate=0.0)])
    assert events == []


def test_lost_gpu_interval_ends_an_idle_stretch():
    eng = AlertEngine(AlertsConfig(idle_minutes=1.0))
    ivs = lambda t: [interval(0, {} if 50 < t <= 52 else {IDLE: 1.0}, util=0.0)]
    events, _ = run(eng, 120, intervals_fn=ivs)
    assert events == [(112.0, "raised", IDLE_MONEY, 0)]  # the clock restarted at t=52


# -- low utilization ----------------------------------------------------------------------------------------
def test_low_utilization_needs_a_full_window_below_threshold():
    eng = AlertEngine(AlertsConfig(low_utilization_minutes=10.0))
    ivs = lambda t: [interval(0, {"eval": 1.0}, util=0.30), interval(1, {"train": 1.0}, util=0.92)]
    events, _ = run(eng, 1200, intervals_fn=ivs)
    # First seen at t=1: raised once 10 minutes have been watched, and only for the starving job.
    assert events == [(601.0, "raised", LOW_UTILIZATION, "eval")]
    (a,) = eng.active
    assert a.data["avg_utilization"] == pytest.approx(0.30)
    assert "30%" in a.message


def test_low_utilization_is_a_rolling_average_and_clears_when_it_recovers():
    eng = AlertEngine(AlertsConfig(low_utilization_minutes=10.0))
    util = lambda t: 0.2 if t <= 900 else 0.95
    events, _ = run(eng, 1800, intervals_fn=lambda t: [interval(0, {"job": 1.0}, util=util(t))])
    assert events[0] == (601.0, "raised", LOW_UTILIZATION, "job")
    # Average over the last 600 s crosses 50 % when ~240 s of 95 % are in the window: t ~ 900 + 240.
    cleared_at = events[1][0]
    assert events[1][1:] == ("cleared", LOW_UTILIZATION, "job")
    assert 1100 <= cleared_at <= 1200


def test_low_utilization_weights_by_share_and_ignores_unknown_utilization():
    eng = AlertEngine(AlertsConfig(low_utilization_minutes=1.0))
    # The job holds 1/4 of a GPU at 90 % and all of one at 10 % -> (0.25*0.9 + 1*0.1) / 1.25 = 0.26
    ivs = lambda t: [
        interval(0, {"job": 0.25, "other": 0.75}, util=0.9),
        interval(1, {"job": 1.0}, util=0.1),
        interval(2, {"job": 1.0}, util=None),
    ]
    run(eng, 61, intervals_fn=ivs)
    lows = {a.tag: a for a in eng.active if a.kind == LOW_UTILIZATION}
    assert set(lows) == {"job"}
    assert lows["job"].data["avg_utilization"] == pytest.approx(0.26)


def test_special_buckets_never_get_low_utilization():
    eng = AlertEngine(AlertsConfig(low_utilization_minutes=1.0))
    ivs = lambda t: [interval(0, {IDLE: 1.0}, util=0.0), interval(1, {UNOBSERVED: 1.0}, util=0.0)]
    run(eng, 120, intervals_fn=ivs)
    assert [a for a in eng.active if a.kind == LOW_UTILIZATION] == []


def test_low_utilization_clears_when_the_job_is_gone():
    eng = AlertEngine(AlertsConfig(low_utilization_minutes=1.0), job_gone_after=30.0)
    ivs = lambda t: [interval(0, {"job": 1.0} if t <= 100 else {IDLE: 1.0}, util=0.1)]
    events, _ = run(eng, 200, intervals_fn=ivs)
    assert events == [(61.0, "raised", LOW_UTILIZATION, "job"), (130.0, "cleared", LOW_UTILIZATION, "job")]


def test_rolling_sums_expire_by_slot_and_stay_exact():
    r = RollingSums(window=60.0, buckets=6)
    for t in range(1, 121):
        r.add(float(t), 1.0, 0.5)
    # 60 s window in 10 s slots: between 60 and 70 s of data are kept.
    assert 60.0 <= r.gpu_s <= 70.0
    assert r.average == pytest.approx(0.5)
    r.expire(1000.0)
    assert r.gpu_s == 0.0 and r.average is None
    assert len(r._slots) == 0


def test_rolling_sums_memory_is_bounded_over_a_long_run():
    r = RollingSums(window=3600.0)
    for t in range(0, 5 * 86400, 7):
        r.add(float(t), 7.0, 3.5)
    assert len(r._slots) <= 61
    assert r.average == pytest.approx(0.5)


# -- budgets ------------------------------------------------------------------------------------------------
def job(tag, cost, burn):
    return {"tag": tag, "cost_usd": cost, "burn_rate_usd_per_hour": burn}


def test_budget_warning_then_exceeded_with_projection():
    eng = AlertEngine(budgets={"train": 50.0})
    # $36/h: $0.01 a second; $40 (80 %) at t=4000, $50 at t=5000.
    events, _ = run(eng, 5100, jobs_fn=lambda t: [job("train", t * 0.01, 36.0), job("free", t, 1.0)], step=100.0)
    assert events == [
        (4000.0, "raised", BUDGET_WARNING, "train"),
        (5000.0, "cleared", BUDGET_WARNING, "train"),
        (5000.0, "raised", BUDGET_EXCEEDED, "train"),
    ]
    (a,) = eng.active
    assert a.severity == CRITICAL and a.data["projected_seconds_to_cap"] == 0.0


def test_budget_warning_projects_time_to_cap_from_burn_rate():
    eng = AlertEngine(AlertsConfig(budget_warning_pct=80.0), budgets={"train": 50.0})
    eng.update(T0, [], [], [job("train", 42.0, 8.0)], mono=0.0)
    (a,) = eng.active
    assert a.kind == BUDGET_WARNING
    # ($50 - $42) / $8/h = 1 h
    assert a.data["projected_seconds_to_cap"] == pytest.approx(3600.0)
    assert a.data["projected_cap_at"] == pytest.approx(T0 + 3600.0)
    assert a.data["spent_pct"] == pytest.approx(84.0)
    assert "1h00m" in a.message and "$42.00" in a.message


def test_budget_not_burning_has_no_projection():
    eng = AlertEngine(budgets={"train": 10.0})
    eng.update(T0, [], [], [job("train", 9.0, 0.0)], mono=0.0)
    (a,) = eng.active
    assert a.data["projected_seconds_to_cap"] is None and "not burning" in a.message


def test_budget_below_warning_is_quiet_and_raising_the_cap_clears():
    eng = AlertEngine(budgets={"train": 10.0})
    assert not eng.update(T0, [], [], [job("train", 7.9, 1.0)], mono=0.0)
    ch = eng.update(T0 + 1, [], [], [job("train", 10.5, 1.0)], mono=1.0)
    assert [a.kind for a in ch.raised] == [BUDGET_EXCEEDED]
    eng.set_budget("train", 100.0)
    ch = eng.update(T0 + 2, [], [], [job("train", 10.6, 1.0)], mono=2.0)
    assert [a.kind for a in ch.cleared] == [BUDGET_EXCEEDED] and ch.raised == ()
    assert ch.cleared[0].ended_at == T0 + 2
    eng.book.define([])  # the cap lifted
    eng.set_budget("other", 1.0)
    assert eng.update(T0 + 3, [], [], [job("train", 99.0, 1.0)], mono=3.0).raised == ()


def test_set_budget_refuses_nonsense():
    with pytest.raises(ValueError):
        AlertEngine().set_budget("x", 0)


# -- waste share ---------------------------------------------------------------------------------------------


def wasting(tag, t, waste_frac, reason="input_bound", evidence="CPU 98% of 4 cores, GPU 12%"):
    """A job at $3.60/h ($0.001 a second) since t=0, ``waste_frac`` of it wasted, as JobTotals.to_json() has it."""
    return {
        "tag": tag,
        "cost_usd": 0.001 * t,
        "waste_usd": 0.001 * t * waste_frac,
        "waste_top_reason": reason,
        "waste_evidence": evidence,
    }


def test_waste_raised_after_a_full_window_above_the_share_with_reason_and_evidence():
    eng = AlertEngine()  # defaults: 50 % over 30 min
    events, _ = run(eng, 1900, jobs_fn=lambda t: [wasting("train", t, 0.75)])
    # First sight (t=1) is the baseline; the window is full 30 min later.
    assert events == [(1801.0, "raised", WASTE, "train")]
    (a,) = eng.active
    # 1,800 ticks of $0.001, 75 % of it wasted: $1.35 of $1.80.
    assert a.data["waste_share"] == pytest.approx(0.75)
    assert a.data["cost_usd_in_window"] == pytest.approx(1.80)
    assert a.data["waste_usd_in_window"] == pytest.approx(1.35)
    assert a.message == (
        "job train: 75% of its cost wasted over the last 30m ($1.35 of $1.80, threshold 50%); "
        "likely input_bound (CPU 98% of 4 cores, GPU 12%)"
    )
    assert a.data["reason"] == "input_bound" and a.severity == WARNING


def test_waste_share_is_rolling_and_clears_when_the_job_gets_busy():
    eng = AlertEngine(AlertsConfig(waste_pct=50.0, waste_minutes=10.0))

    # 80 % wasted until t=1000, then none: cumulative totals keep the old waste, the window forgets it.
    def jobs(t):
        w = 0.8 * min(t, 1000.0)
        return [{"tag": "train", "cost_usd": 0.001 * t, "waste_usd": 0.001 * w, "waste_top_reason": "small_batch"}]

    events, _ = run(eng, 1700, jobs_fn=jobs)
    assert [e[1:] for e in events] == [("raised", WASTE, "train"), ("cleared", WASTE, "train")]
    assert events[0][0] == 601.0
    # 80 % of the window's cost stays waste until 3/8 of the window (225 s) is busy; slots are 10 s wide.
    assert 1000.0 + 225.0 <= events[1][0] <= 1000.0 + 225.0 + 10.0
    assert not eng.active


def test_waste_at_or_below_the_share_is_quiet_and_special_buckets_never_alert():
    eng = AlertEngine(AlertsConfig(waste_minutes=1.0))
    events, _ = run(
        eng,
        300,
        jobs_fn=lambda t: [
            wasting("train", t, 0.5),
            wasting(IDLE, t, 1.0),
            {"tag": "old", "cost_usd": t, "waste_usd": None},
        ],
    )
    assert events == []


def test_waste_clears_when_the_job_is_gone_or_stops_costing():
    eng = AlertEngine(AlertsConfig(waste_minutes=1.0), job_gone_after=120.0)
    events, t = run(eng, 61, jobs_fn=lambda t: [wasting("a", t, 1.0), wasting("b", t, 1.0)])
    assert sorted(e[1:] for e in events) == [("raised", WASTE, "a"), ("raised", WASTE, "b")]
    # "a" leaves the ledger's jobs; "b" stays listed but costs nothing more: cleared 120 s after its last growth.
    events, _ = run(eng, 130, jobs_fn=lambda s: [wasting("b", t, 1.0)], start=t)
    assert events == [(t + 1, "cleared", WASTE, "a"), (t + 120, "cleared", WASTE, "b")]


def test_waste_unexplained_without_a_reason():
    eng = AlertEngine(AlertsConfig(waste_minutes=1.0))
    run(eng, 61, jobs_fn=lambda t: [wasting("train", t, 1.0, reason=None, evidence=None)])
    (a,) = eng.active
    assert a.message.endswith("; likely unexplained") and a.data["evidence"] is None


def test_the_demo_raises_a_waste_alert_in_its_first_minute(tmp_path):
    from gputab.recording.recorder import Recorder
    from gputab.sampling.demo import DemoBackend, FakeClock
    from gputab.store import Store

    clock = FakeClock(wall_start=T0)
    backend = DemoBackend(seed=0, clock=clock, wall_clock=clock.wall)
    observer = AlertObserver.from_config(Config(), backend=backend)
    assert observer.engine.config.waste_minutes == 0.5  # the demo's compressed window
    raised = []
    observer.sink = raised.append
    rec = Recorder(
        backend, Store.open(tmp_path / "g.db"), Config(), clock=clock, wall_clock=clock.wall, observers=[observer]
    )
    rec.start()
    for _ in range(60):
        clock.advance(1.0)
        rec.step()
    rec.close("clean")
    waste = [a for a in raised if a.kind == WASTE]
    assert waste, [a.message for a in raised]
    assert all(a.started_at - T0 <= 60.0 and "likely " in a.message for a in waste)


def test_format_money_never_rounds_money_to_nothing():
    assert [format_money(v) for v in (0, 0.003, 0.0123, 0.4, 1234.5)] == [
        "$0.00",
        "$0.003",
        "$0.0123",
        "$0.40",
        "$1,234.50",
    ]


def test_format_duration():
    assert [format_duration(s) for s in (5, 125, 3600, 3 * 3600 + 5 * 60 + 20)] == ["5s", "2m", "1h00m", "3h05m"]


# -- the observer -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FakeProc:
    tag: str
    create_time: float | None = None


@dataclass(frozen=True)
class FakeTick:
    snapshot: Snapshot
    intervals: list = field(default_factory=list)
    jobs: list = field(default_factory=list)
    processes: dict = field(default_factory=dict)


def tick(t, gpus=(), intervals=(), jobs=(), processes=None):
    return FakeTick(Snapshot(mono=t, wall=T0 + t, gpus=tuple(gpus)), list(intervals), list(jobs), processes or {})


def test_observer_prints_stores_and_clears():
    out, stored = io.StringIO(), []
    obs = AlertObserver.from_config(
        Config(budgets={"train": 10.0}), budgets={"eval": 1.0}, stream=out, sink=stored.append
    )
    assert obs.engine.budgets == {"train": 10.0, "eval": 1.0}
    obs.on_tick(tick(1, jobs=[job("train", 9.0, 2.0), job("eval", 0.1, 0.0)]))
    obs.on_tick(tick(2, jobs=[job("train", 11.0, 2.0)]))
    assert [(a.kind, a.active) for a in stored] == [
        (BUDGET_WARNING, True),
        (BUDGET_WARNING, False),
        (BUDGET_EXCEEDED, True),
    ]
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert "ALERT [warning] job train: $9.00 of its $10.00 budget" in lines[0]
    assert "cleared" in lines[1] and "ALERT [critical]" in lines[2]
    assert [a.kind for a in obs.active] == [BUDGET_EXCEEDED]


class RecordingEnforcer:
    def __init__(self):
        self.calls = []

    def covers(self, tag):
        return tag == "train"

    def stop(self, tag, procs, now, wall, budget=None):
        from gputab.budgets.enforcement import EnforcementAction

        self.calls.append((tag, sorted(procs)))
        return [EnforcementAction(wall, tag, pid, "SIGINT", "sent", "test") for pid, _ in procs]

    def tick(self, now, wall):
        return []


def test_observer_hands_jobs_over_cap_to_the_enforcer_and_records_actions():
    stored = []
    enf = RecordingEnforcer()
    budgets = [Budget("train", 1.0, stop=True), Budget("eval", 1.0, stop=True)]
    obs = AlertObserver(AlertEngine(budgets=budgets), sink=stored.append, enforcer=enf)
    procs = {10: FakeProc("train", 5.0), 11: FakeProc("train", 6.0), 12: FakeProc("eval")}
    obs.on_tick(tick(1, jobs=[job("train", 2.0, 1.0), job("eval", 2.0, 1.0)], processes=procs))
    assert enf.calls == [("train", [(10, 5.0), (11, 6.0)])]  # eval is over its cap too, but not enforced
    records = [a for a in stored if a.kind == ENFORCEMENT]
    assert [(a.data["pid"], a.data["signal"], a.active) for a in records] == [
        (10, "SIGINT", False),
        (11, "SIGINT", False),
    ]


def test_alert_command_gets_the_alert_json_on_stdin(tmp_path):
    dest = tmp_path / "got.json"
    code = f"import sys, pathlib; pathlib.Path({str(dest)!r}).write_text(sys.stdin.read())"
    cmd = AlertCommand([sys.executable, "-c", code], timeout=10.0)
    obs = AlertObserver(AlertEngine(budgets={"train": 1.0}), command=cmd)
    obs.on_tick(tick(1, jobs=[job("train", 5.0, 1.0)]))
    assert cmd.running == 1
    deadline = time.monotonic() + 10
    while not dest.exists() or not dest.read_text():
        assert time.monotonic() < deadline, "alert command never wrote its input"
        time.sleep(0.02)
    obs.close()
    got = json.loads(dest.read_text())
    assert got["kind"] == BUDGET_EXCEEDED and got["tag"] == "train" and got["data"]["cap_usd"] == 1.0
    assert cmd.running == 0


def test_alert_command_is_time_limited_and_bounded():
    clock = [0.0]
    cmd = AlertCommand(
        [sys.executable, "-c", "import time; time.sleep(30)"], timeout=5.0, max_running=1, clock=lambda: clock[0]
    )
    assert cmd.run({"kind": "x"}) is None
    problem = cmd.run({"kind": "y"})
    assert problem is not None and "skipped" in problem
    clock[0] = 6.0
    started = time.monotonic()
    assert cmd.reap() == ["alert command killed after 5s"]
    assert time.monotonic() - started < 5 and cmd.running == 0


def test_alert_command_reports_failures():
    out = io.StringIO()
    obs = AlertObserver(
        AlertEngine(budgets={"a": 1.0, "b": 1.0}), stream=out, command=AlertCommand(["/nonexistent/gputab-alert-hook"])
    )
    obs.on_tick(tick(1, jobs=[job("a", 5.0, 1.0)]))
    assert "could not start" in out.getvalue()
    failing = AlertCommand([sys.executable, "-c", "raise SystemExit(3)"])
    failing.run({})
    assert failing.close() == ["alert command exited with status 3"]
