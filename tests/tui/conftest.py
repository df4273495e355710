"""Fixtures of the TUI tests: a demo context on its own database and a fake clock that only tests advance."""

from __future__ import annotations

import time

import pytest

from gputab.cli.context import AppContext
from gputab.sampling.demo import FakeClock

pytest.importorskip("textual")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def demo_ctx(tmp_path) -> AppContext:
    """``gputab --demo`` with the database and config in tmp_path."""
    return AppContext(demo=True, seed=0, db_path=tmp_path / "demo.db", config_path=tmp_path / "config.toml")


@pytest.fixture
def utc(monkeypatch):
    """Local time is UTC for the test (days the Spend screen cuts are the same in every zone)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
