"""Prometheus families of MIG instances, for :class:`gputab.publish.metrics.TickCollector` (docs/real-boxes.md).

One series per GPU instance, labelled as dcgm-exporter labels its MIG series so both exporters' panels join.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

MIG_LABELS = ("gpu", "UUID", "GPU_I_ID", "GPU_I_PROFILE", "device", "modelName", "host")
"""A MIG instance's labels, spelled as dcgm-exporter spells them (``GPU_I_ID``: the GPU instance id,
``GPU_I_PROFILE``: ``3g.40gb``, ``device``: ``nvidia<gpu>``), so its MIG panels join ours; one series per GPU
instance (its compute instances summed), bounded by the GPU's slices (at most 7 per GPU). ``host`` as on every
gputab series (see :data:`gputab.publish.metrics.HOST_LABEL`)."""


def mig_families(tick: Any, hostname: str) -> Sequence[Metric]:
    """Per MIG GPU instance (docs/real-boxes.md): SM activity, memory, price, burn rate and the money charged to it.

    Its cost is the part of its GPU's ``gputab_gpu_cost_dollars_total`` that its slices hold, already counted there:
    summing both families would count it twice, so the fleet reads only the GPU families for money.
    """
    names = (
        (GaugeMetricFamily, "gputab_mig_utilization_ratio", "SM activity of the MIG GPU instance (GPM, 0-1)."),
        (GaugeMetricFamily, "gputab_mig_memory_used_bytes", "Memory in use on the MIG instance."),
        (GaugeMetricFamily, "gputab_mig_memory_total_bytes", "Memory size of the MIG instance."),
        (
            GaugeMetricFamily,
            "gputab_mig_price_dollars_per_hour",
            "The GPU's price x the instance's slices / the GPU's.",
        ),
        (GaugeMetricFamily, "gputab_mig_burn_rate_dollars_per_hour", "The GPU's burn rate x the instance's part."),
        (
            CounterMetricFamily,
            "gputab_mig_cost_dollars_total",
            "The instance's part of its GPU's cost in this session (included in gputab_gpu_cost_dollars_total).",
        ),
    )
    fams = [kind(name, doc, labels=list(MIG_LABELS)) for kind, name, doc in names]
    util, used, total, price, burn, cost = fams
    rows = {g["index"]: g for g in tick.gpus}
    for g in tick.snapshot.gpus:
        if g.lost or not g.mig or not g.mig_slices:
            continue
        row = rows.get(g.index, {})
        stored = {(m["gpu_instance_id"], m["compute_instance_id"]): m for m in row.get("mig") or ()}
        by_gi: dict[int, list] = {}
        for m in g.mig:
            by_gi.setdefault(m.gpu_instance_id, []).append(m)
        for gi, insts in sorted(by_gi.items()):
            profile = next((m.profile for m in insts if m.compute_instance_id == 0), insts[0].profile)
            labels = [str(g.index), g.uuid, str(gi), profile.split("c.", 1)[-1], f"nvidia{g.index}", g.name, hostname]
            part = sum(m.slices for m in insts) / g.mig_slices
            activity = insts[0].sm_active_pct  # GPM is per GPU instance: its compute instances share it
            if activity is not None:
                util.add_metric(labels, activity / 100.0)
            for family, values in (
                (used, [m.memory_used_bytes for m in insts]),
                (total, [m.memory_total_bytes for m in insts]),
            ):
                if all(v is not None for v in values):
                    family.add_metric(labels, float(sum(values)))
            if row.get("rate_per_hour") is not None:
                price.add_metric(labels, float(row["rate_per_hour"]) * part)
            if row.get("burn_rate_usd_per_hour") is not None:
                burn.add_metric(labels, float(row["burn_rate_usd_per_hour"]) * part)
            charged = [
                stored[(m.gpu_instance_id, m.compute_instance_id)]
                for m in insts
                if (m.gpu_instance_id, m.compute_instance_id) in stored
            ]
            if charged:
                cost.add_metric(labels, sum(float(m["cost_usd"]) for m in charged))
    return fams
