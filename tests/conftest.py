"""Shared fixtures: every test gets its own data dir, database and config, never the user's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_paths(tmp_path, monkeypatch):
    """Point every gputab path at tmp_path so no test reads or writes the user's files."""
    monkeypatch.setenv("GPUTAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GPUTAB_DB", str(tmp_path / "data" / "gputab.db"))
    monkeypatch.setenv("GPUTAB_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("GPUTAB_SPOOL", str(tmp_path / "spool"))
    monkeypatch.delenv("GPUTAB_TAG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    yield tmp_path


def gputab_cmd() -> list[str]:
    """The gputab CLI as a subprocess argv (same interpreter as the tests)."""
    return [sys.executable, "-m", "gputab"]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env
