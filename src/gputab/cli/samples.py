"""``gputab samples``: add to or set a job's samples and tokens after its session ended.

One meaning everywhere: ``--add N`` adds to the job's count, ``--set N`` makes N the job's total for the
session (what the review's ``n`` dialog does). The session being recorded is refused up front: its counts come
from the job itself (``gputab.report``), or are entered here once it ended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from gputab.cli.context import AppContext, fail, pass_ctx, print_json
from gputab.money import per_sample, usd

FC = TypeVar("FC", bound=Callable[..., Any])


def _count(name: str, help_text: str, hidden: bool = False) -> Callable[[FC], FC]:
    param = name.lstrip("-").replace("-", "_") + "_n"
    return click.option(
        name, param, type=click.IntRange(min=0), default=None, metavar="N", help=help_text, hidden=hidden
    )


@click.command()
@click.argument("tag")
@_count("--add", "Add N samples to the job's count.")
@_count("--set", "Set the job's samples for the whole session to N (a correction).")
@_count("--add-tokens", "Add N tokens to the job's count.")
@_count("--set-tokens", "Set the job's tokens for the whole session to N.")
@_count("--samples", "Deprecated: the same as --add.", hidden=True)
@_count("--tokens", "Deprecated: the same as --add-tokens.", hidden=True)
@click.option(
    "--session", "session_ref", default=None, help="Session id or `last` [default: the newest session with job TAG]."
)
@click.option("--json", "as_json", is_flag=True, help="Print the job's updated figures as JSON.")
@pass_ctx
def samples(
    app: AppContext,
    tag: str,
    add_n: int | None,
    set_n: int | None,
    add_tokens_n: int | None,
    set_tokens_n: int | None,
    samples_n: int | None,
    tokens_n: int | None,
    session_ref: str | None,
    as_json: bool,
) -> None:
    """Add to (--add) or set (--set) the samples and tokens of job TAG in an ended session.

    Cost per sample and per token come from these counts. A running job reports its own with
    gputab.report(samples=..., tokens=...); the session being recorded is refused here until it ends.
    """
    from gputab.attribution import validate_tag
    from gputab.store import Store
    from gputab.store.queries import NoSuchSession, live_refusal

    if samples_n is not None:  # the old spelling, which always added
        if add_n is not None:
            fail("give --add N only (--samples is its old name)", code=2)
        click.echo("gputab: --samples is deprecated; it adds, like --add N (--set N sets)", err=True)
        add_n = samples_n
    if tokens_n is not None:
        if add_tokens_n is not None:
            fail("give --add-tokens N only (--tokens is its old name)", code=2)
        click.echo("gputab: --tokens is deprecated; it adds, like --add-tokens N (--set-tokens N sets)", err=True)
        add_tokens_n = tokens_n
    if add_n is not None and set_n is not None:
        fail("give --add N or --set N, not both", code=2)
    if add_tokens_n is not None and set_tokens_n is not None:
        fail("give --add-tokens N or --set-tokens N, not both", code=2)
    if add_n is None and set_n is None and add_tokens_n is None and set_tokens_n is None:
        fail("say what to change: --add N or --set N (samples), --add-tokens N or --set-tokens N", code=2)
    try:
        tag = validate_tag(tag)
    except ValueError as exc:
        fail(f"invalid tag {tag!r}: {exc}", code=2)
    with Store.open(app.database, create=False, write=True) as store:
        live = store.live_session_id()
        if session_ref is not None:
            sid = store.resolve_session(session_ref)
        else:
            found = store.session_tags(tag)
            if not found:
                fail(
                    f"no session has a job {tag!r}; check the tag with `gputab show last`, or name the session "
                    f"with --session"
                )
            sid = found[0]
        if sid == live:
            fail(live_refusal(sid))
        row = next(
            iter(store.db.query("SELECT samples, tokens FROM jobs WHERE session_id = ? AND tag = ?", [sid, tag])), None
        )
        if row is None:
            raise NoSuchSession(f"session {sid} has no job {tag!r}; see `gputab show {sid}` for its jobs")
        old_s, old_t = row["samples"] or 0, row["tokens"] or 0
        ds = (set_n - old_s) if set_n is not None else (add_n or 0)
        dt = (set_tokens_n - old_t) if set_tokens_n is not None else (add_tokens_n or 0)
        how = " ".join(
            w
            for w, v in (
                ("--set", set_n),
                ("--add", add_n),
                ("--set-tokens", set_tokens_n),
                ("--add-tokens", add_tokens_n),
            )
            if v is not None
        )
        job = store.add_samples(sid, tag, ds, dt, reporter=f"cli {how}")
    if as_json:
        print_json({"session_id": sid, **job})
        return
    per = per_sample(job["cost_per_sample_usd"])
    click.echo(
        f"session {sid}, {tag}: {job['samples'] or 0:,} samples ({ds:+,}), {job['tokens'] or 0:,} tokens "
        f"({dt:+,}); cost {usd(job['cost_usd'])}, {per} per sample"
    )


def register(cli: click.Group) -> None:
    cli.add_command(samples)
