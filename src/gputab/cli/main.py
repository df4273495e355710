"""The ``gputab`` group: global options, error handling, and the command registry."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gputab import __version__
from gputab.cli.context import AppContext
from gputab.errors import GputabError
from gputab.paths import default_config, default_db


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--demo", is_flag=True, help="Use the simulated demo box (no GPU needed); keeps its own database.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the demo simulation.")
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SQLite database of sessions [env GPUTAB_DB; default: user data dir].")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TOML config file [env GPUTAB_CONFIG; default: user config dir].")
@click.option("--interval", type=float, default=None, help="Seconds between polls for the live view (default 1).")
@click.version_option(__version__, "--version", prog_name="gputab")
@click.pass_context
def cli(ctx: click.Context, demo: bool, seed: int, db: Path | None, config: Path | None, interval: float | None):
    """gputab: what your GPUs cost while they work.

    Run with no command to open the live view. `gputab --demo` shows a simulated box on a machine without a GPU.
    """
    explicit_config = config is not None  # a missing file named by GPUTAB_CONFIG means defaults
    ctx.obj = AppContext(
        demo=demo,
        seed=seed,
        db_path=db if db is not None else default_db(demo),
        config_path=config if config is not None else default_config(),
        config_explicit=explicit_config,
    )
    if ctx.invoked_subcommand is None:
        from gputab.cli.live import run_live

        run_live(ctx.obj, interval=interval)


def _register() -> None:
    """Each command group lives in its own module; importing one loads only what it needs at call time."""
    from gputab.cli import export, fleet, prices, record, review, review_tui, run, samples, snapshot

    cli.add_command(snapshot.snapshot)
    for mod in (prices, run, record, review, samples, export, review_tui, fleet):
        mod.register(cli)


_register()


def main() -> None:
    """Console entry point: expected errors become one line and an exit code, never a traceback."""
    try:
        cli.main(standalone_mode=False, prog_name="gputab")
    except GputabError as exc:
        click.echo(f"gputab: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
