"""The waste split and its diagnosis (pure): cost-model.md "Waste", conservation as properties."""

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gputab.config.settings import PriceOverride, PricesConfig, WasteConfig
from gputab.cost.diagnosis import ALL_REASONS, JobOnGpu, diagnose
from gputab.cost.ledger import IDLE, UNOBSERVED, Ledger
from gputab.cost.pricing import PriceTable
from gputab.cost.waste import THROTTLE_REASONS, split_cost
from gputab.sampling.snapshot import CpuSample, GpuSample, ProcessSample, Snapshot

H100 = "NVIDIA H100 80GB HBM3"
GIB = 1 << 30
CFG = WasteConfig()


def table(rate=8.0) -> PriceTable:
    return PriceTable.load(PricesConfig(models={"H100-SXM": PriceOverride(rate_per_hour=rate)}))


def gpu(util=None, index=0, **kw):
    kw.setdefault("memory_total_bytes", 80 * GIB)
    return GpuSample(index=index, uuid=f"GPU-{index}", name=H100, utilization_pct=util, **kw)


def tick(led, t, gpus, procs=(), tags=None, cpu=()):
    led.tick(Snapshot(mono=t, wall=t, gpus=tuple(gpus), processes=tuple(procs), cpu=tuple(cpu)), tags or {})


# -- the split -----------------------------------------------------------------------------------------------------


def test_worked_example_1_split():
    """One H100 at $8/h, 60 % for 10 h: $80 = $48 busy + $32 wasted."""
    led = Ledger(table(8.0), interval=60)
    for k in range(601):
        tick(led, k * 60.0, [gpu(60)], [ProcessSample(10, 0, GIB, 60)], {10: "A"})
    a = led.jobs["A"].to_json()
    assert round(a["busy_usd"], 2) == 48.00
    assert round(a["waste_usd"], 2) == 32.00
    assert a["waste_pct"] == pytest.approx(40.0)
    assert a["waste_by_reason"] == {"unexplained": pytest.approx(32.0)}
    assert a["tensor_active_usd"] is None and a["throttled_usd"] is None  # not reported: not claimed


def test_idle_is_waste_held_by_nobody():
    led = Ledger(table(2.5), interval=60)
    for k in range(121):
        procs = [ProcessSample(7, 0, GIB, 50)] if k > 30 else []
        tick(led, k * 60.0, [gpu(50 if k > 30 else 0)], procs, {7: "A"})
    idle = led.jobs[IDLE].to_json()
    assert round(idle["waste_usd"], 2) == 1.25 and idle["busy_usd"] == 0
    assert set(idle["waste_by_reason"]) == {"idle"}
    assert round(led.jobs["A"].waste.busy_usd, 3) == round(3.75 * 0.5, 3)


def test_unknown_utilization_is_unmeasured_not_waste():
    """Issue 24 finding 8: where utilization is not reported no busy time and no waste is claimed (it used to read
    busy $0, waste 100 %); waste % is n/a where nothing was measured."""
    assert split_cost(3.0, None) == (0.0, 0.0, 3.0)
    led = Ledger(table(), interval=1)
    for k in range(3):
        tick(led, float(k), [gpu(None)], [ProcessSample(1, 0, GIB, None)], {1: "A"})
    a = led.jobs["A"].to_json()
    assert a["cost_usd"] > 0 and a["unmeasured_usd"] == pytest.approx(a["cost_usd"], rel=1e-12)
    assert a["busy_usd"] == 0 and a["waste_usd"] == 0 and a["waste_by_reason"] == {}
    assert a["waste_pct"] is None
    # Measured again: waste % is over the measured part only.
    for k in range(3, 5):
        tick(led, float(k), [gpu(25)], [ProcessSample(1, 0, GIB, 25)], {1: "A"})
    a = led.jobs["A"].to_json()
    assert a["waste_pct"] == pytest.approx(75.0)
    assert a["busy_usd"] + a["waste_usd"] + a["unmeasured_usd"] == pytest.approx(a["cost_usd"], rel=1e-12)


def test_gap_is_unobserved_waste():
    led = Ledger(table(3600.0), interval=1, gap_factor=5)  # $1 a second
    tick(led, 0.0, [gpu(100)], [ProcessSample(1, 0, GIB, 100)], {1: "A"})
    tick(led, 10.0, [gpu(100)], [ProcessSample(1, 0, GIB, 100)], {1: "A"})
    assert led.jobs["A"].waste.busy_usd == pytest.approx(1.0)
    u = led.jobs[UNOBSERVED].waste
    assert u.waste_usd == pytest.approx(9.0) and u.by_reason == {"unobserved": pytest.approx(9.0)}


