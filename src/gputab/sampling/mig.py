"""MIG: the instances of a GPU in MIG mode, each priced as a device (docs/cost-model.md, "MIG instances").

A GPU in MIG mode (A100, A30, H100, H200) is cut into GPU instances, each holding compute instances; NVML names
each compute instance a *MIG device* with its own handle (``nvmlDeviceGetMigDeviceHandleByIndex``). The parent
keeps power, energy and temperature; its utilization and per-process utilization answer NOT_SUPPORTED, and its
process lists give every process's GPU and compute instance ids, which is how processes are found on instances.

The slice counts (``nvmlDeviceGetAttributes``) never change while an instance exists, so they are read once per
(slot, GPU instance, compute instance); only the instance list and memory are read each poll. Where the parent
supports NVML GPM (Hopper and newer), each GPU instance's SM activity is read with ``nvmlGpmMigSampleGet``; it is
the instance's utilization (the parent's own utilization answers NOT_SUPPORTED in MIG mode).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pynvml

from gputab.sampling.gpm import GpmSamples
from gputab.sampling.snapshot import MigSample

MIB = 1 << 20
NO_INSTANCE = 0xFFFFFFFF
"""What NVML puts in ``gpuInstanceId``/``computeInstanceId`` of a process on a GPU not in MIG mode."""
_LOST = frozenset({pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_UNKNOWN})
_NO_GPM = frozenset(
    {pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH}
)
#: What GPM is asked per MIG instance: its SM activity (its utilization, and the busy part of its cost).
SM_ACTIVITY = ((pynvml.NVML_GPM_METRIC_SM_UTIL, "sm_active_pct", 1.0),)


def instance_id(value: int | None) -> int | None:
    """An instance id from a process record, None off MIG."""
    return None if value is None or value == NO_INSTANCE else int(value)


def profile_name(
    ci_slices: int,
    gi_slices: int | None,
    memory_mib: int | None,
    driver: str = "",
    parent_memory_mib: int | None = None,
) -> str:
    """The profile name nvidia-smi and DCGM's ``GPU_I_PROFILE`` use: ``3g.40gb``, or ``1c.3g.40gb`` for a compute
    instance smaller than its GPU instance; empty when the sizes are unknown.

    ``driver`` is the GPU instance profile's name as the driver gives it (:func:`driver_profile`), used as it is.
    Without it (an older driver, or no privilege) the name is made from the sizes as NVIDIA names its profiles:
    the GPU's memory in whole GB (its MiB over 1024, rounded up: 141 for an H200's 143,771 MiB, 80 for an H100
    80GB's 81,559) times the instance's eighths of it (its memory over the GPU's, to the nearest eighth), rounded
    half up. That gives NVIDIA's published names (MIG user guide, "Supported MIG Profiles"; checked for the A100,
    H100 and H200 in tests/test_mig_profiles.py): an H200's 1g.18gb reports 16 GiB (an eighth of 141 is 17.6),
    its 3g.71gb half of it (70.5), its 7g.141gb 140 GiB. Without the GPU's memory (``parent_memory_mib``): the
    instance's own memory in GiB rounded up, which matches the A100 and H100 names but not the H200's.
    """
    if driver:
        name = driver
    elif not gi_slices or not memory_mib:
        return ""
    else:
        name = f"{gi_slices}g.{profile_gb(memory_mib, parent_memory_mib)}gb"
    return name if not gi_slices or ci_slices >= gi_slices else f"{ci_slices}c.{name}"


def profile_gb(memory_mib: int, parent_memory_mib: int | None = None) -> int:
    """The memory part of a profile's name (the ``18`` of ``1g.18gb``): see :func:`profile_name`."""
    if not parent_memory_mib or parent_memory_mib < memory_mib * 0.9:
        return math.ceil(memory_mib / 1024)
    eighths = min(8, max(1, round(8 * memory_mib / parent_memory_mib)))
    gpu_gb = math.ceil(parent_memory_mib / 1024)
    return math.floor(gpu_gb * eighths / 8 + 0.5)


def driver_profile(parent: pynvml.c_nvmlDevice_t, gpu_instance_id: int) -> str:
    """The GPU instance's profile name as the driver gives it (``MIG 3g.40gb`` -> ``3g.40gb``); empty when it gives
    none: an older driver, or a user without the privilege these calls may need (NO_PERMISSION).

    Raises:
        pynvml.NVMLError: only for a lost GPU.
    """
    try:
        instance = pynvml.nvmlDeviceGetGpuInstanceById(parent, gpu_instance_id)
        profile_id = pynvml.nvmlGpuInstanceGetInfo(instance).profileId
        name = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(parent, profile_id, version=2).name
    except pynvml.NVMLError as exc:
        if exc.value in _LOST:
            raise
        return ""
    text = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
    return text.removeprefix("MIG ").strip()


def parent_utilization(instances: Iterable[MigSample], slices: int) -> float | None:
    """A GPU in MIG mode's utilization, percent: its instances' SM activity weighted by their compute slices, the
    slices no instance holds counting as 0; None unless every instance reports its activity."""
    insts = list(instances)
    if not slices or any(m.sm_active_pct is None for m in insts):
        return None
    return sum((m.sm_active_pct or 0.0) * m.slices for m in insts) / slices


def mig_slices(handle: pynvml.c_nvmlDevice_t) -> int | None:
    """The GPU's compute slices when it is in MIG mode now, else None (MIG off, not supported, or unknown).

    Raises:
        pynvml.NVMLError: only for a lost GPU (GPU_IS_LOST, UNKNOWN).
    """
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
        if current != pynvml.NVML_DEVICE_MIG_ENABLE:
            return None
        return int(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)) or None
    except pynvml.NVMLError as exc:
        if exc.value in _LOST:
            raise
        return None


