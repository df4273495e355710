"""How the TUI writes one MIG instance: a line under its GPU, in the live GPU view and the review's session.

The profile comes from the driver (outside text), so every line is built with :func:`gputab.tui.literal.literal`.
What matters comes first (instance, profile, slices of the GPU, $/h, cost), so a line cut to a narrow screen loses
its SM activity and memory, never its money.
"""

from __future__ import annotations

from rich.text import Text

from gputab.tui.format import gib, money, pct, rate
from gputab.tui.literal import literal


def instance_line(
    profile: str,
    gpu_instance_id: int,
    compute_instance_id: int,
    slices: int,
    parent_slices: int | None,
    rate_per_hour: float | None,
    sm_active_pct: float | None,
    memory_used_bytes: int | None,
    memory_total_bytes: int | None,
    cost_usd: float | None = None,
    jobs: str = "",
) -> Text:
    """``MIG 3g.40gb GI 2/CI 0  3/7  $2.04/h  [cost $0.0123]  SM 64%  34.1G/39.5G  [jobs]``.

    ``3/7``: its compute slices of the GPU's (``3 slices`` only where the GPU's are not known).
    """
    share = f"{slices}/{parent_slices}" if parent_slices else f"{slices} slices"
    parts = [f"MIG {profile or '?':<10} GI {gpu_instance_id}/CI {compute_instance_id}", share, rate(rate_per_hour)]
    if cost_usd is not None:
        parts.append(f"cost {money(cost_usd)}")
    parts += [f"SM {pct(sm_active_pct)}", f"{gib(memory_used_bytes)}/{gib(memory_total_bytes)}"]
    if jobs:
        parts.append(jobs)
    return literal("  ".join(parts))


def stored_lines(gpu: dict) -> list[Text]:
    """One line per MIG instance of a stored GPU (``gputab show``'s ``gpus[].mig``), under a ``GPU n`` line; the
    slices as ``3/7``, like the live view's (the GPU's slices recovered from the stored rates)."""
    insts = gpu.get("mig") or ()
    if not insts:
        return []
    from gputab.store.mig import parent_slices  # the review's: the live view does not load the store

    out = [literal(f"GPU {gpu['index']} in MIG mode: {len(insts)} instances")]
    for m in insts:
        util = m.get("avg_utilization")
        out.append(
            Text("  ")
            + instance_line(
                m.get("profile") or "",
                m["gpu_instance_id"],
                m["compute_instance_id"],
                m["slices"],
                parent_slices(gpu, m),
                m.get("rate_per_hour"),
                None if util is None else util * 100.0,
                m.get("peak_memory_used_bytes"),
                m.get("memory_total_bytes"),
                cost_usd=m.get("cost_usd"),
            )
        )
    return out
