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
from typing import Any, TypeVar

import pynvml

from gputab.errors import BackendError
from gputab.sampling.backend import Backend, ProcessInspector
from gputab.sampling.containers import PidVisibility
from gputab.sampling.gpm import GPM_PCIE, OLD_PCIE, THROTTLE_BITS, GpmSamples, clock_event_reasons
from gputab.sampling.mig import MigInstances, instance_id, mig_slices
from gputab.sampling.power import field_power, read_power_fields
from gputab.sampling.process_sm import ProcessSm
from gputab.sampling.snapshot import THROTTLE_REASONS, CpuSample, GpuSample, ProcessSample, Snapshot
from gputab.sampling.waiting import waiting

T = TypeVar("T")

DEMO_HINT = "Try `gputab --demo`."

#: Errors after which a GPU no longer answers: it fell off the bus, or the driver cannot tell what happened.
_LOST = frozenset({pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_UNKNOWN})
#: Errors that will not change while this process runs: the GPU lacks the metric, or the driver lacks the call.
_UNSUPPORTED = frozenset(
    {pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH}
)

# Newer pynvml releases only; the backend falls back to the older calls without them.
_MEMORY_V2 = getattr(pynvml, "nvmlMemory_v2", None)
_TEMPERATURE_V = getattr(pynvml, "nvmlDeviceGetTemperatureV", None)

_KIB = 1024  # NVML reports PCIe throughput in KB/s with KB = 1024 bytes
Reader = Callable[[object, dict], None]
"""Reads one metric of a GPU handle into the values of its ``GpuSample``; raises ``pynvml.NVMLError``."""