class MigInstances:
    """Reads the MIG devices of one GPU each poll.

    Args:
        slots: ``nvmlDeviceGetMaxMigDeviceCount`` of the parent (its compute slices).
        gpm: whether the parent supports NVML GPM: then each GPU instance's SM activity is read too, until the
            driver says it cannot (``nvmlGpmMigSampleGet`` NOT_SUPPORTED or absent): shares then stay by memory.
    """

    def __init__(self, slots: int, gpm: bool = False) -> None:
        self.slots = slots
        self.gpm = gpm and hasattr(pynvml, "nvmlGpmMigSampleGet")
        self._static: dict[tuple[int, int, int], tuple[int, int | None, int | None, str]] = {}
        self._gpm: dict[int, GpmSamples] = {}  # GPU instance id -> its two GPM samples

    def read_into(self, values: dict[str, Any], parent: pynvml.c_nvmlDevice_t, index: int, notes: list[str]) -> None:
        """The parent's ``GpuSample`` fields of MIG: its instances, its slices, and its utilization from their SM
        activity where the parent's own answers NOT_SUPPORTED (as it does in MIG mode). ``values`` has the
        parent's other fields: its memory names the profiles the driver does not (:func:`profile_name`).

        Raises:
            pynvml.NVMLError: only for a lost GPU.
        """
        total = values.get("memory_total_bytes")
        values["mig"] = self.read(parent, index, notes, None if not total else total // MIB)
        values["mig_slices"] = self.slots
        if values.get("utilization_pct") is None:
            values["utilization_pct"] = parent_utilization(values["mig"], self.slots)

    def read(
        self, parent: pynvml.c_nvmlDevice_t, index: int, notes: list[str], parent_memory_mib: int | None = None
    ) -> tuple[MigSample, ...]:
        """Every MIG device of ``parent`` now; a device that fails one read is left out with a note.
        ``parent_memory_mib``: the parent's memory, to name a profile the driver does not (:func:`profile_name`).

        Raises:
            pynvml.NVMLError: only for a lost GPU.
        """
        out: list[MigSample] = []
        for slot in range(self.slots):
            try:
                handle = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, slot)
            except pynvml.NVMLError as exc:
                if exc.value in _LOST:
                    raise
                if exc.value != pynvml.NVML_ERROR_NOT_FOUND:  # NOT_FOUND: no instance at this slot
                    notes.append(f"GPU {index} MIG slot {slot}: {exc}")
                continue
            try:
                gi = pynvml.nvmlDeviceGetGpuInstanceId(handle)
                ci = pynvml.nvmlDeviceGetComputeInstanceId(handle)
                key = (slot, gi, ci)
                static = self._static.get(key)
                if static is None:
                    attrs = pynvml.nvmlDeviceGetAttributes(handle)
                    static = self._static[key] = (
                        attrs.computeInstanceSliceCount,
                        attrs.gpuInstanceSliceCount,
                        attrs.multiprocessorCount,
                        profile_name(
                            attrs.computeInstanceSliceCount,
                            attrs.gpuInstanceSliceCount,
                            attrs.memorySizeMB,
                            driver_profile(parent, gi),
                            parent_memory_mib,
                        ),
                    )
                used = total = None
                try:
                    mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
                    used, total = mem.used, mem.total
                except pynvml.NVMLError as exc:
                    if exc.value in _LOST:
                        raise
            except pynvml.NVMLError as exc:
                if exc.value in _LOST:
                    raise
                notes.append(f"GPU {index} MIG slot {slot}: {exc}")
                continue
            out.append(
                MigSample(
                    gpu_instance_id=gi,
                    compute_instance_id=ci,
                    slices=static[0],
                    gpu_instance_slices=static[1],
                    sm_count=static[2],
                    memory_used_bytes=used,
                    memory_total_bytes=total,
                    profile=static[3],
                )
            )
        if self.gpm and out:
            activity = self._sm_activity(parent, index, {m.gpu_instance_id for m in out}, notes)
            out = [replace(m, sm_active_pct=activity.get(m.gpu_instance_id)) for m in out]
        return tuple(out)

    def _sm_activity(
        self, parent: pynvml.c_nvmlDevice_t, index: int, instances: set[int], notes: list[str]
    ) -> dict[int, float]:
        """SM activity per GPU instance over the interval since the last poll (GPM per MIG instance).

        Raises:
            pynvml.NVMLError: only for a lost GPU.
        """
        for gi in set(self._gpm) - instances:  # an instance destroyed since: release its samples
            self._gpm.pop(gi).free()
        out: dict[int, float] = {}
        for gi in sorted(instances):
            try:
                gpm = self._gpm.get(gi)
                if gpm is None:
                    gpm = self._gpm[gi] = GpmSamples(SM_ACTIVITY)
                if not gpm.interval(functools.partial(pynvml.nvmlGpmMigSampleGet, parent, gi)):
                    continue
            except pynvml.NVMLError as exc:
                if exc.value in _LOST:
                    raise
                if exc.value in _NO_GPM:  # the driver cannot: shares stay by memory from now on
                    self.close()
                    self.gpm = False
                    return {}
                notes.append(f"GPU {index} MIG GI {gi} gpm: {exc}")
                continue
            values: dict = {}
            gpm.read_into(values, f"GPU {index} MIG GI {gi}", notes, _NO_GPM)
            if "sm_active_pct" in values:
                out[gi] = values["sm_active_pct"]
        return out

    def close(self) -> None:
        """Release the GPM samples (the backend closes, or GPM per instance proved unsupported)."""
        for gpm in self._gpm.values():
            gpm.free()
        self._gpm.clear()
