"""Newer NVML calls with their fallbacks, on the fake library with the real structs and return codes:
nvmlDeviceGetProcessesUtilizationInfo (else nvmlDeviceGetProcessUtilization), power through
nvmlDeviceGetFieldValues (instant vs average, GPU vs module scope; else nvmlDeviceGetPowerUsage), and the energy
counter's update period in the ledger."""

from __future__ import annotations

import os

import pytest

from fakenvml import Error, GpuSpec, Proc, Sample, Scenario
from gputab.config.settings import PriceOverride, PricesConfig
from gputab.cost.ledger import ENERGY_COUNTER_PERIOD_S, Ledger
from gputab.cost.pricing import PriceTable
from gputab.sampling.snapshot import GpuSample, Snapshot

ME = os.getpid()


def _util_scenario(*errors: Error) -> Scenario:
    return Scenario(
        gpus=[GpuSpec()],
        processes=[Proc(0, ME)],
        samples=[Sample(0, ME, ts=1_000, sm=40), Sample(0, ME, ts=2_000, sm=60)],
        errors=list(errors),
    )


def test_process_utilization_uses_the_newer_call_where_present(fake_nvml):
    fake_nvml.write(_util_scenario())
    with fake_nvml.session() as s:
        (p,) = s.poll()["processes"]
        assert p["sm_pct"] == pytest.approx(50.0)  # mean of the two samples
        s.poll()
        # Size query + fetch on the first poll; NOT_FOUND (nothing newer) on the second.
        assert s.calls("nvmlDeviceGetProcessesUtilizationInfo") == 3
        assert s.calls("nvmlDeviceGetProcessUtilization") == 0


def test_process_utilization_falls_back_on_an_older_driver(fake_nvml):
    fake_nvml.write(_util_scenario(Error("nvmlDeviceGetProcessesUtilizationInfo", "FUNCTION_NOT_FOUND")))
    with fake_nvml.session() as s:
        (p,) = s.poll()["processes"]
        assert p["sm_pct"] == pytest.approx(50.0)
        for _ in range(3):
            s.poll()
        assert s.calls("nvmlDeviceGetProcessesUtilizationInfo") == 1  # proved absent once, never asked again
        assert s.calls("nvmlDeviceGetProcessUtilization") == 2 + 3  # size + fetch, then NOT_FOUND each poll


def test_power_from_field_values_gpu_scope_with_the_module_beside_it(fake_nvml):
    # Grace Hopper-like: the module draws 500 W, the GPU 350 W; GPU cost must use the GPU's.
    fake_nvml.write(Scenario(gpus=[GpuSpec(power_fields=1, power_mw=350_000, module_power_mw=500_000)]))
    with fake_nvml.session() as s:
        (g,) = s.poll()["gpus"]
        assert (g["power_w"], g["power_source"], g["module_power_w"]) == (350.0, "instant (GPU scope)", 500.0)
        assert s.calls("nvmlDeviceGetPowerUsage") == 0


def test_power_average_field_when_instant_is_missing(fake_nvml):
    fake_nvml.write(Scenario(gpus=[GpuSpec(power_fields=1, power_mw=350_000, power_avg_mw=320_000)]))
    with fake_nvml.session() as s:
        (g,) = s.poll()["gpus"]
        assert g["power_w"] == 350.0 and g["module_power_w"] is None
    # A driver without the fields: the per-field NOT_SUPPORTED sends the backend to nvmlDeviceGetPowerUsage.
    fake_nvml.write(Scenario(gpus=[GpuSpec(power_fields=0, power_mw=250_000)]))
    with fake_nvml.session() as s:
        (g,) = s.poll()["gpus"]
        assert (g["power_w"], g["power_source"]) == (250.0, "nvmlDeviceGetPowerUsage")
        s.poll()
        assert s.calls("nvmlDeviceGetFieldValues") == 1  # asked once at first contact


def _energy_run(readings: list[tuple[float, int]], power_w: float = 300.0) -> float:
    led = Ledger(PriceTable.load(PricesConfig(models={"H100-SXM": PriceOverride(rate_per_hour=1.0)})), interval=0.2)
    for t, mj in readings:
        g = GpuSample(index=0, uuid="GPU-0", name="NVIDIA H100 80GB HBM3", power_w=power_w, energy_mj=mj)
        led.tick(Snapshot(mono=t, wall=t, gpus=(g,)), {})
    return led.gpus[0].energy_j


def test_a_counter_between_updates_is_not_stuck():
    # Polls every 0.2 s, the counter updates once a second by 300 J: four still windows, then a jump.
    readings = [(k * 0.2, 1_000_000 + (int(k * 0.2 + 1e-9)) * 300_000) for k in range(11)]
    assert _energy_run(readings) == pytest.approx(600.0)  # two updates' worth, nothing counted twice


def test_a_counter_still_past_its_period_is_stuck_and_power_is_used():
    still = [(k * 1.0, 5_000_000) for k in range(11)]  # 10 s at 300 W and the counter never moves
    energy = _energy_run(still)
    # The first window (1 s still, under the 2 s period) waits for an update; from the second on it is stuck.
    assert ENERGY_COUNTER_PERIOD_S == 2.0
    assert energy == pytest.approx(300.0 * 9)
