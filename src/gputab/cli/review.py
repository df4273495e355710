"""``gputab sessions`` and ``gputab show``: the recorded sessions and what each job cost in one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from gputab.cli.context import AppContext, pass_ctx, print_json
from gputab.cost.buckets import SPECIAL_TAGS
from gputab.cost.totals import reported_tokens
from gputab.money import per_sample, usd

if TYPE_CHECKING:
    from gputab.store import Store


def open_store(app: AppContext) -> Store:
    """The database for reading; opening it also closes sessions whose recorder died (``crashed``)."""
    from gputab.store import Store

    return Store.open(app.database, create=False)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _money(v: float | None) -> str:
    return "-" if v is None else usd(v)


def utf8_text(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Click callback: a filter is text; bytes that are not UTF-8 (from a shell's $'\\xff') cannot match anything
    stored, and cannot even be printed back, so they are refused in one line."""
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise click.BadParameter(f"{value.encode('utf-8', 'surrogateescape')!r} is not UTF-8 text") from None
    return value


@click.command()
@click.option(
    "--since",
    metavar="DATE",
    default=None,
    help="Only sessions running at or after DATE (2025-01-31, 2025-01-31T14:00Z, or an age: 12h, 7d).",
)
@click.option(
    "--tag", metavar="TAG", default=None, callback=utf8_text, help="Only sessions with a job TAG (a glob: 'exp-*')."
)
@click.option("--host", metavar="HOST", default=None, callback=utf8_text, help="Only sessions recorded on HOST.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON (schema_version, sessions: a list) instead of a table; keys in docs/json.md.",
)
@pass_ctx
def sessions(app: AppContext, since: str | None, tag: str | None, host: str | None, as_json: bool) -> None:
    """List recorded sessions: id, host, start and end (UTC), end reason, duration, total cost, jobs."""
    from gputab.store import NoDatabase
    from gputab.store.review import parse_when, session_ids

    # Parse before opening, so a bad date is reported even on a machine that has recorded nothing yet.
    since_wall = parse_when(since) if since is not None else None
    try:
        store = open_store(app)
    except NoDatabase:
        if as_json:
            print_json({"sessions": []})
        else:
            click.echo(f"No sessions yet in {app.db_path}; record one with `gputab record`.")
        return
    filtered = since is not None or tag is not None or host is not None
    with store:
        rows = store.sessions()
        if filtered:
            keep = set(session_ids(store, since=since_wall, tag=tag, host=host))
            rows = [r for r in rows if r["id"] in keep]
        counts = store.alert_counts()
        for r in rows:
            r["tags"] = [j["tag"] for j in store.jobs(r["id"]) if j["tag"] not in SPECIAL_TAGS]
            r["alerts"] = counts.get(r["id"], 0)
    if as_json:
        print_json({"sessions": rows})
        return
    if not rows:
        if filtered:
            click.echo(
                "No sessions match "
                + " ".join(
                    f"{k} {v}" for k, v in (("--since", since), ("--tag", tag), ("--host", host)) if v is not None
                )
                + "."
            )
        else:
            click.echo(f"No sessions yet in {app.db_path}; record one with `gputab record`.")
        return
    click.echo(
        f"{'id':>4}  {'host':<14} {'start (UTC)':<20} {'end (UTC)':<20} {'reason':<9} {'duration':>8} "
        f"{'cost':>10}  jobs"
    )
    for r in rows:
        jobs = ", ".join(r["tags"][:3]) + (f" +{len(r['tags']) - 3}" if len(r["tags"]) > 3 else "")
        click.echo(
            f"{r['id']:>4}  {(r['host'] or '?')[:14]:<14} {r['start'] or '-':<20} {r['end'] or '-':<20} "
            f"{r['end_reason'] or '-':<9} {_duration(r['duration_s']):>8} {_money(r['cost_usd']):>10}  "
            f"{jobs or '-'}"
        )


def _num(v: object, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)


