"""The TOML config file: typed, validated, every field documented.

A bad file is refused with the file, the line and what is wrong (exit 2). Layers get the section they need
(``config.prices``, ``config.attribution``...), never the file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from gputab.errors import ConfigError


@dataclass(frozen=True)
class RecorderConfig:
    interval: float = 1.0
    """Seconds between polls."""
    commit_interval: float = 2.0
    """At most this many seconds of figures are held before a commit (the most a crash can lose)."""
    gap_factor: float = 5.0
    """An interval longer than ``gap_factor * interval`` is a gap; time beyond one interval goes to (unobserved)."""
    series_interval: float = 10.0
    """Seconds between stored per-GPU and per-job series points (totals are always exact)."""


@dataclass(frozen=True)
class PriceOverride:
    """Overrides one price-table row, one model, or one GPU (by index or UUID)."""

    mode: str | None = None
    """``rental`` or ``owned``."""
    rate_per_hour: float | None = None
    """Rental $/GPU-hour."""
    purchase_price: float | None = None
    """Owned: what the GPU cost, in dollars."""
    useful_life_years: float | None = None
    """Owned: years over which the purchase is written off."""
    ownership_utilization: float | None = None
    """Owned: fraction of the hours of its life the GPU is in use (1.0 = always)."""
    overhead_per_hour: float | None = None
    """Owned: extra $/h (hosting, support)."""
    price_per_kwh: float | None = None
    """Energy price, $/kWh."""
    pue: float | None = None
    """Power usage effectiveness of the data centre (1.0-2.0)."""
    charge_energy: bool | None = None
    """Charge energy on top of the rate (default: only in ``owned`` mode)."""


@dataclass(frozen=True)
class PricesConfig:
    mode: str = "rental"
    """Default price mode for every GPU: ``rental`` or ``owned``."""
    rental_rate: str = "on_demand"
    """Which rental figure of the table to use: ``on_demand`` or ``spot``."""
    default_rate: float = 0.95
    """$/GPU-hour for a GPU whose model is not in the table (flagged as unknown everywhere)."""
    price_per_kwh: float = 0.12
    """Energy price in $/kWh, used when energy is charged."""
    pue: float = 1.0
    """Data-centre PUE multiplying energy cost."""
    models: dict[str, PriceOverride] = field(default_factory=dict)
    """Per model key (``H100-SXM``...)."""
    gpus: dict[str, PriceOverride] = field(default_factory=dict)
    """Per GPU index (``"0"``) or UUID (``"GPU-..."``)."""


@dataclass(frozen=True)
class TagRule:
    pattern: str
    """Regular expression searched in the process command line (joined with spaces)."""
    tag: str
    """Tag template; ``\\1`` or ``\\g<name>`` insert groups."""


@dataclass(frozen=True)
class AttributionConfig:
    env_keys: dict[str, str] = field(default_factory=lambda: {"SLURM_JOB_ID": "slurm:{}"})
    """Environment variable -> tag template (``{}`` is the value), tried after GPUTAB_TAG."""
    rules: list[TagRule] = field(default_factory=list)
    """Command-line rules, first match wins."""


@dataclass(frozen=True)
class AlertsConfig:
    low_utilization_pct: float = 50.0
    low_utilization_minutes: float = 60.0
    memory_pressure_pct: float = 85.0
    memory_pressure_seconds: float = 60.0
    idle_minutes: float = 30.0
    budget_warning_pct: float = 80.0
    command: list[str] = field(default_factory=list)
    """Command run for each alert raised, with the alert as JSON on stdin (empty: none)."""


@dataclass(frozen=True)
class MetricsConfig:
    port: int | None = None
    """Serve Prometheus metrics on this port (None: off)."""
    address: str = "127.0.0.1"
    """Address to bind; loopback unless you mean to expose it."""


@dataclass(frozen=True)
class WasteConfig:
    """Thresholds of the waste diagnosis: a reason is claimed only when its figures cross these."""

    input_gpu_util_pct: float = 50.0
    """``input_bound``: the GPU's utilization is below this while the job's CPU side is saturated."""
    input_cpu_pct: float = 90.0
    """``input_bound``: one process of the job at this % of a core, or the job at this % of the cores it may use."""
    input_iowait_pct: float = 20.0
    """``input_bound``: the job's processes waited on block I/O for this % of the interval."""
    small_batch_util_pct: float = 60.0
    """``small_batch``: GPU utilization at least this ..."""
    small_batch_occupancy_pct: float = 25.0
    """... while SM occupancy (NVML GPM) is below this."""
    no_tensor_sm_pct: float = 50.0
    """``no_tensor_cores``: SMs busy (NVML GPM) at least this ..."""
    no_tensor_tensor_pct: float = 1.0
    """... while tensor-core activity is at most this."""
    memory_bound_dram_pct: float = 60.0
    """``memory_bound``: DRAM bandwidth (NVML GPM) at least this % of the maximum ..."""
    memory_bound_sm_pct: float = 40.0
    """... while SMs are busy less than this."""
    comm_stall_link_gib_per_s: float = 5.0
    """``comm_stall`` (multi-GPU jobs): NVLink + PCIe traffic at least this many GiB/s ..."""
    comm_stall_sm_pct: float = 30.0
    """... while SMs (or, without GPM, the GPU) are busy less than this."""
    stranded_seconds: float = 600.0
    """``stranded_memory``: a job holds VRAM at 0 % utilization for this long."""
    oversized_vram_pct: float = 25.0
    """``oversized``: the job uses less than this % of the GPU's memory ..."""
    oversized_util_pct: float = 30.0
    """... and the GPU is busy less than this ..."""
    oversized_min_gpu_gib: float = 40.0
    """... on a GPU with at least this much memory ..."""
    oversized_seconds: float = 1800.0
    """... for this long."""


