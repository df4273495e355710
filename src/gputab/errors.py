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


ERROR_DETAIL_CHARS = 300
"""The longest exception summary stored as a session's ``end_detail``."""


def one_line(exc: BaseException) -> str:
    """An exception's one-line summary, ``ValueError: what it said``: the ``end_detail`` of a session that an
    unexpected exception ended (``end_reason`` ``error``). Its first line only, at most
    :data:`ERROR_DETAIL_CHARS` characters; the type's name alone when it said nothing."""
    text = str(exc).strip().splitlines()
    said = text[0].strip() if text else ""
    line = f"{type(exc).__name__}: {said}" if said else type(exc).__name__
    return line if len(line) <= ERROR_DETAIL_CHARS else line[: ERROR_DETAIL_CHARS - 1] + "…"