def test_tensor_and_throttled_dollars():
    led = Ledger(table(3600.0), interval=2)  # $1 a second
    throttle = {"power_cap": 1.0, "thermal": 0.0, "hw_slowdown": 2.0, "power_brake": 0.0}
    procs = [ProcessSample(1, 0, GIB, 75), ProcessSample(2, 0, GIB, 25)]
    tick(led, 0.0, [gpu(90)], procs, {1: "A", 2: "B"})
    tick(led, 2.0, [gpu(90, tensor_active_pct=40.0, throttle_seconds=throttle)], procs, {1: "A", 2: "B"})
    a = led.jobs["A"].waste
    assert a.tensor_active_usd == pytest.approx(2.0 * 0.75 * 0.40)
    assert a.throttled_usd["power_cap"] == pytest.approx(2.0 * 0.75 * 0.5)
    assert a.throttled_usd["hw_slowdown"] == pytest.approx(2.0 * 0.75 * 1.0)
    assert a.throttled_seconds["power_cap"] == pytest.approx(0.75)
    assert set(a.throttled_usd) == set(THROTTLE_REASONS)
    assert led.jobs["B"].waste.throttled_usd["power_cap"] == pytest.approx(2.0 * 0.25 * 0.5)


# -- conservation as a property ------------------------------------------------------------------------------------

proc_st = st.builds(
    lambda pid, gi, mem, sm: ProcessSample(pid, gi, mem, sm),
    st.integers(1, 5),
    st.integers(0, 1),
    st.one_of(st.none(), st.integers(0, 8 * GIB)),
    st.one_of(st.none(), st.floats(0, 100)),
)
gpu_st = st.builds(
    lambda i, util, lost, sm, occ, tensor, dram, thr: gpu(
        util,
        index=i,
        lost=lost,
        sm_active_pct=sm,
        sm_occupancy_pct=occ,
        tensor_active_pct=tensor,
        dram_bw_pct=dram,
        throttle_seconds=None if thr is None else dict.fromkeys(THROTTLE_REASONS, thr),
    ),
    st.integers(0, 1),
    st.one_of(st.none(), st.integers(0, 100)),
    st.booleans(),
    *[st.one_of(st.none(), st.floats(0, 100)) for _ in range(4)],
    st.one_of(st.none(), st.floats(0, 20)),
)
cpu_st = st.builds(
    CpuSample,
    st.integers(1, 5),
    st.sampled_from([True, False, None]),
    st.one_of(st.none(), st.floats(0, 800)),
    st.integers(1, 5),
    st.one_of(st.none(), st.floats(0, 100)),
    st.integers(1, 8),
    st.one_of(st.none(), st.floats(0, 100)),
)
tick_st = st.tuples(
    st.floats(0.1, 30),
    st.lists(gpu_st, max_size=2, unique_by=lambda g: g.index),
    st.lists(proc_st, max_size=5),
    st.lists(cpu_st, max_size=5, unique_by=lambda c: c.pid),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(tick_st, min_size=1, max_size=25), st.dictionaries(st.integers(1, 5), st.sampled_from("ABC")))