@dataclass(frozen=True)
class Config:
    recorder: RecorderConfig = field(default_factory=RecorderConfig)
    prices: PricesConfig = field(default_factory=PricesConfig)
    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    budgets: dict[str, float] = field(default_factory=dict)
    """Tag -> budget cap in dollars."""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    waste: WasteConfig = field(default_factory=WasteConfig)
    """Thresholds of the waste diagnosis (``[waste]``)."""
    path: str | None = None
    """Where this config was read from (None: defaults)."""


def load_config(path: str | os.PathLike | None, must_exist: bool = False) -> Config:
    """Read and validate the config at ``path``; a missing default file means defaults."""
    if path is None:
        return Config()
    p = Path(path)
    if not p.exists():
        if must_exist:
            raise ConfigError(f"config file {p} does not exist; create it or drop --config / GPUTAB_CONFIG")
        return Config()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p}: {exc}") from None
    return parse_config(text, str(p))


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse TOML text into a :class:`Config`, raising :class:`ConfigError` with file:line on any fault."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        line = m.group(1) if m else None
        where = f"{source}:{line}" if line else source
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    try:
        cfg = _build(Config, data, ())
    except _Invalid as exc:
        line = _line_of(text, exc.keypath)
        where = f"{source}:{line}" if line else source
        raise ConfigError(f"{where}: {_dotted(exc.keypath) or 'config'}: {exc.msg}") from None
    _check_values(cfg, text, source)
    return dataclasses.replace(cfg, path=source)


class _Invalid(Exception):
    def __init__(self, keypath: tuple, msg: str) -> None:
        super().__init__(msg)
        self.keypath = keypath
        self.msg = msg


