"""The pure forecast (cost-model.md, "Forecast"): exact under constant rate and burn, follows a change within a window."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from gputab.cost.forecast import ProgressTrack, forecast

rates = st.floats(min_value=1e-6, max_value=1e-2)
burns = st.floats(min_value=0.01, max_value=500.0)
steps = st.floats(min_value=0.5, max_value=30.0)


def feed(track: ProgressTrack, t0: float, t1: float, step: float, f0: float, rate: float) -> float:
    """Observations every ``step`` s from t0 to t1 of a job growing at ``rate``; returns the last time."""
    t = t0
    while t <= t1 + 1e-9 and f0 + rate * (t - t0) < 1.0:
        track.observe(t, f0 + rate * (t - t0))
        last = t
        t += step
    return last


@settings(max_examples=200, deadline=None)
@given(rate=rates, burn=burns, step=steps, spent=st.floats(min_value=0, max_value=1e4))
def test_constant_rate_and_burn_projects_the_analytic_cost(rate: float, burn: float, step: float, spent: float) -> None:
    track = ProgressTrack(window=600, min_span=30)
    end = min(1500.0, 0.9 / rate)
    now = feed(track, 0.0, end, step, 0.0, rate)
    fc = forecast(track, now, spent, burn)
    if now < 30:
        assert fc.state == "unknown" and fc.eta_seconds is None
        return
    f = rate * now
    eta = (1 - f) / rate
    assert fc.state == "running"
    assert math.isclose(fc.eta_seconds, eta, rel_tol=1e-6)
    want = spent + burn / 3600 * eta
    assert math.isclose(fc.projected_cost_usd, want, rel_tol=1e-6)
    # Read at a report, a steady job's low end is exact; the high end leaves room for the next report to come
    # up to 1.5 steps later (the projection rises while the fraction stands still), and no more than that.
    assert math.isclose(fc.projected_cost_low_usd, want, rel_tol=1e-6)
    due = now + 1.5 * step
    slowest = min(track.rate(due), track.rate(due, 300))  # no report since: the recent half slows the most
    late = spent + burn / 3600 * (1.5 * step + (1 - f) / slowest)
    assert fc.projected_cost_high_usd >= want
    assert math.isclose(fc.projected_cost_high_usd, max(want, late), rel_tol=1e-6)


def test_unknown_until_the_window_has_data() -> None:
    track = ProgressTrack(window=600, min_span=30)
    assert forecast(track, 0.0, 0.0, 8.0).state == "unknown"
    track.observe(0.0, 0.1)
    track.observe(10.0, 0.11)
    fc = forecast(track, 10.0, 1.0, 8.0)
    assert fc.state == "unknown" and fc.progress_fraction == 0.11 and fc.projected_cost_usd is None
    track.observe(30.0, 0.13)
    assert forecast(track, 30.0, 1.0, 8.0).state == "running"


@settings(max_examples=150, deadline=None)
@given(
    r1=rates,
    factor=st.floats(min_value=0.1, max_value=10.0),
    step=st.floats(min_value=0.5, max_value=10.0),
    change=st.floats(min_value=40.0, max_value=2000.0),
)
def test_follows_a_rate_change_within_one_window(r1: float, factor: float, step: float, change: float) -> None:
    window = 600.0
    r1 = min(r1, 0.3 / change)
    r2 = min(r1 * factor, 0.3 / (window + 2 * step))
    track = ProgressTrack(window=window, min_span=30)
    t_c = feed(track, 0.0, change, step, 0.0, r1)
    f_c = r1 * t_c
    # One window (and one reporting step) after the change the rate is the new one, exactly.
    now = feed(track, t_c + step, t_c + window + 2 * step, step, f_c + r2 * step, r2)
    assert math.isclose(track.rate(now), r2, rel_tol=1e-6)
    fc = forecast(track, now, 5.0, 10.0)
    f = track.fraction
    assert math.isclose(fc.eta_seconds, (1 - f) / r2, rel_tol=1e-6)
    assert math.isclose(fc.projected_cost_usd, 5.0 + 10.0 / 3600 * (1 - f) / r2, rel_tol=1e-6)


def test_a_change_widens_the_range_and_the_faster_rate_gives_the_low_cost() -> None:
    track = ProgressTrack(window=600, min_span=30)
    feed(track, 0.0, 600.0, 1.0, 0.0, 0.0001)  # 0.06 after 10 min
    now = feed(track, 601.0, 900.0, 1.0, 0.06 + 0.0003, 0.0003)  # three times faster for the last 5 min
    fc = forecast(track, now, 10.0, 36.0)
    assert fc.projected_cost_low_usd < fc.projected_cost_usd < fc.projected_cost_high_usd
    left = 1 - track.fraction
    assert math.isclose(fc.projected_cost_low_usd, 10.0 + 0.01 * left / 0.0003, rel_tol=1e-3)


def test_a_job_that_stops_reporting_stalls_and_a_finished_one_is_done() -> None:
    track = ProgressTrack(window=600, min_span=30)
    feed(track, 0.0, 100.0, 1.0, 0.0, 0.001)
    slower = forecast(track, 400.0, 1.0, 10.0)
    assert slower.state == "running" and slower.rate_per_second < 0.001  # silence slows the forecast
    assert forecast(track, 800.0, 1.0, 10.0).state == "stalled"
    track.observe(900.0, 1.0)
    done = forecast(track, 900.0, 3.0, 10.0)
    assert done.state == "done" and done.eta_seconds == 0 and done.projected_cost_usd == 3.0


def test_a_fraction_that_goes_down_starts_a_new_run() -> None:
    track = ProgressTrack(window=600, min_span=30)
    feed(track, 0.0, 100.0, 1.0, 0.0, 0.005)
    track.observe(101.0, 0.01)
    assert list(track.points) == [(101.0, 0.01)]
    assert forecast(track, 101.0, 1.0, 1.0).state == "unknown"


def test_memory_stays_bounded() -> None:
    track = ProgressTrack(window=1e9, min_span=1)
    for i in range(20_000):
        track.observe(float(i), i / 40_000)
    assert len(track.points) <= 4096
    assert track.points[0] == (0.0, 0.0)
