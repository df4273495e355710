"""GPM per MIG instance (``nvmlGpmMigSampleGet``) through the fake libnvidia-ml.so.1: each GPU instance's SM
activity is its utilization, feeds the parent's utilization and each job's busy/waste split; where the parent lacks
GPM, or the driver lacks the call, nothing is claimed and shares stay by memory."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fakenvml import GIB, Error, GpuSpec, Mig, Proc, Scenario

H100 = "NVIDIA H100 80GB HBM3"


@pytest.fixture
def jobs():
    procs = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, "GPUTAB_TAG": t})
        for t in ("job-a", "job-b")
    ]
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def scenario(a, b, gpm=1, errors=()) -> Scenario:
    return Scenario(
        gpus=[GpuSpec(name=H100, mig=1, gpm=gpm, power_mw=300_000)],
        migs=[
            Mig(0, 0, gi=1, ci=0, ci_slices=3, mem_total=40 * GIB, mem_used=9 * GIB, sm_util=80),
            Mig(0, 1, gi=5, ci=0, ci_slices=2, mem_total=20 * GIB, mem_used=GIB, sm_util=20),
            Mig(0, 2, gi=9, ci=0, ci_slices=1, mem_total=10 * GIB, sm_util=0),
        ],
        processes=[Proc(0, a.pid, used_bytes=9 * GIB, gi=1, ci=0), Proc(0, b.pid, used_bytes=GIB, gi=5, ci=0)],
        errors=list(errors),
    )


def test_sm_activity_per_instance_is_its_utilization_and_splits_its_cost(fake_nvml, jobs):
    a, b = jobs
    fake_nvml.write(scenario(a, b))
    with fake_nvml.session() as s:
        first = s.tick()["snapshot"]["gpus"][0]
        # One sample per GPU instance only starts the interval: nothing claimed yet, and None is not 0.
        assert [m["sm_active_pct"] for m in first["mig"]] == [None, None, None]
        assert first["utilization_pct"] is None
        for _ in range(3):
            out = s.tick()
        g = out["snapshot"]["gpus"][0]
        assert [(m["profile"], m["sm_active_pct"]) for m in g["mig"]] == [
            ("3g.40gb", 80.0),
            ("2g.20gb", 20.0),
            ("1g.10gb", 0.0),
        ]
        # The parent answers NOT_SUPPORTED in MIG mode; its utilization is its instances', weighted by slices.
        assert g["utilization_pct"] == pytest.approx((80 * 3 + 20 * 2 + 0 * 1) / 7)
        ja, jb = out["jobs"]["job-a"], out["jobs"]["job-b"]
        # Each job's utilization is its own instance's, and so is its busy part of the cost.
        assert ja["avg_utilization"] == pytest.approx(0.8) and jb["avg_utilization"] == pytest.approx(0.2)
        assert ja["busy_usd"] == pytest.approx(0.8 * ja["cost_usd"], rel=1e-9)
        assert jb["busy_usd"] == pytest.approx(0.2 * jb["cost_usd"], rel=1e-9)
        assert ja["cost_usd"] / jb["cost_usd"] == pytest.approx(3 / 2, rel=1e-9)  # cost stays by slices
        # One sample per GPU instance per poll (and the parent's own); two samples per instance kept and reused.
        assert s.calls("nvmlGpmMigSampleGet") == 3 * 4 and s.calls("nvmlGpmMetricsGet") == 3 * 3 + 3
        assert s.gpm_live() == 2 + 3 * 2  # the parent's two, and two per GPU instance
        s.close_backend()
        assert s.gpm_live() == 0


def test_an_instance_destroyed_frees_its_samples(fake_nvml, jobs):
    a, b = jobs
    sc = fake_nvml.write(scenario(a, b))
    with fake_nvml.session() as s:
        s.poll()
        s.poll()
        assert s.gpm_live() == 2 + 3 * 2
        sc.migs = sc.migs[:2]  # the 1g instance is destroyed
        fake_nvml.write(sc)
        g = s.poll()["gpus"][0]
        assert [m["gpu_instance_id"] for m in g["mig"]] == [1, 5]
        assert s.gpm_live() == 2 + 2 * 2


def test_without_gpm_nothing_is_claimed_and_shares_stay_by_memory(fake_nvml, jobs):
    a, b = jobs
    fake_nvml.write(scenario(a, b, gpm=0))
    with fake_nvml.session() as s:
        for _ in range(3):
            out = s.tick()
        g = out["snapshot"]["gpus"][0]
        assert all(m["sm_active_pct"] is None for m in g["mig"]) and g["utilization_pct"] is None
        assert s.calls("nvmlGpmMigSampleGet") == 0
        ja = out["jobs"]["job-a"]
        assert ja["avg_utilization"] is None and ja["cost_usd"] > 0


def test_a_driver_without_gpm_per_instance_is_asked_once(fake_nvml, jobs):
    a, b = jobs
    fake_nvml.write(scenario(a, b, errors=[Error("nvmlGpmMigSampleGet", "NOT_SUPPORTED")]))
    with fake_nvml.session() as s:
        for _ in range(3):
            snap = s.tick()["snapshot"]
        g = snap["gpus"][0]
        assert all(m["sm_active_pct"] is None for m in g["mig"]) and g["utilization_pct"] is None
        assert s.calls("nvmlGpmMigSampleGet") == 1  # NOT_SUPPORTED: never asked again
        assert not snap["errors"]  # unsupported is not an error
        assert s.gpm_live() == 2  # the parent's GPM only: the instance's samples were freed
