"""Errors a user can hit, each with a message that names the problem and the fix."""

from __future__ import annotations


class GputabError(Exception):
    """An expected failure: the CLI prints its message (no traceback) and exits with ``exit_code``."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(GputabError):
    """The config file is unreadable or invalid (exit 2, like a usage error)."""

    exit_code = 2


class BackendError(GputabError):
    """The sampling backend cannot start: no driver, no library, init failure."""

    exit_code = 1
