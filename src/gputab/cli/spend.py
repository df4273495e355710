"""``gputab spend``: what each job, user, GPU, host, day or week cost across sessions and databases."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from gputab.cli.context import AppContext, pass_ctx, print_json
from gputab.cli.options import check_db_path
from gputab.errors import GputabError
from gputab.money import per_sample, usd

DEFAULT_DAYS = 30
"""The window when ``--since`` is not given: this many days before ``--until`` (or now)."""
"""Version of the ``--json`` document (keys documented in docs/spend.md)."""
_KEY_TITLES = {"tag": "job (tag)", "user": "user", "gpu": "GPU", "host": "host", "day": "day", "week": "week of"}


def parse_window(since: str | None, until: str | None, now: float | None = None) -> tuple[float | None, float | None]:
    """Epoch seconds of ``--since``/``--until``; a bad, absurd or reversed window is one line and exit 2."""
    from gputab.store.review import parse_when

    out: list[float | None] = []
    for opt, text in (("--since", since), ("--until", until)):
        if text is None:
            out.append(None)
            continue
        try:
            when = parse_when(text)
        except (OverflowError, ValueError, OSError):
            # An age so long it leaves the calendar (99999999d), or a date Python cannot represent.
            raise GputabError(
                f"{opt} {text!r} is out of range: give an age up to a few thousand days or a date after 1970",
                exit_code=2,
            ) from None
        if when < 0 or when > (now or time.time()) + 100 * 366 * 86400:
            raise GputabError(
                f"{opt} {text!r} is out of range: give a date between 1970 and a century from now", exit_code=2
            )
        out.append(when)
    if out[0] is not None and out[1] is not None and out[0] >= out[1]:
        raise GputabError(f"--since {since} is not before --until {until}: swap them", exit_code=2)
    return out[0], out[1]


def _money(v: float | None) -> str:
    if v is None:
        return "-"
    return f"${v:,.0f}" if abs(v) >= 10000 else usd(v)


def _num(v: object, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)


def _count(v: float | None) -> str:
    if v is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= div:
            return f"{v / div:.1f}{unit}"
    return f"{v:.0f}"


def _clean(text: str) -> str:
    """Outside text for a terminal line: control characters shown as ``?`` (no escape sequences get through)."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _table(rows: list[dict], tot: dict, by: str, hosts: int) -> list[str]:
    show_host = by == "host" or hosts > 1
    key_w = 10 if by in ("day", "week") else 28
    head = (f"{'host':<14} " if show_host else "") + ("" if by == "host" else f"{_KEY_TITLES[by]:<{key_w}} ")
    head += (
        f"{'cost':>10} {'GPU-h':>9} {'eff GPU-h':>9} {'util':>5} {'idle $':>10} {'idle GPU-h':>10} "
        f"{'wasted':>10} {'samples':>8} {'$/sample':>10} {'tokens':>8} {'sessions':>8}"
    )
    lines = [head]
    for r in [*rows, tot]:
        is_total = r is tot
        line = ""
        if show_host:
            line += f"{_clean('total' if is_total else r['host'])[:14]:<14} "
        if by != "host":
            line += f"{_clean('total' if is_total else str(r[by]))[:key_w]:<{key_w}} "
        util = None if r["avg_utilization"] is None else r["avg_utilization"] * 100
        line += (
            f"{_money(r['cost_usd']):>10} {r['gpu_hours']:>9.2f} {r['effective_gpu_hours']:>9.2f} "
            f"{_num(util, '{:.0f}%'):>5} {_money(r['idle_usd']):>10} {r['idle_gpu_hours']:>10.2f} "
            f"{_money(r['waste_usd']):>10} "
            f"{_count(r['samples']):>8} {per_sample(r['cost_per_sample_usd']):>10} "
            f"{_count(r['tokens']):>8} {r['sessions']:>8}"
        )
        if is_total:
            lines.append("-" * len(head))
        lines.append(line)
    return lines


def _csv(rows: list[dict], by: str) -> None:
    import json

    from gputab.publish.csv_export import csv_writer, format_cell
    from gputab.publish.document import public

    rows = public(rows)
    columns = list(rows[0]) if rows else ["host", by]
    writer = csv_writer(sys.stdout)
    writer.writerow(columns)
    for r in rows:
        # An object (waste_by_reason) is one cell of compact JSON, as in --json.
        writer.writerow(
            [
                format_cell(json.dumps(v, separators=(",", ":")) if isinstance(v := r.get(c), dict) else v)
                for c in columns
            ]
        )


