"""Helpers shared by test modules (import as `from support import ...`; conftest names are ambiguous)."""

from __future__ import annotations

import os
import sys


def gputab_cmd() -> list[str]:
    """The gputab CLI as a subprocess argv (same interpreter as the tests)."""
    return [sys.executable, "-m", "gputab"]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env
