"""The NVML backend against this machine's real driver: sane values, not exact ones (``-m gpu``).

Skipped where no real NVML starts. Everything runs in subprocesses so the test process never loads the driver's
library (and the fake-library tests beside these are unaffected).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from support import gputab_cmd

pytestmark = pytest.mark.gpu

_PROBE = "import pynvml; pynvml.nvmlInit(); print(pynvml.nvmlDeviceGetCount())"

_TWO_POLLS = """
import json, time
from gputab.sampling.nvml import NvmlBackend
with NvmlBackend() as b:
    first = b.poll()
    time.sleep(1.0)
    second = b.poll()
print(json.dumps([first.to_json(), second.to_json()]))
"""


@pytest.fixture(scope="module")
def real_gpu_count() -> int:
    """The number of GPUs the real driver reports; skips the module when NVML does not start or sees none."""
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"no real NVML on this machine ({last})")
    count = int(probe.stdout.strip())
    if count == 0:
        pytest.skip("the NVIDIA driver loads but reports no GPU")
    return count


def test_snapshot_json_has_sane_values(real_gpu_count):
    out = subprocess.run([*gputab_cmd(), "snapshot", "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["backend"] == "nvml"
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", doc["driver_version"] or ""), doc["driver_version"]
    assert len(doc["gpus"]) == real_gpu_count
    assert [g["index"] for g in doc["gpus"]] == list(range(real_gpu_count))
    for g in doc["gpus"]:
        assert not g["lost"], doc["errors"]
        assert g["name"] and g["uuid"].startswith(("GPU-", "MIG-"))
        assert 2**30 <= g["memory_total_bytes"] <= 2**40
        assert 0 <= g["memory_used_bytes"] <= g["memory_total_bytes"]
        for pct in ("utilization_pct", "memory_utilization_pct"):
            assert g[pct] is None or 0 <= g[pct] <= 100
        if g["power_limit_watts"] is not None:
            assert 10 <= g["power_limit_watts"] <= 2000
        if g["power_watts"] is not None:
            assert 0 < g["power_watts"] <= 2000  # a powered GPU never reads exactly 0 W; a mW/W mix-up reads 1000x
        if g["temperature_celsius"] is not None:
            assert 5 <= g["temperature_celsius"] <= 120
        if g["sm_clock_mhz"] is not None:
            assert 0 <= g["sm_clock_mhz"] <= 5000
        for bw in ("pcie_rx_bytes_per_second", "pcie_tx_bytes_per_second"):
            assert g[bw] is None or 0 <= g[bw] <= 1e12
    for p in doc["processes"]:
        assert p["pid"] > 0 and 0 <= p["gpu_index"] < real_gpu_count
        assert p["sm_pct"] is None or 0 <= p["sm_pct"] <= 100


def test_energy_counter_advances_between_polls(real_gpu_count):
    out = subprocess.run([sys.executable, "-c", _TWO_POLLS], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = json.loads(out.stdout)
    assert second["mono"] - first["mono"] >= 1.0
    for a, b in zip(first["gpus"], second["gpus"]):
        assert (a["uuid"], a["name"]) == (b["uuid"], b["name"])  # read once, cached
        if a["energy_mj"] is None:
            continue  # pre-Volta GPUs have no energy counter
        joules = (b["energy_mj"] - a["energy_mj"]) / 1000
        assert 0 < joules < 2000 * (second["mono"] - first["mono"] + 1)
