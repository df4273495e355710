"""The ``gputab`` command line. Each command group lives in its own module and registers here."""

from gputab import startup
from gputab.cli.main import cli, main

startup.done()  # the command line catches signals from here on (see gputab.startup)

__all__ = ["cli", "main"]
