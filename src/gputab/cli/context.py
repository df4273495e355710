"""What every command gets from the group options: backend choice, database, config."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from gputab.config import Config, load_config
from gputab.errors import GputabError


@dataclass
class AppContext:
    demo: bool = False
    seed: int = 0
    db_path: Path | None = None
    config_path: Path | None = None
    config_explicit: bool = False
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path, must_exist=self.config_explicit)
        return self._config

    @property
    def database(self) -> Path:
        """The database file: ``--db``, ``GPUTAB_DB`` or the default, which the ``gputab`` group always sets."""
        if self.db_path is None:
            raise GputabError("no database path; give --db FILE")
        return self.db_path

    def open_backend(self, **kwargs):
        from gputab.sampling import open_backend

        return open_backend(demo=self.demo, seed=self.seed, **kwargs) if self.demo else open_backend(**kwargs)


pass_ctx = click.make_pass_decorator(AppContext)


def print_json(body: dict) -> None:
    """One JSON document on stdout, in the public vocabulary (:func:`gputab.vocabulary.document`: keys with
    their units, ``schema_version`` first), stable key order."""
    from gputab.publish import document

    json.dump(document(body), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def fail(message: str, code: int = 1) -> None:
    raise GputabError(message, exit_code=code)
