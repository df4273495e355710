"""The NVML backend against the fake libnvidia-ml.so.1 (tests/fakenvml): real pynvml, scripted driver.

Everything runs in subprocesses, because pynvml loads the library once per process by name. ``fake_nvml.session()``
keeps one backend alive across polls so a test can rewrite the scenario in between (a GPU falls off the bus, a
counter resets); ``_snapshot()`` runs the real ``gputab snapshot --json`` command.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time

import pytest

from fakenvml import GIB, Error, GpuSpec, Proc, Sample, Scenario
from gputab.sampling.process_sm import PROC_SM_HOLD_S
from support import gputab_cmd

# Every per-GPU metric symbol the backend reads each poll; NOT_SUPPORTED on all of them = the "nothing" GPU.
METRIC_SYMBOLS = [
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
]
METRIC_FIELDS = [
    "utilization_pct",
    "memory_utilization_pct",
    "memory_used_bytes",
    "memory_total_bytes",
    "power_w",
    "power_limit_w",
    "energy_mj",
    "temperature_c",
    "sm_clock_mhz",
    "pcie_rx_bytes_per_s",
    "pcie_tx_bytes_per_s",
]

SAMPLE_KEYS = ("pid", "gpu_index", "used_memory_bytes", "sm_pct", "kind")


@pytest.fixture
def children():
    """Three real sleeping processes whose PIDs the scenarios list as GPU users."""
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    yield [p.pid for p in procs]
    for p in procs:
        p.kill()
        p.wait()


def _dead_pid() -> int:
    """A PID that no process has right now (a child that already exited and was reaped)."""
    p = subprocess.Popen(["true"])
    p.wait()
    with pytest.raises(ProcessLookupError):
        os.kill(p.pid, 0)
    return p.pid


def _snapshot(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*gputab_cmd(), "snapshot", *args], env=env, capture_output=True, text=True, timeout=60)


def _two_gpus(pids: list[int], **extra) -> Scenario:
    """Two busy GPUs with distinct numbers in every field, so a swapped or mis-scaled field shows."""
    return Scenario(
        driver="550.54.15",
        gpus=[
            GpuSpec(
                name="NVIDIA H100 80GB HBM3",
                uuid="GPU-aaaa",
                util=87,
                memutil=41,
                mem_used=30 * GIB,
                mem_total=80 * GIB,
                mem_reserved=GIB // 2,
                power_mw=512_345,
                limit_mw=700_000,
                energy_base_mj=5_000_000,
                temp=66,
                sm_clock=1980,
                pcie_tx_kbs=2_000,
                pcie_rx_kbs=3_000,
            ),
            GpuSpec(
                name="NVIDIA A100-SXM4-80GB",
                uuid="GPU-bbbb",
                util=12,
                memutil=3,
                mem_used=2 * GIB,
                mem_total=81920 * 2**20,
                power_mw=61_000,
                limit_mw=400_000,
                energy_base_mj=9_000_000,
                temp=35,
                sm_clock=1410,
                pcie_tx_kbs=5,
                pcie_rx_kbs=7,
            ),
        ],
        processes=[
            Proc(0, pids[0], used_bytes=20 * GIB),
            Proc(0, pids[0], used_bytes=20 * GIB, kind="graphics"),  # same process in both lists
            Proc(0, pids[1], used_bytes=GIB, kind="graphics"),
            Proc(1, pids[2], used_bytes=2 * GIB),
        ],
        samples=[Sample(0, pids[0], 1_000, 70), Sample(0, pids[0], 2_000, 90), Sample(0, pids[1], 1_500, 4)],
        **extra,
    )


def test_two_gpu_poll_fills_every_field(fake_nvml, children):
    fake_nvml.write(_two_gpus(children))
    out = _snapshot(fake_nvml.env(), "--json", "--over", "0")  # one poll: the scripted samples are read once
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["backend"] == "nvml" and doc["driver_version"] == "550.54.15" and doc["errors"] == []
    g0, g1 = doc["gpus"]
    assert (g0["index"], g0["name"], g0["uuid"], g0["lost"]) == (0, "NVIDIA H100 80GB HBM3", "GPU-aaaa", False)
    assert (g0["utilization_pct"], g0["memory_utilization_pct"]) == (87, 41)
    assert g0["memory_used_bytes"] == 30 * GIB  # v2: the driver's reservation is not "used"
    assert g0["memory_total_bytes"] == 80 * GIB
    assert g0["power_watts"] == pytest.approx(512.345) and g0["power_limit_watts"] == 700.0
    assert 5_000 <= g0["energy_joules"] < 5_000 + 512.345 * 60  # base + power x (well under a minute)
    assert "energy_mj" not in g0  # millijoules read as megajoules: the JSON says joules only
    assert (g0["temperature_celsius"], g0["sm_clock_mhz"]) == (66.0, 1980)
    assert (g0["pcie_tx_bytes_per_second"], g0["pcie_rx_bytes_per_second"]) == (2_000 * 1024, 3_000 * 1024)
    assert (g1["name"], g1["utilization_pct"], g1["memory_total_bytes"]) == ("NVIDIA A100-SXM4-80GB", 12, 81920 * 2**20)
    assert (g1["power_watts"], g1["power_limit_watts"], g1["pcie_rx_bytes_per_second"]) == (61.0, 400.0, 7 * 1024)
    # The CLI adds attribution keys (tag, user, ...); this test owns only the ProcessSample ones.
    procs = {(p["gpu_index"], p["pid"]): {k: p[k] for k in SAMPLE_KEYS} for p in doc["processes"]}
    assert set(procs) == {(0, children[0]), (0, children[1]), (1, children[2])}  # merged: pid 0 appears once
    assert procs[0, children[0]] == {
        "pid": children[0],
        "gpu_index": 0,
        "used_memory_bytes": 20 * GIB,
        "sm_pct": 80.0,
        "kind": "compute",
    }  # mean of 70 and 90
    assert procs[0, children[1]]["kind"] == "graphics" and procs[0, children[1]]["sm_pct"] == 4.0
    assert procs[1, children[2]]["sm_pct"] == 0.0  # listed, no sample


def test_table_output_and_zero_gpus(fake_nvml, children):
    fake_nvml.write(_two_gpus(children))
    out = _snapshot(fake_nvml.env())
    assert out.returncode == 0, out.stderr
    assert "NVIDIA H100 80GB HBM3" in out.stdout and "87%" in out.stdout and str(children[0]) in out.stdout
    fake_nvml.write(Scenario())
    out = _snapshot(fake_nvml.env())
    assert out.returncode == 0, out.stderr
    assert "No GPUs found." in out.stdout


def test_memory_v1_when_the_driver_lacks_v2(fake_nvml, children):
    """An old driver answers FUNCTION_NOT_FOUND for v2; v1 then counts the reservation as used."""
    fake_nvml.write(_two_gpus(children, errors=[Error("nvmlDeviceGetMemoryInfo_v2", "FUNCTION_NOT_FOUND")]))
    doc = json.loads(_snapshot(fake_nvml.env(), "--json").stdout)
    assert doc["gpus"][0]["memory_used_bytes"] == 30 * GIB + GIB // 2
    assert doc["gpus"][0]["memory_total_bytes"] == 80 * GIB
    assert doc["errors"] == []


def test_every_metric_not_supported_is_none_and_not_asked_again(fake_nvml, children):
    errors = [Error(sym, "NOT_SUPPORTED") for sym in METRIC_SYMBOLS]
    errors += [
        Error("nvmlDeviceGetProcessUtilization", "NOT_SUPPORTED"),
        Error("nvmlDeviceGetProcessesUtilizationInfo", "NOT_SUPPORTED"),
    ]
    fake_nvml.write(_two_gpus(children, errors=errors))
    with fake_nvml.session() as s:
        first = s.poll()
        after_first = {
            sym: s.calls(sym)
            for sym in METRIC_SYMBOLS + ["nvmlDeviceGetProcessUtilization", "nvmlDeviceGetProcessesUtilizationInfo"]
        }
        s.poll()
        last = s.poll()
        assert {sym: s.calls(sym) for sym in after_first} == after_first  # remembered: no re-query
        # still read every poll: 3 polls x 2 GPUs x 2 calls (size query, then data)
        assert s.calls("nvmlDeviceGetComputeRunningProcesses_v3") == 12
    for snap in (first, last):
        assert snap["errors"] == []  # unsupported is normal, not a fault to report
        for g in snap["gpus"]:
            assert not g["lost"] and g["name"] and g["uuid"]
            assert {f: g[f] for f in METRIC_FIELDS} == {f: None for f in METRIC_FIELDS}
        assert len(snap["processes"]) == 3
        assert all(p["sm_pct"] is None and p["used_memory_bytes"] for p in snap["processes"])


def test_slow_fields_are_read_once(fake_nvml, children):
    fake_nvml.write(_two_gpus(children))
    with fake_nvml.session() as s:
        for _ in range(3):
            s.poll()
        for sym in (
            "nvmlDeviceGetName",
            "nvmlDeviceGetUUID",
            "nvmlDeviceGetEnforcedPowerLimit",
            "nvmlDeviceGetHandleByIndex_v2",
            "nvmlSystemGetDriverVersion",
            "nvmlInitWithFlags",
        ):
            expected = 1 if sym in ("nvmlSystemGetDriverVersion", "nvmlInitWithFlags") else 2
            assert s.calls(sym) == expected, sym
        assert s.calls("nvmlDeviceGetPowerUsage") == 6
        s.close_backend()
        s.close_backend()  # idempotent: NVML is shut down once
        assert s.calls("nvmlShutdown") == 1


@pytest.mark.parametrize("code", ["GPU_IS_LOST", "UNKNOWN"])
def test_one_gpu_lost_mid_run_the_other_keeps_reading(fake_nvml, children, code):
    sc = fake_nvml.write(_two_gpus(children))
    with fake_nvml.session() as s:
        before = s.poll()
        assert [g["lost"] for g in before["gpus"]] == [False, False]
        sc.errors = [Error("*", code, gpu=1)]
        sc.gpus[0].util = 55
        fake_nvml.write(sc)
        during = s.poll()
        g0, g1 = during["gpus"]
        assert not g0["lost"] and g0["utilization_pct"] == 55 and g0["power_w"] is not None
        assert g1["lost"] and (g1["name"], g1["uuid"]) == ("NVIDIA A100-SXM4-80GB", "GPU-bbbb")
        assert {f: g1[f] for f in METRIC_FIELDS} == {f: None for f in METRIC_FIELDS}
        assert {p["gpu_index"] for p in during["processes"]} == {0}
        assert len(during["errors"]) == 1 and "GPU 1 lost" in during["errors"][0]
        sc.errors = []  # the GPU comes back (a transient UNKNOWN, or after a reset)
        fake_nvml.write(sc)
        after = s.poll()
        assert [g["lost"] for g in after["gpus"]] == [False, False] and after["errors"] == []
        assert {p["gpu_index"] for p in after["processes"]} == {0, 1}
        assert "Traceback" not in s.close()


def test_gpu_lost_before_start_is_reported_and_retried(fake_nvml, children):
    sc = fake_nvml.write(_two_gpus(children, errors=[Error("nvmlDeviceGetHandleByIndex_v2", "GPU_IS_LOST", gpu=0)]))
    with fake_nvml.session() as s:
        assert s.init_error is None
        snap = s.poll()
        assert snap["gpus"][0]["lost"] and not snap["gpus"][1]["lost"]
        assert snap["gpus"][1]["utilization_pct"] == 12
        sc.errors = []
        fake_nvml.write(sc)
        snap = s.poll()
        assert not snap["gpus"][0]["lost"] and snap["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"


def test_nvml_library_missing(tmp_path, fake_nvml):
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        pass
    else:
        pytest.skip("a real libnvidia-ml.so.1 is installed here, so it cannot be hidden with LD_LIBRARY_PATH")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = _snapshot(fake_nvml.env(LD_LIBRARY_PATH=str(empty)), "--json")
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "gputab: NVIDIA driver library libnvidia-ml.so.1 not found: no NVIDIA driver on this machine? "
        "Try `gputab --demo`."
    ]


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("LIB_RM_VERSION_MISMATCH", "version mismatch"),
        ("DRIVER_NOT_LOADED", "driver not loaded"),
        ("NO_PERMISSION", "No permission"),
        ("UNKNOWN", "NVML failed to start (Unknown Error)"),
    ],
)
def test_init_failures_are_one_line_with_the_demo_hint(fake_nvml, code, words):
    fake_nvml.write(Scenario(gpus=[GpuSpec()], errors=[Error("nvmlInitWithFlags", code)]))
    out = _snapshot(fake_nvml.env())
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert words in lines[0] and "`gputab --demo`" in lines[0]


def test_gpu_count_failure_is_a_backend_error(fake_nvml):
    fake_nvml.write(Scenario(gpus=[GpuSpec()], errors=[Error("nvmlDeviceGetCount_v2", "UNKNOWN")]))
    with fake_nvml.session() as s:
        assert s.init_error is not None and "cannot count the GPUs" in s.init_error and "--demo" in s.init_error


def test_process_gone_between_nvml_and_psutil(fake_nvml, children):
    dead = _dead_pid()
    fake_nvml.write(
        Scenario(gpus=[GpuSpec()], processes=[Proc(0, dead), Proc(0, children[0])], samples=[Sample(0, dead, 10, 30)])
    )
    with fake_nvml.session() as s:
        snap = s.poll()
        assert {p["pid"]: p["sm_pct"] for p in snap["processes"]} == {dead: 30.0, children[0]: 0.0}
        assert snap["errors"] == []
        facts = s.facts(dead)
        if "missing" not in facts:  # gputab.sampling.host is written separately; check it when present
            assert facts == {"facts": None}
            assert s.facts(children[0]) == {"facts": children[0]}
        assert "Traceback" not in s.close()
    out = _snapshot(fake_nvml.env(), "--json")  # the CLI attributes PIDs through the same inspector
    assert out.returncode == 0, out.stderr
    assert {p["pid"] for p in json.loads(out.stdout)["processes"]} == {dead, children[0]}


def test_process_utilization_not_found_means_zero_and_timestamps_advance(fake_nvml, children):
    sc = fake_nvml.write(
        Scenario(
            gpus=[GpuSpec()],
            processes=[Proc(0, children[0])],
            samples=[Sample(0, children[0], 100, 20), Sample(0, children[0], 200, 40)],
        )
    )
    with fake_nvml.session() as s:
        assert s.poll()["processes"][0]["sm_pct"] == 30.0
        # Polled again at once: the driver has no newer sample yet (a real H200 takes one every 0.2 s), which is
        # not an idle process: the last reading stands.
        assert s.poll()["processes"][0]["sm_pct"] == 30.0
        # Still none newer past the hold: the driver answers NOT_FOUND and the process idled -> 0, not None.
        time.sleep(PROC_SM_HOLD_S + 0.2)
        assert s.poll()["processes"][0]["sm_pct"] == 0.0
        sc.samples.append(Sample(0, children[0], 300, 90))
        fake_nvml.write(sc)
        assert s.poll()["processes"][0]["sm_pct"] == 90.0  # only the new sample counts


def test_first_read_leaves_out_a_sample_the_driver_held_from_before(fake_nvml, children):
    # The first query gets what the driver still holds: a real H200 answered with a 9 s old sample (18 %, the job
    # starting). Stamped in Unix microseconds, it is left out; the fresh one is the reading.
    now_us = int(time.time() * 1e6)
    sc = fake_nvml.write(
        Scenario(
            gpus=[GpuSpec()],
            processes=[Proc(0, children[0]), Proc(0, children[1])],
            samples=[
                Sample(0, children[0], now_us - 9_000_000, 18),
                Sample(0, children[0], now_us, 99),
                Sample(0, children[1], now_us - 9_000_000, 40),
            ],
        )
    )
    with fake_nvml.session() as s:
        sm = {p["pid"]: p["sm_pct"] for p in s.poll()["processes"]}
        assert sm == {children[0]: 99.0, children[1]: 0.0}
        # Later reads ask for samples newer than the last one seen: those are readings, whatever their age.
        sc.samples.append(Sample(0, children[1], now_us + 1, 70))
        fake_nvml.write(sc)
        sm = {p["pid"]: p["sm_pct"] for p in s.poll()["processes"]}
        assert sm[children[1]] == 70.0


def test_no_samples_at_all_is_zero(fake_nvml, children):
    fake_nvml.write(Scenario(gpus=[GpuSpec()], processes=[Proc(0, children[0], used_bytes=-1)]))
    doc = json.loads(_snapshot(fake_nvml.env(), "--json").stdout)
    assert [{k: p[k] for k in SAMPLE_KEYS} for p in doc["processes"]] == [
        {"pid": children[0], "gpu_index": 0, "used_memory_bytes": None, "sm_pct": 0.0, "kind": "compute"}
    ]


def test_process_utilization_not_supported_is_none(fake_nvml, children):
    fake_nvml.write(
        _two_gpus(
            children,
            errors=[
                Error("nvmlDeviceGetProcessUtilization", "NOT_SUPPORTED"),
                Error("nvmlDeviceGetProcessesUtilizationInfo", "NOT_SUPPORTED"),
            ],
        )
    )
    doc = json.loads(_snapshot(fake_nvml.env(), "--json").stdout)
    assert len(doc["processes"]) == 3
    assert all(p["sm_pct"] is None for p in doc["processes"])
    assert doc["errors"] == []


def test_energy_advances_with_power_and_a_reset_is_reported_as_is(fake_nvml):
    sc = fake_nvml.write(Scenario(gpus=[GpuSpec(power_mw=500_000, energy_base_mj=10**9)]))
    with fake_nvml.session() as s:
        e1 = s.poll()["gpus"][0]["energy_mj"]
        time.sleep(0.3)
        e2 = s.poll()["gpus"][0]["energy_mj"]
        assert 500 * 0.25 * 1000 <= e2 - e1 <= 500 * 5 * 1000  # ~500 W x 0.3 s, in mJ
        sc.gpus[0].energy_base_mj = 0  # the driver reloaded: the counter starts again near zero
        fake_nvml.write(sc)
        snap = s.poll()
        e3 = snap["gpus"][0]["energy_mj"]
        assert e3 < e2 and e3 < 10**9  # reported backwards; the ledger decides what that means
        assert not snap["gpus"][0]["lost"] and snap["errors"] == []


def test_no_permission_on_one_metric(fake_nvml, children):
    sc = fake_nvml.write(_two_gpus(children, errors=[Error("nvmlDeviceGetPowerUsage", "NO_PERMISSION", gpu=0)]))
    with fake_nvml.session() as s:
        snap = s.poll()
        g0, g1 = snap["gpus"]
        assert g0["power_w"] is None and not g0["lost"] and g0["utilization_pct"] == 87
        assert g1["power_w"] == 61.0
        assert snap["errors"] == ["GPU 0 power: Insufficient Permissions"]
        sc.errors = []  # permission is not "unsupported": it is asked again and may succeed later
        fake_nvml.write(sc)
        snap = s.poll()
        assert snap["gpus"][0]["power_w"] == pytest.approx(512.345) and snap["errors"] == []


def test_per_gpu_injection_leaves_the_other_gpu_alone(fake_nvml, children):
    fake_nvml.write(
        _two_gpus(
            children,
            errors=[
                Error("nvmlDeviceGetTemperatureV", "NOT_SUPPORTED", gpu=1),
                Error("nvmlDeviceGetTemperature", "NOT_SUPPORTED", gpu=1),
            ],
        )
    )
    doc = json.loads(_snapshot(fake_nvml.env(), "--json").stdout)
    assert [g["temperature_celsius"] for g in doc["gpus"]] == [66.0, None]


def test_backend_module_import_needs_no_library(tmp_path):
    """Importing the module must not touch NVML: the CLI imports it before knowing whether a driver exists."""
    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path))
    code = "import gputab.sampling.nvml as m, pynvml; print(pynvml.nvmlLib is None)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
