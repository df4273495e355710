"""Wall-clock jumps (NTP step, a VM resumed with a stale clock, a user setting the date): money must not move.

Intervals come from the monotonic clock; the wall clock only labels the session for humans. The recorder is
driven in process on the demo box with a simulated monotonic clock, once with a steady wall clock and once with
a wall clock that jumps back an hour and forward a day; the costs must be identical, and no (unobserved) time
may appear from a jump.
"""

from __future__ import annotations

import inspect
import json
import math
import subprocess
import sys
import time

import pytest

from fakenvml import GpuSpec, Scenario
from gputab.config.settings import Config, RecorderConfig
from gputab.cost.ledger import UNOBSERVED
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DEMO_START_WALL, DemoBackend, FakeClock
from gputab.store import Store

STEPS = 120


class JumpingWall:
    """A wall clock that follows ``mono`` but steps back 1 h at step 40 and forward 1 day at step 80."""

    def __init__(self, mono: FakeClock) -> None:
        self.mono = mono
        self.offset = DEMO_START_WALL - mono()
        self.jumps = {40: -3600.0, 80: 86400.0}

    def __call__(self) -> float:
        return self.mono() + self.offset

    def at_step(self, k: int) -> None:
        self.offset += self.jumps.get(k, 0.0)


def record(tmp_path, name: str, jump: bool):
    mono = FakeClock(start=500.0)
    wall = JumpingWall(mono)
    backend = DemoBackend(seed=3, clock=mono, wall_clock=wall)
    cfg = Config(recorder=RecorderConfig(interval=1.0, commit_interval=5.0, series_interval=10.0))
    rec = Recorder(backend, Store(tmp_path / f"{name}.db"), cfg, clock=mono, wall_clock=wall, spool=tmp_path / "spool")
    rec.start()
    for k in range(1, STEPS + 1):
        mono.advance(1.0)
        if jump:
            wall.at_step(k)
        tick = rec.step()
    assert rec.close()
    return tick, rec


def test_wall_clock_jumps_do_not_change_costs(tmp_path):
    steady, _ = record(tmp_path, "steady", jump=False)
    jumped, rec = record(tmp_path, "jumped", jump=True)
    costs_steady = {j["tag"]: j["cost_usd"] for j in steady.jobs}
    costs_jumped = {j["tag"]: j["cost_usd"] for j in jumped.jobs}
    assert UNOBSERVED not in costs_jumped or costs_jumped[UNOBSERVED] == 0
    assert costs_jumped.keys() == costs_steady.keys()
    for tag, cost in costs_steady.items():
        assert costs_jumped[tag] == pytest.approx(cost, rel=1e-12), tag
    # 5 demo GPUs for exactly STEPS seconds of monotonic time, whatever the wall clock said.
    seconds = math.fsum(g["seconds"] for g in jumped.gpus)
    assert seconds == pytest.approx(5 * STEPS, rel=1e-9)
    # And the database agrees with the ledger.
    with Store(tmp_path / "jumped.db") as store:
        jobs = {j["tag"]: j["cost_usd"] for j in store.jobs(rec.session_id)}
    assert jobs == pytest.approx(costs_jumped, rel=1e-12)


def test_backward_wall_jump_keeps_series_times_monotonic(tmp_path):
    """Series points are keyed by monotonic ms since the start: a backwards wall step cannot collide or reorder."""
    _, rec = record(tmp_path, "series", jump=True)
    with Store(tmp_path / "series.db") as store:
        # In insertion order (no ORDER BY on purpose: the primary key order is t_ms, which is what is checked).
        rows = store.db.execute(
            "SELECT t_ms FROM gpu_samples WHERE session_id = ? AND gpu_index = 0", [rec.session_id]
        ).fetchall()
    ts = [r[0] for r in rows]
    assert ts == sorted(ts) and len(ts) == len(set(ts))
    assert ts[-1] == STEPS * 1000


def test_production_clocks_are_monotonic(fake_nvml):
    """What the tests above assume of the real recorder: its schedule and NVML's snapshots use monotonic time.

    The NVML poll runs (on the fake) with the wall clock set back by a year; its ``mono`` must not notice.
    """
    assert inspect.signature(Recorder).parameters["clock"].default is time.monotonic
    fake_nvml.write(Scenario(gpus=[GpuSpec()]))
    script = (
        "import json, time\n"
        "from gputab.sampling.nvml import NvmlBackend\n"
        "b = NvmlBackend()\n"
        "real = time.time\n"
        "time.time = lambda: real() - 365 * 86400\n"
        "m0 = time.monotonic(); s = b.poll(); m1 = time.monotonic()\n"
        "print(json.dumps([m0, s.mono, m1, s.wall, real()]))\n"
    )
    r = subprocess.run([sys.executable, "-c", script], env=fake_nvml.env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    m0, mono, m1, wall, real_wall = json.loads(r.stdout)
    assert m0 <= mono <= m1
    assert wall == pytest.approx(real_wall - 365 * 86400, abs=5), "the wall clock only labels the snapshot"