def _job_line(j: dict) -> str:
    util = _num(None if j.get("avg_utilization") is None else j["avg_utilization"] * 100, "{:.0f}%")
    vram = _num(None if not j.get("peak_vram_bytes") else j["peak_vram_bytes"] / 2**30, "{:.1f}")
    flag = " *" if j.get("unknown_price") else ""
    return (
        f"{j['tag'][:32]:<32} {_money(j['cost_usd']):>10} {j.get('gpu_hours') or 0:>8.3f} "
        f"{j.get('effective_gpu_hours') or 0:>8.3f} {util:>5} {_money(j.get('cost_per_effective_gpu_hour_usd')):>9} "
        f"{j.get('energy_kwh') or 0:>7.3f} {vram:>6} {_num(j.get('samples'), '{:,}'):>10} "
        f"{per_sample(j.get('cost_per_sample_usd')):>10} {_money(j.get('cost_per_1k_samples_usd')):>9} "
        f"{_money(j.get('cost_per_1m_tokens_usd')):>9}{flag}"
    )


def waste_lines(jobs: list[dict], reasons: int = 3) -> list[str]:
    """The waste block of ``show``: per job busy and wasted dollars, and its costliest reasons with their evidence.
    Jobs recorded before gputab knew waste (no ``waste_usd``) are left out."""
    rows = [j for j in jobs if j.get("waste_usd") is not None and j.get("cost_usd")]
    if not rows:
        return []
    lines = [
        "Waste (dollars paid while the job's GPUs did nothing, and the likely reason; unmeasured: utilization not",
        "reported, neither busy nor waste; waste % is over the measured part):",
        f"{'job':<32} {'busy':>10} {'wasted':>10} {'unmeasured':>10} {'waste':>6}  top reason",
    ]
    for j in rows:
        pct = "n/a" if j.get("waste_pct") is None else f"{j['waste_pct']:.0f}%"
        lines.append(
            f"{j['tag'][:32]:<32} {_money(j.get('busy_usd')):>10} {_money(j['waste_usd']):>10} "
            f"{_money(j.get('unmeasured_usd') or 0.0):>10} {pct:>6}  {j.get('waste_top_reason') or '-'}"
        )
        evidence = j.get("waste_evidence_by_reason") or {}
        for reason, dollars in list((j.get("waste_by_reason") or {}).items())[:reasons]:
            lines.append(f"    {reason} {_money(dollars)}: {evidence.get(reason, '')}")
        throttled = {r: v for r, v in (j.get("throttled_usd") or {}).items() if v}
        if throttled:
            lines.append("    throttled: " + ", ".join(f"{r} {_money(v)}" for r, v in throttled.items()))
    return lines


def forecast_lines(jobs: list[dict]) -> list[str]:
    """The forecast block of ``show`` (docs/forecast.md): per job that reported progress, the first projection of
    its cost at completion against the last one and what it cost; for a finished job the first one's error."""
    rows = [j for j in jobs if j.get("progress_fraction") is not None]
    if not rows:
        return []
    lines = [
        "Forecast (cost at completion):",
        f"{'job':<32} {'progress':>8} {'first projection':>24} {'last':>10} {'spent':>10}  accuracy",
    ]
    for j in rows:
        first, fp = j.get("first_projected_cost_usd"), j.get("first_projected_progress_fraction")
        made = f"{_money(first)} at {fp * 100:.0f}%" if first is not None and fp is not None else "-"
        spent = j.get("cost_usd")
        accuracy = "(still running)"
        if j.get("forecast_state") == "done" and first is not None and spent:
            accuracy = f"first projection off by {(first - spent) / spent * 100:+.1f}%"
        lines.append(
            f"{j['tag'][:32]:<32} {j['progress_fraction'] * 100:>7.1f}% {made:>24} "
            f"{_money(j.get('projected_cost_usd')):>10} {_money(spent):>10}  {accuracy}"
        )
    return lines


