"""Failed and hung GPU readings (issue 24, findings 1 and 2), on the fake libnvidia-ml.so.1 with the real recorder.

cost-model.md, "Who pays": a GPU whose process list or utilization could not be read (an NVML error other than
NOT_SUPPORTED, or no answer within the poll's deadline) is charged to (unobserved), never to (idle) or to the jobs
of the last good reading; the other GPUs are charged as usual; the failure is said once per GPU and kind.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest
from faultkit import committed, wait_until

from fakenvml import Delay, Error, GpuSpec, Proc, Sample, Scenario

COMPUTE = "nvmlDeviceGetComputeRunningProcesses_v3"


@pytest.fixture
def jobs():
    """Two real processes tagged job-a (on GPU 0) and job-b (on GPU 1)."""
    procs = [subprocess.Popen(["sleep", "60"], env={**os.environ, "GPUTAB_TAG": tag}) for tag in ("job-a", "job-b")]
    yield [p.pid for p in procs]
    for p in procs:
        p.kill()
        p.wait()


def two_gpus(pids, errors=(), slow=()) -> Scenario:
    return Scenario(
        gpus=[GpuSpec(util=90, power_mw=300_000) for _ in range(2)],
        processes=[Proc(gpu=i, pid=pid) for i, pid in enumerate(pids)],
        samples=[Sample(gpu=i, pid=pid, ts=1, sm=90) for i, pid in enumerate(pids)],
        errors=list(errors),
        slow=list(slow),
    )


def conserved(tick: dict) -> None:
    assert math.fsum(tick["jobs"].values()) == pytest.approx(tick["total"], rel=1e-9, abs=1e-12)
    assert math.fsum(g["cost_usd"] for g in tick["gpus"].values()) == pytest.approx(tick["total"], rel=1e-9)


def test_a_process_list_timeout_books_its_gpu_to_unobserved_not_idle(fake_nvml, driver_factory, jobs, db_path):
    """Finding 1: NVML_ERROR_TIMEOUT on GPU 1's process list booked GPU 1 to (idle), silently."""
    fake_nvml.write(two_gpus(jobs))
    d = driver_factory(fake_nvml.env())
    d.start()
    before = d.step(2)
    assert before["jobs"]["job-b"] > 0 and before["unobserved"] == {}

    fake_nvml.write(two_gpus(jobs, errors=[Error(COMPUTE, "TIMEOUT", gpu=1)]))
    failing = [d.step() for _ in range(3)]
    last = failing[-1]
    assert "(idle)" not in last["jobs"], "no process *held* GPU 1 is not what NVML said: it did not answer"
    assert "NVML_ERROR_TIMEOUT" in last["unobserved"]["1"]
    # GPU 1's time while it failed went to (unobserved), none of it to job-b (the last good reading's job) ...
    assert last["jobs"]["job-b"] == pytest.approx(before["jobs"]["job-b"], rel=1e-12)
    g1 = last["gpus"]["1"]["cost_usd"] - before["gpus"]["1"]["cost_usd"]
    g0_gap = last["gpus"]["0"]["unobserved_cost_usd"] - before["gpus"]["0"]["unobserved_cost_usd"]  # a slow box
    unobserved = last["jobs"]["(unobserved)"] - before["jobs"].get("(unobserved)", 0.0)
    assert unobserved == pytest.approx(g1 + g0_gap, rel=1e-9)
    # ... and GPU 0's job is charged as usual.
    assert last["jobs"]["job-a"] > failing[0]["jobs"]["job-a"] > before["jobs"]["job-a"]
    conserved(last)
    # Said once per GPU and kind, counted every time.
    assert [len(t["notices"]) for t in failing] == [1, 0, 0]
    assert "GPU 1 compute processes" in failing[0]["notices"][0]
    assert last["read_faults"] == [[1, "compute_processes", "NVML_ERROR_TIMEOUT", 3]]

    fake_nvml.write(two_gpus(jobs))
    back = d.step(3)
    assert back["unobserved"] == {} and back["jobs"]["job-b"] > last["jobs"]["job-b"]
    conserved(back)
    assert d.close()["ok"]
    assert "NVML_ERROR_TIMEOUT" in d.stderr  # the recorder's log line (record prints it on stderr)

    # The note stored with the session, as `gputab show` prints it.
    shown = subprocess.run(
        [sys.executable, "-m", "gputab", "show", "--json"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    from test_vocabulary import FAULT_ONLY, check_document

    assert FAULT_ONLY <= check_document(doc, "show")  # every key documented, with its unit and JSON type
    faults = doc["read_faults"]
    assert [(f["gpu_index"], f["call"], f["error"], f["count"]) for f in faults] == [
        (1, "compute_processes", "NVML_ERROR_TIMEOUT", 3)
    ]
    text = subprocess.run([sys.executable, "-m", "gputab", "show"], capture_output=True, text=True, timeout=60)
    assert "GPU 1 compute_processes: NVML_ERROR_TIMEOUT, 3 times" in text.stdout, text.stdout
    assert committed(db_path)["jobs"]["(unobserved)"] > 0


def test_a_not_supported_process_list_is_not_a_fault(fake_nvml, driver_factory, jobs):
    """NOT_SUPPORTED stays what it was: the GPU lacks the call; nothing is unobserved or said."""
    fake_nvml.write(two_gpus(jobs, errors=[Error("nvmlDeviceGetGraphicsRunningProcesses_v3", "NOT_SUPPORTED")]))
    d = driver_factory(fake_nvml.env())
    d.start()
    t = d.step(2)
    assert t["unobserved"] == {} and t["read_faults"] == [] and "(unobserved)" not in t["jobs"]
    assert t["jobs"]["job-a"] > 0 and t["jobs"]["job-b"] > 0
    d.close()


def test_a_failed_utilization_reading_is_unobserved(fake_nvml, driver_factory, jobs):
    fake_nvml.write(two_gpus(jobs, errors=[Error("nvmlDeviceGetUtilizationRates", "NO_DATA", gpu=0)]))
    d = driver_factory(fake_nvml.env())
    d.start()
    t = d.step(2)
    assert list(t["unobserved"]) == ["0"] and t["jobs"].get("job-a", 0.0) == 0.0
    assert t["read_faults"] == [[0, "utilization", "NVML_ERROR_NO_DATA", 3]]  # the baseline tick read it too
    assert t["jobs"]["job-b"] > 0
    conserved(t)
    d.close()


@pytest.mark.slow
def test_record_says_it_once_and_metrics_count_it(fake_nvml, record_factory, jobs):
    fake_nvml.write(two_gpus(jobs, errors=[Error(COMPUTE, "TIMEOUT", gpu=1)]))
    rec = record_factory(fake_nvml.env(), "--metrics-port", "0")
    url = wait_until(
        lambda: next((re.search(r"http://\S+/metrics", ln) for ln in rec.out_lines if "/metrics" in ln), None),
        30,
        "the metrics URL",
    ).group(0)
    rec.wait_stderr("NVML_ERROR_TIMEOUT", timeout=30)

    def counted() -> float:
        body = urllib.request.urlopen(url, timeout=5).read().decode()
        wanted = ('gpu="1"', 'call="compute_processes"', 'error="NVML_ERROR_TIMEOUT"')
        for line in body.splitlines():
            if line.startswith("gputab_gpu_read_errors_total{") and all(w in line for w in wanted):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    wait_until(lambda: counted() >= 5, 30, "5 failed readings counted in /metrics")
    assert rec.stop() == 0
    said = [ln for ln in rec.lines if "NVML_ERROR_TIMEOUT" in ln]
    assert len(said) == 1, rec.stderr  # once per GPU and kind, however many ticks it failed
    assert said[0].startswith("gputab: GPU 1 compute processes")


@pytest.mark.slow
def test_a_hung_process_list_holds_only_its_gpu_and_is_not_called_again(fake_nvml, driver_factory, jobs):
    """Finding 2: a process-list call that hung for seconds stopped every tick, the healthy GPUs' included. The
    poll's deadline is the default, 2 x the interval (0.2 s here)."""
    fake_nvml.write(two_gpus(jobs))
    d = driver_factory(fake_nvml.env())
    d.start()
    before = d.step(2)
    hang = 3.0
    fake_nvml.write(two_gpus(jobs, slow=[Delay(COMPUTE, hang, gpu=1)]))
    hung_at = time.monotonic()
    during = []
    while time.monotonic() - hung_at < hang - 1.0:
        t0 = time.monotonic()
        during.append(d.ask("step", timeout=2.0))  # on main this waits out the whole hang: TimeoutError
        assert time.monotonic() - t0 < 2.0
    assert len(during) >= 3, "several ticks while GPU 1's call hangs"
    last = during[-1]
    assert "1" in last["unobserved"]
    assert "no answer" in last["unobserved"]["1"]
    assert last["jobs"]["job-a"] > during[0]["jobs"]["job-a"] > before["jobs"]["job-a"], "GPU 0 charged as usual"
    assert last["jobs"]["job-b"] == pytest.approx(before["jobs"]["job-b"], rel=1e-12)
    assert last["jobs"]["(unobserved)"] > 0
    conserved(last)
    # The stuck call was never made again from another thread while it hung.
    assert d.ask(f"max_in_flight {COMPUTE}")["max_in_flight"] == 1
    kinds = {tuple(f[:3]) for f in last["read_faults"]}
    assert kinds == {(1, "compute_processes", "no_answer")}, last["read_faults"]
    assert sum(len(t["notices"]) for t in during) == 1

    fake_nvml.write(two_gpus(jobs))  # the driver recovers; the stuck call returns after its delay
    time.sleep(max(0.0, hang - (time.monotonic() - hung_at)) + 0.2)
    back = d.step(3)
    assert back["unobserved"] == {}, back["unobserved"]
    assert back["jobs"]["job-b"] > last["jobs"]["job-b"], "GPU 1 is read and charged again once its call returned"
    conserved(back)
    assert d.close()["ok"]


def test_poll_deadline_is_checked(tmp_path):
    from gputab.config.settings import parse_config
    from gputab.errors import ConfigError

    assert parse_config("[recorder]\ninterval = 2\npoll_deadline = 0.5\n").recorder.poll_deadline == 0.5
    with pytest.raises(ConfigError, match="poll_deadline"):
        parse_config("[recorder]\npoll_deadline = 0\n")
