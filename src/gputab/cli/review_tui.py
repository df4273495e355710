"""``gputab review``: browse recorded sessions in the terminal (the review screens of the TUI)."""

from __future__ import annotations

import click

from gputab.cli.context import AppContext, pass_ctx


@click.command()
@pass_ctx
def review(app: AppContext) -> None:
    """Browse recorded sessions: filter, sort, open one, enter samples, compare two, export CSV.

    Keys: / filter (tag:GLOB host:HOST since:7d until:2026-02-01), o sort column, R reverse, Enter open,
    m mark, c compare two marked, e export CSV, n samples/tokens of a job, Esc back, q quit.
    """
    from gputab.cli.live import require_terminal
    from gputab.store import NoDatabase, Store

    require_terminal("gputab review")
    from gputab.tui.review import run_review

    try:  # a file that is not gputab's (or is too new) is one line here, not an error drawn inside the screen
        Store.open(app.database, readonly=True).close()
    except NoDatabase:
        pass  # the screen says there is nothing recorded yet
    run_review(app.database)


def register(cli: click.Group) -> None:
    """Add ``review`` to the gputab group."""
    cli.add_command(review)
