"""MIG: the instances of a GPU in MIG mode, each priced as a device (cost-model.md, "MIG instances").

A GPU in MIG mode (A100, A30, H100, H200) is cut into GPU instances, each holding compute instances; NVML names
each compute instance a *MIG device* with its own handle (``nvmlDeviceGetMigDeviceHandleByIndex``). The parent
keeps power, energy and temperature; its utilization and per-process utilization answer NOT_SUPPORTED, and its
process lists give every process's GPU and compute instance ids, which is how processes are found on instances.

The slice counts (``nvmlDeviceGetAttributes``) never change while an instance exists, so they are read once per
(slot, GPU instance, compute instance); only the instance list and memory are read each poll.
"""

from __future__ import annotations

import pynvml

from gputab.sampling.snapshot import MigSample

NO_INSTANCE = 0xFFFFFFFF
"""What NVML puts in ``gpuInstanceId``/``computeInstanceId`` of a process on a GPU not in MIG mode."""
_LOST = frozenset({pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_UNKNOWN})


def instance_id(value: int | None) -> int | None:
    """An instance id from a process record, None off MIG."""
    return None if value is None or value == NO_INSTANCE else int(value)


def mig_slices(handle) -> int | None:
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
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._static: dict[tuple[int, int, int], tuple[int, int | None, int | None]] = {}

    def read(self, parent, index: int, notes: list[str]) -> tuple[MigSample, ...]:
        """Every MIG device of ``parent`` now; a device that fails one read is left out with a note.

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
                )
            )
        return tuple(out)
