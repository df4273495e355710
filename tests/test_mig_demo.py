"""The demo box has a MIG GPU, so a new user sees MIG in the first minute: GPU 4, an H100 in MIG mode cut into
3g.40gb + 2g.20gb + 1g.10gb with one slice free, an inference server on the 3g and CI tests on the 1g.

Checked through the real CLI (``gputab --demo snapshot --json``) and the real ledger over a demo minute.
"""

from __future__ import annotations

import json
import math
import subprocess

import pytest

from gputab.config.settings import load_config
from gputab.cost.ledger import IDLE, Ledger
from gputab.cost.pricing import PriceTable
from gputab.sampling.demo import DemoBackend, FakeClock
from gputab.sampling.mig import parent_utilization, profile_name
from support import gputab_cmd

MIG_GPU = 4


def _snapshots(seed: int, seconds: int) -> list:
    clock = FakeClock()
    backend = DemoBackend(seed=seed, clock=clock, wall_clock=clock.wall)
    out = []
    for _ in range(seconds + 1):
        out.append(backend.poll())
        clock.advance(1.0)
    return out


def test_the_mig_gpu_is_deterministic_from_the_seed():
    a, b, c = _snapshots(3, 5), _snapshots(3, 5), _snapshots(4, 5)
    mig = [[m for m in s.gpus[MIG_GPU].to_json()["mig"]] for s in a]
    assert mig == [[m for m in s.gpus[MIG_GPU].to_json()["mig"]] for s in b]
    assert mig != [[m for m in s.gpus[MIG_GPU].to_json()["mig"]] for s in c]  # the noise is the seed's


def test_snapshot_shows_the_mig_instances_and_their_jobs():
    out = subprocess.run(
        [*gputab_cmd(), "--demo", "snapshot", "--json", "--over", "1"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    gpu = doc["gpus"][MIG_GPU]
    assert gpu["mig_slices"] == 7
    insts = {m["profile"]: m for m in gpu["mig"]}
    assert list(insts) == ["3g.40gb", "2g.20gb", "1g.10gb"]
    assert sum(m["slices"] for m in gpu["mig"]) == 6  # one slice free
    for m in gpu["mig"]:
        assert m["rate_usd_per_hour"] == pytest.approx(gpu["rate_usd_per_hour"] * m["slices"] / 7)
    # Processes are found on their instances; NVML reports no per-process utilization on MIG.
    on = {p["tag"]: (p["gpu_instance_id"], p["compute_instance_id"]) for p in doc["processes"] if p["gpu_index"] == 4}
    assert on == {"mistral-7b-serve": (2, 0), "ci-gpu-tests": (9, 0)}
    assert all(p["sm_pct"] is None for p in doc["processes"] if p["gpu_index"] == 4)
    # GPM per MIG instance: the serving instance is busy, the empty one idle, the GPU their slice-weighted mean.
    assert insts["3g.40gb"]["sm_active_pct"] > 50 and insts["2g.20gb"]["sm_active_pct"] == 0
    weighted = sum(m["sm_active_pct"] * m["slices"] for m in gpu["mig"]) / 7
    assert gpu["utilization_pct"] == round(weighted)
    # Each job's burn rate is its instance's part of the GPU's; the empty 2g and the free slice are idle.
    jobs = {j["tag"]: j for j in doc["jobs"]}
    burn = gpu["burn_rate_usd_per_hour"]
    assert jobs["mistral-7b-serve"]["gpus"] == [4] and jobs["ci-gpu-tests"]["gpus"] == [4]
    assert jobs["mistral-7b-serve"]["burn_rate_usd_per_hour"] == pytest.approx(burn * 3 / 7, rel=1e-6)
    assert jobs["ci-gpu-tests"]["burn_rate_usd_per_hour"] == pytest.approx(burn * 1 / 7, rel=1e-6)


def test_a_demo_minute_charges_each_instance_its_slices_and_conserves_the_gpu():
    snaps = _snapshots(0, 60)
    inspector = DemoBackend(seed=0).inspector()
    tags = {}
    for s in snaps:
        for p in s.processes:
            facts = inspector.facts(p.pid)
            if facts is not None and facts.environ:
                tags[p.pid] = facts.environ.get("GPUTAB_TAG", "")
    ledger = Ledger(PriceTable.load(load_config(None).prices), interval=1.0)
    for s in snaps:
        ledger.tick(s, tags)
    gt = ledger.gpus[MIG_GPU]
    insts = {m["profile"]: m for m in gt.mig_json()}
    assert list(insts) == ["3g.40gb", "2g.20gb", "1g.10gb"]  # by GPU instance id
    c3, c2, c1 = (insts[p]["cost_usd"] for p in ("3g.40gb", "2g.20gb", "1g.10gb"))
    assert c3 / c1 == pytest.approx(3.0, rel=1e-9) and c2 / c1 == pytest.approx(2.0, rel=1e-9)
    # The instances and the free slice make up the GPU's cost; the free slice and the empty 2g are (idle).
    free = gt.cost_usd / 7
    assert math.isclose(c3 + c2 + c1 + free, gt.cost_usd, rel_tol=1e-9)
    assert math.isclose(gt.idle_cost_usd, c2 + free, rel_tol=1e-9)
    assert ledger.jobs["mistral-7b-serve"].cost_usd == pytest.approx(c3, rel=1e-9)
    assert ledger.jobs["ci-gpu-tests"].cost_usd == pytest.approx(c1, rel=1e-9)
    assert IDLE in ledger.jobs and ledger.check_conservation()
    # A job's utilization is its instance's SM activity, not the GPU's: the server is busier than GPU 4 is.
    serve = ledger.jobs["mistral-7b-serve"].avg_utilization
    assert serve is not None and serve == pytest.approx(insts["3g.40gb"]["avg_utilization"], rel=1e-9)
    gpu_util = [parent_utilization(s.gpus[MIG_GPU].mig, 7) for s in snaps[1:]]
    assert serve * 100 > max(u for u in gpu_util if u is not None)


def test_snapshot_text_lists_each_instance_under_its_gpu_with_its_processes():
    out = subprocess.run([*gputab_cmd(), "--demo", "snapshot"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.split()[:1] == ["4"])
    mig = lines[at + 1 : at + 4]
    assert [ln.split()[:2] for ln in mig] == [["MIG", "3g.40gb"], ["MIG", "2g.20gb"], ["MIG", "1g.10gb"]]
    assert mig[0].endswith("36100") and mig[1].endswith("-") and mig[2].endswith("36200")
    assert "3/7 slices" in mig[0]


def test_profile_names_as_nvidia_smi_writes_them():
    assert profile_name(3, 3, 40_448) == "3g.40gb"  # H100 80GB
    assert profile_name(1, 1, 4_864) == "1g.5gb"  # A100 40GB
    assert profile_name(7, 7, 81_920) == "7g.80gb"
    assert profile_name(1, 3, 40_448) == "1c.3g.40gb"  # a compute instance smaller than its GPU instance
    assert profile_name(1, None, 4_864) == "" and profile_name(1, 1, None) == ""  # unknown: no guess
