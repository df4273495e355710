"""``gputab snapshot``: one poll, as a table or as JSON."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gputab.cli.context import AppContext, pass_ctx, print_json
from gputab.money import usd_per_hour
from gputab.sampling.snapshot import GpuSample, Snapshot

if TYPE_CHECKING:
    from gputab.attribution import ProcessInfo
    from gputab.cost.ledger import Ledger


def _na(v: object, fmt: str = "{}") -> str:
    return "n/a" if v is None else fmt.format(v)


def gpu_json(g: GpuSample) -> dict:
    """A GPU in plain units for JSON (bytes, watts, joules, percent)."""
    d = g.to_json()
    d["energy_j"] = None if g.energy_mj is None else g.energy_mj / 1000.0  # published as energy_joules
    return d


def format_table(snap: Snapshot) -> str:
    lines = [f"{'GPU':>3}  {'name':<26} {'util':>5} {'mem':>15} {'power':>13} {'temp':>5}  processes"]
    for g in snap.gpus:
        if g.lost:
            lines.append(
                f"{g.index:>3}  {g.name[:26]:<26} " + (f"not read: {g.unobserved}" if g.unobserved else "GPU lost")
            )
            continue
        mem = (
            "n/a"
            if g.memory_used_bytes is None or g.memory_total_bytes is None
            else f"{g.memory_used_bytes / 2**30:.1f}/{g.memory_total_bytes / 2**30:.0f} GiB"
        )
        power = f"{_na(g.power_w, '{:.0f}')}/{_na(g.power_limit_w, '{:.0f}')} W"
        pids = ",".join(str(p.pid) for p in snap.processes_on(g.index)) or "-"
        lines.append(
            f"{g.index:>3}  {g.name[:26]:<26} {_na(g.utilization_pct, '{:.0f}%'):>5} {mem:>15} {power:>13} "
            f"{_na(g.temperature_c, '{:.0f}C'):>5}  {pids}"
        )
        for m in g.mig or ():  # each MIG instance under its GPU, with the processes found on it
            on = [
                p.pid
                for p in snap.processes_on(g.index)
                if (p.gpu_instance_id, p.compute_instance_id) == (m.gpu_instance_id, m.compute_instance_id)
            ]
            mem = (
                "n/a"
                if m.memory_used_bytes is None or not m.memory_total_bytes
                else (f"{m.memory_used_bytes / 2**30:.1f}/{m.memory_total_bytes / 2**30:.1f} GiB")
            )
            lines.append(
                f"{'':>3}  {'MIG ' + (m.profile or '?') + f' GI {m.gpu_instance_id}/CI {m.compute_instance_id}':<26} "
                f"{_na(m.sm_active_pct, '{:.0f}%'):>5} {mem:>15} {f'{m.slices}/{g.mig_slices} slices':>13} {'':>5}  "
                f"{','.join(map(str, on)) or '-'}"
            )
    if not snap.gpus:
        lines.append("No GPUs found.")
    for e in snap.errors:
        lines.append(f"note: {e}")
    return "\n".join(lines)


WASTE_KEYS = (
    "busy_usd",
    "waste_usd",
    "waste_pct",
    "waste_by_reason",
    "waste_top_reason",
    "waste_evidence",
    "tensor_active_usd",
    "throttled_usd",
)
"""What ``snapshot --json`` tells of each job's waste over the sampled interval (keys as in ``gputab show``)."""


def jobs_now(snap: Snapshot, infos: Mapping[int, ProcessInfo], ledger: Ledger) -> list[dict[str, Any]]:
    """The jobs on the box right now: tag, GPUs, processes, share of each GPU (``share_pct``, beside ``gpus``),
    burn rate, and where the dollars of the sampled interval went (``WASTE_KEYS``)."""
    from gputab.cost.ledger import gpu_shares

    tags = {pid: i.tag for pid, i in infos.items()}
    jobs: dict[str, dict] = {}
    for g in snap.gpus:
        if g.lost:
            continue
        for tag, share in gpu_shares(g, snap.processes_on(g.index), tags).items():
            if tag not in jobs:
                totals = ledger.jobs[tag]
                waste = totals.to_json()
                jobs[tag] = {
                    "tag": tag,
                    "gpus": [],
                    "processes": [],
                    "share_pct": [],
                    "burn_rate_usd_per_hour": totals.burn_rate_usd_per_hour,
                    "cost_usd": totals.cost_usd,
                    "unknown_price": totals.unknown_price,
                    **{k: waste[k] for k in WASTE_KEYS},
                }
            j = jobs[tag]
            # Held a GPU priced at the default rate: flagged even by one poll, before any interval was charged.
            j["unknown_price"] = j["unknown_price"] or ledger.gpus[g.index].price.unknown
            j["gpus"].append(g.index)
            j["share_pct"].append(100.0 * share)
    for p in snap.processes:
        info = infos.get(p.pid)
        tag = info.tag if info else f"untagged:?/pid{p.pid}"
        if tag in jobs and p.pid not in jobs[tag]["processes"]:
            jobs[tag]["processes"].append(p.pid)
    return sorted(jobs.values(), key=lambda j: -j["burn_rate_usd_per_hour"])


FORECAST_KEYS = (
    "forecast_state",
    "progress_fraction",
    "eta_seconds",
    "eta_at",
    "projected_cost_usd",
    "projected_cost_low_usd",
    "projected_cost_high_usd",
)
"""What ``snapshot --json`` tells of each job's forecast (docs/forecast.md): the live recorder's, read from its
session; ``forecast_state`` is ``no_recorder`` when no recorder runs (nothing reads the progress reports then)."""


