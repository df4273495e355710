"""Where a job's dollars go: busy or wasted, and why (docs/cost-model.md, "Waste").

Pure ledger functions, no I/O. For job ``j`` on GPU ``g`` over one interval, with ``c = share * interval_cost``
and ``U`` the device utilization fraction::

    busy_usd  += c * U
    waste_usd += c * (1 - U)          (all of c when U is not reported: no busy time is claimed without evidence)

and the interval's waste goes to the one reason :func:`gputab.cost.diagnosis.diagnose` finds, so a job's reasons sum
to its ``waste_usd`` and ``busy_usd + waste_usd`` is its cost. ``(idle)`` is waste that nobody holds (reason
``idle``), ``(unobserved)`` money paid for time nobody saw (reason ``unobserved``). Beside the split, where the
hardware reports them: ``tensor_active_usd = sum(c * tensor_util)`` and, per throttle reason,
``throttled_usd = sum(c * throttled_seconds / dt)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from gputab.config.settings import WasteConfig
from gputab.cost.buckets import IDLE, IDLE_REASON, UNOBSERVED_REASON
from gputab.cost.diagnosis import (
    Diagnosis,
    JobOnGpu,
    diagnose,
    is_small,
)
from gputab.sampling.snapshot import THROTTLE_REASONS, CpuSample, GpuSample, Snapshot

IDLE_DIAGNOSIS = Diagnosis(IDLE_REASON, "no process held the GPU")
UNOBSERVED_DIAGNOSIS = Diagnosis(UNOBSERVED_REASON, "the recorder could not see this time (a gap or a lost GPU)")


def config_for(backend: object, config: WasteConfig) -> WasteConfig:
    """The thresholds in force for ``backend``: the config's, unless the backend adjusts them (the demo box
    compresses time, see ``DemoBackend.waste_config``)."""
    adjust = getattr(backend, "waste_config", None)
    return adjust(config) if callable(adjust) else config


def split_cost(cost: float, utilization: float | None) -> tuple[float, float]:
    """``(busy, waste)`` of ``cost`` at device utilization fraction ``utilization`` (None: all waste).

    ``waste`` is computed as ``cost - busy`` so the two add up to ``cost`` exactly as floats go.
    """
    if utilization is None:
        return 0.0, cost
    busy = cost * min(1.0, max(0.0, utilization))
    return busy, cost - busy


@dataclass
class WasteTotals:
    """Running waste figures of one job; ``to_json`` keys join ``JobTotals.to_json()``."""

    busy_usd: float = 0.0
    waste_usd: float = 0.0
    by_reason: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    """Reason -> the latest evidence line that claimed it."""
    tensor_active_usd: float | None = None
    """None until a GPU the job held reported tensor activity."""
    throttled_usd: dict[str, float] | None = None
    """None until a GPU the job held reported its clock event reasons."""
    throttled_seconds: dict[str, float] | None = None
    """Share-weighted GPU-seconds under each throttle reason."""

    def charge(
        self,
        cost: float,
        utilization: float | None,
        diagnosis: Diagnosis,
        dt: float = 0.0,
        tensor_pct: float | None = None,
        throttle_seconds: Mapping[str, float] | None = None,
        share: float = 1.0,
    ) -> None:
        """Add one interval's ``cost`` (already the job's part) split by ``utilization``, its waste to
        ``diagnosis.reason``; ``dt`` is the interval's length (for the throttled fraction)."""
        busy, waste = split_cost(cost, utilization)
        self.busy_usd += busy
        self.waste_usd += waste
        if waste > 0:
            self.by_reason[diagnosis.reason] = self.by_reason.get(diagnosis.reason, 0.0) + waste
            self.evidence[diagnosis.reason] = diagnosis.evidence
        if tensor_pct is not None:
            self.tensor_active_usd = (self.tensor_active_usd or 0.0) + cost * tensor_pct / 100.0
        if throttle_seconds is not None and dt > 0:
            usd = self.throttled_usd if self.throttled_usd is not None else dict.fromkeys(THROTTLE_REASONS, 0.0)
            secs = (
                self.throttled_seconds if self.throttled_seconds is not None else dict.fromkeys(THROTTLE_REASONS, 0.0)
            )
            for reason, s in throttle_seconds.items():
                frac = min(1.0, max(0.0, s / dt))
                usd[reason] = usd.get(reason, 0.0) + cost * frac
                secs[reason] = secs.get(reason, 0.0) + share * min(s, dt)
            self.throttled_usd, self.throttled_seconds = usd, secs

    @property
    def top_reason(self) -> str | None:
        """The reason with the most waste (None without waste)."""
        best = max(self.by_reason.items(), key=lambda kv: (kv[1], kv[0]), default=None)
        return best[0] if best is not None and best[1] > 0 else None

    def to_json(self, cost_usd: float) -> dict:
        top = self.top_reason
        return {
            "busy_usd": self.busy_usd,
            "waste_usd": self.waste_usd,
            "waste_pct": 100.0 * self.waste_usd / cost_usd if cost_usd > 0 else None,
            "waste_by_reason": dict(sorted(self.by_reason.items(), key=lambda kv: -kv[1])),
            "waste_top_reason": top,
            "waste_evidence": self.evidence.get(top) if top else None,
            "waste_evidence_by_reason": dict(self.evidence),
            "tensor_active_usd": self.tensor_active_usd,
            "throttled_usd": self.throttled_usd,
            "throttled_seconds": self.throttled_seconds,
        }


