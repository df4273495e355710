"""Who pays for a GPU: each tag's share of one physical GPU in one tick (docs/cost-model.md).

Off MIG, the processes on a GPU split it by SM %, else used memory, else equally. In MIG mode each instance is a
device priced by its compute slices ("MIG instances"), split among the processes found on it by their GPU and
compute instance ids; free slices and empty instances are ``(idle)``. Pure: the ledger calls these every tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gputab.cost.buckets import IDLE, SPECIAL_TAGS, UNOBSERVED
from gputab.cost.pricing import mig_fraction
from gputab.sampling.snapshot import GpuSample, MigSample, ProcessSample

__all__ = [
    "IDLE",
    "SPECIAL_TAGS",
    "UNOBSERVED",
    "MigTotals",
    "all_idle",
    "instance_names",
    "charge_instances",
    "gpu_shares",
    "mig_utilization",
    "split_shares",
]


def split_shares(processes: Iterable[ProcessSample], tags: Mapping[int, str]) -> dict[str, float]:
    """Share of one GPU per tag, summing to 1: by SM %, else by used memory, else equally; ``(idle)`` if empty.

    Cost follows allocation: a process holding the GPU blocks everyone else, so even a process at 0 % SM pays.
    """
    procs = list(processes)
    if not procs:
        return {IDLE: 1.0}
    sms = [p.sm_pct or 0.0 for p in procs]
    total = sum(sms)
    if total > 0:
        weights = [s / total for s in sms]
    else:
        mems = [p.used_memory_bytes for p in procs]
        mem_total = sum(m for m in mems if m)
        if mem_total > 0 and all(m is not None for m in mems):
            weights = [(m or 0) / mem_total for m in mems]  # all known: checked just above
        else:
            weights = [1.0 / len(procs)] * len(procs)
    shares: dict[str, float] = {}
    for p, w in zip(procs, weights):
        tag = tags.get(p.pid) or f"untagged:?/pid{p.pid}"
        shares[tag] = shares.get(tag, 0.0) + w
    return shares


def _mig_parts(
    gpu: GpuSample, processes: Iterable[ProcessSample], tags: Mapping[int, str]
) -> list[tuple[float, float | None, dict[str, float]]]:
    """``(fraction of the GPU, SM activity fraction or None, shares of that part per tag)`` of each MIG instance,
    then of the slices no instance holds (activity 0 where every instance reports its own, else None)."""
    assert gpu.mig is not None and gpu.mig_slices
    by_instance: dict[tuple[int | None, int | None], list[ProcessSample]] = {}
    for p in processes:
        by_instance.setdefault((p.gpu_instance_id, p.compute_instance_id), []).append(p)
    parts: list[tuple[float, float | None, dict[str, float]]] = []
    held = 0.0
    for inst in gpu.mig:
        f = mig_fraction(inst.slices, gpu.mig_slices)
        held += f
        active = None if inst.sm_active_pct is None else inst.sm_active_pct / 100.0
        procs = by_instance.pop((inst.gpu_instance_id, inst.compute_instance_id), ())
        parts.append((f, active, split_shares(procs, tags)))
    free = max(0.0, 1.0 - held)
    if free > 0:
        strays = [p for procs in by_instance.values() for p in procs]
        known = all(part[1] is not None for part in parts)
        parts.append((free, 0.0 if known else None, split_shares(strays, tags)))
    return parts


def instance_names(gpu: GpuSample, processes: Iterable[ProcessSample], tags: Mapping[int, str]) -> set[tuple[str, str]]:
    """``(tag, "4:3g.40gb")`` (GPU index, the instance's profile, else its GI/CI ids) for each process on a MIG
    instance of ``gpu``: how the views say which instance a job runs on. Empty off MIG."""
    if not gpu.mig:
        return set()
    names: dict[tuple[int | None, int | None], str] = {
        (m.gpu_instance_id, m.compute_instance_id): m.profile or f"GI{m.gpu_instance_id}/CI{m.compute_instance_id}"
        for m in gpu.mig
    }
    out: set[tuple[str, str]] = set()
    for p in processes:
        name = names.get((p.gpu_instance_id, p.compute_instance_id))
        if name is not None:
            out.add((tags.get(p.pid) or f"untagged:?/pid{p.pid}", f"{gpu.index}:{name}"))
    return out


def all_idle(shares: Mapping[str, float]) -> bool:
    """Whether no process held any of the GPU: all of it ``(idle)`` (a MIG GPU with a busy instance is not)."""
    return shares.get(IDLE, 0.0) >= 1.0 - 1e-9


def gpu_shares(gpu: GpuSample, processes: Iterable[ProcessSample], tags: Mapping[int, str]) -> dict[str, float]:
    """Share of one physical GPU per tag, summing to 1. Off MIG: :func:`split_shares`.

    In MIG mode each instance is a device worth ``its slices / the GPU's slices`` of the GPU (docs/cost-model.md, "MIG
    instances"), split among the processes found on it by their GPU and compute instance ids (by memory, then
    equally: NVML reports no per-process utilization on MIG); an instance with no process, and the slices no
    instance holds, go to ``(idle)``. A process whose ids match no instance shares the free slices.
    """
    if gpu.mig is None or not gpu.mig_slices:
        return split_shares(processes, tags)
    shares: dict[str, float] = {}
    for f, _, part in _mig_parts(gpu, processes, tags):
        for tag, w in part.items():
            shares[tag] = shares.get(tag, 0.0) + f * w
    total = sum(shares.values())
    if total > 0 and abs(total - 1.0) > 1e-12:  # more slices held than the GPU has: a driver glitch, scale
        shares = {t: w / total for t, w in shares.items()}
    return shares or {IDLE: 1.0}


def mig_utilization(
    gpu: GpuSample, processes: Iterable[ProcessSample], tags: Mapping[int, str]
) -> dict[str, float | None]:
    """Per tag on a GPU in MIG mode: the SM activity (fraction) of the instances it runs on, weighted by its
    share of each (GPM per MIG instance); None for a tag on an instance that reports none. Empty off MIG.

    This, not the GPU's, is a job's utilization for its effective GPU-hours and its busy/waste split: a job on a
    busy 1g instance is busy even when the rest of the GPU idles.
    """
    if gpu.mig is None or not gpu.mig_slices:
        return {}
    num: dict[str, float] = {}
    den: dict[str, float] = {}
    unknown: set[str] = set()
    for f, active, part in _mig_parts(gpu, processes, tags):
        for tag, w in part.items():
            den[tag] = den.get(tag, 0.0) + f * w
            if active is None:
                unknown.add(tag)
            else:
                num[tag] = num.get(tag, 0.0) + f * w * active
    return {t: None if t in unknown or d <= 0 else num.get(t, 0.0) / d for t, d in den.items()}


@dataclass
class MigTotals:
    """Running figures of one MIG instance in a session: its part of its GPU's charged cost (its slices' share
    of the rate and of the energy), its device-hours weighted the same way, and its SM activity where GPM
    reports it. The free slices' part is its GPU's ``(idle)``; the unobserved part goes to ``(unobserved)``."""

    gpu_index: int
    gpu_instance_id: int
    compute_instance_id: int
    profile: str
    slices: int
    fraction: float
    """Its part of the GPU: its compute slices / the GPU's."""
    memory_total_bytes: int | None = None
    peak_memory_used_bytes: int | None = None
    cost_usd: float = 0.0
    seconds: float = 0.0
    active_s: float = 0.0
    active_known_s: float = 0.0

    def charge(self, inst: MigSample, charged_cost: float, charged_dt: float) -> None:
        """Add one interval of the GPU: ``charged_cost`` and ``charged_dt`` are the whole GPU's charged part."""
        self.cost_usd += self.fraction * charged_cost
        self.seconds += charged_dt
        if inst.sm_active_pct is not None:
            self.active_s += inst.sm_active_pct / 100.0 * charged_dt
            self.active_known_s += charged_dt
        if inst.memory_total_bytes is not None:
            self.memory_total_bytes = inst.memory_total_bytes
        if inst.memory_used_bytes is not None:
            self.peak_memory_used_bytes = max(self.peak_memory_used_bytes or 0, inst.memory_used_bytes)

    def to_json(self, parent_rate_per_hour: float) -> dict:
        """Internal names (``avg_utilization`` 0-1); :func:`gputab.publish.document.public` makes them public."""
        return {
            "gpu_index": self.gpu_index,
            "gpu_instance_id": self.gpu_instance_id,
            "compute_instance_id": self.compute_instance_id,
            "profile": self.profile,
            "slices": self.slices,
            "memory_total_bytes": self.memory_total_bytes,
            "peak_memory_used_bytes": self.peak_memory_used_bytes,
            "avg_utilization": self.active_s / self.active_known_s if self.active_known_s > 0 else None,
            "gpu_hours": self.fraction * self.seconds / 3600.0,
            "rate_per_hour": parent_rate_per_hour * self.fraction,
            "cost_usd": self.cost_usd,
        }


def charge_instances(
    totals: dict[tuple[int, int], MigTotals], gpu: GpuSample, charged_cost: float, charged_dt: float
) -> None:
    """Charge each MIG instance of ``gpu`` its part of one interval's charged cost (nothing off MIG)."""
    if gpu.mig is None or not gpu.mig_slices:
        return
    for inst in gpu.mig:
        key = (inst.gpu_instance_id, inst.compute_instance_id)
        t = totals.get(key)
        if t is None or t.slices != inst.slices:  # new, or the GPU was re-partitioned with the same ids
            f = mig_fraction(inst.slices, gpu.mig_slices)
            t = totals[key] = MigTotals(
                gpu.index, inst.gpu_instance_id, inst.compute_instance_id, inst.profile, inst.slices, f
            )
        t.charge(inst, charged_cost, charged_dt)
