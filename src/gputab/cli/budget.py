"""``gputab budget set|list|rm``: budgets kept in the database, beside the config's.

``set`` and ``rm`` write through the normal writer path (``set`` creates and migrates the database the way the
recorder does, so it works before the first recording and while one runs); ``list`` is a reader: it never creates
or migrates anything, and reads a database without the ``budgets`` table as one with no stored budgets. A running
recorder reads the table again every few seconds (:data:`gputab.recording.budget_keeper.REREAD_SECONDS`).
"""

from __future__ import annotations

import pwd
import shlex
import time
from typing import TYPE_CHECKING

import click

from gputab.cli.context import AppContext, fail, pass_ctx, print_json
from gputab.cli.run import FiniteFloatRange, cap_or_fail, looks_negative
from gputab.config.settings import BUDGET_PERIODS, MAX_GRACE_SECONDS, USER_NAME
from gputab.money import usd

if TYPE_CHECKING:
    from gputab.budgets.model import Budget


@click.group(invoke_without_command=True)
@click.pass_context
def budget(ctx: click.Context) -> None:
    """Budgets per tag glob: a cap in dollars per day, week, month (UTC calendar) or in total.

    With no command, lists them (`gputab budget list`).

    Budgets come from the config's [budgets] and from the database (`gputab budget set`); for the same glob the
    database's wins. Each tag matching a glob is held to the whole cap by itself. The recorder alerts at
    [alerts] budget_warning_pct (80 %) and 100 % and when the forecast says a job will pass its cap, counts spend
    across every session of the database, and with --stop stops a job at its cap.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_budgets, as_json=False)


def _check_glob(tag: str) -> str:
    from gputab.attribution import validate_tag

    try:
        return validate_tag(tag)
    except ValueError as exc:
        fail(f"invalid tag glob {tag!r}: {exc}", code=2)
        raise  # unreachable: fail raises


def _me() -> str | None:
    import os

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return None


class _SetCommand(click.Command):
    """``budget set``, where ``-5`` is a cap that is wrong (said in one line), not an option click does not know."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # click's parser consumes the list it is given
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            words = _positionals(self, given)
            bad = next((w for w in words if looks_negative(w) and w.startswith(exc.option_name)), None)
            if bad is None:
                raise
            tag = words[0] if len(words) > 1 and words[0] != bad else "TAG"
            cap_or_fail(bad, f"gputab budget set {shlex.quote(tag)} 20")  # refuses it: no negative cap passes
            raise


def _positionals(command: click.Command, args: list[str]) -> list[str]:
    """The words of ``args`` that are no option and no option's value (a negative number counts as a word)."""
    takes_value = {o for p in command.params if isinstance(p, click.Option) and not p.is_flag for o in p.opts}
    out: list[str] = []
    words = iter(args)
    for word in words:
        if word == "--":
            out += words
            break
        if word in takes_value:
            next(words, None)
        elif not word.startswith("-") or looks_negative(word):
            out.append(word)
    return out


@budget.command(name="set", cls=_SetCommand)
@click.argument("tag")
@click.argument("dollars", metavar="DOLLARS")
@click.option(
    "--period",
    type=click.Choice(BUDGET_PERIODS),
    default="total",
    show_default=True,
    help="When the spend starts again from zero: each day, week (from Monday) or month, on the UTC calendar; "
    "total: never.",
)
@click.option("--stop", is_flag=True, help="At the cap the recorder sends SIGINT (to checkpoint), then SIGTERM.")
@click.option(
    "--grace",
    type=FiniteFloatRange(min=0, max=MAX_GRACE_SECONDS),
    default=None,
    metavar="SECONDS",
    help="Seconds between SIGINT and SIGTERM with --stop [default 30].",
)
@click.option(
    "--user",
    "users",
    multiple=True,
    metavar="NAME",
    help="With --stop: a user whose processes may be signalled (repeat for more) [default: only the recorder's "
    "own user's]. Other users' processes with the tag are reported, never signalled.",
)
@pass_ctx
def set_budget(
    app: AppContext, tag: str, dollars: str, period: str, stop: bool, grace: float | None, users: tuple[str, ...]
) -> None:
    """Set the budget of TAG (a tag or a glob such as 'sweep-*') to DOLLARS per --period.

    DOLLARS is a number above 0, up to 1,000,000,000 (20, 19.99).

    It is stored in the database; a running recorder applies it within seconds. For the same glob it wins over
    the config's [budgets] entry.
    """
    from gputab.budgets.model import DEFAULT_GRACE_SECONDS, Budget, from_config
    from gputab.store import Store
    from gputab.store.budgets import write_budget

    tag = _check_glob(tag)
    cap = cap_or_fail(dollars, f"gputab budget set {shlex.quote(tag)} 20")
    if (grace is not None or users) and not stop:
        fail("--grace and --user say how --stop stops a job; add --stop, or leave them out", code=2)
    for name in users:
        if not USER_NAME.fullmatch(name):
            fail(f"--user {name!r} is not a login name (letters, digits, '.', '_', '-')", code=2)
    known = _known_users(users)
    for name in users:
        if name not in known:
            click.echo(
                f"gputab: note: no user {name} on this machine; the budget signals none of its processes", err=True
            )
    b = Budget(tag, cap, period, stop, grace if grace is not None else DEFAULT_GRACE_SECONDS, users, "database")
    with Store.open(app.database) as store:
        write_budget(store, b.tag, b.cap_usd, b.period, b.stop, b.grace_seconds, b.users, time.time(), _me())
    over = next((c for c in from_config(app.config) if c.tag == tag), None)
    click.echo(
        f"budget {tag}: {_describe(b)}; stored in {app.db_path}"
        + (f" (wins over the config's {usd(over.cap_usd)})" if over is not None else "")
    )


