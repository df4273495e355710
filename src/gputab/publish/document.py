"""Publishing: an internal dict becomes a public document (keys renamed and converted, times as ISO 8601 UTC,
floats cleaned), the one way every ``--json`` command and CSV layout goes out.

Inside gputab, dicts keep the shorter names the store and the ledger have always used (``start``,
``avg_utilization`` as 0-1...); :func:`public` turns one into the public shape at the edge (rename, convert,
drop duplicates, round). The keys it may produce are listed, with their units, in :mod:`gputab.publish.vocabulary`.

Numbers: JSON and CSV are for machines, so figures keep full precision, less the float noise of sums
(``16.729999999999997``): every float is rounded to 15 significant digits (:func:`clean_float`), far below a
nano-dollar on any realistic bill, and well inside the 1e-9 that the conservation checks allow. Tables for
people round further when they print.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 2
"""Version of every JSON document's shape. 2: this vocabulary (see the changelog in docs/json.md)."""


def iso_utc(value: datetime | float | str | None) -> str | None:
    """A time as ISO 8601 UTC with a ``Z`` suffix (``2025-01-31T12:00:00Z``); None stays None.

    Accepts an aware or naive (taken as UTC) datetime, epoch seconds, or an ISO string.
    """
    if value is None:
        return None
    if isinstance(value, (int, float)):
        dt = datetime.fromtimestamp(value, tz=UTC)
    elif isinstance(value, str):
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        dt = value
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if dt.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return dt.strftime(fmt)


def clean_float(value: float) -> float:
    """``value`` rounded to 15 significant digits: sums lose their float noise, figures keep their precision."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return value
    return float(f"{value:.15g}")


DATA_MAPS = frozenset(
    {"waste_by_reason", "waste_evidence_by_reason", "throttled_usd", "throttled_seconds", "throttle_seconds", "data"}
)
"""Objects whose keys are data (reason names, an alert's figures), not vocabulary: left as they are."""

RENAMES: dict[str, str] = {
    "progress_fraction": "progress_pct",
    "first_projected_progress_fraction": "first_projected_progress_pct",
    "progress_rate_per_second": "progress_pct_per_hour",
    "start": "started_at",
    "end": "ended_at",
    "duration_s": "duration_seconds",
    "interval": "interval_seconds",
    "last_commit": "last_commit_at",
    "last_seen": "last_seen_at",
    "energy_j": "energy_joules",
    "rate_per_hour": "rate_usd_per_hour",
    "rate_per_hour_usd": "rate_usd_per_hour",
    "default_rate": "default_rate_usd_per_hour",
    "price_per_kwh": "price_usd_per_kwh",
    "on_demand": "on_demand_usd_per_hour",
    "spot": "spot_usd_per_hour",
    "mode": "price_mode",
    "source": "price_source",
    "date": "price_date",
    "unknown": "unknown_price",
    "idle_usd": "idle_cost_usd",
    "power_w": "power_watts",
    "module_power_w": "module_power_watts",
    "power_limit_w": "power_limit_watts",
    "temperature_c": "temperature_celsius",
    "nvlink_rx_bytes_per_s": "nvlink_rx_bytes_per_second",
    "nvlink_tx_bytes_per_s": "nvlink_tx_bytes_per_second",
    "pcie_rx_bytes_per_s": "pcie_rx_bytes_per_second",
    "pcie_tx_bytes_per_s": "pcie_tx_bytes_per_second",
    "wall": "taken_at",
    "alerts_active": "active_alert_count",
    "hosts_stale": "stale_host_count",
    "utilization_fraction": "utilization_pct",
    "avg_utilization": "avg_utilization_pct",
}
"""Internal (and schema 1) key -> public key."""

COUNTS: dict[str, str] = {
    "jobs": "job_count",
    "gpus": "gpu_count",
    "hosts": "host_count",
    "alerts": "alert_count",
    "sessions": "session_count",
}
"""A plural is the list; when its value is a count (an integer) the key is ``<thing>_count``."""

CONVERT: dict[str, Callable[[Any], Any]] = {
    "avg_utilization": lambda v: v * 100.0,
    "utilization_fraction": lambda v: v * 100.0,
    "progress_fraction": lambda v: v * 100.0,
    "first_projected_progress_fraction": lambda v: v * 100.0,
    "progress_rate_per_second": lambda v: v * 100.0 * 3600.0,
}
"""Internal keys whose value changes unit on the way out (0-1 -> percent), before renaming."""

DROPPED = frozenset({"energy_mj", "vram_bytes", "mono", "total_cost_usd", "seconds"})
"""Internal keys never published: duplicates (energy_mj of energy_joules, total_cost_usd of total.cost_usd) or
internal (the monotonic clock, the current poll's VRAM beside the peak)."""


def public(obj: Any) -> Any:
    """``obj`` in the public vocabulary: keys renamed (:data:`RENAMES`) and converted (:data:`CONVERT`),
    :data:`DROPPED` keys left out, ``*_at`` values as ISO 8601 UTC, floats cleaned (:func:`clean_float`).

    Walks dicts and lists; the keys of :data:`DATA_MAPS` objects are data and stay as they are.
    """
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if key in DROPPED:
                continue
            if key in CONVERT and value is not None:
                value = CONVERT[key](value)
            name = str(COUNTS[key] if key in COUNTS and isinstance(value, int) else RENAMES.get(key, key))
            if key in DATA_MAPS:
                out[name] = _floats(value)
            elif name.endswith("_at") and value is not None:
                out[name] = iso_utc(value)
            else:
                out[name] = public(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [public(v) for v in obj]
    return _floats(obj)


def _floats(obj: Any) -> Any:
    if isinstance(obj, float):
        return clean_float(obj)
    if isinstance(obj, dict):
        return {k: _floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_floats(v) for v in obj]
    return obj


def document(body: dict) -> dict:
    """A JSON document: ``schema_version`` first, then ``body`` in the public vocabulary."""
    return {"schema_version": SCHEMA_VERSION, **public({k: v for k, v in body.items() if k != "schema_version"})}
