"""Why a job's GPU did nothing: one primary reason per job, GPU and interval, from figures gputab saw.

Pure: it reads one :class:`JobOnGpu` (what the job did on one GPU over one interval) and the thresholds of the
``[waste]`` config, and returns a :class:`Diagnosis` whose evidence names the figures that triggered it. A reason
whose figures were not reported (no NVML GPM on this GPU, no CPU readings yet) is never claimed; with no evidence
the waste is ``unexplained``. The checks run in the order of the seeds' root-cause playbook, most specific first.
Evidence names only numbers and PIDs, never process names or command lines (outside text).
"""

from __future__ import annotations

from dataclasses import dataclass

from gputab.config.settings import WasteConfig
from gputab.cost.buckets import (
    ALL_REASONS,  # noqa: F401 - where callers have found it
    COMM_STALL,
    INPUT_BOUND,
    MEMORY_BOUND,
    NO_TENSOR_CORES,
    OVERSIZED,
    REASONS,  # noqa: F401 - where callers have found it
    SMALL_BATCH,
    STRANDED_MEMORY,
    UNEXPLAINED,
)
from gputab.sampling.snapshot import GpuSample

GIB = float(1 << 30)


@dataclass(frozen=True, slots=True)
class JobOnGpu:
    """What one job did on one GPU over one interval: everything the diagnosis may cite."""

    gpu: GpuSample
    """The GPU at the end of the interval (utilization, GPM activity, memory size)."""
    vram_bytes: int = 0
    """Memory the job's processes hold on this GPU."""
    pids: tuple[int, ...] = ()
    gpu_count: int = 1
    """GPUs the job holds now (comm_stall needs more than one)."""
    job_sm_pct: float | None = None
    """The job's own SM % (its processes' samples), set only when it shares the GPU with another job: then the
    device's utilization says little about this job."""
    cpu_pct: float | None = None
    """CPU of the job's processes on this GPU and their children, percent of one core."""
    cores: int | None = None
    busiest_pid: int | None = None
    busiest_cpu_pct: float | None = None
    busiest_runnable_pct: float | None = None
    """Percent of the interval the busiest process was on a CPU or queued for one."""
    iowait_pct: float | None = None
    dead_pids: tuple[int, ...] = ()
    """PIDs NVML still lists with memory on this GPU that were seen alive and have since exited."""
    dead_vram_bytes: int = 0
    """The memory those PIDs hold."""
    zero_util_seconds: float = 0.0
    """How long the job has held memory on this GPU at 0 % utilization, up to now."""
    small_seconds: float = 0.0
    """How long the job has been small on this big GPU (see :func:`is_small`), up to now."""


@dataclass(frozen=True, slots=True)
class Diagnosis:
    reason: str
    evidence: str
    """One line naming the figures that triggered the reason."""


def _pct(v: float) -> str:
    return f"{v:.0f}%"


def _gib(v: float) -> str:
    return f"{v / GIB:.1f} GiB"


def _duration(s: float) -> str:
    return f"{s / 60:.0f} min" if s >= 120 else f"{s:.0f} s"


def sm_busy_pct(gpu: GpuSample) -> float | None:
    """SM activity (GPM) where reported, else NVML's coarser utilization."""
    return gpu.sm_active_pct if gpu.sm_active_pct is not None else gpu.utilization_pct


def job_busy_pct(e: JobOnGpu) -> float | None:
    """How busy the job kept the GPU: its own SM share on a shared GPU, else the device's figure."""
    return e.job_sm_pct if e.job_sm_pct is not None else sm_busy_pct(e.gpu)


def is_small(e: JobOnGpu, cfg: WasteConfig) -> bool:
    """The job uses a small part of a big GPU's memory and compute right now (oversized, once it lasts)."""
    g = e.gpu
    busy = job_busy_pct(e)
    total = g.memory_total_bytes
    if busy is None or not total or not e.vram_bytes:
        return False
    return (
        total >= cfg.oversized_min_gpu_gib * GIB
        and e.vram_bytes < total * cfg.oversized_vram_pct / 100
        and busy < cfg.oversized_util_pct
    )


