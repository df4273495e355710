"""Honest buckets in the ledger (cost-model.md "Who pays" and "Waste"; issue 24 findings 6 and 8), pure.

``(idle)``: no process and the GPU did nothing (or said nothing): all waste, busy $0. ``(unattributed)``: no process
but the GPU worked: split busy/waste by its utilization like a job. Where utilization is not reported, a job's
dollars are ``unmeasured_usd``: neither busy nor waste. Properties: ``busy + waste + unmeasured = cost`` per job,
and every bucket together is what the GPUs cost.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gputab.cost.buckets import SPECIAL_TAGS
from gputab.cost.ledger import IDLE, UNATTRIBUTED, UNOBSERVED, Ledger
from gputab.sampling.snapshot import GpuSample, MigSample, ProcessSample, Snapshot
from test_waste import GIB, gpu, table, tick, tick_st


def test_a_busy_gpu_with_nobody_listed_is_unattributed_not_idle():
    """Finding 6: util 60 %, no process (one in another PID namespace or a VM) was (idle) at 30 % busy."""
    led = Ledger(table(3600.0), interval=1)  # $1 a second
    for k in range(11):
        tick(led, float(k), [gpu(60)])
    assert IDLE not in led.jobs
    u = led.jobs[UNATTRIBUTED].to_json()
    assert u["cost_usd"] == pytest.approx(10.0)
    assert u["busy_usd"] == pytest.approx(6.0) and u["waste_usd"] == pytest.approx(4.0)
    assert u["avg_utilization"] == pytest.approx(0.6)
    assert u["waste_by_reason"] == {"unattributed": pytest.approx(4.0)}
    assert led.gpus[0].unattributed_cost_usd == pytest.approx(10.0) and led.gpus[0].idle_cost_usd == 0
    assert UNATTRIBUTED in SPECIAL_TAGS and led.jobs[UNATTRIBUTED].special


@pytest.mark.parametrize("util", [0, None])
def test_idle_is_all_waste_with_no_busy_dollar(util):
    led = Ledger(table(3600.0), interval=1)
    for k in range(5):
        tick(led, float(k), [gpu(util)])
    assert UNATTRIBUTED not in led.jobs
    idle = led.jobs[IDLE].to_json()
    assert idle["cost_usd"] == pytest.approx(4.0) and idle["busy_usd"] == 0
    assert idle["waste_usd"] == pytest.approx(4.0) and idle["unmeasured_usd"] == 0


def test_a_mig_instance_that_works_with_nobody_listed_is_unattributed_and_free_slices_idle():
    insts = (
        MigSample(1, 0, 3, sm_active_pct=50.0),  # busy, nobody listed
        MigSample(2, 0, 2, sm_active_pct=0.0),  # empty and quiet
        MigSample(3, 0, 1, sm_active_pct=None),  # the job's, no GPM: unmeasured
    )
    g = GpuSample(0, "GPU-0", "NVIDIA H100 80GB HBM3", None, mig=insts, mig_slices=7)
    p = ProcessSample(9, 0, GIB, None, gpu_instance_id=3, compute_instance_id=0)
    led = Ledger(table(7 * 3600.0), interval=1)  # $1 a second a slice
    for k in range(3):
        led.tick(Snapshot(mono=float(k), wall=float(k), gpus=(g,), processes=(p,)), {9: "job"})
    u, idle, job = (led.jobs[t].to_json() for t in (UNATTRIBUTED, IDLE, "job"))
    assert u["cost_usd"] == pytest.approx(6.0) and u["busy_usd"] == pytest.approx(3.0)
    assert idle["cost_usd"] == pytest.approx(2 * (2 + 1)) and idle["busy_usd"] == 0  # 2g empty + 1 free slice
    assert job["cost_usd"] == pytest.approx(2.0) and job["unmeasured_usd"] == pytest.approx(2.0)
    assert job["busy_usd"] == 0 and job["waste_usd"] == 0 and job["waste_pct"] is None
    assert led.check_conservation() and led.check_waste_conservation()


mig_gpu_st = st.builds(
    lambda sms, slices: GpuSample(
        1,
        "GPU-1",
        "NVIDIA H100 80GB HBM3",
        None,
        mig=tuple(MigSample(i + 1, 0, s, sm_active_pct=sm) for i, (s, sm) in enumerate(zip(slices, sms))),
        mig_slices=7,
    ),
    st.lists(st.one_of(st.none(), st.floats(0, 100)), min_size=3, max_size=3),
    st.lists(st.integers(1, 3), min_size=3, max_size=3).filter(lambda s: sum(s) <= 7),
)
mig_procs_st = st.lists(
    st.builds(
        lambda pid, gi, mem: ProcessSample(pid, 1, mem, None, gpu_instance_id=gi, compute_instance_id=0),
        st.integers(1, 5),
        st.integers(1, 4),
        st.one_of(st.none(), st.integers(0, 8 * GIB)),
    ),
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(tick_st, min_size=1, max_size=20),
    st.lists(st.tuples(mig_gpu_st, mig_procs_st), min_size=20, max_size=20),
    st.dictionaries(st.integers(1, 5), st.sampled_from("ABC")),
)
@pytest.mark.slow
def test_buckets_conserve_every_gpu_and_each_job_splits_into_busy_waste_unmeasured(ticks, migs, tags):
    led = Ledger(table(), interval=1.0, gap_factor=5)
    t = 0.0
    for (dt, gpus, procs, cpu), (mig_gpu, mig_procs) in zip(ticks, migs):
        t += dt
        off_mig = [g for g in gpus if g.index != 1]
        snap = Snapshot(mono=t, wall=t, gpus=(*off_mig, mig_gpu), processes=(*procs, *mig_procs), cpu=tuple(cpu))
        for iv in led.tick(snap, tags):
            # Every GPU interval: the buckets and jobs it charges sum to what it cost.
            charged = iv.time_cost + iv.energy_cost
            assert math.isclose(sum(iv.shares.values()) * charged + iv.unobserved_cost, iv.cost, abs_tol=1e-12)
            if IDLE in iv.shares and not any(p.gpu_index == iv.gpu_index for p in snap.processes):
                assert (iv.utilization or 0) == 0  # a GPU that worked with nobody listed is not idle
    assert led.check_conservation(1e-9)
    assert led.check_waste_conservation(1e-9)
    for tag, j in led.jobs.items():
        w = j.waste
        assert math.isclose(w.busy_usd + w.waste_usd + w.unmeasured_usd, j.cost_usd, rel_tol=1e-9, abs_tol=1e-12)
        assert w.unmeasured_usd >= 0 and w.busy_usd >= 0
        if tag == IDLE:
            assert w.busy_usd == 0 and w.unmeasured_usd == 0
        if tag == UNOBSERVED:
            assert w.busy_usd == 0
        pct = j.to_json()["waste_pct"]
        measured = w.busy_usd + w.waste_usd
        assert (pct is None) == (measured <= 0)
