"""``gputab sessions`` and ``gputab show``: the recorded sessions and what each job cost in one."""

from __future__ import annotations

import click

from gputab.cli.context import AppContext, pass_ctx, print_json


def open_store(app: AppContext):
    """The database for reading; opening it also closes sessions whose recorder died (``crashed``)."""
    from gputab.store import Store

    return Store.open(app.db_path, create=False)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _money(v: float | None) -> str:
    return "-" if v is None else (f"${v:,.2f}" if abs(v) >= 1 else f"${v:.4f}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@pass_ctx
def sessions(app: AppContext, as_json: bool) -> None:
    """List recorded sessions: id, host, start and end (UTC), end reason, duration, total cost."""
    from gputab.store import NoDatabase

    try:
        store = open_store(app)
    except NoDatabase:
        if as_json:
            print_json([])
        else:
            click.echo(f"No sessions yet in {app.db_path}; record one with `gputab record`.")
        return
    with store:
        rows = store.sessions()
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo(f"No sessions yet in {app.db_path}; record one with `gputab record`.")
        return
    click.echo(f"{'id':>4}  {'host':<14} {'start (UTC)':<20} {'end (UTC)':<20} {'reason':<9} {'duration':>8} "
               f"{'cost':>10}")
    for r in rows:
        click.echo(f"{r['id']:>4}  {(r['host'] or '?')[:14]:<14} {r['start'] or '-':<20} {r['end'] or '-':<20} "
                   f"{r['end_reason'] or '-':<9} {_duration(r['duration_s']):>8} {_money(r['cost_usd']):>10}")


@click.command()
@click.argument("session", default="last")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (session, jobs, gpus, total_cost_usd).")
@pass_ctx
def show(app: AppContext, session: str, as_json: bool) -> None:
    """Show what each job cost in SESSION (an id, or `last`), with the (idle) and (unobserved) rows."""
    with open_store(app) as store:
        sid = store.resolve_session(session)
        info = store.session(sid)
        jobs = store.jobs(sid)
        gpus = store.gpus(sid)
    info.pop("prices", None) if not as_json else None
    if as_json:
        print_json({"session": info, "jobs": jobs, "gpus": gpus, "total_cost_usd": info["cost_usd"]})
        return
    state = info["end_reason"] or "open"
    click.echo(f"Session {sid} on {info['host']}: {info['start']} -> {info['end'] or 'now'} ({state}), "
               f"{_duration(info['duration_s'])}, {len(gpus)} GPUs")
    click.echo(f"{'job':<32} {'cost':>10} {'GPU-h':>8} {'util':>5} {'kWh':>7} {'samples':>10} {'$/sample':>10}")
    for j in jobs:
        util = "-" if j["avg_utilization"] is None else f"{j['avg_utilization'] * 100:.0f}%"
        samples = "-" if j["samples"] is None else f"{j['samples']:,}"
        per = "-" if j["cost_per_sample_usd"] is None else f"${j['cost_per_sample_usd']:.6f}"
        click.echo(f"{j['tag'][:32]:<32} {_money(j['cost_usd']):>10} {j['gpu_hours'] or 0:>8.3f} {util:>5} "
                   f"{j['energy_kwh'] or 0:>7.3f} {samples:>10} {per:>10}")
    click.echo(f"{'total':<32} {_money(info['cost_usd']):>10}")
    unknown = [g for g in gpus if g["unknown_price"]]
    if unknown:
        click.echo("note: GPU " + ", ".join(str(g["index"]) for g in unknown)
                   + " priced at the default rate (model not in the price table)")


def register(cli: click.Group) -> None:
    cli.add_command(sessions)
    cli.add_command(show)
