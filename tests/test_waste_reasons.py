"""Each waste reason end to end: the fake NVML scripts the GPUs, real processes are the jobs, and a real
attributor and ledger (in the backend's process) charge them. Tags come from GPUTAB_TAG in the processes' own
environments, as in production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from fakenvml import GIB, GpuSpec, Proc, Scenario

BURN = "import time\nt = time.time() + 60\nwhile time.time() < t: pass\n"
# A job's main process that starts a CPU-burning child (a dataloader worker) and waits.
LOADER = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {BURN!r}])\ntime.sleep(60)\n"


def spawn(tag: str, code: str = "import time; time.sleep(60)") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "GPUTAB_TAG": tag})


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []

    def start(tag: str, code: str = "import time; time.sleep(60)") -> int:
        p = spawn(tag, code)
        started.append(p)
        return p.pid

    yield start
    for p in started:
        for child in _children(p.pid):
            _kill(child)
        _kill(p.pid)
        p.wait()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def hopper(**kw) -> GpuSpec:
    base = dict(util=90, mem_used=20 * GIB, gpm=1, gpm_sm_util=80, gpm_sm_occupancy=60, gpm_tensor=40, gpm_dram_bw=30)
    base.update(kw)
    return GpuSpec(**base)


def run(fake_nvml, scenario: Scenario, ticks: int = 4, pause: float = 0.3, **waste) -> dict:
    """Tick a real ledger over the scenario; the jobs' JSON after the last tick."""
    fake_nvml.write(scenario)
    with fake_nvml.session() as s:
        for i in range(ticks):
            out = s.tick(waste if i == 0 else None)
            time.sleep(pause)
    return out["jobs"]


def assert_reason(job: dict, reason: str, *words: str) -> None:
    assert job["waste_top_reason"] == reason, job["waste_by_reason"]
    assert job["busy_usd"] + job["waste_usd"] == pytest.approx(job["cost_usd"], rel=1e-9)
    assert sum(job["waste_by_reason"].values()) == pytest.approx(job["waste_usd"], rel=1e-9)
    for w in words:
        assert w in job["waste_evidence"], job["waste_evidence"]


def test_input_bound_a_real_cpu_burning_child_while_the_gpu_idles(fake_nvml, procs):
    pid = procs("loader-job", LOADER)
    deadline = time.monotonic() + 10
    while not _children(pid) and time.monotonic() < deadline:  # its worker must exist before the first poll
        time.sleep(0.05)
    jobs = run(fake_nvml, Scenario(gpus=[hopper(util=5, gpm_sm_util=4)], processes=[Proc(0, pid, 8 * GIB)]), ticks=5)
    job = jobs["loader-job"]
    # On a crowded test box the worker may get little CPU, but it is always running or queued for one.
    assert_reason(job, "input_bound", "GPU util 5%")
    worker = _children(pid)
    assert worker and f"pid {worker[0]}" in job["waste_evidence"]  # names the child, not the idle parent


def test_no_input_bound_claim_when_the_cpu_side_is_idle(fake_nvml, procs):
    pid = procs("sleepy-job")
    jobs = run(fake_nvml, Scenario(gpus=[hopper(util=5, gpm_sm_util=4)], processes=[Proc(0, pid, 8 * GIB)]), ticks=4)
    assert jobs["sleepy-job"]["waste_top_reason"] == "unexplained"


def test_stranded_memory_held_by_a_pid_that_exited(fake_nvml, procs):
    pid = procs("ghost-job")
    sc = Scenario(gpus=[hopper(util=0, gpm_sm_util=0)], processes=[Proc(0, pid, 12 * GIB)])
    fake_nvml.write(sc)
    with fake_nvml.session() as s:
        s.tick()
        s.tick()
        os.kill(pid, signal.SIGKILL)  # it exits; the driver still lists its memory
        time.sleep(0.3)
        for _ in range(3):
            out = s.tick()
            time.sleep(0.2)
    cpu = {c["pid"]: c for c in out["snapshot"]["cpu"]}
    assert cpu[pid]["alive"] is False
    assert_reason(out["jobs"]["ghost-job"], "stranded_memory", f"pid {pid}", "12.0 GiB", "exited")


