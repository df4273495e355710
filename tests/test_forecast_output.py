"""The forecast where people and scripts read it: ``show`` (text and JSON), ``snapshot --json``, Prometheus."""

from __future__ import annotations

import json
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gputab.cli.snapshot import FORECAST_KEYS, add_forecasts, live_forecasts
from gputab.config.settings import Config
from gputab.publish.metrics import TickCollector
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DemoBackend, FakeClock
from gputab.store import Store
from support import gputab_cmd

LORA = "llama3-8b-lora"


@pytest.fixture
def demo(tmp_path):
    """A demo recorder 60 s in, still recording (its LoRA fine-tune reports progress)."""
    clock = FakeClock()
    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        Store(tmp_path / "demo.db"),
        Config(),
        clock=clock,
        wall_clock=clock.wall,
    )
    rec.start()
    for _ in range(60):
        clock.advance(1.0)
        tick = rec.step()
    rec.tick = tick
    yield rec
    if not rec.closed:
        rec.close()


def lora(jobs) -> dict:
    return next(j for j in jobs if j["tag"] == LORA)


def test_show_json_and_text_carry_the_forecast(demo, tmp_path):
    live = lora(demo.tick.jobs)
    demo.close()
    db = tmp_path / "demo.db"
    out = subprocess.run(
        [*gputab_cmd(), "--db", str(db), "show", "1", "--json"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    j = lora(json.loads(out)["jobs"])
    for key in FORECAST_KEYS:
        if key == "progress_fraction":  # published in the one vocabulary as a percent
            assert j["progress_pct"] == pytest.approx(100.0 * live[key])
            continue
        assert j[key] == pytest.approx(live[key]) if isinstance(live[key], float) else j[key] == live[key], key
    assert j["forecast_state"] == "running" and j["eta_at"].endswith("Z")
    assert j["first_projected_cost_usd"] > j["cost_usd"] > 0
    text = subprocess.run(
        [*gputab_cmd(), "--db", str(db), "show", "1"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    block = text[text.index("Forecast (cost at completion):") :]
    row = next(line for line in block.splitlines() if line.startswith(LORA))
    assert f"${j['projected_cost_usd']:,.2f}" in row and "(still running)" in row
    assert "eval-mmlu" not in block  # jobs that report no progress have no forecast


def test_snapshot_json_reads_the_live_recorder(demo, tmp_path):
    forecasts = live_forecasts(tmp_path / "demo.db")
    assert forecasts is not None
    want = lora(demo.tick.jobs)
    assert forecasts[LORA]["forecast_state"] == "running"
    assert forecasts[LORA]["projected_cost_usd"] == pytest.approx(want["projected_cost_usd"], rel=0.01)
    jobs = [{"tag": LORA}, {"tag": "eval-mmlu"}]
    add_forecasts(jobs, forecasts)
    assert jobs[0]["eta_seconds"] == forecasts[LORA]["eta_seconds"]
    assert jobs[1]["progress_fraction"] is None and jobs[1]["projected_cost_usd"] is None
    demo.close()
    assert live_forecasts(tmp_path / "demo.db") is None  # nobody records: nothing reads the reports
    jobs = [{"tag": LORA}]
    add_forecasts(jobs, None)
    assert jobs[0]["forecast_state"] == "no_recorder" and jobs[0]["eta_seconds"] is None
    assert live_forecasts(tmp_path / "missing.db") is None


def test_prometheus_forecast_gauges(demo):
    registry = CollectorRegistry()
    collector = TickCollector("box-1")
    registry.register(collector)
    collector.update(demo.tick)
    samples = {
        (s.name, s.labels.get("tag")): s.value
        for fam in text_string_to_metric_families(generate_latest(registry).decode())
        for s in fam.samples
    }
    j = lora(demo.tick.jobs)
    assert samples[("gputab_job_progress_ratio", LORA)] == pytest.approx(j["progress_fraction"])
    assert samples[("gputab_job_eta_seconds", LORA)] == pytest.approx(j["eta_seconds"])
    assert samples[("gputab_job_projected_cost_dollars", LORA)] == pytest.approx(j["projected_cost_usd"])
    assert (
        samples[("gputab_job_projected_cost_high_dollars", LORA)]
        >= samples[("gputab_job_projected_cost_low_dollars", LORA)]
    )
    # Jobs without progress get no forecast series (never a 0 that reads as "done for free").
    assert not any(tag == "eval-mmlu" for name, tag in samples if name.startswith("gputab_job_eta"))