@dataclass
class _JobGpuNow:
    """One job on one GPU in the current snapshot (built once per tick)."""

    vram: int = 0
    pid_vram: dict[int, int] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)
    cpu: list[CpuSample] = field(default_factory=list)
    sm: float | None = 0.0
    """Sum of its processes' SM %, None if any of them did not report one."""


class WasteBook:
    """Per-tick evidence and the few durations the diagnosis needs (how long a job held memory at 0 %, how long it
    has been small), kept pure: it reads snapshots and the interval lengths the ledger gives it.

    Args:
        config: thresholds of the diagnosis.
    """

    def __init__(self, config: WasteConfig | None = None) -> None:
        self.config = config or WasteConfig()
        self._now: dict[int, dict[str, _JobGpuNow]] = {}
        self._gpu_count: dict[str, int] = {}
        self._zero: dict[tuple[str, int], float] = {}
        self._small: dict[tuple[str, int], float] = {}

    def begin_tick(self, snap: Snapshot, tags: Mapping[int, str]) -> None:
        """Group the snapshot's processes by GPU and job, with their memory and CPU side."""
        cpu = {c.pid: c for c in snap.cpu}
        now: dict[int, dict[str, _JobGpuNow]] = {}
        for p in snap.processes:
            tag = tags.get(p.pid) or f"untagged:?/pid{p.pid}"
            j = now.setdefault(p.gpu_index, {}).setdefault(tag, _JobGpuNow())
            j.vram += p.used_memory_bytes or 0
            j.pid_vram[p.pid] = j.pid_vram.get(p.pid, 0) + (p.used_memory_bytes or 0)
            j.sm = None if j.sm is None or p.sm_pct is None else j.sm + p.sm_pct
            if p.pid not in j.pids:
                j.pids.append(p.pid)
                if p.pid in cpu:
                    j.cpu.append(cpu[p.pid])
        self._now = now
        counts: dict[str, int] = {}
        for jobs in now.values():
            for tag in jobs:
                counts[tag] = counts.get(tag, 0) + 1
        self._gpu_count = counts
        # Durations of jobs no longer on a GPU end: a job that returns starts counting again.
        live = {(tag, g) for g, jobs in now.items() for tag in jobs}
        self._zero = {k: v for k, v in self._zero.items() if k in live}
        self._small = {k: v for k, v in self._small.items() if k in live}

    def evidence(self, tag: str, gpu: GpuSample, dt: float) -> JobOnGpu:
        """What ``tag`` did on ``gpu`` over the interval of length ``dt`` that ends now; advances its durations."""
        on_gpu = self._now.get(gpu.index, {})
        j = on_gpu.get(tag) or _JobGpuNow()
        key = (tag, gpu.index)
        zero = self._zero.get(key, 0.0) + dt if gpu.utilization_pct == 0 and j.vram else 0.0
        self._zero[key] = zero
        rates = [c for c in j.cpu if c.cpu_pct is not None]
        busiest = max(
            (c for c in rates if c.busiest_cpu_pct is not None),
            key=lambda c: (c.busiest_runnable_pct or 0.0, c.busiest_cpu_pct or 0.0),
            default=None,
        )
        waits = [c.iowait_pct for c in j.cpu if c.iowait_pct is not None]
        dead = [c.pid for c in j.cpu if c.alive is False and j.pid_vram.get(c.pid)]
        ev = JobOnGpu(
            gpu=gpu,
            vram_bytes=j.vram,
            pids=tuple(j.pids),
            gpu_count=self._gpu_count.get(tag, 1),
            job_sm_pct=j.sm if len(on_gpu) > 1 else None,
            cpu_pct=sum(c.cpu_pct or 0.0 for c in rates) if rates else None,
            cores=max((c.cores for c in j.cpu if c.cores), default=None),
            busiest_pid=busiest.busiest_pid if busiest else None,
            busiest_cpu_pct=busiest.busiest_cpu_pct if busiest else None,
            busiest_runnable_pct=busiest.busiest_runnable_pct if busiest else None,
            iowait_pct=max(waits) if waits else None,
            dead_pids=tuple(dead),
            dead_vram_bytes=sum(j.pid_vram.get(pid, 0) for pid in dead),
            zero_util_seconds=zero,
        )
        if not is_small(ev, self.config):  # the usual case: no second object
            self._small[key] = 0.0
            return ev
        small = self._small[key] = self._small.get(key, 0.0) + dt
        return replace(ev, small_seconds=small)

    def diagnose(self, tag: str, gpu: GpuSample, dt: float) -> Diagnosis:
        """The reason for ``tag``'s waste on ``gpu`` over this interval (``idle`` for the ``(idle)`` bucket)."""
        if tag == IDLE:
            return IDLE_DIAGNOSIS
        return diagnose(self.evidence(tag, gpu, dt), self.config)