def _known_users(names: tuple[str, ...]) -> set[str]:
    out = set()
    for name in names:
        try:
            pwd.getpwnam(name)
            out.add(name)
        except KeyError:
            continue
    return out


def _describe(b: Budget) -> str:
    from gputab.budgets.model import ADJECTIVES

    stop = ""
    if b.stop:
        who = ", ".join(b.users) if b.users else "the recorder's own user"
        stop = f", stops the job at its cap (SIGTERM {b.grace_seconds:g} s after SIGINT; processes of {who})"
    return f"{usd(b.cap_usd)}{ADJECTIVES[b.period] or ' in total'}{stop}"


@budget.command(name="rm")
@click.argument("tag")
@pass_ctx
def remove(app: AppContext, tag: str) -> None:
    """Remove the stored budget of TAG (exactly as it was set, glob included)."""
    from gputab.budgets.model import from_config
    from gputab.store import NoDatabase, Store
    from gputab.store.budgets import remove_budget

    tag = _check_glob(tag)
    try:
        with Store.open(app.database, create=False, write=True) as store:
            removed = remove_budget(store, tag)
    except NoDatabase:
        removed = False
    in_config = any(c.tag == tag for c in from_config(app.config))
    if not removed:
        where = f" (it is in the config file {app.config.path}: remove it there)" if in_config else ""
        fail(f"no budget {tag!r} is stored in {app.db_path}{where}; see `gputab budget list`")
    click.echo(
        f"budget {tag}: removed from {app.db_path}"
        + (" (the config's budget for it applies again)" if in_config else "")
    )


@budget.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the budgets as JSON (keys: docs/json.md).")
@pass_ctx
def list_budgets(app: AppContext, as_json: bool) -> None:
    """List the budgets: cap, period, what each tag spent this period, and where it is heading.

    The projection (time to the cap at the burn rate now, and the overrun the forecast expects at the job's
    completion) comes from the live recording, or from the last session that had the tag.
    """
    report = budget_report(app, time.time())
    if as_json:
        print_json(report)
    else:
        print_report(report)


