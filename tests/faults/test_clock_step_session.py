"""A wall clock stepped back 3 h while recording (issue 24, finding 4): the session's times stay right.

The duration comes from the monotonic clock and is never negative; ``ended_at`` is ``started_at`` + the duration;
the session says the clock was stepped (stored, and printed by ``gputab show``); ``spend --by day`` files the
session by its start. The recorder is the real one on the demo box, with a simulated monotonic clock and a wall
clock that steps back 3 h at tick 40.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from gputab.cli.main import cli
from gputab.config.settings import Config, RecorderConfig
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DEMO_START_WALL, DemoBackend, FakeClock
from gputab.store import Store

STEPS = 120
STEP_AT = 40
BACK = -3 * 3600.0
START = DEMO_START_WALL + 86400.0 + 3600.0  # 2026-01-02 01:00 UTC: three hours back is the day before


class SteppingWall:
    """Follows the monotonic clock from ``START``; ``step()`` sets it back 3 h, as an NTP step or a user would."""

    def __init__(self, mono: FakeClock) -> None:
        self.mono = mono
        self.offset = START - mono()

    def __call__(self) -> float:
        return self.mono() + self.offset

    def step(self) -> None:
        self.offset += BACK


@pytest.fixture
def stepped_db(tmp_path, caplog):
    db = tmp_path / "stepped.db"
    mono = FakeClock(start=1000.0)
    wall = SteppingWall(mono)
    backend = DemoBackend(seed=1, clock=mono, wall_clock=wall)
    cfg = Config(recorder=RecorderConfig(interval=1.0, commit_interval=5.0, series_interval=10.0))
    rec = Recorder(backend, Store(db), cfg, clock=mono, wall_clock=wall, spool=tmp_path / "spool")
    rec.start()
    for k in range(1, STEPS + 1):
        mono.advance(1.0)
        if k == STEP_AT:
            wall.step()
        rec.step()
    assert rec.duration_seconds == pytest.approx(STEPS)
    assert rec.close()
    # Said once, under the recorder's logger (the one `gputab record` prints on stderr).
    said = [r for r in caplog.records if "stepped back 3 h" in r.getMessage()]
    assert len(said) == 1 and said[0].name.startswith("gputab.recording.recorder"), said
    return db


def _cli(db, *args: str):
    r = CliRunner().invoke(cli, ["--db", str(db), *args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


def test_duration_and_end_follow_the_monotonic_clock(stepped_db):
    info = json.loads(_cli(stepped_db, "show", "last", "--json").stdout)["session"]
    assert info["duration_seconds"] == pytest.approx(STEPS, abs=1e-6)
    started = datetime.fromisoformat(info["started_at"].replace("Z", "+00:00"))
    ended = datetime.fromisoformat(info["ended_at"].replace("Z", "+00:00"))
    assert (ended - started).total_seconds() == pytest.approx(STEPS, abs=1)
    assert started == datetime.fromtimestamp(START, UTC).replace(microsecond=0)


def test_the_session_notes_the_step_and_show_prints_it(stepped_db):
    info = json.loads(_cli(stepped_db, "show", "last", "--json").stdout)["session"]
    assert info["clock_step_seconds"] == pytest.approx(BACK, abs=2)
    text = _cli(stepped_db, "show", "last").stdout
    assert "wall clock was stepped back 3 h 0 min 0 s" in text


def test_spend_by_day_files_the_session_by_its_start(stepped_db):
    doc = json.loads(_cli(stepped_db, "spend", "--by", "day", "--since", "2025-12-01", "--json").stdout)
    days = {r["day"]: r["cost_usd"] for r in doc["rows"] if r.get("day") and r["cost_usd"]}
    assert list(days) == ["2026-01-02"], days


def test_a_steady_clock_notes_no_step(tmp_path):
    db = tmp_path / "steady.db"
    mono = FakeClock(start=1000.0)
    wall = SteppingWall(mono)
    backend = DemoBackend(seed=1, clock=mono, wall_clock=wall)
    rec = Recorder(backend, Store(db), Config(), clock=mono, wall_clock=wall, spool=tmp_path / "spool")
    rec.start()
    for _ in range(20):
        mono.advance(1.0)
        rec.step()
    assert rec.close()
    info = json.loads(_cli(db, "show", "last", "--json").stdout)["session"]
    assert info["clock_step_seconds"] is None
    assert "stepped" not in _cli(db, "show", "last").stdout
