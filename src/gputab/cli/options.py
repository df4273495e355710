"""Checks of option values shared by several commands, so each bound and its message is defined once."""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path

from gputab.cli.context import fail
from gputab.errors import GputabError

MIN_INTERVAL = 0.05
"""Seconds: faster polling costs more CPU than it tells (NVML itself refreshes most counters far less often)."""
MAX_INTERVAL = 86400.0
"""Seconds: one poll a day; anything longer leaves a session that shows $0 for days."""


def check_interval(interval: float) -> float:
    """``interval`` (seconds between polls) when it is within bounds; else a one-line usage error (exit 2).

    Used by ``gputab record --interval`` and the live view's ``gputab --interval``. NaN and infinity are refused
    like any other value out of bounds.
    """
    if not (math.isfinite(interval) and MIN_INTERVAL <= interval <= MAX_INTERVAL):
        fail(f"--interval must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds, got {interval:g}", code=2)
    return interval


def check_db_path(path: Path, option: str = "--db") -> None:
    """Refuse, in one line, a database path that no file system call can take (too long, a loop).

    What the path names (a FIFO, a directory, another program's file) is the store's to judge: it says so in one line
    before SQLite touches it."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return  # the commands say what they make of a missing database, in their own words
    except OSError as exc:
        if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP):
            shown = str(path) if len(str(path)) <= 80 else str(path)[:77] + "..."
            raise GputabError(f"{option} {shown}: {exc.strerror}; give a usable path", exit_code=2) from None
    except ValueError:
        raise GputabError(f"{option}: the path contains a NUL byte", exit_code=2) from None
