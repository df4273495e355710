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


def jobs_now(snap: Snapshot, infos: dict, ledger) -> list[dict]:
    """The jobs on the box right now: tag, GPUs, processes, share of each GPU, burn rate."""
    from gputab.ledger import split_shares

    tags = {pid: i.tag for pid, i in infos.items()}
    jobs: dict[str, dict] = {}
    for g in snap.gpus:
        if g.lost:
            continue
        for tag, share in split_shares(snap.processes_on(g.index), tags).items():
            j = jobs.setdefault(tag, {"tag": tag, "gpus": [], "processes": [], "share": {},
                                      "burn_rate_usd_per_hour": ledger.jobs[tag].burn_rate_usd_per_hour})
            j["gpus"].append(g.index)
            j["share"][str(g.index)] = share
    for p in snap.processes:
        info = infos.get(p.pid)
        tag = info.tag if info else f"untagged:?/pid{p.pid}"
        if tag in jobs and p.pid not in jobs[tag]["processes"]:
            jobs[tag]["processes"].append(p.pid)
    return sorted(jobs.values(), key=lambda j: -j["burn_rate_usd_per_hour"])


def format_jobs(jobs: list[dict]) -> str:
    lines = [f"{'job':<32} {'GPUs':<8} {'$/h':>8}  processes"]
    for j in jobs:
        gpus = ",".join(map(str, j["gpus"]))
        pids = ",".join(map(str, j["processes"])) or "-"
        lines.append(f"{j['tag'][:32]:<32} {gpus:<8} {j['burn_rate_usd_per_hour']:>8.2f}  {pids}")
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (gpus, processes, jobs) instead of a table.")
@pass_ctx
def snapshot(app: AppContext, as_json: bool) -> None:
    """Poll every GPU once and print what it is doing and what each job burns ($/h)."""
    from gputab.attribution import Attributor
    from gputab.ledger import Ledger
    from gputab.pricing import PriceTable

    with app.open_backend() as backend:
        snap = backend.poll()
        infos = Attributor(backend.inspector(), app.config.attribution).attribute({p.pid for p in snap.processes})
    ledger = Ledger(PriceTable.load(app.config.prices), interval=app.config.recorder.interval)
    ledger.tick(snap, {pid: i.tag for pid, i in infos.items()})
    jobs = jobs_now(snap, infos, ledger)
    if as_json:
        doc = snap.to_json()
        doc["gpus"] = [dict(gpu_json(g), **_price_json(ledger, g.index)) for g in snap.gpus]
        doc["processes"] = [dict(p.to_json(), tag=infos[p.pid].tag if p.pid in infos else None,
                                 tag_source=infos[p.pid].source if p.pid in infos else None,
                                 user=infos[p.pid].user if p.pid in infos else None,
                                 command=infos[p.pid].cmdline if p.pid in infos else None)
                            for p in snap.processes]
        doc["jobs"] = jobs
        doc["burn_rate_usd_per_hour"] = ledger.burn_rate_usd_per_hour
        doc["backend"] = backend.name
        print_json(doc)
    else:
        click.echo(format_table(snap))
        click.echo("")
        click.echo(format_jobs(jobs))
        click.echo(f"\nBurn rate of the box: ${ledger.burn_rate_usd_per_hour:.2f}/h")


def _price_json(ledger, index: int) -> dict:
    p = ledger.gpus[index].price
    return {"model_key": p.model_key, "rate_per_hour": p.rate_per_hour, "unknown_price": p.unknown,
            "burn_rate_usd_per_hour": ledger.gpus[index].burn_rate_usd_per_hour}