def test_stranded_memory_held_at_zero_utilization_for_long(fake_nvml, procs):
    pid = procs("parked-job")
    jobs = run(
        fake_nvml,
        Scenario(gpus=[hopper(util=0, gpm_sm_util=0)], processes=[Proc(0, pid, 30 * GIB)]),
        ticks=5,
        stranded_seconds=0.5,
    )
    assert_reason(jobs["parked-job"], "stranded_memory", "30.0 GiB held at 0% utilization")


def test_no_tensor_cores(fake_nvml, procs):
    pid = procs("fp32-job")
    jobs = run(fake_nvml, Scenario(gpus=[hopper(util=80, gpm_sm_util=85, gpm_tensor=0)], processes=[Proc(0, pid)]))
    assert_reason(jobs["fp32-job"], "no_tensor_cores", "SM 85% busy", "tensor cores 0.0%")
    assert jobs["fp32-job"]["tensor_active_usd"] == 0.0  # reported as 0: a figure, not a missing one


def test_small_batch(fake_nvml, procs):
    pid = procs("tiny-batch")
    jobs = run(fake_nvml, Scenario(gpus=[hopper(util=85, gpm_sm_occupancy=6)], processes=[Proc(0, pid)]))
    assert_reason(jobs["tiny-batch"], "small_batch", "GPU util 85%", "occupancy 6%")


def test_memory_bound(fake_nvml, procs):
    pid = procs("bw-job")
    jobs = run(fake_nvml, Scenario(gpus=[hopper(util=90, gpm_sm_util=20, gpm_dram_bw=88)], processes=[Proc(0, pid)]))
    assert_reason(jobs["bw-job"], "memory_bound", "DRAM bandwidth 88%", "SM 20%")


def test_comm_stall_needs_two_gpus(fake_nvml, procs):
    a, b, solo = procs("ddp-job"), procs("ddp-job"), procs("solo-job")
    link = dict(util=35, gpm_sm_util=10, gpm_nvlink_rx_mibs=12_000, gpm_nvlink_tx_mibs=12_000)
    jobs = run(
        fake_nvml,
        Scenario(
            gpus=[hopper(**link), hopper(**link), hopper(**link)], processes=[Proc(0, a), Proc(1, b), Proc(2, solo)]
        ),
    )
    assert_reason(jobs["ddp-job"], "comm_stall", "on 2 GPUs", "23.4 GiB/s")
    assert jobs["solo-job"]["waste_top_reason"] != "comm_stall"


def test_oversized(fake_nvml, procs):
    pid = procs("notebook")
    jobs = run(
        fake_nvml,
        Scenario(gpus=[hopper(util=3, gpm_sm_util=2, mem_used=GIB)], processes=[Proc(0, pid, GIB)]),
        ticks=5,
        oversized_seconds=0.5,
    )
    assert_reason(jobs["notebook"], "oversized", "1.0 GiB of 80.0 GiB", "a smaller GPU would do")


def test_throttled_dollars(fake_nvml, procs):
    pid = procs("hot-job")
    jobs = run(fake_nvml, Scenario(gpus=[hopper(util=95, clocks_event=0x4 | 0x40)], processes=[Proc(0, pid)]))
    job = jobs["hot-job"]
    # Throttled from the first poll on: every charged interval was under power cap and thermal throttling.
    assert job["throttled_usd"]["power_cap"] == pytest.approx(job["cost_usd"], rel=1e-6)
    assert job["throttled_usd"]["thermal"] == pytest.approx(job["cost_usd"], rel=1e-6)
    assert job["throttled_usd"]["hw_slowdown"] == 0 and job["throttled_seconds"]["power_cap"] > 0.5
