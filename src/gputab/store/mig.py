"""MIG instances in the database: each instance's session totals (table ``mig_instances``, ``m009_mig``).

The recorder hands each GPU's instances (``GpuTotals.mig_json()``) with the GPU totals; the writer upserts them in
the same transaction, so an instance's cost is always as current as its GPU's. Readers tolerate a database
recorded before MIG was stored (no table): every GPU then reads as having no instances.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from gputab.store.connection import Connection

TABLE = "mig_instances"
COLUMNS = (
    "profile",
    "slices",
    "memory_total_bytes",
    "peak_memory_used_bytes",
    "avg_utilization",
    "gpu_hours",
    "rate_per_hour",
    "cost_usd",
)
"""Figures of one instance, after its key (session, GPU index, GPU instance id, compute instance id)."""
_KEY = ("gpu_index", "gpu_instance_id", "compute_instance_id")
_UPSERT = (
    f"INSERT INTO {TABLE} (session_id, {', '.join(_KEY)}, {', '.join(COLUMNS)}) "
    f"VALUES (?, {', '.join('?' * (len(_KEY) + len(COLUMNS)))}) "
    f"ON CONFLICT (session_id, {', '.join(_KEY)}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS)
)


def write_instances(conn: sqlite3.Connection, session_id: int, gpus: Iterable[dict]) -> None:
    """Upsert the MIG instances of ``gpus`` (dicts with a ``mig`` list, as the recorder's totals)."""
    rows = [(session_id, *(m[k] for k in _KEY), *(m.get(c) for c in COLUMNS)) for g in gpus for m in g.get("mig") or ()]
    if rows:
        conn.executemany(_UPSERT, rows)


def read_instances(db: Connection, session_id: int) -> dict[int, list[dict]]:
    """GPU index -> its MIG instances in the session (by GPU and compute instance id); empty for a database
    recorded before MIG instances were stored."""
    if not db[TABLE].exists():
        return {}
    out: dict[int, list[dict]] = {}
    for r in db.query(
        f"SELECT * FROM {TABLE} WHERE session_id = ? ORDER BY gpu_index, gpu_instance_id, compute_instance_id",
        [session_id],
    ):
        d = dict(r)
        d.pop("session_id")
        out.setdefault(d["gpu_index"], []).append(d)
    return out


def parent_slices(gpu: dict, instance: dict) -> int | None:
    """The compute slices of a stored instance's GPU (7 on an A100/H100/H200), for ``3/7``; None when unknown.

    Stored with the GPU since ``m010_mig_slices``. A session recorded between ``m009_mig`` and that has only the
    instance's own slices; its rate is the GPU's rate x slices / the GPU's slices (docs/cost-model.md, "MIG instances"),
    both written from the same price, so the GPU's slices come back as slices x the GPU's rate / the instance's
    rate. A free GPU (rate 0) or a figure that is not a whole number of slices gives None.
    """
    if gpu.get("mig_slices"):
        return int(gpu["mig_slices"])
    slices, rate, parent_rate = instance.get("slices"), instance.get("rate_per_hour"), gpu.get("rate_per_hour")
    if not slices or not rate or not parent_rate or rate <= 0 or parent_rate <= 0:
        return None
    total = slices * parent_rate / rate
    whole = round(total)
    return whole if whole >= slices and abs(total - whole) < 1e-6 * whole else None