def token_lines(jobs: list[dict]) -> list[str]:
    """The tokens block of ``show``: per job with tokens, its total, the prompt and generated tokens its inference
    servers counted, what it reported itself (no kind), and one cost per 1M tokens over them all."""
    rows = [j for j in jobs if j.get("tokens") is not None and j.get("tag") not in SPECIAL_TAGS]
    if not rows:
        return []
    lines = [
        "Tokens (prompt and generated: counted by the job's inference servers; reported: by the job itself):",
        f"{'job':<32} {'tokens':>14} {'prompt':>14} {'generated':>14} {'reported':>14} {'$/1M tok':>9}",
    ]
    for j in rows:
        prompt, generated = j.get("prompt_tokens"), j.get("generated_tokens")
        reported = reported_tokens(j["tokens"], prompt, generated)
        lines.append(
            f"{j['tag'][:32]:<32} {j['tokens']:>14,} {_num(prompt, '{:,}'):>14} {_num(generated, '{:,}'):>14} "
            f"{reported:>14,} {_money(j.get('cost_per_1m_tokens_usd')):>9}"
        )
    return lines


def mig_lines(gpu: dict) -> list[str]:
    """One line per MIG instance of a stored GPU: profile, ids, slices of the GPU's (``3/7``, as the live view
    writes them), rate, cost, SM activity, memory."""
    from gputab.store.mig import parent_slices

    out = []
    for m in gpu.get("mig") or ():
        util = "-" if m["avg_utilization"] is None else f"{m['avg_utilization'] * 100:.0f}%"
        peak, total = m["peak_memory_used_bytes"], m["memory_total_bytes"]
        mem = f"{peak / 2**30:.1f}/{total / 2**30:.1f} GiB" if peak is not None and total else "-"
        of = parent_slices(gpu, m)
        out.append(
            f"  MIG {m['profile'] or '?':<11} GI {m['gpu_instance_id']} CI {m['compute_instance_id']}  "
            f"{m['slices']}{f'/{of}' if of else ''} slices  ${m['rate_per_hour']:.3f}/h, cost {_money(m['cost_usd'])}, "
            f"SM active {util}, peak memory {mem}"
        )
    return out


def _alert_line(a: dict, live: bool) -> str:
    """One stored alert: start (UTC), kind, severity, subject, message, and when it cleared."""
    if a["end"] is not None:
        state = f"cleared {a['end'][11:]}" if a["end"][:10] == a["start"][:10] else f"cleared {a['end']}"
    else:
        # Not cleared in an ended session: the condition held until the recorder stopped watching.
        state = "active" if live else "active at end"
    start = a["start"].replace("T", " ")
    return f"{start}  {a['kind']:<18} {a['severity']:<8} {a['subject'][:24]:<24} {a['message']}  [{state}]"


def _fault_line(f: dict) -> str:
    times = "once" if f["count"] == 1 else f"{f['count']} times"
    return (
        f"  GPU {f['gpu_index']} {f['call']}: {f['error']}, {times}, {f['first_at'].replace('T', ' ')} -> "
        f"{f['last_at'].replace('T', ' ')} ({f['detail']})"
    )


