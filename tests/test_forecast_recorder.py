"""The forecast end to end: a real process reports progress through the spool, the recorder forecasts the job.

The demo box on a fake clock charges ``eval-mmlu`` (a rented A100: a constant burn); a real subprocess
reports the job's progress each second as scripted. Constant rate -> the projected cost is within 1 % of the
analytic value once the window has data; a change of rate -> the forecast follows within one window.
"""

from __future__ import annotations

import math

import pytest

from gputab.config.settings import Config, RecorderConfig
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DemoBackend, FakeClock
from gputab.store import Store
from spoolkit import NOBODY, reporter, shared_spool_fixture  # noqa: F401

TAG = "eval-mmlu"
PROGRESS_STEPPER = """
    # Each stdin line is a fraction: reported as this job's progress, flushed, answered `ok`.
    for line in sys.stdin:
        kind, v = line.split()
        if kind == "p":
            gputab.report(samples=1, tag=sys.argv[1], progress=float(v))
        else:
            gputab.report(samples=int(v), tag=sys.argv[1], total_samples=10_000)
        gputab.report.flush()
        print("ok", flush=True)
"""


class Progress:
    def __init__(self, spool, tag: str = TAG) -> None:
        self.proc = reporter(PROGRESS_STEPPER.replace("sys.argv[1]", repr(tag)), spool, wait=False)

    def send(self, kind: str, v) -> None:
        self.proc.stdin.write(f"{kind} {v}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok", self.proc.stderr.read()

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def rec(tmp_path):
    clock = FakeClock()
    cfg = Config(recorder=RecorderConfig(forecast_window=60.0, forecast_min_span=10.0))
    r = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        Store(tmp_path / "g.db"),
        cfg,
        clock=clock,
        wall_clock=clock.wall,
        spool=tmp_path / "spool",
    )
    r.fake_clock = clock
    r.start()
    yield r
    r.close()


def job(tick, tag: str = TAG) -> dict:
    return next(j for j in tick.jobs if j["tag"] == tag)


def run(rec, progress: Progress, seconds: int, f0: float, rate: float):
    tick = None
    for k in range(1, seconds + 1):
        progress.send("p", f0 + rate * k)
        rec.fake_clock.advance(1.0)
        tick = rec.step()
    return tick


def test_constant_rate_projects_the_analytic_cost_and_follows_a_change(rec, tmp_path):
    p = Progress(tmp_path / "spool")
    try:
        early = run(rec, p, 5, 0.0, 0.001)
        assert job(early)["forecast_state"] == "unknown" and job(early)["eta_seconds"] is None
        tick = run(rec, p, 40, 0.005, 0.001)
        j = job(tick)
        f = j["progress_fraction"]
        assert f == pytest.approx(0.045)
        eta = (1 - f) / 0.001
        want = j["cost_usd"] + j["burn_rate_usd_per_hour"] * eta / 3600
        assert j["burn_rate_usd_per_hour"] > 0
        assert j["forecast_state"] == "running"
        assert j["eta_seconds"] == pytest.approx(eta, rel=0.01)
        assert j["projected_cost_usd"] == pytest.approx(want, rel=0.01)
        assert j["projected_cost_low_usd"] <= j["projected_cost_usd"] <= j["projected_cost_high_usd"]
        assert j["eta_at"].endswith("Z")
        # Three times faster: within one window (60 s) the forecast is of the new rate.
        tick = run(rec, p, 62, 0.045, 0.003)
        j = job(tick)
        eta = (1 - j["progress_fraction"]) / 0.003
        assert j["eta_seconds"] == pytest.approx(eta, rel=0.01)
        assert j["projected_cost_usd"] == pytest.approx(
            j["cost_usd"] + j["burn_rate_usd_per_hour"] * eta / 3600, rel=0.01
        )
    finally:
        p.stop()


def test_a_total_of_samples_gives_the_fraction(rec, tmp_path):
    p = Progress(tmp_path / "spool")
    try:
        for _ in range(30):
            p.send("s", 10)  # 10 of 10,000 samples a second
            rec.fake_clock.advance(1.0)
            tick = rec.step()
        j = job(tick)
        assert j["progress_fraction"] == pytest.approx(300 / 10_000)
        assert j["eta_seconds"] == pytest.approx((1 - 0.03) / 0.001, rel=0.01)
    finally:
        p.stop()


def test_progress_from_before_the_session_is_its_baseline(tmp_path):
    spool = tmp_path / "spool"
    reporter(f"gputab.report(samples=1, tag={TAG!r}, progress=0.5); gputab.report.flush()", spool)
    clock = FakeClock()
    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        Store(tmp_path / "g.db"),
        Config(),
        clock=clock,
        wall_clock=clock.wall,
        spool=spool,
    )
    rec.start()
    try:
        for _ in range(3):
            clock.advance(1.0)
            tick = rec.step()
        assert job(tick)["progress_fraction"] is None  # not re-counted as this session's news
        assert not math.isnan(job(tick)["cost_usd"])
    finally:
        rec.close()


def test_the_demo_forecasts_its_fine_tune_within_its_first_minute(tmp_path):
    from gputab.sampling.demo_reports import LORA_PROGRESS_START, LORA_SECONDS

    clock = FakeClock()
    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        Store(tmp_path / "demo.db"),
        Config(),
        clock=clock,
        wall_clock=clock.wall,
    )
    rec.start()
    try:
        for _ in range(60):
            clock.advance(1.0)
            tick = rec.step()
        j = job(tick, "llama3-8b-lora")
        assert j["forecast_state"] == "running"
        f = j["progress_fraction"]
        assert f == pytest.approx(LORA_PROGRESS_START + 60 / LORA_SECONDS, abs=2 / LORA_SECONDS)
        assert j["eta_seconds"] == pytest.approx((1 - f) * LORA_SECONDS, rel=0.01)
        assert j["projected_cost_usd"] == pytest.approx(
            j["cost_usd"] + j["burn_rate_usd_per_hour"] * j["eta_seconds"] / 3600, rel=1e-9
        )
        assert (tmp_path / "demo-spool").is_dir()  # the demo's own spool, never the real one
    finally:
        rec.close()


def test_progress_of_a_user_who_runs_no_process_of_the_job_is_rejected(shared_spool, tmp_path):
    """Same trust as samples: the file's owner (``nobody``, a real second user) runs no process of eval-mmlu."""
    clock = FakeClock()
    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        Store(tmp_path / "g.db"),
        Config(),
        clock=clock,
        wall_clock=clock.wall,
        spool=shared_spool,
    )
    rec.start()
    try:
        code = (
            "for k in range(1, 40):\n"
            f"    gputab.report(samples=1, tag={TAG!r}, progress=k / 100); gputab.report.flush(); time.sleep(0.01)\n"
        )
        p = reporter(code, shared_spool, NOBODY, wait=False)
        for _ in range(40):
            clock.advance(1.0)
            tick = rec.step()
        assert p.wait(timeout=60) == 0, p.stderr.read()
        for _ in range(3):
            clock.advance(1.0)
            tick = rec.step()
        assert job(tick)["progress_fraction"] is None and job(tick)["forecast_state"] == "unknown"
        assert dict(tick.rejected_reports)["not_job_owner"] > 0
    finally:
        rec.close()