def live_forecasts(db_path: Path | None) -> dict[str, dict[str, Any]] | None:
    """Tag -> the forecast keys of the session a live recorder writes to ``db_path``; None when none runs."""
    from gputab.errors import GputabError
    from gputab.store import Store

    if db_path is None:
        return None
    try:
        with Store.open(db_path, readonly=True) as store:
            sid = store.live_session_id()
            if sid is None:
                return None
            return {j["tag"]: {k: j.get(k) for k in FORECAST_KEYS} for j in store.jobs(sid)}
    except (GputabError, OSError):
        return None


def add_forecasts(jobs: list[dict], forecasts: dict[str, dict] | None) -> None:
    """Give each job of the snapshot its forecast keys (nulls where the recorder has none)."""
    empty = dict.fromkeys(FORECAST_KEYS)
    for j in jobs:
        fc = (forecasts or {}).get(j["tag"])
        j.update(fc or {**empty, "forecast_state": "unknown" if forecasts is not None else "no_recorder"})


UNKNOWN_PRICE_NOTE = "* ran on a GPU priced at the default rate (model not in the price table)"
"""The footnote of the ``*`` after a job's $/h (the same words as ``gputab show``)."""


def format_jobs(jobs: list[dict]) -> str:
    lines = [f"{'job':<32} {'GPUs':<8} {'$/h':>8} {'waste':>6}  processes"]
    for j in jobs:
        gpus = ",".join(map(str, j["gpus"]))
        pids = ",".join(map(str, j["processes"])) or "-"
        waste = "-" if j.get("waste_pct") is None else f"{j['waste_pct']:.0f}%"
        flag = "*" if j.get("unknown_price") else " "
        lines.append(f"{j['tag'][:32]:<32} {gpus:<8} {j['burn_rate_usd_per_hour']:>8.2f}{flag}{waste:>6}  {pids}")
        if j.get("waste_top_reason"):
            lines.append(f"    {j['waste_top_reason']}: {j['waste_evidence']}")
    if any(j.get("unknown_price") for j in jobs):
        lines.append(UNKNOWN_PRICE_NOTE)
    return "\n".join(lines)


@click.command()
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON (schema_version, taken_at, gpus, processes, cpu, "
    "jobs, burn_rate_usd_per_hour...) instead of a table; keys in docs/json.md.",
)
@click.option(
    "--over",
    type=click.FloatRange(0, 60),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Poll twice this many seconds apart, so GPU activity (NVML GPM), CPU rates and each job's "
    "waste and its likely reason are measured over that interval (0: one poll, no waste figures).",
)
@pass_ctx
def snapshot(app: AppContext, as_json: bool, over: float) -> None:
    """Poll every GPU and print what it is doing, what each job burns ($/h), and what part of it is wasted and
    why."""
    from gputab.attribution import Attributor
    from gputab.cost.ledger import Ledger
    from gputab.cost.pricing import PriceTable
    from gputab.cost.waste import config_for

    clock = None
    if app.demo:  # the demo box runs on a clock this command advances: instant and the same every time
        from gputab.sampling.demo import FakeClock

        clock = FakeClock(start=time.monotonic(), wall_start=time.time())
    with app.open_backend(**({"clock": clock, "wall_clock": clock.wall} if clock else {})) as backend:
        attributor = Attributor(backend.inspector(), app.config.attribution)
        ledger = Ledger(
            PriceTable.load(app.config.prices), interval=max(over, 0.05), waste=config_for(backend, app.config.waste)
        )
        for i in range(2 if over > 0 else 1):
            if i:
                clock.advance(over) if clock else time.sleep(over)
            snap = backend.poll()
            infos = attributor.attribute({p.pid for p in snap.processes})
            ledger.tick(snap, {pid: info.tag for pid, info in infos.items()})
    jobs = jobs_now(snap, infos, ledger)
    if as_json:
        doc = snap.to_json()
        doc["gpus"] = [dict(gpu_json(g), **_price_json(ledger, g)) for g in snap.gpus]
        doc["processes"] = [
            dict(
                p.to_json(),
                tag=infos[p.pid].tag if p.pid in infos else None,
                tag_source=infos[p.pid].source if p.pid in infos else None,
                user=infos[p.pid].user if p.pid in infos else None,
                command=infos[p.pid].cmdline if p.pid in infos else None,
            )
            for p in snap.processes
        ]
        add_forecasts(jobs, None if app.demo else live_forecasts(app.db_path))
        doc["jobs"] = jobs
        doc["burn_rate_usd_per_hour"] = ledger.burn_rate_usd_per_hour
        doc["backend"] = backend.name
        print_json(doc)
    else:
        click.echo(format_table(snap))
        click.echo("")
        click.echo(format_jobs(jobs))
        click.echo(f"\nBurn rate of the box: {usd_per_hour(ledger.burn_rate_usd_per_hour)}")
        for note in snap.host_notes:
            click.echo(f"gputab: {note}", err=True)


def _price_json(ledger: Ledger, g: GpuSample) -> dict[str, Any]:
    from gputab.cost.pricing import mig_rate_per_hour

    p = ledger.gpus[g.index].price
    out: dict[str, Any] = {
        "model_key": p.model_key,
        "rate_usd_per_hour": p.rate_per_hour,
        "unknown_price": p.unknown,
        "burn_rate_usd_per_hour": ledger.gpus[g.index].burn_rate_usd_per_hour,
    }
    if g.mig is not None and g.mig_slices:  # each MIG instance is priced as a device
        out["mig"] = [
            dict(asdict(m), label=m.label, rate_usd_per_hour=mig_rate_per_hour(p.rate_per_hour, m.slices, g.mig_slices))
            for m in g.mig
        ]
    return out
