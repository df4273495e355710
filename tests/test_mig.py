"""MIG: each instance priced as a device (parent's rate x its compute-slice share), free slices (idle).

The pure ledger against cost-model.md "MIG instances" (worked figures, conservation per physical GPU to 1e-9),
then the NVML backend on the fake library's MIG calls (nvmlDeviceGetMigMode, ...GetMaxMigDeviceCount,
...GetMigDeviceHandleByIndex, ...GetGpuInstanceId/ComputeInstanceId, ...GetAttributes).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakenvml import GIB, GpuSpec, Mig, Proc, Sample, Scenario
from gputab.config.settings import PriceOverride, PricesConfig
from gputab.cost.ledger import IDLE, Ledger, gpu_shares
from gputab.cost.pricing import PriceTable, mig_fraction, mig_rate_per_hour
from gputab.sampling.snapshot import GpuSample, MigSample, ProcessSample, Snapshot

H100 = "NVIDIA H100 80GB HBM3"


def table(rate: float) -> PriceTable:
    return PriceTable.load(PricesConfig(models={"H100-SXM": PriceOverride(rate_per_hour=rate)}))


def mig_gpu(instances, slices=7, index=0, power=None, energy_mj=None) -> GpuSample:
    return GpuSample(
        index=index,
        uuid=f"GPU-{index}",
        name=H100,
        power_w=power,
        energy_mj=energy_mj,
        mig=tuple(MigSample(gi, ci, s) for gi, ci, s in instances),
        mig_slices=slices,
    )


def proc(pid, gi, ci, mem=GIB, index=0) -> ProcessSample:
    return ProcessSample(
        pid=pid, gpu_index=index, used_memory_bytes=mem, sm_pct=None, gpu_instance_id=gi, compute_instance_id=ci
    )


def run(ledger, hours, gpus, procs, tags, step=60.0):
    for k in range(int(hours * 3600 / step) + 1):
        ledger.tick(Snapshot(mono=k * step, wall=k * step, gpus=tuple(gpus), processes=tuple(procs)), tags)
    return ledger


def test_an_instance_costs_its_share_of_the_slices_and_free_slices_are_idle():
    # H100 at $7/h in MIG mode: a 3g instance running job A, an empty 1g instance, 3 slices held by no instance.
    g = mig_gpu([(1, 0, 3), (2, 0, 1)])
    led = run(Ledger(table(7.0), interval=60), 1, [g], [proc(10, 1, 0)], {10: "A"})
    assert led.jobs["A"].cost_usd == pytest.approx(mig_rate_per_hour(7.0, 3, 7)) == pytest.approx(3.0)
    assert led.jobs[IDLE].cost_usd == pytest.approx(4.0)  # the empty 1g instance + 3 free slices
    assert led.jobs["A"].gpu_hours == pytest.approx(3 / 7)


def test_processes_on_one_instance_share_it_by_memory_then_equally():
    g = mig_gpu([(1, 0, 7)])
    by_mem = gpu_shares(g, [proc(1, 1, 0, mem=3 * GIB), proc(2, 1, 0, mem=1 * GIB)], {1: "a", 2: "b"})
    assert by_mem == pytest.approx({"a": 0.75, "b": 0.25})
    unknown = gpu_shares(g, [proc(1, 1, 0, mem=None), proc(2, 1, 0, mem=5 * GIB)], {1: "a", 2: "b"})
    assert unknown == pytest.approx({"a": 0.5, "b": 0.5})


def test_processes_are_found_by_gpu_and_compute_instance():
    # Two compute instances inside GPU instance 1 (2 + 1 slices) and GPU instance 2 (4 slices).
    g = mig_gpu([(1, 0, 2), (1, 1, 1), (2, 0, 4)])
    shares = gpu_shares(g, [proc(1, 1, 1), proc(2, 2, 0)], {1: "small", 2: "big"})
    assert shares == pytest.approx({"small": 1 / 7, "big": 4 / 7, IDLE: 2 / 7})


def test_mig_fraction_refuses_nonsense():
    assert mig_fraction(7, 7) == 1.0
    with pytest.raises(ValueError):
        mig_fraction(1, 0)


@st.composite
def mig_layouts(draw):
    total = draw(st.sampled_from([4, 7, 8]))
    sizes, left = [], total
    while left and draw(st.booleans()):
        s = draw(st.integers(1, left))
        sizes.append(s)
        left -= s
    instances = [(i + 1, draw(st.integers(0, 1)), s) for i, s in enumerate(sizes)]
    procs = []
    for pid in range(1, draw(st.integers(0, 6)) + 1):
        gi = draw(st.integers(1, len(sizes) + 1))  # len+1: a stray process on no known instance
        ci = next((c for g, c, _ in instances if g == gi), 0)
        procs.append(proc(pid, gi, ci, mem=draw(st.one_of(st.none(), st.integers(0, 80 * GIB)))))
    tags = {p.pid: draw(st.sampled_from(["a", "b", "c"])) for p in procs}
    return total, instances, procs, tags


@settings(max_examples=150, deadline=None)
@given(mig_layouts(), st.floats(0.1, 50.0), st.lists(st.floats(0.5, 120.0), min_size=2, max_size=8))
def test_conservation_per_physical_gpu(layout, rate, steps):
    total, instances, procs, tags = layout
    gpus = [
        mig_gpu(instances, slices=total, index=0, power=300.0),
        GpuSample(index=1, uuid="GPU-1", name=H100, power_w=200.0),
    ]  # a second GPU, not in MIG mode
    shares = gpu_shares(gpus[0], procs, tags)
    assert math.isclose(sum(shares.values()), 1.0, rel_tol=1e-9) and min(shares.values()) >= 0
    led = Ledger(table(rate), interval=60)
    t, charged = 0.0, {0: 0.0, 1: 0.0}
    for dt in [0.0, *steps]:
        t += dt
        for iv in led.tick(Snapshot(mono=t, wall=t, gpus=tuple(gpus), processes=tuple(procs)), tags):
            charged[iv.gpu_index] += iv.cost
    # Jobs + (idle) + (unobserved) = what the GPUs cost, the MIG GPU's instances and free slices included.
    total_jobs = sum(j.cost_usd for j in led.jobs.values())
    assert math.isclose(total_jobs, charged[0] + charged[1], rel_tol=1e-9, abs_tol=1e-12)


# -- the NVML backend on the fake library ---------------------------------------------------------------------------


def _sleeper(tag: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, "GPUTAB_TAG": tag}
    )


def test_backend_reads_instances_and_charges_them_by_slices(fake_nvml):
    a, b = _sleeper("job-a"), _sleeper("job-b")
    try:
        fake_nvml.write(
            Scenario(
                gpus=[GpuSpec(mig=1, util=90, power_mw=400_000), GpuSpec(name="NVIDIA H100 80GB HBM3")],
                migs=[
                    Mig(0, 0, gi=1, ci=0, ci_slices=3, mem_total=40 * GIB, mem_used=9 * GIB),
                    Mig(0, 1, gi=2, ci=0, ci_slices=1, mem_total=10 * GIB, mem_used=1 * GIB),
                ],
                processes=[
                    Proc(0, a.pid, used_bytes=9 * GIB, gi=1, ci=0),
                    Proc(0, b.pid, used_bytes=GIB, gi=2, ci=0),
                    Proc(1, os.getpid()),
                ],
                samples=[Sample(0, a.pid, ts=10**15, sm=50)],
            )
        )  # a MIG GPU answers NOT_SUPPORTED regardless
        with fake_nvml.session() as s:
            assert s.init_error is None
            first = s.tick()
            snap = first["snapshot"]
            g0, g1 = snap["gpus"]
            assert g0["mig_slices"] == 7 and g1["mig"] is None and g1["mig_slices"] is None
            assert [(m["gpu_instance_id"], m["slices"], m["memory_used_bytes"]) for m in g0["mig"]] == [
                (1, 3, 9 * GIB),
                (2, 1, GIB),
            ]
            assert g0["utilization_pct"] is None  # not reported in MIG mode
            procs = {(p["pid"], p["gpu_index"]): p for p in snap["processes"]}
            assert (procs[(a.pid, 0)]["gpu_instance_id"], procs[(a.pid, 0)]["compute_instance_id"]) == (1, 0)
            assert procs[(a.pid, 0)]["sm_pct"] is None
            assert procs[(os.getpid(), 1)]["gpu_instance_id"] is None
            for _ in range(3):
                jobs = s.tick()["jobs"]
            # Same GPU, same intervals: the two jobs' dollars on GPU 0 stand as their slices, 3 : 1.
            assert jobs["job-b"]["cost_usd"] > 0
            assert jobs["job-a"]["cost_usd"] / jobs["job-b"]["cost_usd"] == pytest.approx(3.0, rel=1e-9)
            assert jobs["(idle)"]["cost_usd"] > 0  # the 3 slices no instance holds
            assert s.calls("nvmlDeviceGetAttributes_v2") == 2  # slice counts read once per instance
            # GPU 0 answered NOT_SUPPORTED to both calls once and was never asked again; GPU 1 (no MIG) is asked
            # every tick (NOT_FOUND: no samples for it).
            assert s.calls("nvmlDeviceGetProcessUtilization") == 1
            assert s.calls("nvmlDeviceGetProcessesUtilizationInfo") == 1 + 4
    finally:
        for p in (a, b):
            p.kill()
            p.wait()
