"""``gputab export``: recorded sessions as CSV, per job, per session or per GPU."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gputab.cli.context import AppContext, pass_ctx
from gputab.errors import GputabError

if TYPE_CHECKING:
    from gputab.store import Store


def _select(store: Store, session: str | None, since: str | None, all_: bool) -> list[int]:
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


@click.command()
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV (the only format, and the default).")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    metavar="FILE",
    help="Write to FILE instead of stdout, atomically (a temp file beside it, renamed over it). A symlink "
    "you or root own is written through to its target; a directory, FIFO, device or socket is "
    "refused.",
)
@click.option("--session", "session", metavar="ID", default=None, help="Export one session: its id or `last`.")
@click.option(
    "--since",
    "since",
    metavar="DATE",
    default=None,
    help="Export the sessions running at or after DATE (2025-01-31, 2025-01-31T14:00Z, or an age: 12h, 7d).",
)
@click.option("--all", "all_", is_flag=True, help="Export every session (the default).")
@click.option(
    "--by",
    "by",
    type=click.Choice(["job", "session", "gpu", "mig"]),
    default="job",
    show_default=True,
    help="One row per job per session, per session, per GPU per session, or per MIG instance per session.",
)
@pass_ctx
def export(
    app: AppContext, as_csv: bool, output: Path | None, session: str | None, since: str | None, all_: bool, by: str
) -> None:
    """Export recorded sessions as CSV, with units in the column names and times in ISO 8601 UTC.

    Columns come in a fixed order per --by (docs/review.md). Text that a spreadsheet would run as a formula is
    prefixed with ' so it stays text.
    """
    from gputab.publish.csv_export import export_csv, output_target, write_file_atomically
    from gputab.store import Store
    from gputab.store.review import iter_sessions

    # CSV is the only format: `--csv` is accepted, and nothing is the same.
    if output is not None:
        output_target(output)  # a bad -o is refused before the database is read
    with Store.open(app.database, create=False) as store:
        ids = _select(store, session, since, all_)
        sessions = iter_sessions(store, ids)
        if output is None:
            stdout = sys.stdout
            try:
                count = export_csv(sessions, stdout, by=by)
                stdout.flush()
            except BrokenPipeError:
                raise  # the reader went away (`| head`): main() ends quietly
            except OSError as exc:
                raise GputabError(f"cannot write the CSV to stdout: {exc.strerror or exc}") from None
        else:
            written, count = write_file_atomically(output, lambda fh: export_csv(sessions, fh, by=by))
            via = f" (the target of {output})" if written != output.expanduser() else ""
            click.echo(f"wrote {count} rows ({len(ids)} sessions, --by {by}) to {written}{via}", err=True)
    if output is None and sys.stderr.isatty():
        click.echo(f"{count} rows ({len(ids)} sessions, --by {by})", err=True)


def register(cli: click.Group) -> None:
    """Add ``export`` to the gputab group."""
    cli.add_command(export)
