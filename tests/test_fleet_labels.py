"""Exporter labels the fleet view relies on: ``host`` as the session shows it, dcgm-exporter's GPU labels."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gputab.publish.metrics import GPU_LABELS, JOB_LABELS, TickCollector
from gputab.sampling.demo import DEMO_HOST, DEMO_HOST_ENV, DemoBackend
from test_metrics import make_tick


def exposed(collector: TickCollector) -> list:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return [s for f in text_string_to_metric_families(generate_latest(registry).decode()) for s in f.samples]


def test_every_series_has_the_sessions_host_and_gpu_series_dcgm_labels():
    collector = TickCollector("machine-name")
    collector.hostname = "demo-box"  # what MetricsObserver.set_host does once the backend is open
    collector.update(make_tick())
    samples = exposed(collector)
    assert samples and all(s.labels.get("host") == "demo-box" for s in samples)
    assert not any("hostname" in s.labels for s in samples)
    gpu = [s for s in samples if s.name == "gputab_gpu_power_watts"]
    assert gpu and all({"gpu", "UUID", "modelName"} <= set(s.labels) for s in gpu)
    assert GPU_LABELS == ("gpu", "UUID", "modelName", "host") and JOB_LABELS == ("tag", "host")


@pytest.mark.parametrize(
    ("named", "host"),
    [(None, DEMO_HOST), ("gpu-box-7", "gpu-box-7"), ("", DEMO_HOST), ("bad\nname", DEMO_HOST), ("x" * 65, DEMO_HOST)],
)
def test_the_demo_box_can_be_named(monkeypatch, named, host):
    if named is None:
        monkeypatch.delenv(DEMO_HOST_ENV, raising=False)
    else:
        monkeypatch.setenv(DEMO_HOST_ENV, named)
    assert DemoBackend(seed=0).host == host
