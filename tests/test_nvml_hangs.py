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
# the scenario makes one driver call hang for 15 s. The app records (the recorder's poll has a deadline, 2 x the
# interval): frames go on, the GPU reads "not read" and its time goes to (unobserved), a notice says so once, and the
# screen keeps answering keys.
_LIVE = r"""
import asyncio, json, os, sys, time
sys.path.insert(0, sys.argv[3])
from fakenvml import FakeNvml, GpuSpec, Scenario
from pathlib import Path
from gputab.cli.context import AppContext
from gputab.tui.app import create_app

fake = FakeNvml(Path(sys.argv[1]), Path(sys.argv[2]))

async def main():
    ctx = AppContext(db_path=Path(os.environ["GPUTAB_DB"]), config_path=Path(os.environ["GPUTAB_CONFIG"]))
    app = create_app(ctx, interval=0.2)
    said = []
    notify = app.notify
    def spy(message, **kw):
        said.append([kw.get("title", ""), message])
        notify(message, **kw)
    app.notify = spy
    out = {}
    async with app.run_test(size=(120, 40)) as pilot:
        while app.frames_shown < 3:
            await pilot.pause(0.1)
        fake.write(Scenario(gpus=[GpuSpec()], delays={"nvmlDeviceGetPowerUsage": 15}))
        hung_at = time.monotonic()
        frames = app.frames_shown
        await pilot.pause(2.5)
        out["frames_during_hang"] = app.frames_shown - frames
        out["unobserved"] = app.frame.gpus[0].unobserved
        out["jobs"] = {j.tag: j.cost_usd for j in app.frame.jobs}
        t0 = time.monotonic()
        await pilot.press("2")
        await pilot.pause(0.2)
        out["switch_s"] = time.monotonic() - t0
        out["screen_after_key"] = type(app.screen).__name__
        out["hung_for"] = time.monotonic() - hung_at
        fake.write(Scenario(gpus=[GpuSpec()]))
        while (app.frame.gpus[0].unobserved or time.monotonic() - hung_at < 15) and time.monotonic() - hung_at < 40:
            await pilot.pause(0.2)
        out["recovered"] = app.frame.gpus[0].unobserved is None
        out["said"] = said
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.slow
def test_a_hung_driver_call_holds_neither_the_screen_nor_the_recording(fake_nvml, tmp_path):
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
    assert doc["hung_for"] < 15, doc  # all of this happened while the call hung
    assert doc["frames_during_hang"] >= 2, doc  # the poll returned at its deadline, tick after tick
    assert "power: no answer within the poll's deadline" in doc["unobserved"] or "still no answer" in doc["unobserved"]
    assert doc["jobs"].get("(unobserved)", 0) > 0, doc
    assert doc["switch_s"] < 5.0 and doc["screen_after_key"] == "GpusScreen", doc
    notices = [m for title, m in doc["said"] if title == "GPU reading failed"]
    assert len(notices) == 1 and "GPU 0 power" in notices[0], doc["said"]  # said once, however many ticks
    assert doc["recovered"], doc
