"""Frozen records of one poll. Units: bytes, watts, millijoules, percent, MHz, seconds.

A metric the GPU does not report is ``None`` ("not available"), never a fake 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

THROTTLE_REASONS = ("power_cap", "thermal", "hw_slowdown", "power_brake")
"""Why clocks were held down, as ``GpuSample.throttle_seconds`` names them (NVML clock event reasons)."""


@dataclass(frozen=True, slots=True)
class MigSample:
    """One MIG device (a compute instance of a GPU instance) of a GPU in MIG mode, priced as a device: the
    parent's rate x ``slices / GpuSample.mig_slices`` (see docs/cost-model.md, "MIG instances")."""

    gpu_instance_id: int
    compute_instance_id: int
    slices: int
    """Compute slices this instance holds (``computeInstanceSliceCount``)."""
    gpu_instance_slices: int | None = None
    uuid: str = ""
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    sm_count: int | None = None
    profile: str = ""
    """The instance's profile as nvidia-smi and DCGM's ``GPU_I_PROFILE`` name it: ``3g.40gb`` (``1c.3g.40gb`` for a
    compute instance smaller than its GPU instance); empty when unknown."""
    sm_active_pct: float | None = None
    """Percent of its GPU instance's SMs busy over the last interval (NVML GPM per MIG instance, Hopper and
    newer); None where the parent does not support GPM."""

    @property
    def label(self) -> str:
        """``GI 1 CI 0``: how the views and exports name the instance (DCGM's GPU_I_ID is the GI)."""
        return f"GI {self.gpu_instance_id} CI {self.compute_instance_id}"


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
    """The GPU's own power (GPU scope where the driver tells scopes apart): what GPU cost uses."""
    power_source: str | None = None
    """Which reading ``power_w`` is: ``instant (GPU scope)``, ``average (GPU scope)`` (nvmlDeviceGetFieldValues)
    or ``nvmlDeviceGetPowerUsage`` (older drivers; the whole module on Grace Hopper)."""
    module_power_w: float | None = None
    """The whole module's power (Grace Hopper: GPU + CPU + memory), shown only, never charged."""
    power_limit_w: float | None = None
    energy_mj: int | None = None
    """Energy counter, millijoules since driver load (Volta and newer)."""
    temperature_c: float | None = None
    sm_clock_mhz: int | None = None
    pcie_rx_bytes_per_s: float | None = None
    pcie_tx_bytes_per_s: float | None = None
    # Hardware activity over the last interval from NVML GPM (Hopper and newer); None where not reported.
    sm_active_pct: float | None = None
    """Percent of SMs busy (GPM SM_UTIL): finer than ``utilization_pct``, which counts any kernel running."""
    sm_occupancy_pct: float | None = None
    """Percent of the theoretical maximum of resident warps (GPM SM_OCCUPANCY)."""
    tensor_active_pct: float | None = None
    """Percent of time the SMs ran any tensor-core instruction (GPM ANY_TENSOR_UTIL)."""
    dram_bw_pct: float | None = None
    """Percent of the peak DRAM bandwidth used (GPM DRAM_BW_UTIL)."""
    nvlink_rx_bytes_per_s: float | None = None
    nvlink_tx_bytes_per_s: float | None = None
    throttle_seconds: dict[str, float] | None = None
    """Seconds of the last interval the clocks were held down, per reason (``power_cap``, ``thermal``,
    ``hw_slowdown``, ``power_brake``); None where the GPU does not report its clock event reasons."""
    mig: tuple[MigSample, ...] | None = None
    """The MIG devices of a GPU in MIG mode (maybe none yet); None when MIG is off or not supported."""
    mig_slices: int | None = None
    """The GPU's compute slices in MIG mode (``nvmlDeviceGetMaxMigDeviceCount``: 7 on A100/H100/H200)."""

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
    gpu_instance_id: int | None = None
    """The MIG instance the process runs on (with ``compute_instance_id``); None off MIG."""
    compute_instance_id: int | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CpuSample:
    """The CPU side of one GPU process over the last interval: the process and its descendants (dataloader
    workers). Figures are None until two polls have seen the process (a rate needs two readings)."""

    pid: int
    alive: bool | None = True
    """False when a process seen alive earlier is gone while NVML still lists it (its memory is stranded);
    None when the host cannot see it at all (another PID namespace): no claim either way."""
    cpu_pct: float | None = None
    """CPU time of the process tree over the interval, percent of one core (may exceed 100)."""
    busiest_pid: int | None = None
    busiest_cpu_pct: float | None = None
    """The busiest single process of the tree, percent of one core."""
    cores: int | None = None
    """CPUs the process may run on (its affinity)."""
    iowait_pct: float | None = None
    """Percent of the interval the tree's busiest waiter spent in block I/O wait (delay accounting)."""
    tree_size: int = 1
    busiest_runnable_pct: float | None = None
    """Percent of the interval the busiest process was on a CPU or waiting in the run queue for one
    (/proc/PID/schedstat): near 100 means CPU-bound even when a crowded box gives it little CPU."""

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
    cpu: tuple[CpuSample, ...] = ()
    """The CPU side of each GPU process (for the waste diagnosis); empty where the backend cannot tell."""
    host_notes: tuple[str, ...] = ()
    """Standing facts about this host that every view states once, with their fix (e.g. NVML's PIDs are not
    visible in this container's PID namespace)."""

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
            "cpu": [c.to_json() for c in self.cpu],
            "host_notes": list(self.host_notes),
        }