@pytest.mark.slow
def test_busy_plus_waste_is_cost_and_reasons_sum_to_waste(ticks, tags):
    cfg = WasteConfig(stranded_seconds=5, oversized_seconds=5)
    led = Ledger(table(), interval=1.0, gap_factor=5, waste=cfg)
    t = 0.0
    for dt, gpus, procs, cpu in ticks:
        t += dt
        tick(led, t, gpus, procs, tags, cpu)
    assert led.check_waste_conservation(1e-9)
    for j in led.jobs.values():
        w = j.waste
        assert math.isclose(w.busy_usd + w.waste_usd + w.unmeasured_usd, j.cost_usd, rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(math.fsum(w.by_reason.values()), w.waste_usd, rel_tol=1e-9, abs_tol=1e-12)
        assert set(w.by_reason) <= set(ALL_REASONS)
        assert w.busy_usd >= 0 and w.waste_usd >= -1e-12
        assert set(w.evidence) == set(w.by_reason)
        d = j.to_json()
        if d["waste_top_reason"] is not None:
            assert d["waste_evidence"]


# -- the diagnosis: each reason, its evidence, and no claim without it ---------------------------------------------


def ev(util=20, **kw):
    g = gpu(util, **kw.pop("gpu", {}))
    kw.setdefault("vram_bytes", 10 * GIB)
    return JobOnGpu(gpu=g, **kw)


def test_input_bound_needs_a_saturated_cpu_side():
    d = diagnose(ev(12, busiest_pid=4242, busiest_cpu_pct=98.0, cpu_pct=99.0, cores=8), CFG)
    assert d.reason == "input_bound" and "4242" in d.evidence and "98%" in d.evidence and "12%" in d.evidence
    d = diagnose(ev(12, cpu_pct=780.0, cores=8, busiest_pid=1, busiest_cpu_pct=60.0), CFG)
    assert d.reason == "input_bound" and "780% of 8 cores" in d.evidence
    d = diagnose(ev(12, busiest_pid=9, busiest_cpu_pct=20.0, busiest_runnable_pct=97.0, cpu_pct=20.0, cores=8), CFG)
    assert d.reason == "input_bound" and "pid 9 was running or queued for a CPU 97%" in d.evidence
    assert "20% on a core" in d.evidence
    d = diagnose(ev(12, iowait_pct=45.0, cpu_pct=10.0, cores=8), CFG)
    assert d.reason == "input_bound" and "I/O 45%" in d.evidence
    # GPU busy enough, or CPU side idle, or CPU not measured: no claim.
    assert diagnose(ev(70, busiest_pid=1, busiest_cpu_pct=99.0), CFG).reason != "input_bound"
    assert diagnose(ev(12, busiest_pid=1, busiest_cpu_pct=30.0, cpu_pct=30.0, cores=8), CFG).reason == "unexplained"
    assert diagnose(ev(12), CFG).reason == "unexplained"


def test_a_shared_gpu_judges_the_job_by_its_own_sm_share():
    """On a GPU another job keeps busy, the device's utilization says little about this job."""
    busy_gpu = {"sm_active_pct": 90.0}
    d = diagnose(ev(95, gpu=busy_gpu, job_sm_pct=20.0, busiest_pid=3, busiest_cpu_pct=99.0), CFG)
    assert d.reason == "input_bound" and d.evidence.startswith("its SM share 20% while pid 3")
    e = ev(95, gpu=busy_gpu, job_sm_pct=4.0, vram_bytes=2 * GIB, small_seconds=CFG.oversized_seconds)
    assert diagnose(e, CFG).reason == "oversized" and "SM 4%" in diagnose(e, CFG).evidence
    assert diagnose(replace(e, job_sm_pct=None), CFG).reason != "oversized"


def test_stranded_memory_by_dead_pid_and_by_long_zero_util():
    d = diagnose(ev(0, dead_pids=(777,), dead_vram_bytes=8 * GIB, vram_bytes=20 * GIB), CFG)
    assert d.reason == "stranded_memory" and "777" in d.evidence and "8.0 GiB" in d.evidence
    d = diagnose(ev(0, zero_util_seconds=CFG.stranded_seconds), CFG)
    assert d.reason == "stranded_memory" and "10 min" in d.evidence
    assert diagnose(ev(0, zero_util_seconds=CFG.stranded_seconds - 1), CFG).reason == "unexplained"


def test_gpm_reasons_each_need_their_figures():
    d = diagnose(ev(95, gpu={"sm_active_pct": 80.0, "tensor_active_pct": 0.2}), CFG)
    assert d.reason == "no_tensor_cores" and "tensor cores 0.2%" in d.evidence
    d = diagnose(ev(90, gpu={"sm_active_pct": 30.0, "dram_bw_pct": 85.0}), CFG)
    assert d.reason == "memory_bound" and "DRAM bandwidth 85%" in d.evidence
    d = diagnose(ev(90, gpu={"sm_occupancy_pct": 8.0}), CFG)
    assert d.reason == "small_batch" and "occupancy 8%" in d.evidence
    d = diagnose(ev(90, gpu={"sm_occupancy_pct": 8.0, "tensor_active_pct": 30.0}), CFG)
    assert d.reason == "small_batch"
    # Busy tensor pipes at low occupancy are large matrix products (what a real H200 read), not a small batch.
    d = diagnose(ev(99, gpu={"sm_active_pct": 96.0, "sm_occupancy_pct": 14.0, "tensor_active_pct": 93.0}), CFG)
    assert d.reason == "unexplained", d
    d = diagnose(ev(40, gpu_count=4, gpu={"sm_active_pct": 10.0, "nvlink_rx_bytes_per_s": 30.0 * GIB}), CFG)
    assert d.reason == "comm_stall" and "4 GPUs" in d.evidence and "30.0 GiB/s" in d.evidence
    # The same figures on a one-GPU job are not a comm stall.
    assert diagnose(ev(40, gpu={"sm_active_pct": 10.0, "nvlink_rx_bytes_per_s": 30 * GIB}), CFG).reason != "comm_stall"
    # Without GPM none of these is claimed.
    assert diagnose(ev(95), CFG).reason == "unexplained"


def test_oversized_needs_a_big_gpu_and_time():
    e = ev(5, vram_bytes=2 * GIB, small_seconds=CFG.oversized_seconds)
    d = diagnose(e, CFG)
    assert d.reason == "oversized" and "2.0 GiB of 80.0 GiB" in d.evidence and "30 min" in d.evidence
    assert diagnose(replace(e, small_seconds=10), CFG).reason == "unexplained"
    small_gpu = replace(e, gpu=gpu(5, memory_total_bytes=16 * GIB))
    assert diagnose(small_gpu, CFG).reason == "unexplained"


def test_ledger_counts_durations_for_stranded_and_oversized():
    cfg = WasteConfig(stranded_seconds=30, oversized_seconds=20)
    led = Ledger(table(), interval=10, waste=cfg)
    procs = [ProcessSample(1, 0, 30 * GIB, 0), ProcessSample(2, 1, 2 * GIB, 5)]
    tags = {1: "held", 2: "tiny"}
    for k in range(5):
        tick(led, k * 10.0, [gpu(0, index=0), gpu(5, index=1)], procs, tags)
    held, tiny = led.jobs["held"].waste, led.jobs["tiny"].waste
    assert set(held.by_reason) == {"unexplained", "stranded_memory"}  # the first 30 s are not yet stranded
    assert held.by_reason["unexplained"] == pytest.approx(held.waste_usd * 2 / 4)
    assert "40 s" in held.evidence["stranded_memory"]
    assert set(tiny.by_reason) == {"unexplained", "oversized"}
    # A job that leaves its GPU starts counting again when it returns.
    tick(led, 50.0, [gpu(0, index=0), gpu(5, index=1)], [procs[1]], tags)
    tick(led, 60.0, [gpu(0, index=0), gpu(5, index=1)], procs, tags)
    assert led.waste.evidence("held", gpu(0, index=0), 0).zero_util_seconds == pytest.approx(10)


def test_evidence_never_carries_outside_text():
    """Evidence is built from numbers and PIDs: a hostile tag never reaches it."""
    led = Ledger(table(), interval=1)
    tag = "[red]x[/red]\x1b[2J"
    cpu = [CpuSample(1, True, 99.0, 1, 99.0, 4, None)]
    for k in range(3):
        tick(led, float(k), [gpu(5)], [ProcessSample(1, 0, GIB, 5)], {1: tag}, cpu)
    w = led.jobs[tag].waste
    assert w.top_reason == "input_bound"
    assert all("[" not in e and "\x1b" not in e for e in w.evidence.values())


# -- the [waste] config section ------------------------------------------------------------------------------------


def test_waste_config_section_parses_and_validates():
    from gputab.config.settings import parse_config
    from gputab.errors import ConfigError

    cfg = parse_config("[waste]\ninput_cpu_pct = 75\nstranded_seconds = 120\n", "g.toml")
    assert cfg.waste.input_cpu_pct == 75.0 and cfg.waste.stranded_seconds == 120.0
    assert cfg.waste.oversized_seconds == WasteConfig().oversized_seconds
    for text, words in [
        ("[waste]\ninput_cpu_pct = 140\n", "g.toml:2: waste.input_cpu_pct: must be a percentage"),
        ("[waste]\n\nstranded_seconds = -1\n", "g.toml:3: waste.stranded_seconds: must not be negative"),
        ("[waste]\nsmall_batch = 3\n", "g.toml:2: waste.small_batch: unknown key"),
        ("[waste]\noversized_seconds = 'long'\n", "expected a number"),
    ]:
        with pytest.raises(ConfigError) as exc:
            parse_config(text, "g.toml")
        assert words in str(exc.value)
