"""What the NVML backend reads from a GPU each poll, one small reader per metric (see :mod:`gputab.sampling.nvml`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pynvml

# Newer pynvml releases only; the backend falls back to the older calls without them.
MEMORY_V2 = getattr(pynvml, "nvmlMemory_v2", None)
TEMPERATURE_V = getattr(pynvml, "nvmlDeviceGetTemperatureV", None)

KIB = 1024  # NVML reports PCIe throughput in KB/s with KB = 1024 bytes
Reader = Callable[[object, dict], None]
"""Reads one metric of a GPU handle into the values of its ``GpuSample``; raises ``pynvml.NVMLError``."""


def read_util(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    u = pynvml.nvmlDeviceGetUtilizationRates(h)
    out["utilization_pct"] = u.gpu
    out["memory_utilization_pct"] = u.memory


def read_memory_v2(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    # v2 reports the driver's reservation apart from "used", as nvidia-smi does since driver 510.
    out["memory_used_bytes"] = pynvml.nvmlDeviceGetMemoryInfo(h, version=MEMORY_V2).used


def read_memory_v1(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    out["memory_used_bytes"] = pynvml.nvmlDeviceGetMemoryInfo(h).used


def read_power(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    out["power_w"] = pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0
    out["power_source"] = "nvmlDeviceGetPowerUsage"


def read_energy(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    out["energy_mj"] = pynvml.nvmlDeviceGetTotalEnergyConsumption(h)


def read_temperature_v(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    assert TEMPERATURE_V is not None  # only registered when the library has it
    out["temperature_c"] = float(TEMPERATURE_V(h, pynvml.NVML_TEMPERATURE_GPU))


def read_temperature(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    out["temperature_c"] = float(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))


def read_sm_clock(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    out["sm_clock_mhz"] = pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)


def read_pcie_rx(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    out["pcie_rx_bytes_per_s"] = float(pynvml.nvmlDeviceGetPcieThroughput(h, pynvml.NVML_PCIE_UTIL_RX_BYTES) * KIB)


def read_pcie_tx(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    out["pcie_tx_bytes_per_s"] = float(pynvml.nvmlDeviceGetPcieThroughput(h, pynvml.NVML_PCIE_UTIL_TX_BYTES) * KIB)
