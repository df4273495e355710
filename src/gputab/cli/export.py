"""``gputab export``: recorded sessions as CSV, per job, per session or per GPU."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from gputab.cli.context import AppContext, pass_ctx
from gputab.errors import GputabError


def _select(store, session: str | None, since: str | None, all_: bool) -> list[int]:
    """The session ids chosen by ``--session``/``--since``/``--all`` (one of them; ``--all`` by default)."""
    from gputab.store.review import parse_when, session_ids

    chosen = [name for name, v in (("--session", session), ("--since", since), ("--all", all_)) if v]
    if len(chosen) > 1:
        raise GputabError(f"choose one of --session, --since, --all (got {' and '.join(chosen)})", exit_code=2)
    if session is not None:
        return [store.resolve_session(session)]
    if since is not None:
        when = parse_when(since)
        ids = session_ids(store, since=when)
        if not ids:
            raise GputabError(f"no sessions ran since {since} in {store.path}; `gputab sessions` lists them")
        return ids
    ids = session_ids(store)
    if not ids:
        raise GputabError(f"no sessions recorded yet in {store.path}; start one with `gputab record`")
    return ids


def write_atomically(path: Path, write) -> int:
    """Run ``write(fh)`` into a temp file beside ``path`` and rename it over ``path`` only if it succeeds.

    A failed or interrupted export never leaves a half-written file where a spreadsheet would open it.
    """
    path = path.expanduser()
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        # newline="" lets the csv module write its own \r\n line ends (RFC 4180) untouched.
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            count = write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return count


@click.command()
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV (the only format for now; required).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE (atomically) instead of stdout.")
@click.option("--session", "session", metavar="ID", default=None, help="Export one session: its id or `last`.")
@click.option("--since", "since", metavar="DATE", default=None,
              help="Export the sessions running at or after DATE (2025-01-31, 2025-01-31T14:00Z, or an age: 12h, 7d).")
@click.option("--all", "all_", is_flag=True, help="Export every session (the default).")
@click.option("--by", "by", type=click.Choice(["job", "session", "gpu"]), default="job", show_default=True,
              help="One row per job per session, per session, or per GPU per session.")
@pass_ctx
def export(app: AppContext, as_csv: bool, output: Path | None, session: str | None, since: str | None,
           all_: bool, by: str) -> None:
    """Export recorded sessions as CSV, with units in the column names and times in ISO 8601 UTC.

    Columns come in a fixed order per --by (see README). Text that a spreadsheet would run as a formula is
    prefixed with ' so it stays text.
    """
    from gputab.exporter import export_csv
    from gputab.store import Store
    from gputab.store.review import iter_sessions

    if not as_csv:
        raise GputabError("choose a format: --csv (e.g. `gputab export --csv -o sessions.csv`)", exit_code=2)
    with Store.open(app.db_path, create=False) as store:
        ids = _select(store, session, since, all_)
        sessions = iter_sessions(store, ids)
        if output is None:
            stdout = sys.stdout
            count = export_csv(sessions, stdout, by=by)
            stdout.flush()
        else:
            count = write_atomically(output, lambda fh: export_csv(sessions, fh, by=by))
            click.echo(f"wrote {count} rows ({len(ids)} sessions, --by {by}) to {output}", err=True)
    if output is None and sys.stderr.isatty():
        click.echo(f"{count} rows ({len(ids)} sessions, --by {by})", err=True)


def register(cli: click.Group) -> None:
    """Add ``export`` to the gputab group."""
    cli.add_command(export)
