"""Prometheus exposition from a synthetic tick: names, labels, values, bounded tags; the dashboard and scrape
example refer only to what is exposed."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from gputab.alerts.observer import Alert
from gputab.cost.ledger import IDLE, UNOBSERVED, GpuInterval
from gputab.publish.metrics import OTHER, UNTAGGED, MetricsObserver, TagLabels, TickCollector
from gputab.sampling.snapshot import GpuSample, Snapshot

ROOT = Path(__file__).resolve().parent.parent
GIB = 1024**3


@dataclass(frozen=True)
class FakeTick:
    session_id: int
    snapshot: Snapshot
    intervals: list
    jobs: list
    gpus: list
    total_cost_usd: float
    burn_rate_usd_per_hour: float
    processes: dict = field(default_factory=dict)


def job(tag, cost, burn=1.0, gpu_hours=1.0, eff=0.5, util=0.5, kwh=0.1, peak=GIB, samples=None):
    return {
        "tag": tag,
        "cost_usd": cost,
        "burn_rate_usd_per_hour": burn,
        "gpu_hours": gpu_hours,
        "effective_gpu_hours": eff,
        "avg_utilization": util,
        "energy_kwh": kwh,
        "peak_vram_bytes": peak,
        "samples": samples,
        "tokens": None,
        "cost_per_sample_usd": None,
    }


def make_tick(jobs=None) -> FakeTick:
    gpus = (
        GpuSample(
            0,
            "GPU-aaaa",
            "NVIDIA H100 80GB HBM3",
            utilization_pct=93.0,
            memory_used_bytes=60 * GIB,
            memory_total_bytes=80 * GIB,
            power_w=650.5,
            temperature_c=71.0,
        ),
        GpuSample(
            1,
            "GPU-bbbb",
            "NVIDIA A100-SXM4-80GB",
            utilization_pct=None,
            memory_used_bytes=GIB // 2,
            memory_total_bytes=80 * GIB,
            power_w=None,
        ),
        GpuSample(2, "GPU-cccc", "NVIDIA H100 80GB HBM3", lost=True),
    )
    rows = [
        {
            "index": 0,
            "uuid": "GPU-aaaa",
            "name": gpus[0].name,
            "model_key": "H100-SXM",
            "rate_per_hour": 3.5,
            "unknown_price": False,
            "energy_method": "counter",
            "cost_usd": 12.25,
            "energy_j": 9.0e6,
            "burn_rate_usd_per_hour": 3.5,
        },
        {
            "index": 1,
            "uuid": "GPU-bbbb",
            "name": gpus[1].name,
            "model_key": "A100-SXM-80GB",
            "rate_per_hour": 0.95,
            "unknown_price": True,
            "energy_method": "power",
            "cost_usd": 1.5,
            "energy_j": 1.0e6,
        },
        {
            "index": 2,
            "uuid": "GPU-cccc",
            "name": gpus[2].name,
            "model_key": "H100-SXM",
            "rate_per_hour": 3.5,
            "unknown_price": False,
            "energy_method": "none",
            "cost_usd": 0.5,
            "energy_j": 0.0,
        },
    ]
    intervals = [
        GpuInterval(0, 1.0, 0.001, 0.0, 0.0, 650.0, "counter", 0.93, {"llama": 1.0}),
        GpuInterval(1, 1.0, 0.0003, 0.0, 0.0, 60.0, "power", None, {IDLE: 1.0}),
    ]
    if jobs is None:
        jobs = [
            job("llama", 12.0, burn=3.5, samples=2000),
            job(IDLE, 1.5, burn=0.95, util=0.0, eff=0.0),
            job(UNOBSERVED, 0.5, burn=3.5, util=None),
            job("untagged:alice/python", 0.25),
            job("untagged:bob/jupyter", 0.5),
        ]
    return FakeTick(7, Snapshot(mono=100.0, wall=1_767_225_600.0, gpus=gpus), intervals, jobs, rows, 14.25, 7.95)


def samples_of(text: str) -> dict[tuple, float]:
    """{(name, frozenset(labels)): value} of an exposition."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples, name, **labels):
    for (n, ls), v in samples.items():
        if n == name and all((k, str(val)) in ls for k, val in labels.items()):
            return v
    raise KeyError(f"{name} {labels} not exposed")