def budget_report(app: AppContext, wall: float) -> dict:
    """The budgets in force at ``wall`` (config and database merged) with each held tag's spend this period.

    A reader: a missing database, or one without the ``budgets`` table, has no stored budgets and no spend.
    """
    from gputab.budgets.model import BudgetStatus, from_config, merge, next_period_start, period_start, resolve
    from gputab.recording.budget_keeper import stored_budgets
    from gputab.store import NoDatabase, Store
    from gputab.store.budgets import latest_jobs, read_budgets, spend_since

    configured = from_config(app.config)
    if app.demo:  # the demo recorder's own budget, below the config's (as the recorder layers them)
        from gputab.budgets.model import from_caps
        from gputab.sampling.demo import DemoBackend

        configured = merge(from_caps(DemoBackend.demo_budgets(), origin="demo"), configured)
    rows: list[dict] = []
    spends: dict[float | None, dict[str, float]] = {}
    latest: dict[str, dict] = {}
    try:
        with Store.open(app.database, create=False) as store:
            rows = read_budgets(store)
            budgets = merge(configured, stored_budgets(rows))
            for start in {period_start(b.period, wall) for b in budgets}:
                spends[start] = spend_since(store, start)
            tags = {t for spent in spends.values() for t in spent} | {b.tag for b in budgets if not b.is_glob}
            latest = latest_jobs(store, sorted(t for t in tags if resolve(budgets, t) is not None))
    except NoDatabase:
        budgets = configured
    set_by = {r["tag"]: r for r in rows}
    out = []
    for b in budgets:
        start = period_start(b.period, wall)
        spent_by_tag = spends.get(start, {})
        held = {t for t in spent_by_tag if resolve(budgets, t) == b}
        if not b.is_glob and resolve(budgets, b.tag) == b:
            held.add(b.tag)  # listed even before it spends anything
        jobs = []
        for tag in sorted(held, key=lambda t: (-spent_by_tag.get(t, 0.0), t)):
            last = latest.get(tag, {})
            spent = spent_by_tag.get(tag, 0.0)
            projected = last.get("projected_cost_usd")
            status = BudgetStatus(
                tag,
                b,
                spent,
                last.get("burn_rate_usd_per_hour") if last.get("live") else None,
                start,
                spent + float(projected) - float(last.get("cost_usd") or 0.0) if projected is not None else None,
            )
            jobs.append(
                {
                    "tag": tag,
                    "spent_usd": spent,
                    "spent_pct": status.spent_pct,
                    "recording": bool(last.get("live")),
                    "burn_rate_usd_per_hour": status.burn_rate_usd_per_hour,
                    "time_to_cap_seconds": status.seconds_to_cap,
                    "projected_cap_at": wall + status.seconds_to_cap if status.seconds_to_cap is not None else None,
                    "projected_spent_usd": status.projected_cost_usd,
                    "projected_over_usd": status.projected_over_usd,
                }
            )
        stored = set_by.get(b.tag) if b.origin == "database" else None
        out.append(
            {
                **b.to_json(),
                "period_start_at": start,
                "period_end_at": next_period_start(b.period, wall),
                "set_at": stored["set_wall"] if stored else None,
                "set_by": stored["set_by"] if stored else None,
                "jobs": jobs,
            }
        )
    return {"taken_at": wall, "budgets": out}


def print_report(report: dict) -> None:
    from gputab.alerts.record import format_duration, format_money
    from gputab.budgets.model import Budget, resolve

    if not report["budgets"]:
        click.echo("no budgets: set one with `gputab budget set TAG DOLLARS`, or in the config's [budgets]")
        return
    every = [
        Budget(b["tag"], b["cap_usd"], b["period"], b["stop"], b["grace_seconds"], tuple(b["users"]), b["defined_in"])
        for b in report["budgets"]
    ]
    for b, budget in zip(report["budgets"], every):
        since = ""
        if b["period_start_at"] is not None:
            since = time.strftime(" (this %%s since %Y-%m-%d %H:%M UTC)", time.gmtime(b["period_start_at"]))
            since = since.replace("%s", b["period"])
        click.echo(f"{b['tag']}: {_describe(budget)}{since} [{b['defined_in']}]")
        holder = resolve(every, budget.tag)
        if not b["jobs"] and not budget.is_glob and holder is not None and holder.tag != budget.tag:
            click.echo(f"  {budget.tag} is held by the budget {holder.tag!r} instead")
        elif not b["jobs"]:
            click.echo("  nothing spent yet")
        for j in b["jobs"]:
            if j["spent_pct"] >= 100:
                where = "over the cap"
            elif j["time_to_cap_seconds"] is not None:
                to_cap, burn = format_duration(j["time_to_cap_seconds"]), format_money(j["burn_rate_usd_per_hour"])
                where = f"cap in {to_cap} at {burn}/h"
            else:
                where = "recording, not burning now" if j["recording"] else "not recording"
            over = j["projected_over_usd"]
            if over is not None and over > 0:
                where += f"; will exceed it by {format_money(over)} at completion"
            click.echo(f"  {j['tag']}  {format_money(j['spent_usd'])}  {j['spent_pct']:.0f}%  {where}")


def register(cli: click.Group) -> None:
    """Add ``gputab budget`` to the ``gputab`` group."""
    cli.add_command(budget)
