"""The ``gputab`` group: global options, error handling, and the command registry."""

from __future__ import annotations

import errno
import io
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from gputab import __version__, startup
from gputab.cli.context import AppContext
from gputab.cli.options import check_db_path
from gputab.config.paths import default_config, default_db
from gputab.errors import GputabError


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: gputab's version, and the NVML binding's (nvidia-ml-py) that a bug report needs beside it."""
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"gputab {__version__}")
    click.echo(f"nvidia-ml-py {binding_version()}")
    ctx.exit()


def binding_version() -> str:
    """The installed nvidia-ml-py's version, read from its metadata (pynvml itself is not imported)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nvidia-ml-py")
    except PackageNotFoundError:
        return "not installed"


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--demo", is_flag=True, help="Use the simulated demo box (no GPU needed); keeps its own database.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the demo simulation.")
@click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite database of sessions [env GPUTAB_DB; default: user data dir].",
)
# No click checks on --config: load_config refuses what is not a file, in one line, the same as for GPUTAB_CONFIG.
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    default=None,
    help="TOML config file [env GPUTAB_CONFIG; default: user config dir].",
)
@click.option("--interval", type=float, default=None, help="Seconds between polls for the live view (default 1).")
@click.option("--readonly", is_flag=True, help="Live view: no process actions (no signals to processes).")
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show gputab's version and its NVML binding's, and exit.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    demo: bool,
    seed: int,
    db: Path | None,
    config: Path | None,
    interval: float | None,
    readonly: bool,
) -> None:
    """gputab: what your GPUs cost while they work.

    Run with no command to open the live view. `gputab --demo` shows a simulated box on a machine without a GPU.
    """
    explicit_config = config is not None  # a missing file named by GPUTAB_CONFIG means defaults
    db_path = db if db is not None else default_db(demo)
    check_db_path(db_path)
    ctx.obj = AppContext(
        demo=demo,
        seed=seed,
        db_path=db_path,
        config_path=config if config is not None else default_config(),
        config_explicit=explicit_config,
    )
    if ctx.invoked_subcommand is None:
        from gputab.cli.live import run_live

        run_live(ctx.obj, interval=interval, readonly=readonly)  # its first paint ends the start-up
    else:
        startup.started()


def _register() -> None:
    """Each command group lives in its own module; importing one loads only what it needs at call time."""
    from gputab.cli import (
        budget,
        completion,
        export,
        fleet,
        prices,
        record,
        review,
        review_tui,
        run,
        samples,
        snapshot,
        spend,
    )

    cli.add_command(snapshot.snapshot)
    for mod in (prices, run, record, review, samples, export, review_tui, spend, fleet, budget, completion):
        mod.register(cli)
    for path, summary in SUMMARIES.items():
        command: click.Command = cli
        for name in path.split():
            command = command.commands[name]  # type: ignore[attr-defined]
        command.short_help = summary


SUMMARIES = {
    "budget": "Set, list and remove budgets per tag.",
    "budget list": "List the budgets and what each tag spent.",
    "budget rm": "Remove a stored budget.",
    "budget set": "Set a tag's budget.",
    "completion": "Print the tab-completion script for a shell.",
    "export": "Export recorded sessions as CSV.",
    "fleet": "Watch many boxes through Prometheus.",
    "prices": "Show the GPU price table in effect.",
    "record": "Record a session with no UI.",
    "review": "Browse recorded sessions in the terminal UI.",
    "run": "Run a command with its GPU time charged to a tag.",
    "samples": "Enter a job's samples and tokens by hand.",
    "sessions": "List recorded sessions.",
    "show": "Show what each job of a session cost.",
    "snapshot": "Print what every GPU is doing now.",
    "spend": "Show what was spent across sessions.",
}
"""One short sentence per command for `gputab --help` (click would cut each docstring's first line mid-sentence)."""


_register()


INTERNAL_ERROR = 70
"""Exit status of an unexpected exception (EX_SOFTWARE of sysexits.h): a bug to report, not a user error."""

_OUTPUT_ERRNOS = {errno.EPIPE, errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG, errno.EBADF, errno.ENXIO}


def main() -> None:
    """Console entry point: every failure becomes one line and an exit code, never a traceback.

    Expected errors (GputabError, click's usage errors) say what is wrong and how to fix it. Output that cannot be
    written (stdout or stderr full, closed, gone) ends with one line and exit 1, or silently for a reader that went
    away (``| head``), as other command-line tools do. Anything else is a bug: one line naming it, exit 70, and the
    traceback with ``GPUTAB_DEBUG=1``.
    """
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:  # started with the descriptor closed (`>&-`)
            setattr(sys, name, io.TextIOWrapper(io.BufferedWriter(_ClosedStream(name)), encoding="utf-8"))
    try:
        try:
            # Signals are handed back inside the net: a Ctrl-C already pending when the quiet start-up handler is
            # swapped out is raised right here, as KeyboardInterrupt, and ends as exit 130 like any other.
            startup.done()
            cli.main(standalone_mode=False, prog_name="gputab")
        finally:
            # Buffered output fails here, inside the net, rather than at interpreter exit.
            if sys.stdout is not None:
                sys.stdout.flush()
    except GputabError as exc:
        _say(f"gputab: {exc}")
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _say("Aborted.")
        sys.exit(130)
    except click.ClickException as exc:
        try:
            exc.show()
        except OSError:
            pass
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        _drop_stdout()
        sys.exit(1)
    except OSError as exc:
        if exc.filename is None and exc.errno in _OUTPUT_ERRNOS:
            _drop_stdout()
            _say(f"gputab: cannot write the output: {exc.strerror or exc}")
            sys.exit(1)
        _internal_error(exc)
    except Exception as exc:  # noqa: BLE001 - the last resort: a bug must still end in one line
        _internal_error(exc)


class _ClosedStream(io.RawIOBase):
    """Stands for a standard stream the process was started without: writing to it is an output error."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.said = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.said:  # once is enough: the interpreter's last flush must not fail again
            return len(data)
        self.said = True
        raise OSError(errno.EBADF, f"{self.name} is closed")


def _internal_error(exc: BaseException) -> None:
    if os.environ.get("GPUTAB_DEBUG") == "1":
        _say("".join(traceback.format_exception(exc)).rstrip())
    else:
        text = " ".join(str(exc).split())[:300]
        _say(
            f"gputab: internal error: {type(exc).__name__}: {text} (set GPUTAB_DEBUG=1 for the traceback; "
            f"please report)"
        )
    _drop_stdout()
    sys.exit(INTERNAL_ERROR)


def _say(line: str) -> None:
    """One line on stderr; a stderr that cannot take it (full, closed) is not worth a second failure."""
    try:
        click.echo(line, err=True)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what could not be written stays quiet."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):
        pass