@click.command()
@click.argument("session", default="last")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON (schema_version, session, jobs with every figure, total, gpus, alerts, "
    "rejected_reports, read_faults); keys in docs/json.md.",
)
@pass_ctx
def show(app: AppContext, session: str, as_json: bool) -> None:
    """Show what each job cost in SESSION (an id, or `last`), with the (idle), (unattributed) and (unobserved) rows.

    Per job: cost, GPU-hours, effective GPU-hours, utilization, $/effective GPU-hour, energy, peak VRAM,
    samples and the cost per sample, per 1k samples and per 1M tokens; then the session total, each GPU
    with its price-table model, rate and energy method, each job's busy and wasted dollars with the likely
    reasons and their evidence, its tokens (prompt, generated and reported), its forecast, the alerts raised
    during the session, and the samples reports its
    recorder rejected (with why: e.g. from a user who runs no process of that job).
    """
    from gputab.progress.spool import explain, rejected_summary
    from gputab.store.review import load_session, session_totals

    with open_store(app) as store:
        sid = store.resolve_session(session)
        info = store.session(sid)
        record = load_session(store, sid)
        alerts = store.alerts(sid)
        rejected = explain(store.rejected_reports(sid))
        faults = store.read_faults(sid)
    jobs, gpus = record.jobs, record.gpus
    # The total is summed from the job rows (idle and unobserved included), the same sum the CSV export uses.
    total = session_totals(record)
    if as_json:
        # The total is the sum of the job rows: the session's own cost_usd and energy_kwh would repeat it.
        head = {k: v for k, v in info.items() if k not in ("cost_usd", "energy_kwh")}
        print_json(
            {
                "session": head,
                "jobs": jobs,
                "total": total,
                "gpus": gpus,
                "alerts": alerts,
                "rejected_reports": rejected,
                "read_faults": faults,
            }
        )
        return
    state = info["end_reason"] or "open"
    if info.get("end_detail") and state in ("error", "crashed", "signal"):
        state += f": {info['end_detail']}"  # what ended it: an exception's summary, a signal's name
    click.echo(
        f"Session {sid} on {info['host']}: {info['start']} -> {info['end'] or 'now'} ({state}), "
        f"{_duration(info['duration_s'])}, {len(gpus)} GPUs"
    )
    if info.get("clock_step_seconds") is not None:
        from gputab.recording.session_clock import describe_step

        click.echo(
            f"note: the wall clock was stepped {describe_step(info['clock_step_seconds'])} while recording; "
            "the times above are the start + the monotonic duration"
        )
    click.echo(
        f"{'job':<32} {'cost':>10} {'GPU-h':>8} {'eff GPU-h':>8} {'util':>5} {'$/eff-h':>9} {'kWh':>7} "
        f"{'VRAM G':>6} {'samples':>10} {'$/sample':>10} {'$/1k smp':>9} {'$/1M tok':>9}"
    )
    for j in jobs:
        click.echo(_job_line(j))
    click.echo(
        _job_line(
            {
                **total,
                "tag": "total",
                "peak_vram_bytes": None,
                "cost_per_sample_usd": None,
                "cost_per_1k_samples_usd": None,
                "cost_per_1m_tokens_usd": None,
            }
        )
    )
    click.echo("")
    for g in gpus:
        unknown = "  UNKNOWN MODEL: default rate" if g["unknown_price"] else ""
        click.echo(
            f"GPU {g['index']}: {g['name']} -> {g['model_key'] or '(default)'} {g['mode']} "
            f"${g['rate_per_hour']:.3f}/h, cost {_money(g['cost_usd'])} (idle {_money(g['idle_cost_usd'])}, "
            f"unattributed {_money(g.get('unattributed_cost_usd') or 0.0)}, unobserved {_money(g['unobserved_cost_usd'])}), {g['energy_kwh']:.3f} kWh by "
            f"{g['energy_method']}{unknown}"
        )
        for line in mig_lines(g):
            click.echo(line)
    if any(j.get("unknown_price") for j in jobs):
        click.echo("* ran on a GPU priced at the default rate (model not in the price table)")
    waste = waste_lines(jobs)
    if waste:
        click.echo("")
        click.echo("\n".join(waste))
    tokens = token_lines(jobs)
    if tokens:
        click.echo("")
        click.echo("\n".join(tokens))
    forecasts = forecast_lines(jobs)
    if forecasts:
        click.echo("")
        click.echo("\n".join(forecasts))
    if rejected:
        click.echo("")
        click.echo(f"Spool: {rejected_summary(rejected)}; not counted (see docs/recording.md)")
    if faults:
        click.echo("")
        click.echo(
            "GPU readings that failed (each made its GPU's interval (unobserved); see docs/speed-and-faults.md):"
        )
        for f in faults:
            click.echo(_fault_line(f))
    if alerts:
        click.echo("")
        click.echo(f"Alerts ({len(alerts)}, times UTC):")
        for a in alerts:
            click.echo(_alert_line(a, live=info["end_reason"] == "recording"))


def register(cli: click.Group) -> None:
    cli.add_command(sessions)
    cli.add_command(show)
