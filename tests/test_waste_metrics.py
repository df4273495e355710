"""Prometheus: where each job's dollars went, with bounded labels."""

import pytest

from gputab.config.settings import Config
from gputab.cost.diagnosis import ALL_REASONS
from gputab.publish.metrics import OTHER, TickCollector
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DemoBackend, FakeClock
from gputab.sampling.snapshot import THROTTLE_REASONS
from gputab.store import Store


def demo_collector(tmp_path, max_tags: int, seconds: int = 60) -> TickCollector:
    clock = FakeClock()
    collector = TickCollector("demo-box", max_tags=max_tags)

    class Feed:
        def on_tick(self, tick):
            collector.update(tick)

    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        Store(tmp_path / "db.sqlite"),
        Config(),
        clock=clock,
        wall_clock=clock.wall,
        observers=[Feed()],
    )
    rec.start()
    for _ in range(seconds):
        clock.advance(1.0)
        rec.step()
    rec.close()
    return collector


def samples(collector: TickCollector) -> dict[str, list]:
    return {f.name: f.samples for f in collector.collect()}


def test_busy_plus_waste_by_reason_is_the_cost_of_each_tag(tmp_path):
    fams = samples(demo_collector(tmp_path, max_tags=50))
    cost = {s.labels["tag"]: s.value for s in fams["gputab_job_cost_dollars"]}
    busy = {s.labels["tag"]: s.value for s in fams["gputab_job_busy_dollars"]}
    waste: dict[str, float] = {}
    for s in fams["gputab_job_waste_dollars"]:
        assert s.labels["reason"] in ALL_REASONS
        waste[s.labels["tag"]] = waste.get(s.labels["tag"], 0.0) + s.value
    for tag, usd in cost.items():
        assert busy.get(tag, 0.0) + waste.get(tag, 0.0) == pytest.approx(usd, rel=1e-9), tag
    reasons = {(s.labels["tag"], s.labels["reason"]) for s in fams["gputab_job_waste_dollars"]}
    assert ("eval-mmlu", "input_bound") in reasons and ("llama3-8b-lora", "comm_stall") in reasons
    throttled = {(s.labels["tag"], s.labels["reason"]): s.value for s in fams["gputab_job_throttled_dollars"]}
    assert throttled[("llama3-8b-lora", "power_cap")] > 0
    assert {r for _, r in throttled} <= set(THROTTLE_REASONS)
    tensor = {s.labels["tag"] for s in fams["gputab_job_tensor_active_dollars"]}
    assert "llama3-8b-lora" in tensor and "eval-mmlu" not in tensor  # the A100 reports no GPM


def test_folded_tags_keep_the_series_bounded_and_the_sums_exact(tmp_path):
    fams = samples(demo_collector(tmp_path, max_tags=1))
    tags = {s.labels["tag"] for s in fams["gputab_job_waste_dollars"]}
    assert OTHER in tags and len(tags - {"(idle)", "(unobserved)", "untagged", OTHER}) <= 1
    total_cost = sum(s.value for s in fams["gputab_job_cost_dollars"])
    waste = sum(s.value for s in fams["gputab_job_waste_dollars"])
    busy = sum(s.value for s in fams["gputab_job_busy_dollars"])
    assert waste + busy == pytest.approx(total_cost, rel=1e-9)
