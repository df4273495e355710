"""NVML GPM (Hopper and newer) and clock event reasons: what the NVML backend reads for the waste diagnosis.

GPM metrics are computed by the driver from two samples taken an interval apart; the backend keeps one
:class:`GpmSamples` per GPU that supports GPM, swapping its two samples every poll. Clock event reasons are a
bit mask of why the clocks are held down right now; the backend turns them into seconds per interval.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import pynvml

MIB = 1024 * 1024  # GPM reports link rates in MiB/s

#: GPM metrics read each poll: (NVML metric id, GpuSample field, factor to the field's unit).
GPM_METRICS = (
    (pynvml.NVML_GPM_METRIC_SM_UTIL, "sm_active_pct", 1.0),
    (pynvml.NVML_GPM_METRIC_SM_OCCUPANCY, "sm_occupancy_pct", 1.0),
    (pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL, "tensor_active_pct", 1.0),
    (pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL, "dram_bw_pct", 1.0),
    (pynvml.NVML_GPM_METRIC_PCIE_RX_PER_SEC, "pcie_rx_bytes_per_s", MIB),
    (pynvml.NVML_GPM_METRIC_PCIE_TX_PER_SEC, "pcie_tx_bytes_per_s", MIB),
    (pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC, "nvlink_rx_bytes_per_s", MIB),
    (pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC, "nvlink_tx_bytes_per_s", MIB),
)

#: GPM's PCIe fields -> the older per-20-ms reader each replaces.
GPM_PCIE = {"pcie_rx_bytes_per_s": "pcie rx", "pcie_tx_bytes_per_s": "pcie tx"}
OLD_PCIE = frozenset(GPM_PCIE.values())

#: Clock event reasons -> the names of ``GpuSample.throttle_seconds`` (thermal: software or hardware).
THROTTLE_BITS = (
    ("power_cap", pynvml.nvmlClocksEventReasonSwPowerCap),
    ("thermal", pynvml.nvmlClocksEventReasonSwThermalSlowdown | pynvml.nvmlClocksEventReasonHwThermalSlowdown),
    ("hw_slowdown", pynvml.nvmlClocksEventReasonHwSlowdown),
    ("power_brake", pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown),
)


class _PlainMetric(ctypes.Structure):
    """``c_nvmlGpmMetric_t``'s layout without pynvml's per-attribute Python hooks (read 8 x per GPU per poll)."""

    _fields_ = [(name, ftype) for name, ftype in pynvml.c_nvmlGpmMetric_t._fields_]


class GpmSamples:
    """NVML GPM on one GPU (or one MIG GPU instance): two samples taken an interval apart, and one request struct
    reused every poll.

    Args:
        metrics: the metrics to ask for (default: :data:`GPM_METRICS`).
    """

    __slots__ = ("prev", "cur", "primed", "request", "metrics", "results")

    def __init__(self, metrics: tuple[tuple[int, str, float], ...] = GPM_METRICS) -> None:
        self.prev = pynvml.nvmlGpmSampleAlloc()
        try:
            self.cur = pynvml.nvmlGpmSampleAlloc()
        except pynvml.NVMLError:
            pynvml.nvmlGpmSampleFree(self.prev)
            raise
        self.primed = False
        self.request = pynvml.c_nvmlGpmMetricsGet_t()
        self.request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        offset = pynvml.c_nvmlGpmMetricsGet_t.metrics.offset
        self.results = (_PlainMetric * len(GPM_METRICS)).from_address(ctypes.addressof(self.request) + offset)
        self.metrics = list(metrics)
        self.set_metrics(self.metrics)

    def set_metrics(self, metrics: list[tuple[int, str, float]]) -> None:
        self.metrics = metrics
        self.request.numMetrics = len(metrics)
        for i, (metric_id, _, _) in enumerate(metrics):
            self.results[i].metricId = metric_id

    def interval(self, take: Callable[[object], object]) -> bool:
        """Take a sample with ``take(sample)`` (``nvmlGpmSampleGet`` or ``nvmlGpmMigSampleGet``) and ask for the
        metrics since the last one; False on the first call, which only starts the first interval.

        Raises:
            pynvml.NVMLError: from either call.
        """
        take(self.cur)
        if not self.primed:
            self.primed = True
            self.prev, self.cur = self.cur, self.prev
            return False
        req = self.request
        req.sample1, req.sample2 = self.prev, self.cur
        pynvml.nvmlGpmMetricsGet(req)
        self.prev, self.cur = self.cur, self.prev
        return True

    def read_into(self, values: dict, where: str, notes: list[str], unsupported: frozenset[int]) -> None:
        """Each metric of the last :meth:`interval` into ``values`` by its own return code. A metric answering one
        of ``unsupported`` stays None (not 0) and is never asked again; another failure gets a note."""
        alive = []
        results = self.results
        for i, (metric_id, field, factor) in enumerate(self.metrics):
            m = results[i]
            if m.nvmlReturn == pynvml.NVML_SUCCESS:
                values[field] = float(m.value) * factor
                alive.append((metric_id, field, factor))
            elif m.nvmlReturn not in unsupported:
                alive.append((metric_id, field, factor))
                notes.append(f"{where} gpm metric {field}: {pynvml.NVMLError(m.nvmlReturn)}")
        if len(alive) != len(self.metrics):
            self.set_metrics(alive)

    def free(self) -> None:
        for sample in (self.prev, self.cur):
            try:
                pynvml.nvmlGpmSampleFree(sample)
            except pynvml.NVMLError:
                pass  # the library is going away or the GPU is lost: nothing more to release


def clock_event_reasons() -> Callable | None:
    """nvmlDeviceGetCurrentClocksEventReasons, or the older name of the same call in older nvidia-ml-py."""
    return getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
        pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None
    )
