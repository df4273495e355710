"""``gputab snapshot``: one poll, as a table or as JSON."""

from __future__ import annotations

import click

from gputab.cli.context import AppContext, pass_ctx, print_json
from gputab.sampling.snapshot import GpuSample, Snapshot


def _na(v, fmt="{}") -> str:
    return "n/a" if v is None else fmt.format(v)


def gpu_json(g: GpuSample) -> dict:
    """A GPU in plain units for JSON (bytes, watts, joules, percent)."""
    d = g.to_json()
    d["energy_j"] = None if g.energy_mj is None else g.energy_mj / 1000.0
    return d


def format_table(snap: Snapshot) -> str:
    lines = [f"{'GPU':>3}  {'name':<26} {'util':>5} {'mem':>15} {'power':>13} {'temp':>5}  processes"]
    for g in snap.gpus:
        if g.lost:
            lines.append(f"{g.index:>3}  {g.name[:26]:<26} GPU lost")
            continue
        mem = ("n/a" if g.memory_used_bytes is None or g.memory_total_bytes is None
               else f"{g.memory_used_bytes / 2**30:.1f}/{g.memory_total_bytes / 2**30:.0f} GiB")
        power = f"{_na(g.power_w, '{:.0f}')}/{_na(g.power_limit_w, '{:.0f}')} W"
        pids = ",".join(str(p.pid) for p in snap.processes_on(g.index)) or "-"
        lines.append(
            f"{g.index:>3}  {g.name[:26]:<26} {_na(g.utilization_pct, '{:.0f}%'):>5} {mem:>15} {power:>13} "
            f"{_na(g.temperature_c, '{:.0f}C'):>5}  {pids}"
        )
    if not snap.gpus:
        lines.append("No GPUs found.")
    for e in snap.errors:
        lines.append(f"note: {e}")
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (gpus, processes) instead of a table.")
@pass_ctx
def snapshot(app: AppContext, as_json: bool) -> None:
    """Poll every GPU once and print what it is doing."""
    with app.open_backend() as backend:
        snap = backend.poll()
    if as_json:
        doc = snap.to_json()
        doc["gpus"] = [gpu_json(g) for g in snap.gpus]
        doc["backend"] = backend.name
        print_json(doc)
    else:
        click.echo(format_table(snap))
