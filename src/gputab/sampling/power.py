"""Power through ``nvmlDeviceGetFieldValues``: instant vs average, GPU vs module scope.

``nvmlDeviceGetPowerUsage`` is a one-second average on most GPUs and, on Grace Hopper, the whole module's (GPU,
CPU and memory). Newer drivers answer power *fields* with a scope, so GPU cost can use the GPU's own power and say
which reading it was; the module's power is kept beside it for display only.
"""

from __future__ import annotations

from typing import Any

import pynvml

_NO_DATA = getattr(pynvml, "NVML_ERROR_NO_DATA", 21)
_FI_INSTANT = getattr(pynvml, "NVML_FI_DEV_POWER_INSTANT", 186)
_FI_AVERAGE = getattr(pynvml, "NVML_FI_DEV_POWER_AVERAGE", 185)
_SCOPE_GPU = getattr(pynvml, "NVML_POWER_SCOPE_GPU", 0)
_SCOPE_MODULE = getattr(pynvml, "NVML_POWER_SCOPE_MODULE", 1)
#: GPU-scope instant and average power, and the module's (Grace Hopper: GPU + CPU + memory) for display.
_POWER_FIELDS = ((_FI_INSTANT, _SCOPE_GPU), (_FI_AVERAGE, _SCOPE_GPU), (_FI_INSTANT, _SCOPE_MODULE))


def field_power(h: pynvml.c_nvmlDevice_t) -> tuple[float | None, str | None, float | None]:
    """(GPU power W, which reading, module power W) from ``nvmlDeviceGetFieldValues``; each field's own
    ``nvmlReturn`` decides whether it counts. GPU scope is what GPU cost uses; the module's is only shown."""
    values = pynvml.nvmlDeviceGetFieldValues(h, list(_POWER_FIELDS))
    got = [v.value.uiVal / 1000.0 if v.nvmlReturn == pynvml.NVML_SUCCESS else None for v in values]
    if got[0] is not None:
        return got[0], "instant (GPU scope)", got[2]
    if got[1] is not None:
        return got[1], "average (GPU scope)", got[2]
    return None, None, got[2]


def read_power_fields(h: pynvml.c_nvmlDevice_t, out: dict[str, Any]) -> None:
    power, how, module = field_power(h)
    if power is None:  # the fields stopped answering: say nothing rather than a fake 0
        raise pynvml.NVMLError(_NO_DATA)
    out["power_w"], out["power_source"], out["module_power_w"] = power, how, module
