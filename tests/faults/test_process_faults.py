"""Process churn and PID reuse: hundreds of short-lived GPU processes, and one PID that comes back as another.

Churn uses real processes (each listed by the fake NVML while it lives). PID reuse cannot be forced on a kernel
without privileges, so the host facts of the reused PID come from a file the test rewrites (a new create_time
and a new environment, exactly what the kernel shows after reuse); NVML, attribution, ledger and store are real.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import time

import pytest
from faultkit import committed

from fakenvml import GpuSpec, Proc, Sample, Scenario


def test_process_churn_hundreds_of_short_lived_processes(fake_nvml, driver_factory, db_path):
    gpus = [GpuSpec(util=50, power_mw=200_000) for _ in range(4)]
    fake_nvml.write(Scenario(gpus=gpus))
    d = driver_factory(fake_nvml.env())
    d.start()
    seen: set[int] = set()
    waves, per_wave = 30, 10  # 300 processes, each alive for one or two ticks
    durations = []
    previous: list[subprocess.Popen] = []
    for wave in range(waves):
        procs = [
            subprocess.Popen(["sleep", "30"], env={**os.environ, "GPUTAB_TAG": f"sweep-{wave % 7}"})
            for _ in range(per_wave)
        ]
        live = procs + previous[: per_wave // 2]  # half of the last wave lives one tick longer
        fake_nvml.write(
            Scenario(
                gpus=gpus,
                processes=[Proc(gpu=i % 4, pid=p.pid) for i, p in enumerate(live)],
                samples=[Sample(gpu=i % 4, pid=p.pid, ts=wave + 1, sm=10 + i) for i, p in enumerate(live)],
            )
        )
        t0 = time.perf_counter()
        tick = d.step()
        durations.append(time.perf_counter() - t0)
        assert tick["recording"] == "ok" and tick["lost"] == []
        seen |= {p.pid for p in procs}
        for p in previous:
            p.kill()
            p.wait()
        previous = procs
    for p in previous:
        p.kill()
        p.wait()
    # The processes are gone now, but NVML may still list a dead PID for a moment: it must not break a tick.
    last = d.step()
    jobs = last["jobs"]
    assert {f"sweep-{i}" for i in range(7)} <= set(jobs), jobs
    assert math.fsum(jobs.values()) == pytest.approx(last["total"], rel=1e-9)
    assert max(durations) < 2.0, f"a tick with a wave of new processes took {max(durations):.2f} s"
    assert d.close()["ok"]
    c = committed(db_path)
    # Every (pid, GPU) the recorder saw is on record, once.
    assert c["processes"] >= len(seen), (c["processes"], len(seen))
    conn = sqlite3.connect(db_path)
    dup = conn.execute(
        "SELECT count(*) FROM (SELECT pid, create_time, gpu_index FROM processes GROUP BY 1, 2, 3 HAVING count(*) > 1)"
    ).fetchone()[0]
    conn.close()
    assert dup == 0


def test_pid_reuse_is_a_new_process_with_its_own_tag(fake_nvml, driver_factory, tmp_path, db_path):
    facts = tmp_path / "facts.json"
    holder = subprocess.Popen(["sleep", "60"])  # a real PID for NVML to list
    pid = holder.pid
    try:
        facts.write_text(json.dumps({str(pid): {"create_time": 1000.0, "environ": {"GPUTAB_TAG": "job-old"}}}))
        scenario = Scenario(
            gpus=[GpuSpec(util=90)], processes=[Proc(gpu=0, pid=pid)], samples=[Sample(gpu=0, pid=pid, ts=1, sm=90)]
        )
        fake_nvml.write(scenario)
        d = driver_factory(fake_nvml.env(FAULT_FACTS=str(facts)))
        d.start()
        old = d.step(3)
        assert set(old["jobs"]) == {"job-old"}
        # The old process exits and the kernel hands its PID to a new one, started later, with another tag.
        facts.write_text(json.dumps({str(pid): {"create_time": 2000.0, "environ": {"GPUTAB_TAG": "job-new"}}}))
        new = d.step(3)
        assert new["jobs"]["job-new"] > 0, new["jobs"]
        assert new["jobs"]["job-old"] == pytest.approx(old["jobs"]["job-old"], rel=0.5), (
            "the old job stops being charged once its PID belongs to someone else"
        )
        grow_new = d.step(2)["jobs"]
        assert grow_new["job-old"] == new["jobs"]["job-old"], "no tick of the new process goes to the old job"
        assert d.close()["ok"]
    finally:
        holder.kill()
        holder.wait()
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT create_time, tag FROM processes WHERE pid = ? ORDER BY create_time", (pid,)).fetchall()
    conn.close()
    assert rows == [(1000.0, "job-old"), (2000.0, "job-new")]