@pytest.fixture(scope="module")
def observer():
    # One server for the module: shutting one down waits out serve_forever's 0.5 s poll.
    obs = MetricsObserver(0, hostname="box-1")
    yield obs
    obs.close()


def scrape(obs: MetricsObserver) -> str:
    with urllib.request.urlopen(obs.url, timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return resp.read().decode()


def test_serves_nothing_before_the_first_tick_then_the_tick():
    observer = MetricsObserver(0, hostname="box-1")
    try:
        assert observer.url.startswith("http://127.0.0.1:") and observer.port > 0
        assert "gputab_" not in scrape(observer)
        observer.on_tick(make_tick())
        text = scrape(observer)
    finally:
        observer.close()
    s = samples_of(text)
    gpu0 = dict(gpu="0", UUID="GPU-aaaa", modelName="NVIDIA H100 80GB HBM3", host="box-1")
    assert value(s, "gputab_gpu_utilization_ratio", **gpu0) == pytest.approx(0.93)
    assert value(s, "gputab_gpu_memory_used_bytes", **gpu0) == 60 * GIB
    assert value(s, "gputab_gpu_memory_total_bytes", **gpu0) == 80 * GIB
    assert value(s, "gputab_gpu_power_watts", **gpu0) == 650.5
    assert value(s, "gputab_gpu_temperature_celsius", **gpu0) == 71.0
    assert value(s, "gputab_gpu_energy_joules_total", **gpu0) == 9.0e6
    assert value(s, "gputab_gpu_cost_dollars_total", **gpu0) == 12.25
    assert value(s, "gputab_gpu_burn_rate_dollars_per_hour", **gpu0) == 3.5
    assert value(s, "gputab_gpu_idle", gpu="0") == 0.0 and value(s, "gputab_gpu_idle", gpu="1") == 1.0
    assert (
        value(s, "gputab_gpu_price_dollars_per_hour", gpu="1", unknown_price="true", model_key="A100-SXM-80GB") == 0.95
    )
    assert value(s, "gputab_gpu_lost", gpu="2") == 1.0 and value(s, "gputab_gpu_lost", gpu="0") == 0.0
    assert value(s, "gputab_job_cost_dollars_total", tag="llama", host="box-1") == 12.0
    assert value(s, "gputab_job_gpu_hours_total", tag="llama") == 1.0
    assert value(s, "gputab_job_effective_gpu_hours_total", tag="llama") == 0.5
    assert value(s, "gputab_job_burn_rate_dollars_per_hour", tag="llama") == 3.5
    assert value(s, "gputab_job_energy_joules_total", tag="llama") == pytest.approx(0.1 * 3.6e6)
    assert value(s, "gputab_job_samples_total", tag="llama") == 2000
    assert value(s, "gputab_cost_dollars_total", host="box-1") == 14.25
    assert value(s, "gputab_burn_rate_dollars_per_hour") == 7.95
    assert value(s, "gputab_session_info", session_id="7") == 1.0
    assert value(s, "gputab_last_tick_timestamp_seconds") == 1_767_225_600.0


def test_not_available_is_no_sample_never_zero(observer):
    observer.on_tick(make_tick())
    s = samples_of(scrape(observer))
    with pytest.raises(KeyError):
        value(s, "gputab_gpu_utilization_ratio", gpu="1")  # utilization not reported
    with pytest.raises(KeyError):
        value(s, "gputab_gpu_power_watts", gpu="1")
    with pytest.raises(KeyError):
        value(s, "gputab_gpu_memory_used_bytes", gpu="2")  # lost GPU
    with pytest.raises(KeyError):
        value(s, "gputab_job_utilization_ratio", tag=UNOBSERVED)
    with pytest.raises(KeyError):
        value(s, "gputab_job_samples_total", tag=IDLE)


def test_special_buckets_kept_and_untagged_collapsed(observer):
    observer.on_tick(make_tick())
    s = samples_of(scrape(observer))
    tags = {dict(ls)["tag"] for (n, ls) in s if n == "gputab_job_cost_dollars_total"}
    assert tags == {"llama", IDLE, UNOBSERVED, UNTAGGED}
    assert value(s, "gputab_job_cost_dollars_total", tag=UNTAGGED) == pytest.approx(0.75)
    assert value(s, "gputab_job_cost_dollars_total", tag=IDLE) == 1.5


def test_tag_cardinality_is_capped_and_sticky():
    labels = TagLabels(max_tags=3)
    assert [labels.label(t) for t in ("a", "b", IDLE, "untagged:x/y", "c", "d", "e")] == [
        "a",
        "b",
        IDLE,
        UNTAGGED,
        "c",
        OTHER,
        OTHER,
    ]
    # Sticky: "d" stays folded even if an early tag vanishes; "a" keeps its own series.
    assert labels.label("d") == OTHER and labels.label("a") == "a" and labels.folded == 2
    # Tags that are not valid user tags, or that would pose as the fold itself, never get a series.
    assert labels.label("bad\x00tag") == OTHER and labels.label(OTHER) == OTHER
    assert labels.label("(forged)") == OTHER


def test_folded_tags_are_summed_and_series_stay_bounded():
    collector = TickCollector("h", max_tags=5)
    jobs = [job(f"sweep-{i:03d}", cost=1.0, burn=0.5, gpu_hours=1.0, util=0.2 + 0.1 * (i % 2)) for i in range(200)]
    collector.update(make_tick(jobs=jobs))
    fams = {f.name: f for f in collector.collect()}
    cost = {s.labels["tag"]: s.value for s in fams["gputab_job_cost_dollars"].samples}
    assert len(cost) == 6 and cost[OTHER] == pytest.approx(195.0)
    assert sum(cost.values()) == pytest.approx(200.0)  # folding loses no money
    util = {s.labels["tag"]: s.value for s in fams["gputab_job_utilization_ratio"].samples}
    assert util[OTHER] == pytest.approx(0.25, abs=0.01)
    assert [s.value for s in fams["gputab_tags_folded"].samples] == [195.0]


def test_alerts_active_counts_every_kind(observer):
    active = [
        Alert("idle_money", "warning", "m", 0.0, gpu=3),
        Alert("idle_money", "warning", "m", 0.0, gpu=2),
        Alert("budget_exceeded", "critical", "m", 0.0, tag="llama"),
    ]
    obs = MetricsObserver(0, hostname="box-2", alerts=lambda: active)
    try:
        obs.on_tick(make_tick())
        s = samples_of(scrape(obs))
    finally:
        obs.close()
    assert value(s, "gputab_alerts_active", kind="idle_money", severity="warning", host="box-2") == 2
    assert value(s, "gputab_alerts_active", kind="budget_exceeded", severity="critical") == 1
    assert value(s, "gputab_alerts_active", kind="memory_pressure") == 0


def test_own_registry_leaves_the_global_one_alone(observer):
    observer.on_tick(make_tick())
    assert REGISTRY.get_sample_value("gputab_cost_dollars_total", {"host": "box-1"}) is None
    text = scrape(observer)
    assert "python_gc_objects_collected_total" not in text and "process_cpu_seconds_total" not in text


def test_loopback_by_default_and_close_releases_the_port():
    obs = MetricsObserver(0)
    port = obs.port
    assert obs._server.server_address[0] == "127.0.0.1"
    obs.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # free again
    with pytest.raises(OSError):
        urllib.request.urlopen(obs.url, timeout=2)


def test_port_in_use_fails_at_start(observer):
    with pytest.raises(OSError):
        MetricsObserver(observer.port)


def test_exposition_names_follow_prometheus_conventions(observer):
    observer.on_tick(make_tick())
    text = scrape(observer)
    names = set(re.findall(r"^# TYPE (\S+) (\S+)", text, re.M))
    for name, kind in names:
        assert name.startswith("gputab_"), name
        if kind == "counter":
            assert name.endswith("_total") and re.search(rf"^{name}[{{ ]", text, re.M), name
    names = {(n.removesuffix("_total"), k) for n, k in names}
    units = (
        "_ratio",
        "_bytes",
        "_watts",
        "_celsius",
        "_joules",
        "_dollars",
        "_dollars_per_hour",
        "_hours",
        "_seconds",
        "_info",
        "_lost",
        "_idle",
        "_active",
        "_folded",
        "_samples",
        "_tokens",
    )
    assert all(n.endswith(units) for n, _ in names), sorted(n for n, _ in names if not n.endswith(units))


# -- contrib: the dashboard and the scrape example -----------------------------------------------------------
def exposed_names() -> set[str]:
    collector = TickCollector("h", alerts=lambda: [])
    tick = make_tick()
    tick.jobs[0].update(
        progress_fraction=0.5,
        eta_seconds=60.0,
        projected_cost_usd=24.0,  # a job with a forecast
        projected_cost_low_usd=23.0,
        projected_cost_high_usd=25.0,
    )
    # A job with the waste split, so the waste families have samples too.
    tick.jobs[0].update(
        busy_usd=9.0,
        waste_usd=3.0,
        waste_by_reason={"input_bound": 3.0},
        tensor_active_usd=4.0,
        throttled_usd={"power_cap": 0.5},
    )
    collector.update(tick)
    names = set()
    for fam in collector.collect():
        names.update(s.name for s in fam.samples)
    return names


def test_grafana_dashboard_is_valid_and_queries_only_exposed_metrics(tmp_path):
    from test_waste_metrics import demo_collector  # the demo box: its GPU 4 has MIG instances

    dash = json.loads((ROOT / "contrib/grafana/gputab-dashboard.json").read_text())
    assert dash["title"] and dash["schemaVersion"] >= 36 and dash["uid"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = dash["panels"]
    titles = " | ".join(p["title"].lower() for p in panels)
    for wanted in (
        "fleet cost",
        "burn rate by tag",
        "idle money",
        "utilization",
        "per host",
        "by reason",
        "busy vs wasted",
    ):
        assert wanted in titles, wanted
    assert any(p["type"] == "heatmap" for p in panels) and any(p["type"] == "table" for p in panels)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    exposed = exposed_names()
    exposed |= {s.name for fam in demo_collector(tmp_path, max_tags=100, seconds=5).collect() for s in fam.samples}
    for p in panels:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        for target in p["targets"]:
            used = set(re.findall(r"gputab_[a-z_]+", target["expr"]))
            assert used and used <= exposed, (p["title"], used - exposed)


def test_prometheus_scrape_example_names_the_metrics_endpoint():
    text = (ROOT / "contrib/prometheus/prometheus.yml").read_text()
    assert "scrape_configs:" in text and "job_name: gputab" in text and "metrics_path: /metrics" in text
    assert re.search(r"targets:\s*\[[^\]]*:\d+", text)


# -- the real recorder on the demo box, in-process, on a fake clock -------------------------------------------
def test_recorder_ticks_feed_metrics_and_alerts(tmp_path):
    import io

    from gputab.alerts.observer import AlertObserver
    from gputab.config.settings import AlertsConfig, Config
    from gputab.recording.recorder import Recorder
    from gputab.sampling.demo import DemoBackend, FakeClock
    from gputab.store import Store

    clock = FakeClock()
    config = Config(alerts=AlertsConfig(idle_minutes=1.0), budgets={"llama3-8b-lora": 0.2})
    out = io.StringIO()
    alerts = AlertObserver.from_config(config, stream=out)
    collector = TickCollector("demo-box", alerts=lambda: alerts.active)

    class Feed:
        def on_tick(self, tick):
            collector.update(tick)

    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        Store(tmp_path / "db.sqlite"),
        config,
        clock=clock,
        wall_clock=clock.wall,
        observers=[alerts, Feed()],
    )
    rec.start()
    for _ in range(90):
        clock.advance(1.0)
        rec.step()
    rec.close()
    fams = {f.name: f for f in collector.collect()}
    cost = {s.labels["tag"]: s.value for s in fams["gputab_job_cost_dollars"].samples}
    assert cost["llama3-8b-lora"] == pytest.approx(rec.ledger.jobs["llama3-8b-lora"].cost_usd)
    assert cost[IDLE] == pytest.approx(rec.ledger.jobs[IDLE].cost_usd) and cost[IDLE] > 0
    assert UNTAGGED in cost and not any(t.startswith("untagged:") for t in cost)
    assert sum(cost.values()) == pytest.approx(rec.ledger.total_cost_usd)
    (total,) = fams["gputab_cost_dollars"].samples
    assert total.value == pytest.approx(rec.ledger.total_cost_usd)
    idle_gpus = {s.labels["gpu"] for s in fams["gputab_gpu_idle"].samples if s.value == 1.0}
    assert idle_gpus == {"3"}  # the demo's spare H100
    active = {(s.labels["kind"], s.value) for s in fams["gputab_alerts_active"].samples}
    assert ("idle_money", 1.0) in active and ("budget_exceeded", 1.0) in active
    assert "GPU 3: idle for 1m" in out.getvalue()