def _input_bound(e: JobOnGpu, cfg: WasteConfig, util: float) -> str | None:
    mine = e.job_sm_pct is not None and e.job_sm_pct < util
    if mine:
        util = e.job_sm_pct  # type: ignore[assignment]
    if util >= cfg.input_gpu_util_pct:
        return None
    why = []
    if e.busiest_cpu_pct is not None and e.busiest_cpu_pct >= cfg.input_cpu_pct:
        why.append(f"pid {e.busiest_pid} used {_pct(e.busiest_cpu_pct)} of a core")
    elif e.busiest_runnable_pct is not None and e.busiest_runnable_pct >= cfg.input_cpu_pct:
        on = f", {_pct(e.busiest_cpu_pct)} on a core" if e.busiest_cpu_pct is not None else ""
        why.append(
            f"pid {e.busiest_pid} was running or queued for a CPU {_pct(e.busiest_runnable_pct)} of the time{on}"
        )
    elif e.cpu_pct is not None and e.cores and e.cpu_pct >= cfg.input_cpu_pct * e.cores:
        why.append(f"its processes used {_pct(e.cpu_pct)} of {e.cores} cores")
    if e.iowait_pct is not None and e.iowait_pct >= cfg.input_iowait_pct:
        why.append(f"waited on I/O {_pct(e.iowait_pct)} of the time")
    if not why:
        return None
    return f"{'its SM share' if mine else 'GPU util'} {_pct(util)} while " + " and ".join(why)


def diagnose(e: JobOnGpu, cfg: WasteConfig) -> Diagnosis:
    """The primary reason the job's GPU time was wasted in this interval, with its evidence."""
    g = e.gpu
    util = g.utilization_pct
    if e.dead_pids and e.dead_vram_bytes:
        pids = ",".join(map(str, e.dead_pids))
        return Diagnosis(STRANDED_MEMORY, f"{_gib(e.dead_vram_bytes)} held by pid {pids}, which has exited")
    if util is None:
        return Diagnosis(UNEXPLAINED, "GPU utilization not reported")
    text = _input_bound(e, cfg, util)
    if text:
        return Diagnosis(INPUT_BOUND, text)
    if util == 0 and e.vram_bytes and e.zero_util_seconds >= cfg.stranded_seconds:
        return Diagnosis(
            STRANDED_MEMORY, f"{_gib(e.vram_bytes)} held at 0% utilization for {_duration(e.zero_util_seconds)}"
        )
    sm = sm_busy_pct(g)
    if e.gpu_count > 1 and sm is not None and sm < cfg.comm_stall_sm_pct:
        link = [
            v
            for v in (g.nvlink_rx_bytes_per_s, g.nvlink_tx_bytes_per_s, g.pcie_rx_bytes_per_s, g.pcie_tx_bytes_per_s)
            if v is not None
        ]
        if link and sum(link) >= cfg.comm_stall_link_gib_per_s * GIB:
            return Diagnosis(
                COMM_STALL,
                f"SM {_pct(sm)} on {e.gpu_count} GPUs while the interconnect moved {sum(link) / GIB:.1f} GiB/s",
            )
    if (
        g.dram_bw_pct is not None
        and g.sm_active_pct is not None
        and g.dram_bw_pct >= cfg.memory_bound_dram_pct
        and g.sm_active_pct < cfg.memory_bound_sm_pct
    ):
        return Diagnosis(MEMORY_BOUND, f"DRAM bandwidth {_pct(g.dram_bw_pct)} while SM {_pct(g.sm_active_pct)}")
    if (
        g.tensor_active_pct is not None
        and g.sm_active_pct is not None
        and g.sm_active_pct >= cfg.no_tensor_sm_pct
        and g.tensor_active_pct <= cfg.no_tensor_tensor_pct
    ):
        return Diagnosis(
            NO_TENSOR_CORES,
            f"SM {_pct(g.sm_active_pct)} busy, tensor cores {g.tensor_active_pct:.1f}% (mixed precision off?)",
        )
    if (
        g.sm_occupancy_pct is not None
        and util >= cfg.small_batch_util_pct
        and g.sm_occupancy_pct < cfg.small_batch_occupancy_pct
        and (g.tensor_active_pct is None or g.tensor_active_pct < cfg.small_batch_tensor_pct)
    ):
        return Diagnosis(SMALL_BATCH, f"GPU util {_pct(util)} at SM occupancy {_pct(g.sm_occupancy_pct)}")
    if is_small(e, cfg) and e.small_seconds >= cfg.oversized_seconds:
        total = g.memory_total_bytes or 0
        return Diagnosis(
            OVERSIZED,
            f"{_gib(e.vram_bytes)} of {_gib(total)} and SM {_pct(job_busy_pct(e) or 0)} for "
            f"{_duration(e.small_seconds)} (a smaller GPU would do)",
        )
    return Diagnosis(UNEXPLAINED, f"GPU util {_pct(util)}; no figure points at a cause")
