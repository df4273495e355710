"""The NVML backend: reads this machine's NVIDIA GPUs through nvidia-ml-py (``pynvml``).

It runs every second for as long as gputab records, so a poll does only what changes: handles, names, UUIDs,
memory totals and power limits are read once; a metric the GPU does not support is dropped after its first
NOT_SUPPORTED and never asked again; the per-GPU work is one loop over the metrics still alive.

Fault model (see ``Backend``): a per-metric error yields ``None`` for that metric (never a fake 0) and, unless the
metric is merely unsupported, a note in ``Snapshot.errors``; GPU_IS_LOST or UNKNOWN marks the GPU ``lost`` and the
other GPUs are read as usual; only a failure to start NVML at all raises :class:`BackendError`.

For the waste diagnosis it also reads NVML GPM where the GPU supports it (:mod:`gputab.sampling.gpm`), the clock
event reasons, and the CPU side of the GPU processes (:meth:`gputab.sampling.host.HostInspector.cpu_samples`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, NamedTuple

import pynvml

from gputab.errors import BackendError
from gputab.sampling.backend import Backend, ProcessInspector
from gputab.sampling.containers import PidVisibility
from gputab.sampling.dcgm import DcgmNeighbour
from gputab.sampling.gpm import GPM_PCIE, OLD_PCIE, THROTTLE_BITS, GpmSamples, clock_event_reasons
from gputab.sampling.gpu_worker import GpuWorker
from gputab.sampling.mig import MigInstances, instance_id, mig_slices
from gputab.sampling.nvml_errors import DEMO_HINT, LOST, NO_ANSWER, UNSUPPORTED, VITAL, error_name, init_message
from gputab.sampling.nvml_readers import (
    MEMORY_V2,
    TEMPERATURE_V,
    Reader,
    read_energy,
    read_memory_v1,
    read_memory_v2,
    read_pcie_rx,
    read_pcie_tx,
    read_power,
    read_sm_clock,
    read_temperature,
    read_temperature_v,
    read_util,
)
from gputab.sampling.power import field_power, read_power_fields
from gputab.sampling.process_sm import ProcessSm
from gputab.sampling.snapshot import THROTTLE_REASONS, CpuSample, GpuSample, ProcessSample, ReadFault, Snapshot
from gputab.sampling.waiting import waiting


def _label(what: str) -> str:
    return what.replace(" ", "_")


class _Reading(NamedTuple):
    """What one GPU's part of a poll produced (in its worker thread, or inline without a deadline)."""

    sample: GpuSample
    processes: list[ProcessSample]
    notes: list[str]
    faults: list[ReadFault]


