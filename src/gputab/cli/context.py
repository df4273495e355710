"""What every command gets from the group options: backend choice, database, config
(:class:`~gputab.app_context.AppContext`, kept in a module of its own so the TUI can use it without the CLI)."""

from __future__ import annotations

import json
import sys

import click

from gputab.app_context import AppContext
from gputab.errors import GputabError

pass_ctx = click.make_pass_decorator(AppContext)


def print_json(body: dict) -> None:
    """One JSON document on stdout, in the public vocabulary (:func:`gputab.publish.document.document`: keys with
    their units, ``schema_version`` first), stable key order."""
    from gputab.publish.document import document

    json.dump(document(body), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def fail(message: str, code: int = 1) -> None:
    raise GputabError(message, exit_code=code)
