"""The demo backend: a simulated training box, deterministic from a seed and the simulated time.

It serves new users without a GPU, the snapshot tests and the screenshots. It produces ordinary snapshots and
process facts, so attribution, the ledger and the store run on it exactly as on NVML.

The box: GPUs 0-1 (H100 SXM) run one tagged LoRA fine-tune at ~90 %; GPU 2 (A100) runs a slow, input-bound eval
at ~30 % and, now and then, a short Slurm sweep job beside it; GPU 3 (H100) sits idle; a notebook of an untagged
user comes and goes on GPU 0. GPU 4 (H100) is in MIG mode: 3g.40gb + 2g.20gb + 1g.10gb instances and one free
slice (idle), an inference server on the 3g.40gb and CI tests on the 1g.10gb, each instance priced as a device
(docs/cost-model.md, "MIG instances") and its SM activity read as GPM per MIG instance.

Every waste reason shows within the first minute (docs/waste.md): the eval's dataloader worker pegs a core
(``input_bound``); every minute the LoRA job stalls 3 s in an all-reduce (``comm_stall``); the notebook holds 2 GiB
of an 80 GB GPU at 4 % (``oversized``, after the demo's short 20 s); and before GPU 3 settles into idleness at
29 s, four jobs pass through it: memory held by a PID that has exited (``stranded_memory``), an FP32
training run (``no_tensor_cores``), a tiny batch (``small_batch``) and an index build (``memory_bound``). The
H100s report NVML GPM; the A100 does not (Ampere), so nothing GPM-based is claimed on GPU 2. The LoRA GPUs run at
their power cap part of the time (throttled dollars).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from gputab.config.settings import AlertsConfig, WasteConfig
from gputab.sampling.backend import Backend, ProcessFacts, ProcessInspector
from gputab.sampling.demo_box import (
    CPU,
    GIB,
    GPUS,
    H100,
    LORA,
    MIG_GPU,
    MIG_LAYOUT,
    MIG_SLICES,
    PROCS,
    PROFILES,
    STALL_AT,
    STALL_FOR,
    STALL_PERIOD,
    GpuModel,
    Proc,
)
from gputab.sampling.demo_reports import LORA_TAG, DemoSpoolWriter, DemoTokenCounters
from gputab.sampling.mig import parent_utilization, profile_name
from gputab.sampling.snapshot import THROTTLE_REASONS, CpuSample, GpuSample, MigSample, ProcessSample, Snapshot

MIB = 1024 * 1024
DEMO_HOST = "demo-box"
DEMO_HOST_ENV = "GPUTAB_DEMO_HOST"
"""Names the simulated box (default ``demo-box``): several demo recorders then look like several hosts (a fleet)."""
DEMO_START_WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z, used when a fixed clock is asked for


def _noise(seed: int, *key: object) -> float:
    """A deterministic value in [-1, 1) for (seed, key): the same poll of the same seed reads the same."""
    return random.Random(f"{seed}:{':'.join(map(str, key))}").random() * 2 - 1


def _stalled(t: float) -> bool:
    return STALL_AT <= t % STALL_PERIOD < STALL_AT + STALL_FOR


def _running(p: Proc, t: float) -> bool:
    if t < p.start:
        return False
    if p.period <= 0:
        return t < p.start + p.duration
    return (t - p.start) % p.period < p.duration


class DemoInspector(ProcessInspector):
    """Explains the simulated PIDs; real PIDs are unknown to it."""

    def facts(self, pid: int) -> ProcessFacts | None:
        for p in PROCS:
            if p.pid == pid and not p.exited:
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
            return ProcessFacts(
                pid=31000,
                create_time=DEMO_START_WALL,
                name="torchrun",
                user="maria",
                cmdline=("torchrun", "--nproc-per-node", "2", "train_lora.py"),
                environ={"GPUTAB_TAG": "llama3-8b-lora"},
                ppid=1,
            )
        return None


DEMO_BUDGETS = {LORA_TAG: 15.0}
"""The demo's own budget: its fine-tune's forecast (about $18.60) passes it, so a budget warning shows within the
first minute. A ``[budgets]`` entry for the tag wins."""


class DemoBackend(Backend):
    """Simulated 5-GPU box (GPU 4 in MIG mode).

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
        self._energy_mj = [
            100_000_000 + 7_000_000 * i + int(1e6 * (1 + _noise(seed, "e", i))) for i in range(len(GPUS))
        ]
        self._last_t: float | None = None
        self._last_power = [0.0] * len(GPUS)
        self._inspector = DemoInspector()
        self._spool: DemoSpoolWriter | None = None

    @staticmethod
    def demo_budgets() -> dict[str, float]:
        """Budgets the recorder adds for the demo (see :data:`DEMO_BUDGETS`)."""
        return dict(DEMO_BUDGETS)

    def attach_spool(self, directory: Path) -> None:
        """Report the demo jobs' samples, tokens and the fine-tune's progress into the demo's own spool
        ``directory`` (each poll), the way ``gputab.report()`` would: ``$/1k samples``, ``$/1M tokens`` and the
        forecast show once the recorder has read them (see :mod:`gputab.sampling.demo_reports`)."""
        self._spool = DemoSpoolWriter(directory, self.host, self.seed)

    def token_counters(self) -> DemoTokenCounters:
        """The demo's inference server's token counters (prompt and generated), read by the recorder like a real
        server's; the recorder asks a real backend's processes' ports instead."""
        return DemoTokenCounters(self.seed, lambda: self._last_t or 0.0)

    def _report_progress(self, t: float) -> None:
        if self._spool is not None:
            self._spool.write(t)

    def inspector(self) -> ProcessInspector:
        return self._inspector

    @staticmethod
    def waste_config(config: WasteConfig) -> WasteConfig:
        """The demo box compresses time so every waste reason shows in its first minute: memory held at 0 % and a
        small job on a big GPU count after 20 s (or the config's, if shorter)."""
        return replace(
            config,
            stranded_seconds=min(config.stranded_seconds, 20.0),
            oversized_seconds=min(config.oversized_seconds, 20.0),
        )

    @staticmethod
    def alerts_config(config: AlertsConfig) -> AlertsConfig:
        """The demo's alerts on the same compressed time: the waste share is taken over 30 s (or the config's
        window, if shorter), so a ``waste`` alert shows in its first minute."""
        return replace(config, waste_minutes=min(config.waste_minutes, 0.5))

    def _sim_time(self, mono: float) -> float:
        return (mono - self._t0) * self._speed

    def poll(self) -> Snapshot:
        mono = self._clock()
        wall = self._wall()
        t = self._sim_time(mono)
        self._report_progress(t)
        step = int(t)  # noise changes once per simulated second
        dt = None if self._last_t is None else max(0.0, t - self._last_t)
        stalled = _stalled(t)
        procs: list[ProcessSample] = []
        gpus: list[GpuSample] = []
        cpu: list[CpuSample] = []
        for i, model in enumerate(GPUS):
            running = [p for p in PROCS if p.gpu == i and _running(p, t)]
            sms = [
                max(
                    0.0,
                    (p.base_sm * (0.4 if stalled and p.pid in LORA else 1.0))
                    + (0.0 if p.exited else 4 * _noise(self.seed, "sm", p.pid, step)),
                )
                for p in running
            ]
            mig = self._mig(running, sms) if i == MIG_GPU else None
            util = min(100.0, sum(sms)) if mig is None else parent_utilization(mig, MIG_SLICES) or 0.0
            if any(not p.exited for p in running) and util < 1:
                util = 1.0
            mem_used = 512 + sum(p.memory_mib for p in running)
            power = model.idle_w + (model.power_limit_w * 0.92 - model.idle_w) * util / 100
            power += 6 * _noise(self.seed, "p", i, step)
            # The energy counter integrates power over simulated time, like the driver's does over real time.
            if dt is not None:
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
                    throttle_seconds=self._throttle(i, util, step, dt),
                    mig=mig,
                    mig_slices=None if mig is None else MIG_SLICES,
                    **({} if mig is not None else self._gpm(model, running, stalled, step)),
                )
            )
            for p, sm in zip(running, sms):
                procs.append(
                    ProcessSample(
                        pid=p.pid,
                        gpu_index=i,
                        used_memory_bytes=p.memory_mib * MIB,
                        sm_pct=None if mig is not None else round(sm),  # NVML reports none on MIG
                        gpu_instance_id=p.instance,
                        compute_instance_id=None if p.instance is None else 0,
                    )
                )
                cpu.append(self._cpu(p, step, first=dt is None))
        self._last_t = t
        return Snapshot(
            mono=mono, wall=wall, gpus=tuple(gpus), processes=tuple(procs), driver_version="demo", cpu=tuple(cpu)
        )

    @staticmethod
    def _mig(running: list[Proc], sms: list[float]) -> tuple[MigSample, ...]:
        """The MIG GPU's instances now: each one's SM activity (GPM per MIG instance) is what runs on it."""
        out = []
        for gi, ci, slices, sm_count, memory_mib in MIG_LAYOUT:
            on = [(p, sm) for p, sm in zip(running, sms) if p.instance == gi]
            out.append(
                MigSample(
                    gpu_instance_id=gi,
                    compute_instance_id=ci,
                    slices=slices,
                    gpu_instance_slices=slices,
                    uuid=f"MIG-demo{gi:04d}-{ci:04d}-4e1c-9a5b-{0xD3A0 + gi:012x}",
                    memory_used_bytes=(64 + sum(p.memory_mib for p, _ in on)) * MIB,
                    memory_total_bytes=memory_mib * MIB,
                    sm_count=sm_count,
                    profile=profile_name(slices, slices, memory_mib),
                    sm_active_pct=round(min(100.0, sum((sm for _, sm in on), 0.0)), 1),
                )
            )
        return tuple(out)

    def _gpm(self, model: GpuModel, running: list[Proc], stalled: bool, step: int) -> dict:
        """NVML GPM figures of one GPU: the H100s report them, the A100 (Ampere) does not."""
        if model is not H100:
            return {}
        profile = "idle"
        for p in running:  # the busiest profile on the GPU sets its figures
            if p.pid in LORA:
                profile = "stall" if stalled else "steady"
            elif profile == "idle":
                profile = p.profile
        sm, occ, tensor, dram, rx, tx = PROFILES[profile]
        jitter = 1 + 0.03 * _noise(self.seed, "gpm", step)
        return {
            "sm_active_pct": round(sm * jitter, 1),
            "sm_occupancy_pct": round(occ * jitter, 1),
            "tensor_active_pct": round(tensor * jitter, 1),
            "dram_bw_pct": round(dram * jitter, 1),
            "nvlink_rx_bytes_per_s": rx * GIB * jitter,
            "nvlink_tx_bytes_per_s": tx * GIB * jitter,
        }

    def _throttle(self, i: int, util: float, step: int, dt: float | None) -> dict[str, float]:
        """The busy H100s hit their power cap now and then; nothing else throttles."""
        seconds = dict.fromkeys(THROTTLE_REASONS, 0.0)
        if dt and GPUS[i] is H100 and util > 80:
            seconds["power_cap"] = dt * (0.3 + 0.2 * _noise(self.seed, "cap", i, step))
        return seconds

    def _cpu(self, p: Proc, step: int, first: bool) -> CpuSample:
        """The CPU side of one GPU process (rates need two polls, as on a real host)."""
        if p.exited:
            return CpuSample(pid=p.pid, alive=False, tree_size=0)
        if first:
            return CpuSample(pid=p.pid, cores=8)
        total, busiest_pid, busiest, runnable, iowait = CPU.get(p.pid, (35.0, p.pid, 30.0, 32.0, 1.0))
        jitter = 1 + 0.02 * _noise(self.seed, "cpu", p.pid, step)
        return CpuSample(
            pid=p.pid,
            cpu_pct=round(total * jitter, 1),
            busiest_pid=busiest_pid,
            busiest_cpu_pct=round(min(100.0, busiest * jitter), 1),
            cores=8,
            iowait_pct=iowait,
            tree_size=2 if busiest_pid != p.pid else 1,
            busiest_runnable_pct=runnable,
        )


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
