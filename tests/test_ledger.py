"""The ledger against cost-model.md: worked examples to the cent, conservation as a property."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gputab.config.settings import PriceOverride, PricesConfig
from gputab.cost.ledger import IDLE, UNATTRIBUTED, UNOBSERVED, Ledger, interval_energy, split_shares
from gputab.cost.pricing import PriceTable, match_model, owned_rate_per_hour
from gputab.sampling.snapshot import GpuSample, ProcessSample, Snapshot

H100 = "NVIDIA H100 80GB HBM3"


def table(**models) -> PriceTable:
    return PriceTable.load(PricesConfig(models={k: PriceOverride(**v) for k, v in models.items()}))


def gpu(util=None, power=None, energy_mj=None, index=0, name=H100, lost=False):
    return GpuSample(
        index=index, uuid=f"GPU-{index}", name=name, utilization_pct=util, power_w=power, energy_mj=energy_mj, lost=lost
    )


def run(ledger, steps):
    """steps: list of (t, gpus, processes, tags)."""
    for t, gpus, procs, tags in steps:
        ledger.tick(Snapshot(mono=t, wall=t, gpus=tuple(gpus), processes=tuple(procs)), tags)
    return ledger


def test_example_1_one_job_60pct_for_10h():
    led = Ledger(table(**{"H100-SXM": {"rate_per_hour": 8.0}}), interval=60)
    steps = [(t * 60.0, [gpu(util=60)], [ProcessSample(10, 0, 1 << 30, 60)], {10: "A"}) for t in range(601)]
    run(led, steps)
    led.add_progress("A", samples=200_000)
    a = led.jobs["A"].to_json()
    assert a["gpu_hours"] == pytest.approx(10)
    assert a["effective_gpu_hours"] == pytest.approx(6)
    assert round(a["cost_usd"], 2) == 80.00
    assert round(a["cost_per_effective_gpu_hour_usd"], 2) == 13.33
    assert a["cost_per_sample_usd"] == pytest.approx(0.0004)
    assert a["avg_utilization"] == pytest.approx(0.6)


def test_example_2_idle_then_job():
    # GPU at $2.50/h for 2 h; no process for the first 30 min, then job A alone.
    led = Ledger(table(**{"H100-SXM": {"rate_per_hour": 2.5}}), interval=60)
    steps = []
    for k in range(121):
        procs = [ProcessSample(7, 0, 1 << 30, 50)] if k > 30 else []
        steps.append((k * 60.0, [gpu(util=50 if k > 30 else 0)], procs, {7: "A"}))
    run(led, steps)
    assert round(led.jobs[IDLE].cost_usd, 2) == 1.25
    assert round(led.jobs["A"].cost_usd, 2) == 3.75


def test_example_3_shared_by_sm():
    led = Ledger(table(**{"H100-SXM": {"rate_per_hour": 4.0}}), interval=60)
    procs = [ProcessSample(1, 0, 1 << 30, 60), ProcessSample(2, 0, 1 << 30, 20)]
    run(led, [(k * 60.0, [gpu(util=80)], procs, {1: "A", 2: "B"}) for k in range(61)])
    assert round(led.jobs["A"].cost_usd, 2) == 3.00
    assert round(led.jobs["B"].cost_usd, 2) == 1.00


def test_example_4_owned_gpu_with_energy():
    assert round(owned_rate_per_hour(30_000, 4, 1.0), 3) == 0.856
    cfg = PricesConfig(
        mode="owned",
        price_per_kwh=0.12,
        pue=1.3,
        models={"H100-SXM": PriceOverride(purchase_price=30_000, useful_life_years=4)},
    )
    led = Ledger(PriceTable.load(cfg), interval=3600)
    # 0.7 kW for one hour: the counter advances by 2.52e9 mJ.
    run(
        led,
        [
            (0.0, [gpu(util=100, power=700, energy_mj=0)], [], {}),
            (3600.0, [gpu(util=100, power=700, energy_mj=2_520_000_000)], [], {}),
        ],
    )
    # The GPU worked (100 %) with no process listed: (unattributed), not (idle) (cost-model.md, "Who pays").
    assert IDLE not in led.jobs
    nobody = led.jobs[UNATTRIBUTED]
    assert round(nobody.cost_usd - 30_000 / (4 * 8760), 4) == 0.1092
    assert nobody.energy_kwh == pytest.approx(0.7)


def test_gap_goes_to_unobserved():
    led = Ledger(table(**{"H100-SXM": {"rate_per_hour": 3.6}}), interval=1.0, gap_factor=5)
    p = [ProcessSample(1, 0, 1, 50)]
    run(
        led,
        [(0.0, [gpu(util=50)], p, {1: "A"}), (1.0, [gpu(util=50)], p, {1: "A"}), (101.0, [gpu(util=50)], p, {1: "A"})],
    )  # SIGSTOP-like stall of 100 s
    assert led.jobs["A"].cost_usd == pytest.approx(3.6 * 2 / 3600)
    assert led.jobs[UNOBSERVED].cost_usd == pytest.approx(3.6 * 99 / 3600)
    assert led.check_conservation()


def test_energy_counter_reset_falls_back_to_power():
    j, method = interval_energy(gpu(power=300, energy_mj=9_000_000), gpu(power=500, energy_mj=1_000), 10.0)
    assert method == "power" and j == pytest.approx(4000.0)
    j, method = interval_energy(gpu(power=300, energy_mj=1_000), gpu(power=300, energy_mj=3_001_000), 10.0)
    assert method == "counter" and j == pytest.approx(3000.0)
    # a counter that did not move while the GPU drew power is not believed
    j, method = interval_energy(gpu(power=300, energy_mj=5), gpu(power=300, energy_mj=5), 10.0)
    assert method == "power" and j == pytest.approx(3000.0)
    assert interval_energy(gpu(), gpu(), 10.0) == (0.0, "none")


def test_shares_fall_back_to_memory_then_equal():
    tags = {1: "A", 2: "B"}
    by_mem = split_shares([ProcessSample(1, 0, 3 << 30, 0), ProcessSample(2, 0, 1 << 30, 0)], tags)
    assert by_mem == pytest.approx({"A": 0.75, "B": 0.25})
    equal = split_shares([ProcessSample(1, 0, None, None), ProcessSample(2, 0, 4, None)], tags)
    assert equal == pytest.approx({"A": 0.5, "B": 0.5})
    assert split_shares([], tags) == {IDLE: 1.0}


def test_lost_gpu_is_unobserved_and_others_continue():
    led = Ledger(table(), interval=1.0)
    g1 = lambda lost=False: gpu(index=1, util=90, lost=lost)  # noqa: E731
    p = [ProcessSample(1, 1, 1, 90), ProcessSample(2, 0, 1, 90)]
    run(
        led,
        [
            (0.0, [gpu(util=90), g1()], p, {1: "A", 2: "B"}),
            (1.0, [gpu(util=90), g1(lost=True)], p[1:], {2: "B"}),
            (2.0, [gpu(util=90), g1(lost=True)], p[1:], {2: "B"}),
        ],
    )
    assert led.jobs[UNOBSERVED].cost_usd == pytest.approx(2 * 4.76 / 3600)
    assert led.jobs["B"].cost_usd == pytest.approx(2 * 4.76 / 3600)
    assert led.check_conservation()


def test_unknown_model_gets_default_rate_and_flag():
    led = Ledger(PriceTable.load(PricesConfig(default_rate=1.5)), interval=3600.0)
    p = [ProcessSample(1, 0, 1, 10)]
    run(led, [(t, [gpu(util=10, name="NVIDIA Quantum X9")], p, {1: "A"}) for t in (0.0, 3600.0)])
    assert led.gpus[0].price.unknown and led.jobs["A"].unknown_price
    assert led.jobs["A"].cost_usd == pytest.approx(1.5)
    assert match_model("NVIDIA Quantum X9") is None


def test_burn_rate_follows_current_shares():
    cfg = PricesConfig(
        mode="owned",
        price_per_kwh=0.10,
        pue=1.0,
        models={"H100-SXM": PriceOverride(purchase_price=8760 * 2, useful_life_years=1)},
    )
    led = Ledger(PriceTable.load(cfg))
    procs = [ProcessSample(1, 0, 1, 75), ProcessSample(2, 0, 1, 25)]
    run(led, [(0.0, [gpu(util=100, power=500)], procs, {1: "A", 2: "B"})])
    # rate 2 $/h + 0.5 kW * 0.10 = 2.05 $/h, split 3:1
    assert led.jobs["A"].burn_rate_usd_per_hour == pytest.approx(2.05 * 0.75)
    assert led.burn_rate_usd_per_hour == pytest.approx(2.05)


# ---- conservation, as a property ------------------------------------------------------------------------

proc_st = st.tuples(
    st.integers(1, 6), st.one_of(st.none(), st.integers(0, 100)), st.one_of(st.none(), st.integers(0, 80 << 30))
)
gpu_tick_st = st.tuples(
    st.one_of(st.none(), st.integers(0, 100)),  # util
    st.one_of(st.none(), st.floats(0, 800)),  # power
    st.one_of(st.none(), st.integers(0, 10**12)),  # energy counter (random: resets happen)
    st.booleans(),  # lost (rare enough with the weighting below)
    st.lists(proc_st, max_size=4),
)
tick_st = st.tuples(st.floats(0.01, 50.0), st.lists(gpu_tick_st, min_size=1, max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.lists(tick_st, min_size=1, max_size=25), st.sampled_from(["rental", "owned"]))
@pytest.mark.slow
def test_conservation_property(ticks, mode):
    overrides = {"H100-SXM": PriceOverride(purchase_price=25_000, useful_life_years=3)} if mode == "owned" else {}
    led = Ledger(PriceTable.load(PricesConfig(mode=mode, models=overrides, pue=1.2)), interval=1.0, gap_factor=5)
    t = 0.0
    gpu_cost_sum = 0.0
    tags = {pid: f"job{pid % 3}" for pid in range(1, 7)}
    for dt, gpus in ticks:
        t += dt
        samples, procs = [], []
        for i, (util, power, energy, lost, plist) in enumerate(gpus):
            samples.append(
                GpuSample(
                    index=i,
                    uuid=f"G{i}",
                    name=H100,
                    utilization_pct=util,
                    power_w=power,
                    energy_mj=energy,
                    lost=lost and util == 7,
                )
            )
            seen = set()
            for pid, sm, mem in plist:
                if pid not in seen:
                    seen.add(pid)
                    procs.append(ProcessSample(pid, i, mem, sm))
        intervals = led.tick(Snapshot(mono=t, wall=t, gpus=tuple(samples), processes=tuple(procs)), tags)
        for iv in intervals:
            gpu_cost_sum += iv.cost
            assert math.fsum(iv.shares.values()) == pytest.approx(1.0) or not iv.shares
    jobs_sum = math.fsum(j.cost_usd for j in led.jobs.values())
    assert math.isclose(jobs_sum, gpu_cost_sum, rel_tol=1e-9, abs_tol=1e-12)
    assert led.check_conservation()
    for j in led.jobs.values():
        for k, v in j.to_json().items():
            if isinstance(v, float):
                assert not math.isnan(v) and v >= 0, (j.tag, k, v)
