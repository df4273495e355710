"""Frozen records of one poll. Units: bytes, watts, millijoules, percent, MHz, seconds.

A metric the GPU does not report is ``None`` ("not available"), never a fake 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU at one tick."""

    index: int
    uuid: str
    name: str
    lost: bool = False
    utilization_pct: float | None = None
    """Percent of the sample period in which a kernel ran (NVML ``gpu`` utilization)."""
    memory_utilization_pct: float | None = None
    """Percent of time the memory controller was busy."""
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    energy_mj: int | None = None
    """Energy counter, millijoules since driver load (Volta and newer)."""
    temperature_c: float | None = None
    sm_clock_mhz: int | None = None
    pcie_rx_bytes_per_s: float | None = None
    pcie_tx_bytes_per_s: float | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One process seen on one GPU at one tick (host PID)."""

    pid: int
    gpu_index: int
    used_memory_bytes: int | None = None
    sm_pct: float | None = None
    """SM utilization over the last interval; 0 when listed but no sample, None when unsupported."""
    kind: str = "compute"
    """``compute`` or ``graphics``."""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one poll saw. ``mono`` orders ticks; ``wall`` (Unix seconds) is for humans."""

    mono: float
    wall: float
    gpus: tuple[GpuSample, ...] = ()
    processes: tuple[ProcessSample, ...] = ()
    driver_version: str | None = None
    errors: tuple[str, ...] = field(default=())
    """Human-readable notes on what failed in this poll (a lost GPU, an NVML error)."""

    def gpu(self, index: int) -> GpuSample | None:
        for g in self.gpus:
            if g.index == index:
                return g
        return None

    def processes_on(self, index: int) -> tuple[ProcessSample, ...]:
        return tuple(p for p in self.processes if p.gpu_index == index)

    def to_json(self) -> dict:
        return {
            "mono": self.mono,
            "wall": self.wall,
            "driver_version": self.driver_version,
            "gpus": [g.to_json() for g in self.gpus],
            "processes": [p.to_json() for p in self.processes],
            "errors": list(self.errors),
        }
