"""SM shares the live views show: a job's own SM share now, and each process's SM %, as the driver reports it or,
on a MIG instance (where it reports none), the process's part of its instance's SM activity (GPM). Pure: the jobs
table, the processes table and the charts' history all read the same figures from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gputab.live.frame import GpuView, ProcessView
    from gputab.sampling.snapshot import MigSample


def own_sm_share(processes: Sequence[ProcessView], gpus: Iterable[GpuView] = ()) -> dict[str, float]:
    """Each tag's own SM share now, in %: its processes' SM % summed per device, averaged over the devices it holds.

    A device is a GPU, or a MIG instance of one (``gpus``: the frame's GpuViews, for their instances). The driver
    reports no per-process utilization on MIG; there the instance's own SM activity (GPM) is the job's when it is
    the instance's only job, else shared by the processes' memory, then equally (docs/cost-model.md, "MIG instances").
    A device none of whose processes report SM % does not count (the share is then unknown, not 0).
    """
    instances = instances_by_key(gpus)
    per_device: dict[str, dict[tuple, float]] = {}
    for p, sm in process_sm(processes, instances):
        if p.tag is None or sm is None:
            continue
        devices = per_device.setdefault(p.tag, {})
        device = (p.gpu_index, p.gpu_instance_id, p.compute_instance_id)
        devices[device] = devices.get(device, 0.0) + sm
    return {tag: min(100.0, sum(d.values()) / len(d)) for tag, d in per_device.items() if d}


def instances_by_key(gpus: Iterable[GpuView]) -> dict[tuple[int, int | None, int | None], MigSample]:
    """The frame's MIG instances by (GPU index, GPU instance id, compute instance id), as processes name theirs."""
    return {(g.index, m.gpu_instance_id, m.compute_instance_id): m for g in gpus for m in g.mig}


def process_sm(
    processes: Sequence[ProcessView], instances: Mapping[tuple[int, int | None, int | None], MigSample]
) -> list[tuple[ProcessView, float | None]]:
    """(process, its SM % or None): as reported, or its part of its MIG instance's SM activity (the processes
    view marks this one as derived; ``instances``: (GPU index, GPU instance id, compute instance id) -> MigSample)."""
    on_instance: dict[tuple[int, int | None, int | None], list[ProcessView]] = {}
    for p in processes:
        if p.sm_pct is None and p.gpu_instance_id is not None:
            on_instance.setdefault((p.gpu_index, p.gpu_instance_id, p.compute_instance_id), []).append(p)
    share: dict[int, float] = {}
    for key, procs in on_instance.items():
        mig = instances.get(key)
        if mig is None or mig.sm_active_pct is None:
            continue
        memory = [p.used_memory_bytes or 0 for p in procs]
        total = sum(memory)
        if len({p.tag for p in procs}) == 1:
            weights = [1.0 / len(procs)] * len(procs)  # the instance's only job: all of its activity
        elif total > 0 and all(p.used_memory_bytes is not None for p in procs):
            weights = [m / total for m in memory]
        else:
            weights = [1.0 / len(procs)] * len(procs)
        for p, w in zip(procs, weights, strict=True):
            share[id(p)] = mig.sm_active_pct * w
    return [(p, p.sm_pct if p.sm_pct is not None else share.get(id(p))) for p in processes]
