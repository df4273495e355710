"""The recorder's series: ticks accumulated into one step, then written as one chart point per GPU and job.

Totals are exact in the ledger; the series is for charts (and for pro-rating spend by day). A step's figures are
time-weighted over the ticks in it: utilization and power where known, the peaks of memory, temperature and VRAM.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gputab.cost.ledger import GpuInterval, Ledger
from gputab.sampling.snapshot import Snapshot
from gputab.store import SessionWriter


@dataclass
class _GpuAcc:
    dt: float = 0.0
    util_dt: float = 0.0
    util_known_dt: float = 0.0
    power_dt: float = 0.0
    power_known_dt: float = 0.0
    mem_max: int | None = None
    temp_max: float | None = None
    energy_j: float = 0.0
    cost: float = 0.0


@dataclass
class _JobAcc:
    gpu_s: float = 0.0
    eff_s: float = 0.0
    eff_known: bool = False
    vram_max: int | None = None


@dataclass
class SeriesStep:
    """Accumulates one series step; totals are exact in the ledger, the series is for charts."""

    start_mono: float
    step_start: float
    gpus: dict[int, _GpuAcc] = field(default_factory=dict)
    jobs: dict[str, _JobAcc] = field(default_factory=dict)
    last_cost: dict[str, float] = field(default_factory=dict)

    def add(self, snap: Snapshot, intervals: Iterable[GpuInterval], tags: Mapping[int, str]) -> None:
        gpu_by_index = {g.index: g for g in snap.gpus}
        for iv in intervals:
            a = self.gpus.setdefault(iv.gpu_index, _GpuAcc())
            g = gpu_by_index.get(iv.gpu_index)
            a.dt += iv.dt
            a.energy_j += iv.energy_j
            a.cost += iv.cost
            if iv.utilization is not None:
                a.util_dt += iv.utilization * iv.dt
                a.util_known_dt += iv.dt
            if g is not None and g.power_w is not None:
                a.power_dt += g.power_w * iv.dt
                a.power_known_dt += iv.dt
            if g is not None and g.memory_used_bytes is not None:
                a.mem_max = max(a.mem_max or 0, g.memory_used_bytes)
            if g is not None and g.temperature_c is not None:
                a.temp_max = max(a.temp_max if a.temp_max is not None else -1e9, g.temperature_c)
            for tag, share in iv.shares.items():
                j = self.jobs.setdefault(tag, _JobAcc())
                j.gpu_s += share * iv.dt
                util = iv.tag_utilization.get(tag, iv.utilization)  # on MIG: its own instances'
                if util is not None:
                    j.eff_s += share * iv.dt * util
                    j.eff_known = True
        vram: dict[str, int] = {}
        for p in snap.processes:
            if p.used_memory_bytes:
                tag = tags.get(p.pid) or f"untagged:?/pid{p.pid}"
                vram[tag] = vram.get(tag, 0) + p.used_memory_bytes
        for tag, v in vram.items():
            j = self.jobs.setdefault(tag, _JobAcc())
            j.vram_max = max(j.vram_max or 0, v)

    def emit(self, mono: float, writer: SessionWriter, ledger: Ledger) -> None:
        """Write the step ending at ``mono`` into the writer's buffers and start the next one."""
        t_ms = int(round((mono - self.start_mono) * 1000))
        dt_ms = int(round((mono - self.step_start) * 1000))
        for index, a in sorted(self.gpus.items()):
            writer.add_gpu_sample(
                index,
                t_ms,
                dt_ms,
                a.util_dt / a.util_known_dt if a.util_known_dt else None,
                a.mem_max,
                a.power_dt / a.power_known_dt if a.power_known_dt else None,
                a.temp_max,
                a.energy_j,
                a.cost,
            )
        for tag, job in ledger.jobs.items():
            acc = self.jobs.get(tag)
            if acc is None and self.last_cost.get(tag) == job.cost_usd:
                continue  # neither ran nor was charged in this step
            acc = acc or _JobAcc()
            writer.add_job_sample(
                tag,
                t_ms,
                job.cost_usd,
                acc.gpu_s,
                acc.eff_s if acc.eff_known else None,
                acc.vram_max,
                job.burn_rate_usd_per_hour,
            )
            self.last_cost[tag] = job.cost_usd
        self.gpus.clear()
        self.jobs.clear()
        self.step_start = mono
