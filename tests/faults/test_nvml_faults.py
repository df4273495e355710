"""NVML faults, on the fake libnvidia-ml.so.1: the real Recorder keeps ticking, says what failed, and what it
committed stays committed.

Each test steps one Recorder (in a subprocess, see conftest.RecorderDriver) tick by tick while it rewrites the
fake's scenario, so every fault starts and ends between two known ticks.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from faultkit import committed

from fakenvml import Error, GpuSpec, Proc, Sample, Scenario

METRIC_FUNCTIONS = [
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetMemoryInfo_v2",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetTemperatureV",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetPcieThroughput",
    "nvmlDeviceGetProcessUtilization",
    "nvmlDeviceGetComputeRunningProcesses_v3",
    "nvmlDeviceGetGraphicsRunningProcesses_v3",
    "nvmlDeviceGetProcessesUtilizationInfo",
    "nvmlDeviceGetFieldValues",
]


@pytest.fixture
def jobs():
    """Two real processes tagged job-a and job-b (tags come from their environment, as in production)."""
    procs = [subprocess.Popen(["sleep", "60"], env={**os.environ, "GPUTAB_TAG": tag}) for tag in ("job-a", "job-b")]
    yield [p.pid for p in procs]
    for p in procs:
        p.kill()
        p.wait()


def two_gpus(pids, errors=(), energy_base=(1_000_000, 1_000_000), ts=1) -> Scenario:
    return Scenario(
        gpus=[GpuSpec(util=80, power_mw=300_000, energy_base_mj=energy_base[i]) for i in range(2)],
        processes=[Proc(gpu=i, pid=pid) for i, pid in enumerate(pids)],
        samples=[Sample(gpu=i, pid=pid, ts=ts, sm=70) for i, pid in enumerate(pids)],
        errors=list(errors),
    )


def conserved(tick: dict) -> None:
    """Cost model: jobs + (idle) + (unobserved) = everything the GPUs cost."""
    jobs = math.fsum(tick["jobs"].values())
    gpus = math.fsum(g["cost_usd"] for g in tick["gpus"].values())
    assert jobs == pytest.approx(tick["total"], rel=1e-9, abs=1e-12)
    assert gpus == pytest.approx(tick["total"], rel=1e-9, abs=1e-12)


def assert_committed_matches(db, tick: dict) -> None:
    """After close, the database holds exactly the figures of the last tick."""
    c = committed(db)
    assert c is not None and c["end_reason"] == "clean"
    assert c["ticks"] >= tick["seq"]
    assert c["total_cost_usd"] == pytest.approx(tick["total"], rel=1e-9)
    for tag, cost in tick["jobs"].items():
        assert c["jobs"][tag] == pytest.approx(cost, rel=1e-9)


def test_gpu_lost_mid_session_and_back_after_reset(fake_nvml, driver_factory, jobs, db_path):
    fake_nvml.write(two_gpus(jobs))
    d = driver_factory(fake_nvml.env())
    d.start()
    before = d.step(3)
    assert before["lost"] == [] and before["jobs"]["job-b"] > 0
    mid = committed(db_path)

    fake_nvml.write(two_gpus(jobs, errors=[Error("*", "GPU_IS_LOST", gpu=1)]))
    lost = d.step(3)
    assert lost["lost"] == [1]
    assert any("GPU 1 lost" in e for e in lost["errors"]), lost["errors"]
    assert lost["recording"] == "ok"
    assert lost["jobs"]["job-a"] > before["jobs"]["job-a"], "the healthy GPU must go on being charged"
    # The lost GPU's time is nobody's job: it goes to (unobserved), not to job-b.
    assert lost["jobs"].get("(unobserved)", 0) > 0
    assert lost["jobs"]["job-b"] == pytest.approx(before["jobs"]["job-b"], rel=0.35)
    conserved(lost)
    # Nothing committed before the fault was lost or rewritten downwards.
    now = committed(db_path)
    assert now["ticks"] >= mid["ticks"] and now["total_cost_usd"] >= mid["total_cost_usd"]

    fake_nvml.write(two_gpus(jobs))  # the reset: the GPU answers again
    back = d.step(3)
    assert back["lost"] == [] and not any("lost" in e for e in back["errors"])
    assert back["jobs"]["job-b"] > lost["jobs"]["job-b"], "job-b is charged again once its GPU is back"
    conserved(back)
    assert d.close()["ok"]
    assert_committed_matches(db_path, back)


def test_every_metric_not_supported(fake_nvml, driver_factory, jobs, db_path):
    fake_nvml.write(two_gpus(jobs, errors=[Error(fn, "NOT_SUPPORTED") for fn in METRIC_FUNCTIONS]))
    d = driver_factory(fake_nvml.env())
    d.start()
    t = d.step(4)
    assert t["lost"] == [] and t["recording"] == "ok"
    for g in t["gpus"].values():
        # Time is still charged (cost follows allocation), energy is not invented.
        assert g["cost_usd"] > 0
        assert g["energy_j"] == 0 and g["energy_method"] in ("none", None)
    # Processes cannot be listed at all, so the GPUs' time goes to (idle), never to a made-up job.
    assert set(t["jobs"]) == {"(idle)"}
    conserved(t)
    assert d.close()["ok"]
    assert_committed_matches(db_path, t)


def test_nvml_missing_at_start(fake_nvml, fast_config, db_path):
    fake_nvml.write(
        Scenario(errors=[Error("nvmlInitWithFlags", "DRIVER_NOT_LOADED"), Error("nvmlInit_v2", "DRIVER_NOT_LOADED")])
    )
    r = subprocess.run(
        [sys.executable, "-m", "gputab", "record"], env=fake_nvml.env(), capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("gputab: ") and "driver" in r.stderr.lower(), r.stderr
    assert committed(db_path) is None, "no session is opened without a backend"


def test_nvml_library_absent_at_start(tmp_path, fast_config, db_path):
    """No libnvidia-ml.so.1 anywhere the loader looks (an empty LD_LIBRARY_PATH dir and no system copy here)."""
    empty = tmp_path / "nolib"
    empty.mkdir()
    probe = subprocess.run(
        [sys.executable, "-c", "import ctypes; ctypes.CDLL('libnvidia-ml.so.1')"],
        env={**os.environ, "LD_LIBRARY_PATH": str(empty)},
        capture_output=True,
    )
    if probe.returncode == 0:
        pytest.skip("this machine has a real libnvidia-ml.so.1; the missing-library case cannot be staged")
    r = subprocess.run(
        [sys.executable, "-m", "gputab", "record"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "LD_LIBRARY_PATH": str(empty)},
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "NVML" in r.stderr or "nvidia" in r.stderr.lower(), r.stderr
    assert "--demo" in r.stderr, "the message should point a user without a GPU at the demo"


def test_nvml_failing_after_start(fake_nvml, driver_factory, jobs, db_path):
    fake_nvml.write(two_gpus(jobs))
    d = driver_factory(fake_nvml.env())
    d.start()
    ok = d.step(3)
    c_before = committed(db_path)
    # Every call now fails with NVML_ERROR_UNKNOWN, the count included (a driver in trouble).
    fake_nvml.write(two_gpus(jobs, errors=[Error("*", 999), Error("nvmlDeviceGetCount_v2", 999)]))
    failing = [d.ask("step") for _ in range(3)]
    for t in failing:
        # Either the tick says what failed, or it raised and the loop (Recorder.run) logs and goes on;
        # it must never close the session or corrupt the ledger.
        assert "exception" in t or t["errors"], t
    fake_nvml.write(two_gpus(jobs))
    again = d.step(3)
    assert again["errors"] == [] and again["lost"] == []
    assert again["jobs"]["job-a"] > ok["jobs"]["job-a"]
    conserved(again)
    c_mid = committed(db_path)
    assert c_mid["ticks"] >= c_before["ticks"] and c_mid["total_cost_usd"] >= c_before["total_cost_usd"]
    assert d.close()["ok"]
    assert_committed_matches(db_path, again)


def test_energy_counter_reset(fake_nvml, driver_factory, jobs, db_path):
    fake_nvml.write(two_gpus(jobs, energy_base=(50_000_000, 50_000_000)))
    d = driver_factory(fake_nvml.env())
    d.start()
    before = d.step(3)
    e0 = before["gpus"]["0"]["energy_j"]
    assert e0 > 0
    # Driver reload: GPU 0's counter restarts near zero (goes backwards by ~50 kJ).
    fake_nvml.write(two_gpus(jobs, energy_base=(0, 50_000_000)))
    after = d.step(3)
    g0 = after["gpus"]["0"]
    assert g0["energy_j"] > e0, "energy keeps growing through the reset (power trapezoid for that interval)"
    # The backwards step is not a -50 kJ interval, nor a +50 kJ one when the counter comes back.
    assert g0["energy_j"] - e0 < 300 * 5 * 3, g0  # 300 W for at most a few seconds of real time
    assert after["energy_j"] >= before["energy_j"]
    conserved(after)
    assert d.close()["ok"]
    c = committed(db_path)
    assert c["gpus"][0]["energy_j"] == pytest.approx(g0["energy_j"], rel=1e-9)


def test_no_permission_on_processes(fake_nvml, driver_factory, jobs, db_path):
    """NVML refuses process details (other users' processes without root): GPU figures go on, the refusal shows."""
    errors = [
        Error("nvmlDeviceGetComputeRunningProcesses_v3", "NO_PERMISSION", gpu=1),
        Error("nvmlDeviceGetProcessUtilization", "NO_PERMISSION"),
        Error("nvmlDeviceGetProcessesUtilizationInfo", "NO_PERMISSION"),
    ]
    fake_nvml.write(two_gpus(jobs, errors=errors))
    d = driver_factory(fake_nvml.env())
    d.start()
    t = d.step(4)
    assert t["lost"] == [] and t["recording"] == "ok"
    text = " ".join(t["errors"]).lower()
    assert "permission" in text and "gpu 1" in text, t["errors"]
    assert t["gpus"]["1"]["cost_usd"] > 0
    # GPU 1's process list could not be read: its time is (unobserved), not (idle) ("no process held it").
    assert "NVML_ERROR_NO_PERMISSION" in t["unobserved"]["1"], t["unobserved"]
    assert "(idle)" not in t["jobs"]
    assert t["jobs"]["(unobserved)"] == pytest.approx(t["gpus"]["1"]["cost_usd"], rel=1e-9)
    # GPU 0 still lists its process: job-a is charged (equal/memory shares, since SM samples are refused).
    assert t["jobs"]["job-a"] > 0
    conserved(t)
    # Permission may be granted later (it is not NOT_SUPPORTED): the backend must keep asking.
    fake_nvml.write(two_gpus(jobs))
    t2 = d.step(2)
    assert t2["errors"] == [] and t2["jobs"].get("job-b", 0) > 0
    assert d.close()["ok"]
    assert_committed_matches(db_path, t2)


def test_gpu_lost_at_start_is_priced_by_its_model_once_back(fake_nvml, driver_factory, jobs, db_path):
    fake_nvml.write(two_gpus(jobs, errors=[Error("*", "GPU_IS_LOST", gpu=1)]))
    d = driver_factory(fake_nvml.env())
    first = d.start()
    assert first["lost"] == [1]
    d.step(2)
    fake_nvml.write(two_gpus(jobs))
    a = d.step()
    b = d.step(3)
    d.close()
    g1 = b["gpus"]["1"]
    assert g1["uuid"] and g1["model_key"] == b["gpus"]["0"]["model_key"] == "H100-SXM"
    # Once back, the two identical GPUs cost the same per second.
    d0 = b["gpus"]["0"]["cost_usd"] - a["gpus"]["0"]["cost_usd"]
    d1 = b["gpus"]["1"]["cost_usd"] - a["gpus"]["1"]["cost_usd"]
    assert d1 == pytest.approx(d0, rel=0.05)
