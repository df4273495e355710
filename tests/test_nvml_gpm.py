"""NVML GPM and clock event reasons through the fake libnvidia-ml.so.1 (real pynvml ctypes, real structs)."""

from __future__ import annotations

import subprocess

import pytest

from fakenvml import GIB, Error, GpuSpec, Proc, Scenario

GPM_FIELDS = (
    "sm_active_pct",
    "sm_occupancy_pct",
    "tensor_active_pct",
    "dram_bw_pct",
    "nvlink_rx_bytes_per_s",
    "nvlink_tx_bytes_per_s",
)
MIB = 1 << 20
POWER_CAP, HW_SLOWDOWN, SW_THERMAL, HW_THERMAL, POWER_BRAKE, GPU_IDLE = 0x4, 0x8, 0x20, 0x40, 0x80, 0x1


@pytest.fixture
def sleeper():
    p = subprocess.Popen(["sleep", "60"])
    yield p.pid
    p.kill()
    p.wait()


def hopper(**kw) -> GpuSpec:
    base = dict(
        name="NVIDIA H100 80GB HBM3",
        util=90,
        mem_used=10 * GIB,
        gpm=1,
        gpm_sm_util=45,
        gpm_sm_occupancy=12,
        gpm_tensor=33,
        gpm_dram_bw=71,
        gpm_pcie_tx_mibs=100,
        gpm_pcie_rx_mibs=300,
        gpm_nvlink_rx_mibs=2048,
        gpm_nvlink_tx_mibs=1024,
        pcie_rx_kbs=7,
        pcie_tx_kbs=5,
    )
    base.update(kw)
    return GpuSpec(**base)


def test_gpm_metrics_over_two_samples_in_their_units(fake_nvml, sleeper):
    fake_nvml.write(
        Scenario(gpus=[hopper(), GpuSpec(name="NVIDIA A100-SXM4-80GB", util=50)], processes=[Proc(0, sleeper)])
    )
    with fake_nvml.session() as s:
        first = s.poll()["gpus"]
        # One sample only starts the interval: no metric yet, and None is not 0.
        assert all(first[0][f] is None for f in GPM_FIELDS)
        assert first[0]["pcie_rx_bytes_per_s"] == 7 * 1024  # the older per-20-ms call until GPM answers
        g, a100 = s.poll()["gpus"]
        assert (g["sm_active_pct"], g["sm_occupancy_pct"], g["tensor_active_pct"], g["dram_bw_pct"]) == (
            45.0,
            12.0,
            33.0,
            71.0,
        )
        assert g["nvlink_rx_bytes_per_s"] == 2048 * MIB and g["nvlink_tx_bytes_per_s"] == 1024 * MIB
        assert g["pcie_rx_bytes_per_s"] == 300 * MIB and g["pcie_tx_bytes_per_s"] == 100 * MIB
        # The GPU without GPM: nothing claimed, and GPM never sampled on it.
        assert all(a100[f] is None for f in GPM_FIELDS)
        assert s.calls("nvmlGpmQueryDeviceSupport") == 2
        assert s.calls("nvmlGpmSampleGet") == 2 and s.calls("nvmlGpmMetricsGet") == 1
        # Once GPM reports PCIe, the blocking older PCIe call is no longer made on that GPU.
        pcie_before = s.calls("nvmlDeviceGetPcieThroughput")
        s.poll()
        assert s.calls("nvmlDeviceGetPcieThroughput") - pcie_before == 2  # the A100's rx and tx only
        assert s.gpm_live() == 2  # two samples per GPM GPU, reused every poll
        s.close_backend()
        assert s.gpm_live() == 0


def test_one_unsupported_metric_is_none_and_the_rest_still_read(fake_nvml, sleeper):
    fake_nvml.write(Scenario(gpus=[hopper(gpm_tensor=-1, gpm_nvlink_rx_mibs=-1)], processes=[Proc(0, sleeper)]))
    with fake_nvml.session() as s:
        s.poll()
        snap = s.poll()
        g = snap["gpus"][0]
        assert g["tensor_active_pct"] is None and g["nvlink_rx_bytes_per_s"] is None
        assert g["sm_active_pct"] == 45.0 and g["nvlink_tx_bytes_per_s"] == 1024 * MIB
        assert snap["errors"] == []  # unsupported is not an error
        g = s.poll()["gpus"][0]
        assert g["tensor_active_pct"] is None and g["sm_occupancy_pct"] == 12.0


def test_gpm_not_supported_anywhere_is_never_sampled(fake_nvml, sleeper):
    fake_nvml.write(Scenario(gpus=[hopper(gpm=0)], processes=[Proc(0, sleeper)]))
    with fake_nvml.session() as s:
        for _ in range(3):
            g = s.poll()["gpus"][0]
        assert all(g[f] is None for f in GPM_FIELDS)
        assert s.calls("nvmlGpmSampleAlloc") == 0 and s.calls("nvmlGpmSampleGet") == 0


