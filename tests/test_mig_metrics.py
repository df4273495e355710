"""MIG instances in Prometheus: per GPU instance gauges with dcgm-exporter's MIG labels (``GPU_I_ID``,
``GPU_I_PROFILE``, ``device``, ``modelName``, ``UUID``, ``gpu``), bounded label sets, cost per instance and SM
activity; a real Prometheus scraping a real recorder shows the fleet does not count an instance's cost twice.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from gputab.publish.mig_metrics import MIG_LABELS
from gputab.publish.vocabulary import METRICS
from test_prometheus_integration import (  # noqa: F401 - servers is a fixture
    GPUTAB,
    PROMETHEUS,
    PromAPI,
    free_port,
    http_get,
    servers,
    start_prometheus,
    wait_for,
)
from test_waste_metrics import demo_collector

MIG_GPU = 4


def test_instance_series_carry_dcgm_labels_and_their_figures(tmp_path):
    collector = demo_collector(tmp_path, max_tags=100, seconds=20)
    fams = {f.name: f for f in collector.collect()}
    gt = next(g for g in collector.tick.gpus if g["index"] == MIG_GPU)
    charged = {(m["gpu_instance_id"], m["compute_instance_id"]): m["cost_usd"] for m in gt["mig"]}
    rate = gt["rate_per_hour"]
    cost = {s.labels["GPU_I_PROFILE"]: s for s in fams["gputab_mig_cost_dollars"].samples}
    assert set(cost) == {"3g.40gb", "2g.20gb", "1g.10gb"}
    serve = cost["3g.40gb"]
    assert serve.labels == {
        "gpu": "4",
        "UUID": serve.labels["UUID"],
        "GPU_I_ID": "2",
        "GPU_I_PROFILE": "3g.40gb",
        "device": "nvidia4",
        "modelName": "NVIDIA H100 80GB HBM3",
        "host": "demo-box",
    }
    assert set(serve.labels) == set(MIG_LABELS) and serve.labels["UUID"].startswith("GPU-demo")
    for profile, key in (("3g.40gb", (2, 0)), ("2g.20gb", (3, 0)), ("1g.10gb", (9, 0))):
        assert cost[profile].value == pytest.approx(charged[key], rel=1e-12) and charged[key] > 0
    price = {s.labels["GPU_I_ID"]: s.value for s in fams["gputab_mig_price_dollars_per_hour"].samples}
    assert price == pytest.approx({"2": rate * 3 / 7, "3": rate * 2 / 7, "9": rate / 7})
    util = {s.labels["GPU_I_ID"]: s.value for s in fams["gputab_mig_utilization_ratio"].samples}
    assert 0.5 < util["2"] < 0.8 and util["3"] == 0.0
    exposed = {f.name + ("_total" if f.type == "counter" else "") for f in fams.values()}
    assert {n for n in exposed if n.startswith("gputab_mig_")} <= set(METRICS)  # documented (docs/json.md)
    # Bounded: one series per GPU instance, only on the GPU in MIG mode.
    for name in ("gputab_mig_cost_dollars", "gputab_mig_memory_used_bytes", "gputab_mig_burn_rate_dollars_per_hour"):
        assert {s.labels["gpu"] for s in fams[name].samples} == {"4"} and len(fams[name].samples) == 3
    # The GPU's own series are not split: the physical GPU is still one series per family.
    gpu_cost = {s.labels["gpu"]: s.value for s in fams["gputab_gpu_cost_dollars"].samples}
    assert len(gpu_cost) == 5 and sum(s.value for s in cost.values()) < gpu_cost["4"]
    idle = {s.labels["gpu"]: s.value for s in fams["gputab_gpu_idle"].samples}
    assert idle["4"] == 0.0  # two of its instances are busy: the GPU is not idle


@pytest.mark.skipif(PROMETHEUS is None, reason="the `prometheus` binary is not installed (apt-get install prometheus)")
@pytest.mark.slow
def test_a_real_prometheus_sees_the_instances_and_the_fleet_counts_each_dollar_once(tmp_path, servers):  # noqa: F811
    port, db = free_port(), tmp_path / "g.db"
    rec_log = tmp_path / "rec.log"
    procs = {}
    rec = servers(
        GPUTAB + ["--demo", "--db", str(db), "record", "--interval", "0.5", "--metrics-port", str(port)], rec_log
    )
    procs["recorder"] = (rec, rec_log)
    wait_for(
        "/metrics", lambda: "gputab_mig_cost_dollars_total" in http_get(f"http://127.0.0.1:{port}/metrics"), 30, procs
    )
    prom_port = free_port()
    start_prometheus(servers, tmp_path, prom_port, [port], procs)
    api = PromAPI(prom_port)
    wait_for("three MIG series", lambda: len(api.query("gputab_mig_cost_dollars_total")) == 3, 60, procs)
    time.sleep(2)
    series = api.query("gputab_mig_utilization_ratio")
    assert {r["metric"]["GPU_I_PROFILE"] for r in series} == {"3g.40gb", "2g.20gb", "1g.10gb"}
    assert {r["metric"]["device"] for r in series} == {"nvidia4"}
    # An instance's dollars are part of its GPU's: instances + the free slice = the GPU, within float noise.
    (ratio,) = api.query('sum(gputab_mig_cost_dollars_total) / sum(gputab_gpu_cost_dollars_total{gpu="4"})')
    assert float(ratio["value"][1]) == pytest.approx(6 / 7, rel=1e-6)
    # The fleet reads the GPU families for money and GPUs: five GPUs, and the session's cost counted once.
    out = subprocess.run(
        GPUTAB + ["fleet", "--prometheus", f"http://127.0.0.1:{prom_port}", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    (host,) = json.loads(out.stdout)["hosts"]
    assert host["gpu_count"] == 5
    (gpus_total,) = api.query("sum(last_over_time(gputab_gpu_cost_dollars_total[1m]))")
    assert host["session_cost_usd"] == pytest.approx(float(gpus_total["value"][1]), rel=0.05)
    burn = sum(float(r["value"][1]) for r in api.query("gputab_gpu_burn_rate_dollars_per_hour"))
    assert host["burn_rate_usd_per_hour"] == pytest.approx(burn, rel=1e-9)
