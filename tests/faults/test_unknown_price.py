"""A job on a GPU whose model is not in the price table is flagged in `gputab snapshot` too (issue 24, finding 7):
``jobs[].unknown_price`` is true in ``--json`` and the text marks the job, as ``gputab show`` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fakenvml import GpuSpec, Proc, Scenario
from gputab.cli.snapshot import UNKNOWN_PRICE_NOTE


@pytest.fixture
def two_jobs(fake_nvml):
    known = subprocess.Popen(["sleep", "60"], env={**os.environ, "GPUTAB_TAG": "on-h100"})
    mystery = subprocess.Popen(["sleep", "60"], env={**os.environ, "GPUTAB_TAG": "on-mystery"})
    fake_nvml.write(
        Scenario(
            gpus=[GpuSpec(util=70), GpuSpec(name="NVIDIA Mystery Accelerator 9000", util=70)],
            processes=[Proc(gpu=0, pid=known.pid), Proc(gpu=1, pid=mystery.pid)],
        )
    )
    yield fake_nvml
    for p in (known, mystery):
        p.kill()
        p.wait()


def _snapshot(fake, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [sys.executable, "-m", "gputab", "snapshot", *args],
        env=fake.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r


@pytest.mark.parametrize("over", ["0", "0.2"])
def test_snapshot_json_flags_the_job_on_an_unknown_model(two_jobs, over):
    doc = json.loads(_snapshot(two_jobs, "--json", "--over", over).stdout)
    jobs = {j["tag"]: j for j in doc["jobs"]}
    assert jobs["on-mystery"]["unknown_price"] is True
    assert jobs["on-h100"]["unknown_price"] is False
    assert {g["index"]: g["unknown_price"] for g in doc["gpus"]} == {0: False, 1: True}


def test_snapshot_text_marks_the_job_on_an_unknown_model(two_jobs):
    out = _snapshot(two_jobs, "--over", "0.2").stdout
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("on-")}
    assert "*" in rows["on-mystery"] and "*" not in rows["on-h100"]
    assert UNKNOWN_PRICE_NOTE in out