@pytest.mark.parametrize("symbol", ["nvmlGpmQueryDeviceSupport", "nvmlGpmSampleGet", "nvmlGpmMetricsGet"])
def test_a_driver_without_gpm_calls(fake_nvml, sleeper, symbol):
    fake_nvml.write(
        Scenario(gpus=[hopper()], processes=[Proc(0, sleeper)], errors=[Error(symbol, "FUNCTION_NOT_FOUND")])
    )
    with fake_nvml.session() as s:
        for _ in range(3):
            snap = s.poll()
        g = snap["gpus"][0]
        assert not g["lost"] and g["utilization_pct"] == 90
        assert all(g[f] is None for f in GPM_FIELDS)
        assert snap["errors"] == []
        assert s.gpm_live() == 0  # given up on GPM: its samples were freed


def test_gpm_gpu_lost_marks_only_that_gpu(fake_nvml, sleeper):
    sc = fake_nvml.write(Scenario(gpus=[hopper(), hopper()], processes=[Proc(0, sleeper)]))
    with fake_nvml.session() as s:
        s.poll()
        sc.errors = [Error("nvmlGpmSampleGet", "GPU_IS_LOST", gpu=0)]
        fake_nvml.write(sc)
        snap = s.poll()
        assert snap["gpus"][0]["lost"] and not snap["gpus"][1]["lost"]
        assert snap["gpus"][1]["sm_active_pct"] == 45.0
        assert any("GPU 0 lost" in e for e in snap["errors"])


def test_a_metric_error_other_than_unsupported_is_noted_and_retried(fake_nvml, sleeper):
    sc = fake_nvml.write(
        Scenario(gpus=[hopper()], processes=[Proc(0, sleeper)], errors=[Error("nvmlGpmMetricsGet", "NO_PERMISSION")])
    )
    with fake_nvml.session() as s:
        s.poll()
        snap = s.poll()
        assert snap["gpus"][0]["sm_active_pct"] is None and any("gpm" in e for e in snap["errors"])
        sc.errors = []
        fake_nvml.write(sc)
        assert s.poll()["gpus"][0]["sm_active_pct"] == 45.0


def test_throttle_seconds_per_reason(fake_nvml, sleeper):
    sc = fake_nvml.write(Scenario(gpus=[hopper(clocks_event=0)], processes=[Proc(0, sleeper)]))
    with fake_nvml.session() as s:
        s0 = s.poll()
        assert s0["gpus"][0]["throttle_seconds"] == dict.fromkeys(
            ("power_cap", "thermal", "hw_slowdown", "power_brake"), 0.0
        )
        sc.gpus[0].clocks_event = POWER_CAP | HW_THERMAL | GPU_IDLE  # idle is not a throttle
        fake_nvml.write(sc)
        s1 = s.poll()
        sc.gpus[0].clocks_event = POWER_CAP | SW_THERMAL | HW_SLOWDOWN | POWER_BRAKE
        fake_nvml.write(sc)
        s2 = s.poll()
    dt1, dt2 = s1["mono"] - s0["mono"], s2["mono"] - s1["mono"]
    t1, t2 = s1["gpus"][0]["throttle_seconds"], s2["gpus"][0]["throttle_seconds"]
    # Trapezoid of the two ends of each interval: on at one end = half the interval.
    assert t1["power_cap"] == pytest.approx(dt1 / 2) and t1["thermal"] == pytest.approx(dt1 / 2)
    assert t1["hw_slowdown"] == 0 and t1["power_brake"] == 0
    assert t2["power_cap"] == pytest.approx(dt2) and t2["thermal"] == pytest.approx(dt2)
    assert t2["hw_slowdown"] == pytest.approx(dt2 / 2) and t2["power_brake"] == pytest.approx(dt2 / 2)


def test_throttle_reasons_unsupported_are_none_and_not_asked_again(fake_nvml, sleeper):
    fake_nvml.write(
        Scenario(
            gpus=[hopper()],
            processes=[Proc(0, sleeper)],
            errors=[Error("nvmlDeviceGetCurrentClocksEventReasons", "NOT_SUPPORTED")],
        )
    )
    with fake_nvml.session() as s:
        for _ in range(3):
            g = s.poll()["gpus"][0]
        assert g["throttle_seconds"] is None
        assert s.calls("nvmlDeviceGetCurrentClocksEventReasons") == 1


def test_a_driver_before_535_answers_under_the_older_name(fake_nvml, sleeper):
    fake_nvml.write(
        Scenario(
            gpus=[hopper(clocks_event=POWER_CAP)],
            processes=[Proc(0, sleeper)],
            errors=[Error("nvmlDeviceGetCurrentClocksEventReasons", "FUNCTION_NOT_FOUND")],
        )
    )
    with fake_nvml.session() as s:
        snaps = [s.poll() for _ in range(4)]
        assert s.calls("nvmlDeviceGetCurrentClocksEventReasons") == 1
        assert s.calls("nvmlDeviceGetCurrentClocksThrottleReasons") == 3
    assert snaps[0]["gpus"][0]["throttle_seconds"] is None
    dt = snaps[3]["mono"] - snaps[2]["mono"]
    assert snaps[3]["gpus"][0]["throttle_seconds"]["power_cap"] == pytest.approx(dt)
