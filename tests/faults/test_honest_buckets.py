"""Honest buckets end to end (issue 24, findings 6 and 8; cost-model.md "Who pays" and "Waste").

The real recorder polls the fake NVML library into a SQLite file; `show`, `export --csv`, `spend` and the
metrics read it back. A GPU that works with nobody listed is ``(unattributed)``, split busy/waste by its
utilization; a MIG instance that reports no utilization claims neither busy time nor waste (``unmeasured_usd``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from fakenvml import GIB, GpuSpec, Mig, Proc, Scenario
from support import gputab_cmd


@pytest.fixture
def mig_job():
    """A real process tagged mig-job (its tag comes from its environment, as in production)."""
    p = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, "GPUTAB_TAG": "mig-job"}
    )
    yield p.pid
    p.kill()
    p.wait()


def scenario(pid: int) -> Scenario:
    return Scenario(
        gpus=[GpuSpec(util=60, power_mw=300_000), GpuSpec(mig=1, util=90, power_mw=300_000)],
        # GPU 0: busy at 60 % and nobody listed (a process in another PID namespace). GPU 1: MIG, one 7g
        # instance holding the job, its SM activity not reported (no GPM).
        migs=[Mig(1, 0, gi=1, ci=0, ci_slices=7, mem_total=80 * GIB, mem_used=9 * GIB, sm_util=-1)],
        processes=[Proc(1, pid, used_bytes=9 * GIB, gi=1, ci=0)],
    )


def gputab(env: dict, *args: str) -> str:
    r = subprocess.run([*gputab_cmd(), *args], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_busy_gpu_with_nobody_listed_and_mig_without_utilization(fake_nvml, driver_factory, mig_job, db_path):
    fake_nvml.write(scenario(mig_job))
    env = fake_nvml.env()
    d = driver_factory(env)
    d.start()
    last = d.step(6)
    assert d.close()["ok"]
    assert last["jobs"]["(unattributed)"] > 0 and last["jobs"]["mig-job"] > 0
    assert last["jobs"].get("(idle)", 0.0) == 0.0  # finding 6: it used to be charged to (idle) as half busy

    doc = json.loads(gputab(env, "--db", str(db_path), "show", "last", "--json"))
    jobs = {j["tag"]: j for j in doc["jobs"]}
    un, mig = jobs["(unattributed)"], jobs["mig-job"]
    assert un["busy_usd"] == pytest.approx(0.6 * un["cost_usd"], rel=1e-9)
    assert un["waste_usd"] == pytest.approx(0.4 * un["cost_usd"], rel=1e-9)
    assert un["avg_utilization_pct"] == pytest.approx(60.0)
    assert un["waste_by_reason"] == {"unattributed": pytest.approx(un["waste_usd"])}
    # Finding 8: no busy time and no waste is claimed where utilization is not reported.
    assert mig["unmeasured_usd"] == pytest.approx(mig["cost_usd"], rel=1e-9)
    assert mig["busy_usd"] == 0 and mig["waste_usd"] == 0 and mig["waste_pct"] is None
    for tag, j in jobs.items():
        assert j["busy_usd"] + j["waste_usd"] + j["unmeasured_usd"] == pytest.approx(j["cost_usd"], rel=1e-9), tag
    assert doc["gpus"][0]["unattributed_cost_usd"] == pytest.approx(un["cost_usd"], rel=1e-9)

    text = gputab(env, "--db", str(db_path), "show", "last")
    assert "(unattributed)" in text
    row = next(ln for ln in text[text.index("Waste (") :].splitlines() if ln.startswith("mig-job"))
    assert row.split()[-2:] == ["n/a", "-"]  # waste % n/a, no reason claimed
    assert "unattributed $" in text  # the GPU line names its (unattributed) part

    rows = list(csv.DictReader(io.StringIO(gputab(env, "--db", str(db_path), "export", "--csv"))))
    by_tag = {r["tag"]: r for r in rows}
    assert float(by_tag["(unattributed)"]["cost_usd"]) == pytest.approx(un["cost_usd"], rel=1e-6)
    assert float(by_tag["mig-job"]["unmeasured_usd"]) == pytest.approx(mig["cost_usd"], rel=1e-6)
    assert by_tag["mig-job"]["waste_pct"] == ""

    spend = json.loads(gputab(env, "--db", str(db_path), "spend", "--by", "tag", "--json"))
    srows = {r["tag"]: r for r in spend["rows"]}
    assert srows["(unattributed)"]["cost_usd"] == pytest.approx(un["cost_usd"], rel=1e-9)
    assert srows["mig-job"]["unmeasured_usd"] == pytest.approx(mig["cost_usd"], rel=1e-9)