@click.command()
@click.option(
    "--by",
    "by",
    default="tag",
    show_default=True,
    metavar="tag|user|gpu|host|day|week",
    help="One row per job (tag), user, GPU, host, day or week (weeks start on Monday).",
)
@click.option(
    "--since",
    metavar="DATE",
    default=None,
    help="Count spend from DATE (2026-01-31, 2026-01-31T14:00Z, or an age: 12h, 7d) [default: 30 days "
    "before --until, or before now].",
)
@click.option("--until", metavar="DATE", default=None, help="Count spend before DATE (default: no end).")
@click.option(
    "--tag",
    "tag",
    metavar="GLOB",
    default=None,
    help="Only jobs whose tag matches GLOB ('exp-*'); leaves out (idle) and (unobserved) unless matched.",
)
@click.option("--utc", is_flag=True, help="Cut days and weeks at UTC midnight (default: local midnight).")
@click.option(
    "--db",
    "dbs",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A database to read (repeat for databases copied from several boxes; hosts stay apart). "
    "Default: the global --db.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON (schema_version, by, since, until, tag, timezone, databases, rows, total); keys in docs/json.md.",
)
@click.option(
    "--csv",
    "as_csv",
    is_flag=True,
    help="Print CSV, the same keys as --json rows (waste_by_reason as a JSON object in its cell).",
)
@pass_ctx
def spend(
    app: AppContext,
    by: str,
    since: str | None,
    until: str | None,
    tag: str | None,
    utc: bool,
    dbs: tuple[Path, ...],
    as_json: bool,
    as_csv: bool,
) -> None:
    """What was spent, across sessions: cost, GPU-hours, effective GPU-hours, utilization, idle $ and GPU-hours,
    wasted $ (busy and wasted $ and waste by reason in --json/--csv), samples, tokens and $/sample, per job, user,
    GPU, host, day or week.

    A job is a tag on a host: one row even when recorder restarts cut it into several sessions. Sessions cut by
    the window or by a day boundary are pro-rated by their stored series time (docs/spend.md).

    Waste counts only sessions that recorded it ("-" / null when none of a row's did, as in databases from before
    the waste split). --by gpu shows no waste: it is stored per job, not per GPU, and a GPU's (idle) cost is only
    part of the waste on it.
    """
    from gputab.store.spend import GROUPS, open_stores, total
    from gputab.store.spend import spend as spend_rows
    from gputab.store.spend_window import Window, timezone_label

    if by not in GROUPS:
        raise GputabError(f"--by {by!r} is not one of {', '.join(GROUPS)}", exit_code=2)
    if as_json and as_csv:
        raise GputabError("choose one of --json and --csv", exit_code=2)
    if by == "gpu" and tag is not None:
        raise GputabError(
            "--tag does not apply to --by gpu (a GPU's totals are not split by job); drop one", exit_code=2
        )
    since_wall, until_wall = parse_window(since, until)
    if since is None:
        since_wall = (until_wall if until_wall is not None else time.time()) - DEFAULT_DAYS * 86400
        since = f"{DEFAULT_DAYS}d" + (" before --until" if until is not None else "")
    window = Window(since_wall, until_wall, tag, utc)
    for path in dbs:
        check_db_path(path)
    paths: list[Path] = list(dbs) or ([app.db_path] if app.db_path is not None else [])
    stores = open_stores(paths)
    try:
        rows = spend_rows(stores, by, window)
    finally:
        for s in stores:
            s.close()
    data = [r.to_json(by) for r in rows]
    tot = total(rows).to_json(by)
    zone = timezone_label(utc)
    if as_json:
        from gputab.publish.csv_export import iso_utc

        print_json(
            {
                "by": by,
                "since": iso_utc(since_wall),
                "until": iso_utc(until_wall),
                "tag": tag,
                "timezone": zone,
                "databases": [str(p) for p in paths],
                "rows": data,
                "total": tot,
            }
        )
        return
    if as_csv:
        _csv(data, by)
        return
    window_text = f"since {since}" + (f" until {until}" if until else "") + (f", tag {tag}" if tag else "")
    zone_text = f"; days in {zone}" if by in ("day", "week") else ""
    click.echo(
        f"Spend by {by}, {window_text}{zone_text}; {len({r['host'] for r in data})} host(s), "
        f"{tot['sessions']} session(s)"
    )
    if not data:
        click.echo("Nothing recorded in this window; try a wider --since, or `gputab sessions`.")
        return
    for line in _table(data, tot, by, len({r["host"] for r in data})):
        click.echo(line)


def register(cli: click.Group) -> None:
    """Add ``spend`` to the gputab group."""
    cli.add_command(spend)