class _GpuState:
    """What the backend keeps about one GPU between polls."""

    __slots__ = (
        "index",
        "handle",
        "static",
        "readers",
        "proc_lists",
        "gpm",
        "throttle",
        "throttle_prev",
        "throttle_mono",
        "mig",
        "proc_sm",
        "worker",
        "in_call",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.handle = None  # None until the GPU answered once (a GPU lost at start is retried every poll)
        self.static: dict = {"index": index, "uuid": "", "name": f"GPU {index}"}
        self.readers: list[tuple[str, Reader]] = []
        self.proc_lists: list[tuple[str, Callable]] = [
            ("compute", pynvml.nvmlDeviceGetComputeRunningProcesses_v3),
            ("graphics", pynvml.nvmlDeviceGetGraphicsRunningProcesses_v3),
        ]
        self.proc_sm = ProcessSm()  # per-process SM % (sampling/process_sm.py)
        self.gpm: GpmSamples | None = None  # only where nvmlGpmQueryDeviceSupport says so (Hopper and newer)
        self.throttle: Callable | None = clock_event_reasons()  # None once proved unsupported
        self.throttle_prev: frozenset[str] = frozenset()
        self.throttle_mono: float | None = None
        self.mig: MigInstances | None = None  # only for a GPU in MIG mode
        self.worker: GpuWorker[_Reading] = GpuWorker(f"gputab-nvml-gpu{index}")  # used when the poll has a deadline
        self.in_call = "open"  # the reading under way, named in a fault when it does not answer in time


class _GpuLost(Exception):
    """Internal: a call on this GPU answered GPU_IS_LOST or UNKNOWN."""

    def __init__(self, what: str, exc: pynvml.NVMLError) -> None:
        super().__init__(f"{what}: {exc}")
        self.what = what
        self.error = error_name(exc)


def _unsupported(exc: pynvml.NVMLError, gpu: _GpuState, what: str, notes: list[str]) -> bool:
    """Sort a per-GPU error: raise ``_GpuLost`` for a lost GPU; True if the GPU or driver lacks the call (stop
    asking); else False, with a note saying why the figure is missing (it may answer next time)."""
    if exc.value in LOST:
        raise _GpuLost(what, exc) from None
    if exc.value in UNSUPPORTED:
        return True
    notes.append(f"GPU {gpu.index} {what}: {exc}")
    return False


def _failed(gpu: _GpuState, what: str, exc: pynvml.NVMLError, notes: list[str], faults: list[ReadFault]) -> None:
    """A reading that failed with an error other than "not supported" or "lost": a note, and a fault when the
    GPU's charge needs it (its interval then goes to (unobserved))."""
    if what in VITAL:
        detail = f"GPU {gpu.index} {what}: {exc} ({error_name(exc)})"
        faults.append(ReadFault(gpu.index, _label(what), error_name(exc), detail))
        notes.append(detail)
    else:
        notes.append(f"GPU {gpu.index} {what}: {exc}")


class NvmlBackend(Backend):
    """Polls every NVIDIA GPU of this machine through NVML.

    Raises:
        BackendError: NVML cannot start (no library, no driver, version mismatch, ...). Zero GPUs is not an
            error: snapshots then have no GPUs.
    """

    name = "nvml"

    def __init__(self, on_wait: Callable[[str], None] | None = None) -> None:
        """``on_wait(message)`` is called (from another thread) every second while ``nvmlInit`` is slow."""
        try:
            with waiting("starting NVML (nvmlInit)", on_wait):
                pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise BackendError(init_message(exc)) from None
        self._closed = False
        self._inspector: ProcessInspector | None = None
        self._visibility = PidVisibility()
        self._dcgm = DcgmNeighbour()  # where DCGM runs here, its profiling counters are left to it (sampling/dcgm.py)
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            self.close()
            raise BackendError(f"NVML started but cannot count the GPUs ({exc}). {DEMO_HINT}") from None
        try:
            self.driver_version: str | None = pynvml.nvmlSystemGetDriverVersion()
        except pynvml.NVMLError:
            self.driver_version = None
        self._gpus = [_GpuState(i) for i in range(count)]
        for gpu in self._gpus:
            try:
                self._open(gpu)
            except _GpuLost:
                pass  # reported as lost by the first poll, which tries again

    # -- first contact: handle, fixed facts, and which variant of each call this driver has ------------------

    def _open(self, gpu: _GpuState) -> None:
        """Get the handle and the fields that do not change, and choose the readers. Raises ``_GpuLost``."""
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(gpu.index)
        except pynvml.NVMLError as exc:
            raise _GpuLost("handle", exc) from None
        static = gpu.static
        static["name"] = self._once(pynvml.nvmlDeviceGetName, handle, "name") or static["name"]
        static["uuid"] = self._once(pynvml.nvmlDeviceGetUUID, handle, "uuid") or static["uuid"]
        limit = self._once(pynvml.nvmlDeviceGetEnforcedPowerLimit, handle, "power limit")
        static["power_limit_w"] = None if limit is None else limit / 1000.0

        readers: list[tuple[str, Reader]] = [("utilization", read_util)]
        memory = None
        if MEMORY_V2 is not None:
            memory = self._once(pynvml.nvmlDeviceGetMemoryInfo, handle, "memory", version=MEMORY_V2)
            if memory is not None:
                readers.append(("memory", read_memory_v2))
        if memory is None:  # the driver predates v2 (or refused it): v1 counts reserved memory as used
            memory = self._once(pynvml.nvmlDeviceGetMemoryInfo, handle, "memory")
            if memory is not None:
                readers.append(("memory", read_memory_v1))
        static["memory_total_bytes"] = None if memory is None else memory.total
        readers += [("power", self._power_reader(handle)), ("energy", read_energy)]
        if (
            TEMPERATURE_V is not None
            and self._once(TEMPERATURE_V, handle, "temperature", args=(pynvml.NVML_TEMPERATURE_GPU,)) is not None
        ):
            readers.append(("temperature", read_temperature_v))
        else:
            readers.append(("temperature", read_temperature))
        readers += [("sm clock", read_sm_clock), ("pcie rx", read_pcie_rx), ("pcie tx", read_pcie_tx)]
        gpu.readers = readers
        if gpu.gpm is None:
            gpu.gpm = self._open_gpm(handle)
        try:
            slots = mig_slices(handle)
        except pynvml.NVMLError as exc:
            raise _GpuLost("MIG mode", exc) from None
        gpu.mig = None if slots is None else MigInstances(slots, gpm=gpu.gpm is not None)
        gpu.handle = handle

    def _power_reader(self, handle: pynvml.c_nvmlDevice_t) -> Reader:
        """Power through ``nvmlDeviceGetFieldValues`` (GPU scope, instant, else average) where the driver answers
        those fields, else ``nvmlDeviceGetPowerUsage`` (on Grace Hopper that one can be the whole module's)."""
        if not hasattr(pynvml, "nvmlDeviceGetFieldValues"):
            return read_power
        try:
            power, _, _ = field_power(handle)
        except pynvml.NVMLError as exc:
            if exc.value in LOST:
                raise _GpuLost("power fields", exc) from None
            return read_power
        return read_power_fields if power is not None else read_power

    def _open_gpm(self, handle: pynvml.c_nvmlDevice_t) -> GpmSamples | None:
        """GPM samples for this GPU where the driver says the device supports GPM; else None (never asked again)."""
        support = (
            self._once(pynvml.nvmlGpmQueryDeviceSupport, handle, "gpm support")
            if hasattr(pynvml, "nvmlGpmQueryDeviceSupport")
            else None
        )
        if support is None or not support.isSupportedDevice or not self._dcgm.gpm_allowed():
            return None  # beside DCGM, its profiling counters are left to it (sampling/dcgm.py)
        try:
            return GpmSamples()
        except pynvml.NVMLError:
            return None

    @staticmethod
    def _once(fn: Callable[..., Any], handle: pynvml.c_nvmlDevice_t, what: str, args: tuple = (), **kwargs: Any) -> Any:
        """Call ``fn`` at first contact: its value, or None on any error except a lost GPU (``_GpuLost``)."""
        try:
            return fn(handle, *args, **kwargs)
        except pynvml.NVMLError as exc:
            if exc.value in LOST:
                raise _GpuLost(what, exc) from None
            return None

    # -- the poll ------------------------------------------------------------------------------------------------

    def poll(self) -> Snapshot:
        mono, wall = time.monotonic(), time.time()
        started = time.monotonic()
        self._dcgm.begin()
        if self.poll_deadline is None:
            readings = [self._read_one(gpu, mono) for gpu in self._gpus]
        else:
            readings = self._read_by_deadline(mono, self.poll_deadline)
        notes: list[str] = []
        procs: list[ProcessSample] = []
        faults: list[ReadFault] = []
        for r in readings:
            notes += r.notes
            procs += r.processes
            faults += r.faults
        self._visibility.observe(p.pid for p in procs)
        notes_now = tuple(n for n in (self._visibility.sandbox_note, self._visibility.note, self._dcgm.note) if n)
        return Snapshot(
            mono=mono,
            wall=wall,
            gpus=self._dcgm.apply([r.sample for r in readings], self._left(started)),
            processes=tuple(procs),
            driver_version=self.driver_version,
            errors=tuple(notes),
            cpu=self._cpu_side(procs, notes),
            host_notes=notes_now,
            read_faults=tuple(faults),
        )

    def _left(self, started: float) -> float | None:
        """Seconds left of this poll's deadline (None: no deadline)."""
        return None if self.poll_deadline is None else max(0.0, self.poll_deadline - (time.monotonic() - started))

    def _read_one(self, gpu: _GpuState, mono: float) -> _Reading:
        """Everything one GPU says this poll. A failed vital reading marks the sample ``lost`` with the reason in
        ``unobserved`` (its interval is (unobserved)); a lost GPU is a placeholder sample."""
        notes: list[str] = []
        faults: list[ReadFault] = []
        try:
            if gpu.handle is None:
                gpu.in_call = "open"
                self._open(gpu)
            sample = self._read_gpu(gpu, notes, faults, mono)
            procs = self._read_processes(gpu, notes, faults)
        except _GpuLost as exc:
            s = gpu.static
            notes.append(f"GPU {gpu.index} lost ({exc})")
            faults.append(ReadFault(gpu.index, _label(exc.what), exc.error, f"GPU {gpu.index} lost ({exc})"))
            return _Reading(GpuSample(index=gpu.index, uuid=s["uuid"], name=s["name"], lost=True), [], notes, faults)
        if faults:
            sample = replace(sample, lost=True, unobserved="; ".join(f.detail for f in faults))
        return _Reading(sample, procs, notes, faults)

    def _read_by_deadline(self, mono: float, deadline: float) -> list[_Reading]:
        """Each GPU read by its own worker; what has not answered ``deadline`` seconds from now is unobserved."""
        end = time.monotonic() + deadline
        jobs = {}
        for gpu in self._gpus:
            if not gpu.worker.busy:  # a worker still in a call from before gets nothing more to do
                jobs[gpu.index] = gpu.worker.submit(partial(self._read_one, gpu, mono))
        out = []
        for gpu in self._gpus:
            job = jobs.get(gpu.index)
            if job is not None and job.done.wait(max(0.0, end - time.monotonic())):
                if job.error is not None:
                    raise job.error  # not an NVML fault (those are in the reading): a bug, as without a deadline
                assert job.result is not None
                out.append(job.result)
            else:
                out.append(self._no_answer(gpu, deadline, stuck_before=job is None))
        return out

    def _no_answer(self, gpu: _GpuState, deadline: float, stuck_before: bool) -> _Reading:
        call = gpu.in_call
        if stuck_before:
            waited = gpu.worker.busy_for(time.monotonic())
            detail = f"GPU {gpu.index} {call}: still no answer after {waited:.1f} s (not asked again until it returns)"
        else:
            detail = f"GPU {gpu.index} {call}: no answer within the poll's deadline of {deadline:g} s"
        s = gpu.static
        sample = GpuSample(index=gpu.index, uuid=s["uuid"], name=s["name"], lost=True, unobserved=detail)
        return _Reading(sample, [], [detail], [ReadFault(gpu.index, _label(call), NO_ANSWER, detail)])

    def _cpu_side(self, procs: list[ProcessSample], notes: list[str]) -> tuple[CpuSample, ...]:
        """The CPU side of the GPU processes (host.py), for the waste diagnosis; empty if it cannot be read."""
        if not procs:
            return ()
        try:
            cpu_samples = getattr(self.inspector(), "cpu_samples", None)
            return tuple(cpu_samples(sorted({p.pid for p in procs}))) if cpu_samples else ()
        except ModuleNotFoundError:
            return ()  # psutil is optional for this module
        except Exception as exc:  # the CPU side must never cost a poll its GPUs
            notes.append(f"CPU side of GPU processes: {exc}")
            return ()

    def _read_gpu(self, gpu: _GpuState, notes: list[str], faults: list[ReadFault], mono: float) -> GpuSample:
        values = dict(gpu.static)
        handle = gpu.handle
        dead: list[int] = []
        for i, (what, read) in enumerate(gpu.readers):
            gpu.in_call = what
            try:
                read(handle, values)
            except pynvml.NVMLError as exc:
                if exc.value in LOST:
                    raise _GpuLost(what, exc) from None
                if exc.value in UNSUPPORTED:
                    dead.append(i)
                else:  # e.g. NO_PERMISSION: may pass next time, so keep asking but say why it is missing
                    _failed(gpu, what, exc, notes, faults)
        if dead:
            gpu.readers = [r for i, r in enumerate(gpu.readers) if i not in dead]
        if gpu.mig is not None:
            gpu.in_call = "MIG devices"
            try:
                gpu.mig.read_into(values, handle, gpu.index, notes)
            except pynvml.NVMLError as exc:
                raise _GpuLost("MIG devices", exc) from None
        if gpu.gpm is not None:
            gpu.in_call = "gpm"
            self._read_gpm(gpu, values, notes)
        if gpu.throttle is not None:
            gpu.in_call = "clock event reasons"
            self._read_throttle(gpu, values, notes, mono)
        return GpuSample(**values)

    def _read_gpm(self, gpu: _GpuState, values: dict, notes: list[str]) -> None:
        """GPM metrics over the interval since the last poll; each metric's own return code decides its value."""
        gpm = gpu.gpm
        assert gpm is not None
        try:
            if not gpm.interval(lambda sample: pynvml.nvmlGpmSampleGet(gpu.handle, sample)):
                return
        except pynvml.NVMLError as exc:
            if _unsupported(exc, gpu, "gpm", notes):
                gpm.free()
                gpu.gpm = None
            return
        gpm.read_into(values, f"GPU {gpu.index}", notes, UNSUPPORTED)
        if any(values.get(f) is not None for f in ("sm_active_pct", "sm_occupancy_pct", "tensor_active_pct")):
            values["activity_source"] = "gpm"
        # GPM averages PCIe over the whole interval; the older call samples 20 ms (and blocks for them): drop it.
        if any(r[0] in OLD_PCIE for r in gpu.readers):
            gpm_pcie = {GPM_PCIE[f] for _, f, _ in gpm.metrics if f in GPM_PCIE}
            gpu.readers = [r for r in gpu.readers if r[0] not in gpm_pcie]
        if not gpm.metrics:
            gpm.free()
            gpu.gpm = None

    def _read_throttle(self, gpu: _GpuState, values: dict, notes: list[str], mono: float) -> None:
        """Seconds of the interval since the last poll under each clock event reason (trapezoid of the two ends)."""
        assert gpu.throttle is not None
        try:
            mask = gpu.throttle(gpu.handle)
        except pynvml.NVMLError as exc:
            if _unsupported(exc, gpu, "clock event reasons", notes):
                # A driver before 535 has the same call under its older name: try that once before giving up.
                older = getattr(pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
                gpu.throttle = (
                    older if exc.value == pynvml.NVML_ERROR_FUNCTION_NOT_FOUND and gpu.throttle is not older else None
                )
            gpu.throttle_mono = None
            return
        active = frozenset(name for name, bits in THROTTLE_BITS if mask & bits)
        dt = 0.0 if gpu.throttle_mono is None else max(0.0, mono - gpu.throttle_mono)
        values["throttle_seconds"] = {
            r: dt * ((r in gpu.throttle_prev) + (r in active)) / 2.0 for r in THROTTLE_REASONS
        }
        gpu.throttle_prev, gpu.throttle_mono = active, mono

    def _read_processes(self, gpu: _GpuState, notes: list[str], faults: list[ReadFault]) -> list[ProcessSample]:
        """Compute and graphics processes of one GPU, merged per PID, with their SM share."""
        seen: dict[int, list] = {}  # pid -> [used_memory_bytes, kind, gpu instance, compute instance]
        for kind, list_fn in tuple(gpu.proc_lists):
            gpu.in_call = f"{kind} processes"
            try:
                infos = list_fn(gpu.handle)
            except pynvml.NVMLError as exc:
                if exc.value in LOST:
                    raise _GpuLost(f"{kind} processes", exc) from None
                if exc.value in UNSUPPORTED:
                    gpu.proc_lists = [p for p in gpu.proc_lists if p[0] != kind]
                else:
                    _failed(gpu, f"{kind} processes", exc, notes, faults)
                continue
            for info in infos:
                entry = seen.get(info.pid)
                if entry is None:
                    seen[info.pid] = [
                        info.usedGpuMemory,
                        kind,
                        instance_id(getattr(info, "gpuInstanceId", None)),
                        instance_id(getattr(info, "computeInstanceId", None)),
                    ]
                elif info.usedGpuMemory is not None:
                    # A process in both lists reports its one allocation on this GPU twice: take it once.
                    entry[0] = info.usedGpuMemory if entry[0] is None else max(entry[0], info.usedGpuMemory)
        if not seen:
            return []  # no process: skip the utilization query (idle GPUs cost two calls, not three)
        gpu.in_call = "process utilization"
        sm = gpu.proc_sm.read(gpu.handle, UNSUPPORTED, lambda exc: _unsupported(exc, gpu, "process utilization", notes))
        return [
            ProcessSample(
                pid=pid,
                gpu_index=gpu.index,
                used_memory_bytes=used,
                kind=kind,
                sm_pct=None if sm is None else sm.get(pid, 0.0),
                gpu_instance_id=gi,
                compute_instance_id=ci,
            )
            for pid, (used, kind, gi, ci) in seen.items()
        ]

    # -- the rest of the Backend interface -----------------------------------------------------------------------

    def inspector(self) -> ProcessInspector:
        """psutil facts about the real PIDs NVML lists (imported here: host.py is optional for this module)."""
        if self._inspector is None:
            from gputab.sampling.host import HostInspector

            self._inspector = HostInspector(visibility=self._visibility)
        return self._inspector

    def close(self) -> None:
        """Shut NVML down once; later calls do nothing."""
        # no _closed yet means nvmlInit failed: there is nothing to shut down
        if not getattr(self, "_closed", True):
            self._closed = True
            self._dcgm.close()
            stuck = False
            for gpu in getattr(self, "_gpus", ()):
                gpu.worker.stop()
                if gpu.worker.busy:  # a call still in the driver: leave this GPU (and NVML) as they are
                    stuck = True
                    continue
                if gpu.gpm is not None:
                    gpu.gpm.free()
                    gpu.gpm = None
                if gpu.mig is not None:
                    gpu.mig.close()
            if stuck:
                return  # shutting NVML down under a call in flight could hang too; the process exit releases it
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError:
                pass  # nothing left to release