def _read_util(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    u = pynvml.nvmlDeviceGetUtilizationRates(h)
    out["utilization_pct"] = u.gpu
    out["memory_utilization_pct"] = u.memory


def _read_memory_v2(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    # v2 reports the driver's reservation apart from "used", as nvidia-smi does since driver 510.
    out["memory_used_bytes"] = pynvml.nvmlDeviceGetMemoryInfo(h, version=_MEMORY_V2).used


def _read_memory_v1(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    out["memory_used_bytes"] = pynvml.nvmlDeviceGetMemoryInfo(h).used


def _read_power(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    out["power_w"] = pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0
    out["power_source"] = "nvmlDeviceGetPowerUsage"


def _read_energy(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    out["energy_mj"] = pynvml.nvmlDeviceGetTotalEnergyConsumption(h)


def _read_temperature_v(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    assert _TEMPERATURE_V is not None  # only registered when the library has it
    out["temperature_c"] = float(_TEMPERATURE_V(h, pynvml.NVML_TEMPERATURE_GPU))


def _read_temperature(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    out["temperature_c"] = float(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))


def _read_sm_clock(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    out["sm_clock_mhz"] = pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)


def _read_pcie_rx(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    out["pcie_rx_bytes_per_s"] = float(pynvml.nvmlDeviceGetPcieThroughput(h, pynvml.NVML_PCIE_UTIL_RX_BYTES) * _KIB)


def _read_pcie_tx(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    out["pcie_tx_bytes_per_s"] = float(pynvml.nvmlDeviceGetPcieThroughput(h, pynvml.NVML_PCIE_UTIL_TX_BYTES) * _KIB)


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


class _GpuLost(Exception):
    """Internal: a call on this GPU answered GPU_IS_LOST or UNKNOWN."""

    def __init__(self, what: str, exc: pynvml.NVMLError) -> None:
        super().__init__(f"{what}: {exc}")


def _unsupported(exc: pynvml.NVMLError, gpu: _GpuState, what: str, notes: list[str]) -> bool:
    """Sort a per-GPU error: raise ``_GpuLost`` for a lost GPU; True if the GPU or driver lacks the call (stop
    asking); else False, with a note saying why the figure is missing (it may answer next time)."""
    if exc.value in _LOST:
        raise _GpuLost(what, exc) from None
    if exc.value in _UNSUPPORTED:
        return True
    notes.append(f"GPU {gpu.index} {what}: {exc}")
    return False


def _init_message(exc: pynvml.NVMLError) -> str:
    """One line a user understands for an NVML start failure, each ending with the demo hint."""
    code = exc.value
    if code == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND:
        return f"NVIDIA driver library libnvidia-ml.so.1 not found: no NVIDIA driver on this machine? {DEMO_HINT}"
    if code == pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        return (
            "NVIDIA driver/library version mismatch: the loaded kernel module differs from libnvidia-ml.so.1 "
            f"(usually after a driver upgrade); reboot or reload the nvidia module. {DEMO_HINT}"
        )
    if code == pynvml.NVML_ERROR_DRIVER_NOT_LOADED:
        return f"NVIDIA driver not loaded: the nvidia kernel module is not running on this machine. {DEMO_HINT}"
    if code == pynvml.NVML_ERROR_NO_PERMISSION:
        return f"No permission to use the NVIDIA driver (check access to /dev/nvidia*). {DEMO_HINT}"
    return f"NVML failed to start ({exc}). {DEMO_HINT}"


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
            raise BackendError(_init_message(exc)) from None
        self._closed = False
        self._inspector: ProcessInspector | None = None
        self._visibility = PidVisibility()
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

        readers: list[tuple[str, Reader]] = [("utilization", _read_util)]
        memory = None
        if _MEMORY_V2 is not None:
            memory = self._once(pynvml.nvmlDeviceGetMemoryInfo, handle, "memory", version=_MEMORY_V2)
            if memory is not None:
                readers.append(("memory", _read_memory_v2))
        if memory is None:  # the driver predates v2 (or refused it): v1 counts reserved memory as used
            memory = self._once(pynvml.nvmlDeviceGetMemoryInfo, handle, "memory")
            if memory is not None:
                readers.append(("memory", _read_memory_v1))
        static["memory_total_bytes"] = None if memory is None else memory.total
        readers += [("power", self._power_reader(handle)), ("energy", _read_energy)]
        if (
            _TEMPERATURE_V is not None
            and self._once(_TEMPERATURE_V, handle, "temperature", args=(pynvml.NVML_TEMPERATURE_GPU,)) is not None
        ):
            readers.append(("temperature", _read_temperature_v))
        else:
            readers.append(("temperature", _read_temperature))
        readers += [("sm clock", _read_sm_clock), ("pcie rx", _read_pcie_rx), ("pcie tx", _read_pcie_tx)]
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
            return _read_power
        try:
            power, _, _ = field_power(handle)
        except pynvml.NVMLError as exc:
            if exc.value in _LOST:
                raise _GpuLost("power fields", exc) from None
            return _read_power
        return read_power_fields if power is not None else _read_power

    def _open_gpm(self, handle: pynvml.c_nvmlDevice_t) -> GpmSamples | None:
        """GPM samples for this GPU where the driver says the device supports GPM; else None (never asked again)."""
        support = (
            self._once(pynvml.nvmlGpmQueryDeviceSupport, handle, "gpm support")
            if hasattr(pynvml, "nvmlGpmQueryDeviceSupport")
            else None
        )
        if support is None or not support.isSupportedDevice:
            return None
        try:
            return GpmSamples()
        except pynvml.NVMLError:
            return None

    @staticmethod
    def _once(
        fn: Callable[..., T], handle: pynvml.c_nvmlDevice_t, what: str, args: tuple[Any, ...] = (), **kwargs: Any
    ) -> T | None:
        """Call ``fn`` at first contact: its value, or None on any error except a lost GPU (``_GpuLost``)."""
        try:
            return fn(handle, *args, **kwargs)
        except pynvml.NVMLError as exc:
            if exc.value in _LOST:
                raise _GpuLost(what, exc) from None
            return None

    # -- the poll ------------------------------------------------------------------------------------------------

    def poll(self) -> Snapshot:
        mono, wall = time.monotonic(), time.time()
        notes: list[str] = []
        gpus: list[GpuSample] = []
        procs: list[ProcessSample] = []
        for gpu in self._gpus:
            try:
                if gpu.handle is None:
                    self._open(gpu)
                gpus.append(self._read_gpu(gpu, notes, mono))
                procs += self._read_processes(gpu, notes)
            except _GpuLost as exc:
                s = gpu.static
                gpus.append(GpuSample(index=gpu.index, uuid=s["uuid"], name=s["name"], lost=True))
                notes.append(f"GPU {gpu.index} lost ({exc})")
        self._visibility.observe(p.pid for p in procs)
        notes_now = tuple(n for n in (self._visibility.sandbox_note, self._visibility.note) if n)
        return Snapshot(
            mono=mono,
            wall=wall,
            gpus=tuple(gpus),
            processes=tuple(procs),
            driver_version=self.driver_version,
            errors=tuple(notes),
            cpu=self._cpu_side(procs, notes),
            host_notes=notes_now,
        )

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

    def _read_gpu(self, gpu: _GpuState, notes: list[str], mono: float) -> GpuSample:
        values = dict(gpu.static)
        handle = gpu.handle
        dead: list[int] = []
        for i, (what, read) in enumerate(gpu.readers):
            try:
                read(handle, values)
            except pynvml.NVMLError as exc:
                if exc.value in _LOST:
                    raise _GpuLost(what, exc) from None
                if exc.value in _UNSUPPORTED:
                    dead.append(i)
                else:  # e.g. NO_PERMISSION: may pass next time, so keep asking but say why it is missing
                    notes.append(f"GPU {gpu.index} {what}: {exc}")
        if dead:
            gpu.readers = [r for i, r in enumerate(gpu.readers) if i not in dead]
        if gpu.mig is not None:
            try:
                gpu.mig.read_into(values, handle, gpu.index, notes)
            except pynvml.NVMLError as exc:
                raise _GpuLost("MIG devices", exc) from None
        if gpu.gpm is not None:
            self._read_gpm(gpu, values, notes)
        if gpu.throttle is not None:
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
        gpm.read_into(values, f"GPU {gpu.index}", notes, _UNSUPPORTED)
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

    def _read_processes(self, gpu: _GpuState, notes: list[str]) -> list[ProcessSample]:
        """Compute and graphics processes of one GPU, merged per PID, with their SM share."""
        seen: dict[int, list] = {}  # pid -> [used_memory_bytes, kind, gpu instance, compute instance]
        for kind, list_fn in tuple(gpu.proc_lists):
            try:
                infos = list_fn(gpu.handle)
            except pynvml.NVMLError as exc:
                if exc.value in _LOST:
                    raise _GpuLost(f"{kind} processes", exc) from None
                if exc.value in _UNSUPPORTED:
                    gpu.proc_lists = [p for p in gpu.proc_lists if p[0] != kind]
                else:
                    notes.append(f"GPU {gpu.index} {kind} processes: {exc}")
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
        sm = gpu.proc_sm.read(
            gpu.handle, _UNSUPPORTED, lambda exc: _unsupported(exc, gpu, "process utilization", notes)
        )
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
            for gpu in getattr(self, "_gpus", ()):
                if gpu.gpm is not None:
                    gpu.gpm.free()
                    gpu.gpm = None
                if gpu.mig is not None:
                    gpu.mig.close()
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError:
                pass  # nothing left to release