def _build(tp: Any, value: Any, keypath: tuple) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Invalid(keypath, f"expected a table, got {type(value).__name__}")
        hints = get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp) if f.name != "path"}
        kwargs = {}
        for key, v in value.items():
            if key not in names:
                known = ", ".join(sorted(names))
                raise _Invalid(keypath + (key,), f"unknown key (known keys: {known})")
            kwargs[key] = _build(hints[key], v, keypath + (key,))
        missing = [
            f.name
            for f in dataclasses.fields(tp)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in kwargs
        ]
        if missing:
            raise _Invalid(keypath, f"missing required key(s): {', '.join(missing)}")
        return tp(**kwargs)
    if origin is dict:
        kt, vt = get_args(tp)
        if not isinstance(value, dict):
            raise _Invalid(keypath, f"expected a table, got {type(value).__name__}")
        return {str(k): _build(vt, v, keypath + (k,)) for k, v in value.items()}
    if origin is list:
        (it,) = get_args(tp)
        if not isinstance(value, list):
            raise _Invalid(keypath, f"expected a list, got {type(value).__name__}")
        return [_build(it, v, keypath + (i,)) for i, v in enumerate(value)]
    args = get_args(tp)
    if args and type(None) in args:  # Optional[X]
        inner = [a for a in args if a is not type(None)][0]
        return _build(inner, value, keypath)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid(keypath, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            # TOML allows nan/inf; a nan rate would make every cost nan and every comparison false.
            raise _Invalid(keypath, f"must be a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(keypath, f"expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _Invalid(keypath, f"expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise _Invalid(keypath, f"expected a string, got {value!r}")
        return value
    raise _Invalid(keypath, f"unsupported type {tp}")


def _dotted(keypath: tuple) -> str:
    """``prices.models.H100-SXM``; keys that are not bare TOML keys are quoted so a message stays one line."""
    return ".".join(str(k) if re.fullmatch(r"[A-Za-z0-9_-]+", str(k)) else json.dumps(str(k)) for k in keypath)


def _line_of(text: str, keypath: tuple) -> int | None:
    """Best effort: the line that defines the last string key of ``keypath``."""
    keys = [k for k in keypath if isinstance(k, str)]
    if not keys:
        return None
    last = re.escape(keys[-1])
    pat = re.compile(rf'^\s*(\[+[^\]]*{last}[^\]]*\]+|"?{last}"?\s*=)')
    for n, line in enumerate(text.splitlines(), 1):
        if pat.search(line):
            return n
    return None


def _check_values(cfg: Config, text: str, source: str) -> None:
    def fail(keypath: tuple, msg: str) -> None:
        line = _line_of(text, keypath)
        where = f"{source}:{line}" if line else source
        raise ConfigError(f"{where}: {_dotted(keypath)}: {msg}")

    r = cfg.recorder
    for name in ("interval", "commit_interval", "series_interval"):
        v = getattr(r, name)
        if not (0.05 <= v <= 86400):
            fail(("recorder", name), f"must be between 0.05 and 86400 seconds, got {v}")
    if r.gap_factor < 1.5:
        fail(("recorder", "gap_factor"), f"must be at least 1.5, got {r.gap_factor}")
    p = cfg.prices
    if p.mode not in ("rental", "owned"):
        fail(("prices", "mode"), f"must be 'rental' or 'owned', got {p.mode!r}")
    if p.rental_rate not in ("on_demand", "spot"):
        fail(("prices", "rental_rate"), f"must be 'on_demand' or 'spot', got {p.rental_rate!r}")
    for name in ("default_rate", "price_per_kwh"):
        if getattr(p, name) < 0:
            fail(("prices", name), "must not be negative")
    if not (1.0 <= p.pue <= 3.0):
        fail(("prices", "pue"), f"must be between 1.0 and 3.0, got {p.pue}")
    for table, overrides in (("models", p.models), ("gpus", p.gpus)):
        for key, o in overrides.items():
            if o.mode is not None and o.mode not in ("rental", "owned"):
                fail(("prices", table, key, "mode"), f"must be 'rental' or 'owned', got {o.mode!r}")
            for name in ("rate_per_hour", "purchase_price", "overhead_per_hour", "price_per_kwh"):
                v = getattr(o, name)
                if v is not None and v < 0:
                    fail(("prices", table, key, name), "must not be negative")
            if o.useful_life_years is not None and o.useful_life_years <= 0:
                fail(("prices", table, key, "useful_life_years"), "must be positive")
            if o.ownership_utilization is not None and not (0 < o.ownership_utilization <= 1):
                fail(("prices", table, key, "ownership_utilization"), "must be in (0, 1]")
            if o.pue is not None and not (1.0 <= o.pue <= 3.0):
                fail(("prices", table, key, "pue"), "must be between 1.0 and 3.0")
    for i, rule in enumerate(cfg.attribution.rules):
        try:
            re.compile(rule.pattern)
        except re.error as exc:
            fail(("attribution", "rules", i, "pattern"), f"invalid regular expression: {exc}")
    for tag, cap in cfg.budgets.items():
        if cap <= 0:
            fail(("budgets", tag), f"budget must be a positive number of dollars, got {cap}")
    if cfg.metrics.port is not None and not (0 < cfg.metrics.port < 65536):
        fail(("metrics", "port"), f"must be 1-65535, got {cfg.metrics.port}")
    w = cfg.waste
    for f in dataclasses.fields(w):
        v = getattr(w, f.name)
        if f.name.endswith("_pct") and not (0 <= v <= 100):
            fail(("waste", f.name), f"must be a percentage between 0 and 100, got {v}")
        if not f.name.endswith("_pct") and v < 0:
            fail(("waste", f.name), f"must not be negative, got {v}")
