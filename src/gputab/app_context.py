"""The run's choices from the command line's group options: backend, database, config.

Shared by the CLI (:mod:`gputab.cli.context`, which hands it to every command) and the TUI (which builds its feed
from it), so the TUI need not import the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gputab.config.settings import Config, load_config
from gputab.errors import GputabError

if TYPE_CHECKING:
    from gputab.sampling.backend import Backend


@dataclass
class AppContext:
    """Backend choice (``--demo``, ``--seed``), database (``--db``) and config (``--config``); the config is read
    on first use."""

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

    def open_backend(self, **kwargs: Any) -> Backend:
        from gputab.sampling import open_backend

        return open_backend(demo=self.demo, seed=self.seed, **kwargs) if self.demo else open_backend(**kwargs)
