"""The ``gputab`` command line. Each command group lives in its own module and registers here."""

from gputab.cli.main import cli, main

__all__ = ["cli", "main"]
