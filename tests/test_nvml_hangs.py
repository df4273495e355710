"""Start-up and hangs: a slow nvmlInit is said while it lasts; a driver call that hangs does not freeze the screen.

The fake NVML sleeps in a scripted call (``delay SYMBOL SECONDS``), so the driver's slowness is real time.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakenvml import GpuSpec, Scenario


def test_record_says_while_nvml_is_slow_to_start(fake_nvml):
    fake_nvml.write(Scenario(gpus=[GpuSpec()], delays={"nvmlInitWithFlags": 2.6}))
    started = time.monotonic()
    rec = subprocess.Popen(
        [sys.executable, "-m", "gputab", "record", "--interval", "0.2"],
        env=fake_nvml.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = rec.stdout.readline()  # the start message comes once NVML is up
        assert "recording" in first
        assert time.monotonic() - started >= 2.6
    finally:
        rec.send_signal(signal.SIGINT)
        _, err = rec.communicate(timeout=30)
    waits = [line for line in err.splitlines() if "starting NVML (nvmlInit): still waiting after" in line]
    assert 2 <= len(waits) <= 3, err  # at ~1 s and ~2 s: once a second while it lasts, then no more
    assert "nvidia-smi -pm 1" in waits[0]
    assert rec.returncode == 0, err


def test_a_fast_start_says_nothing(fake_nvml):
    fake_nvml.write(Scenario(gpus=[GpuSpec()]))
    out = subprocess.run(
        [sys.executable, "-m", "gputab", "snapshot", "--over", "0"],
        env=fake_nvml.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "still waiting" not in out.stderr


# The live app on the fake library, in a subprocess (LD_LIBRARY_PATH is read at start): after the first frames
# the scenario makes one driver call hang for 10 s; the screen must keep answering keys and say what it waits for.
_LIVE = r"""
import asyncio, json, os, sys, time
sys.path.insert(0, sys.argv[3])
from fakenvml import FakeNvml, GpuSpec, Scenario
from pathlib import Path
from gputab.cli.context import AppContext
from gputab.tui.app import create_app
from gputab.tui.widgets.header import SessionHeader

fake = FakeNvml(Path(sys.argv[1]), Path(sys.argv[2]))

async def main():
    ctx = AppContext(db_path=Path(os.environ["GPUTAB_DB"]), config_path=Path(os.environ["GPUTAB_CONFIG"]))
    app = create_app(ctx, interval=0.2)
    out = {}
    async with app.run_test(size=(120, 40)) as pilot:
        while app.frames_shown < 3:
            await pilot.pause(0.1)
        fake.write(Scenario(gpus=[GpuSpec()], delays={"nvmlDeviceGetPowerUsage": 10}))
        hung_at = time.monotonic()
        await pilot.pause(1.0)
        frames = app.frames_shown
        # The screen answers keys while the poll thread is stuck in the driver.
        t0 = time.monotonic()
        await pilot.press("2")
        await pilot.pause(0.2)
        out["switch_s"] = time.monotonic() - t0
        out["screen_after_key"] = type(app.screen).__name__
        await pilot.press("1")
        # The note is due 3 intervals (at least 3 s) after the last frame; a loaded machine may take longer, but the
        # call hangs 10 s, so wait for it up to 8.5 s after the hang began.
        while True:
            await pilot.pause(0.25)
            out["header"] = str(app.screen.query_one(SessionHeader).render())
            if "waiting on the NVIDIA driver" in out["header"] or time.monotonic() - hung_at > 8.5:
                break
        out["frames_during_hang"] = app.frames_shown - frames
        fake.write(Scenario(gpus=[GpuSpec()]))
        while app.frames_shown == frames and time.monotonic() - hung_at < 20:
            await pilot.pause(0.2)
        out["recovered"] = app.frames_shown > frames
        await pilot.pause(1.2)
        out["header_after"] = str(app.screen.query_one(SessionHeader).render())
    print(json.dumps(out))

asyncio.run(main())
"""


def test_a_hung_driver_call_does_not_freeze_the_screen(fake_nvml, tmp_path):
    pytest.importorskip("textual")
    fake_nvml.write(Scenario(gpus=[GpuSpec()]))
    tests_dir = str(Path(__file__).parent)
    out = subprocess.run(
        [sys.executable, "-c", _LIVE, str(fake_nvml.lib_dir), str(fake_nvml.scenario_path), tests_dir],
        env=fake_nvml.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["frames_during_hang"] == 0, doc  # the poll really was stuck
    assert doc["switch_s"] < 3.0 and doc["screen_after_key"] == "GpusScreen", doc
    assert "waiting on the NVIDIA driver: no new poll for" in doc["header"], doc
    assert doc["recovered"], doc
    assert "waiting on the NVIDIA driver" not in doc["header_after"], doc
