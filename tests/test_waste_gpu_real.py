"""GPM and clock event reasons on this machine's real driver (``-m gpu``; skipped where no NVML starts).

On a Hopper or newer GPU, GPM must answer (SM activity at least); elsewhere its figures must be None, never 0.
What it read is printed (``-s``) for bench/RESULTS.md.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from test_gpu_real import _TWO_POLLS, real_gpu_count  # noqa: F401 - a fixture, used by name

pytestmark = pytest.mark.gpu

GPM_FIELDS = (
    "sm_active_pct",
    "sm_occupancy_pct",
    "tensor_active_pct",
    "dram_bw_pct",
    "nvlink_rx_bytes_per_s",
    "nvlink_tx_bytes_per_s",
)
HOPPER_OR_NEWER = ("H100", "H200", "H800", "H20", "GH200", "B100", "B200", "GB200")


def test_gpm_and_clock_reasons_on_real_gpus(real_gpu_count):  # noqa: F811 - the fixture imported above
    out = subprocess.run([sys.executable, "-c", _TWO_POLLS], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = json.loads(out.stdout)
    dt = second["mono"] - first["mono"]
    for g in second["gpus"]:
        print(
            json.dumps(
                {
                    k: g[k]
                    for k in (
                        "index",
                        "name",
                        *GPM_FIELDS,
                        "pcie_rx_bytes_per_s",
                        "pcie_tx_bytes_per_s",
                        "throttle_seconds",
                    )
                }
            )
        )
        assert not g["lost"], second["errors"]
        for field in GPM_FIELDS[:4]:
            assert g[field] is None or 0 <= g[field] <= 100, (field, g[field])
        if any(model in g["name"] for model in HOPPER_OR_NEWER) and "MIG" not in g["uuid"]:
            assert g["sm_active_pct"] is not None, "GPM did not answer on a Hopper-class GPU"
        if g["throttle_seconds"] is not None:
            assert set(g["throttle_seconds"]) == {"power_cap", "thermal", "hw_slowdown", "power_brake"}
            assert all(0 <= s <= dt + 1e-6 for s in g["throttle_seconds"].values())
    # The first poll only starts GPM's interval: nothing is reported from one sample.
    assert all(g[f] is None for g in first["gpus"] for f in GPM_FIELDS[:4])
