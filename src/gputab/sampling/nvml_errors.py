"""How the NVML backend sorts NVML's return codes: lost, not supported, a failed vital reading, a start failure."""

from __future__ import annotations

import pynvml

DEMO_HINT = "Try `gputab --demo`."

#: Errors after which a GPU no longer answers: it fell off the bus, or the driver cannot tell what happened.
LOST = frozenset({pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_UNKNOWN})
#: Errors that will not change while this process runs: the GPU lacks the metric, or the driver lacks the call.
UNSUPPORTED = frozenset(
    {pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH}
)
#: The readings a GPU's charge needs (cost-model.md, "Who pays"): any other error than "not supported" on one of
#: them makes the GPU's interval (unobserved), never (idle) or the last good reading's jobs.
VITAL = frozenset({"utilization", "memory", "compute processes", "graphics processes"})
#: NVML's names for its return codes (NVML_ERROR_TIMEOUT...), for ReadFault.error and the metric's label.
_ERROR_NAMES = {v: k for k, v in sorted(vars(pynvml).items()) if k.startswith("NVML_ERROR_") and isinstance(v, int)}
NO_ANSWER = "no_answer"
"""``ReadFault.error`` of a reading that did not return by the poll's deadline."""


def error_name(exc: pynvml.NVMLError) -> str:
    """``NVML_ERROR_TIMEOUT`` for an NVMLError (its number where pynvml has no name for it)."""
    return _ERROR_NAMES.get(exc.value, f"NVML_ERROR_{exc.value}")


def init_message(exc: pynvml.NVMLError) -> str:
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
