"""The demo backend: a simulated training box, deterministic from a seed and the simulated time.

It serves new users without a GPU, the snapshot tests and the screenshots. It produces ordinary snapshots and
process facts, so attribution, the ledger and the store run on it exactly as on NVML.

The box: GPUs 0-1 (H100 SXM) run one tagged LoRA fine-tune at ~90 %; GPU 2 (A100) runs a slow, input-bound eval
at ~30 % and, now and then, a short Slurm sweep job beside it; GPU 3 (H100) sits idle; a notebook of an untagged
user comes and goes on GPU 0.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from typing import Callable

from gputab.sampling.backend import Backend, ProcessFacts, ProcessInspector
from gputab.sampling.snapshot import GpuSample, ProcessSample, Snapshot

MIB = 1024 * 1024
DEMO_HOST = "demo-box"
DEMO_HOST_ENV = "GPUTAB_DEMO_HOST"
"""Names the simulated box (default ``demo-box``): several demo recorders then look like several hosts (a fleet)."""
DEMO_START_WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z, used when a fixed clock is asked for


@dataclass(frozen=True)
class _GpuModel:
    name: str
    memory_mib: int
    power_limit_w: float
    idle_w: float


_H100 = _GpuModel("NVIDIA H100 80GB HBM3", 81559, 700.0, 72.0)
_A100 = _GpuModel("NVIDIA A100-SXM4-80GB", 81920, 400.0, 56.0)
_GPUS = (_H100, _H100, _A100, _H100)


@dataclass(frozen=True)
class _Proc:
    pid: int
    gpu: int
    base_sm: float  # SM % this process drives when alone
    memory_mib: int
    start: float  # simulated seconds after session start; with period, the phase of a repeating job
    duration: float  # how long it runs each time (inf = for ever)
    period: float  # 0 = runs once
    name: str
    user: str
    cmdline: tuple[str, ...]
    environ: dict
    ppid: int = 1


_PROCS = (
    _Proc(31001, 0, 93, 61_440, 0, float("inf"), 0, "python", "maria",
          ("python", "train_lora.py", "--model", "llama3-8b", "--rank", "0", "--wandb-api-key=6f1e9cdemo0secret"),
          {"GPUTAB_TAG": "llama3-8b-lora", "LOCAL_RANK": "0"}, ppid=31000),
    _Proc(31002, 1, 91, 60_928, 0, float("inf"), 0, "python", "maria",
          ("python", "train_lora.py", "--model", "llama3-8b", "--rank", "1"),
          {"GPUTAB_TAG": "llama3-8b-lora", "LOCAL_RANK": "1"}, ppid=31000),
    _Proc(32010, 2, 31, 22_016, 0, float("inf"), 0, "python", "chen",
          ("python", "eval.py", "--suite", "mmlu", "--num-workers", "1"),
          {"GPUTAB_TAG": "eval-mmlu"}),
    _Proc(33100, 2, 45, 14_336, 40, 70, 150, "python", "sam",
          ("python", "sweep.py", "--lr", "3e-4"),
          {"SLURM_JOB_ID": "48213"}),
    _Proc(34500, 0, 4, 2_048, 15, 60, 240, "python", "alice",
          ("python", "-m", "ipykernel_launcher", "-f", "/run/user/1001/kernel.json"),
          {}),
)


def _noise(seed: int, *key) -> float:
    """A deterministic value in [-1, 1) for (seed, key): the same poll of the same seed reads the same."""
    return random.Random(f"{seed}:{':'.join(map(str, key))}").random() * 2 - 1


def _running(p: _Proc, t: float) -> bool:
    if t < p.start:
        return False
    if p.period <= 0:
        return t < p.start + p.duration
    return (t - p.start) % p.period < p.duration


class DemoInspector(ProcessInspector):
    """Explains the simulated PIDs; real PIDs are unknown to it."""

    def facts(self, pid: int) -> ProcessFacts | None:
        for p in _PROCS:
            if p.pid == pid:
                return ProcessFacts(
                    pid=p.pid,
                    create_time=DEMO_START_WALL + p.start,
                    name=p.name,
                    user=p.user,
                    uid=1000 + p.pid % 7,
                    cmdline=p.cmdline,
                    environ=dict(p.environ),
                    ppid=p.ppid,
                    cgroup="0::/user.slice",
                )
        if pid == 31000:  # the torchrun launcher of the LoRA job
            return ProcessFacts(pid=31000, create_time=DEMO_START_WALL, name="torchrun", user="maria",
                                cmdline=("torchrun", "--nproc-per-node", "2", "train_lora.py"),
                                environ={"GPUTAB_TAG": "llama3-8b-lora"}, ppid=1)
        return None


class DemoBackend(Backend):
    """Simulated 4-GPU box.

    Args:
        seed: changes the noise, not the story.
        clock: monotonic clock (seconds); tests pass a fake one to get identical snapshots.
        wall_clock: wall clock (Unix seconds).
        speed: simulated seconds per real second (the recorder uses 1).
    """

    name = "demo"
    #: the simulated box's host name, stored with its sessions (so demo sessions are never mistaken for real ones)
    host = DEMO_HOST

    def __init__(
        self,
        seed: int = 0,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] | None = None,
        speed: float = 1.0,
    ) -> None:
        self.seed = seed
        named = os.environ.get(DEMO_HOST_ENV, "")
        if named.isprintable() and 0 < len(named) <= 64:
            self.host = named
        self._clock = clock or time.monotonic
        self._wall = wall_clock or time.time
        self._speed = speed
        self._t0 = self._clock()
        self._energy_mj = [100_000_000 + 7_000_000 * i + int(1e6 * (1 + _noise(seed, "e", i))) for i in range(4)]
        self._last_t: float | None = None
        self._last_power = [0.0] * 4
        self._inspector = DemoInspector()

    def inspector(self) -> ProcessInspector:
        return self._inspector

    def _sim_time(self, mono: float) -> float:
        return (mono - self._t0) * self._speed

    def poll(self) -> Snapshot:
        mono = self._clock()
        wall = self._wall()
        t = self._sim_time(mono)
        step = int(t)  # noise changes once per simulated second
        procs: list[ProcessSample] = []
        gpus: list[GpuSample] = []
        for i, model in enumerate(_GPUS):
            running = [p for p in _PROCS if p.gpu == i and _running(p, t)]
            sms = [max(0.0, p.base_sm + 4 * _noise(self.seed, "sm", p.pid, step)) for p in running]
            util = min(100.0, sum(sms))
            if running and util < 1:
                util = 1.0
            mem_used = 512 + sum(p.memory_mib for p in running)
            power = model.idle_w + (model.power_limit_w * 0.92 - model.idle_w) * util / 100
            power += 6 * _noise(self.seed, "p", i, step)
            # The energy counter integrates power over simulated time, like the driver's does over real time.
            if self._last_t is not None:
                dt = max(0.0, t - self._last_t)
                self._energy_mj[i] += int((self._last_power[i] + power) / 2 * dt * 1000)
            self._last_power[i] = power
            busy = util > 0
            gpus.append(
                GpuSample(
                    index=i,
                    uuid=f"GPU-demo{self.seed:04d}-{i:04d}-4e1c-9a5b-{0xD3A0 + i:012x}",
                    name=model.name,
                    utilization_pct=round(util),
                    memory_utilization_pct=round(util * 0.55),
                    memory_used_bytes=mem_used * MIB,
                    memory_total_bytes=model.memory_mib * MIB,
                    power_w=round(power, 1),
                    power_limit_w=model.power_limit_w,
                    energy_mj=self._energy_mj[i],
                    temperature_c=float(round(32 + 40 * power / model.power_limit_w)),
                    sm_clock_mhz=1980 if busy else 345,
                    pcie_rx_bytes_per_s=(2.1e9 * util / 100) if busy else 1.0e6,
                    pcie_tx_bytes_per_s=(0.4e9 * util / 100) if busy else 0.5e6,
                )
            )
            for p, sm in zip(running, sms):
                procs.append(ProcessSample(pid=p.pid, gpu_index=i, used_memory_bytes=p.memory_mib * MIB,
                                           sm_pct=round(sm)))
        self._last_t = t
        return Snapshot(mono=mono, wall=wall, gpus=tuple(gpus), processes=tuple(procs), driver_version="demo")


class FakeClock:
    """A clock tests and the screenshot script advance by hand: ``clock.advance(1.0)``."""

    def __init__(self, start: float = 1000.0, wall_start: float = DEMO_START_WALL) -> None:
        self.now = start
        self._offset = wall_start - start

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self._offset

    def advance(self, seconds: float) -> None:
        self.now += seconds
