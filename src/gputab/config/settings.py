"""The TOML config file: typed, validated, every field documented.

A bad file is refused with the file, the line and what is wrong (exit 2). Layers get the section they need
(``config.prices``, ``config.attribution``...), never the file.

This module holds the sections as dataclasses, and checks their values (ranges, modes, budgets) once built;
:mod:`gputab.config.file` reads the file safely and :mod:`gputab.config.from_toml` builds the dataclasses from TOML.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gputab.config.file import MAX_CONFIG_BYTES as MAX_CONFIG_BYTES
from gputab.config.file import read_config_text
from gputab.config.from_toml import Invalid, build, dotted, line_of
from gputab.errors import ConfigError


@dataclass(frozen=True)
class RecorderConfig:
    interval: float = 1.0
    """Seconds between polls (0.05-86400)."""
    commit_interval: float = 2.0
    """At most this many seconds of figures are held before a commit (the most a crash can lose; 0.05-86400)."""
    gap_factor: float = 5.0
    """An interval longer than ``gap_factor * interval`` is a gap; time beyond one interval goes to (unobserved)
    (1.5-1000)."""
    series_interval: float = 10.0
    """Seconds between stored per-GPU and per-job series points (totals are always exact; 0.05-86400)."""
    forecast_window: float = 600.0
    """Seconds of reported progress a job's forecast rate looks back over (docs/cost-model.md "Forecast"; 1-86400)."""
    forecast_min_span: float = 30.0
    """Seconds of reported progress needed before a forecast is given ("unknown" until then; 1-86400)."""
    poll_deadline: float | None = None
    """Seconds a poll waits for each GPU's NVML calls (default 2 x ``interval``; 0.05-86400). A GPU that has not
    answered by then is charged to (unobserved) for that tick and the other GPUs are charged as usual; a call
    still stuck is not made again until it returns (docs/speed-and-faults.md)."""


@dataclass(frozen=True)
class PriceOverride:
    """Overrides one price-table row, one model, or one GPU (by index or UUID)."""

    mode: str | None = None
    """``rental`` or ``owned``."""
    rate_per_hour: float | None = None
    """Rental $/GPU-hour (0-10,000)."""
    purchase_price: float | None = None
    """Owned: what the GPU cost, in dollars (0-100,000,000)."""
    useful_life_years: float | None = None
    """Owned: years over which the purchase is written off (0.1-100; default 4)."""
    ownership_utilization: float | None = None
    """Owned: fraction of the hours of its life the GPU is in use (0.01-1; 1.0 = always)."""
    overhead_per_hour: float | None = None
    """Owned: extra $/h (hosting, support; 0-10,000)."""
    price_per_kwh: float | None = None
    """Energy price, $/kWh (0-100)."""
    pue: float | None = None
    """Power usage effectiveness of the data centre (1.0-3.0)."""
    charge_energy: bool | None = None
    """Charge energy on top of the rate (default: only in ``owned`` mode)."""


@dataclass(frozen=True)
class PricesConfig:
    mode: str = "rental"
    """Default price mode for every GPU: ``rental`` or ``owned``."""
    rental_rate: str = "on_demand"
    """Which rental figure of the table to use: ``on_demand`` or ``spot``."""
    default_rate: float = 0.95
    """$/GPU-hour for a GPU whose model is not in the table (flagged as unknown everywhere; 0-10,000)."""
    price_per_kwh: float = 0.12
    """Energy price in $/kWh, used when energy is charged (0-100)."""
    pue: float = 1.0
    """Data-centre PUE multiplying energy cost (1.0-3.0)."""
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
    """A job whose utilization averages below this percent over the window is flagged (0-100; 0: never)."""
    low_utilization_minutes: float = 60.0
    """The window of that average, in minutes (0-43,200: 30 days; 0: the last tick)."""
    memory_pressure_pct: float = 85.0
    """A GPU whose memory is fuller than this percent ... (0-100)."""
    memory_pressure_seconds: float = 60.0
    """... for this many seconds is flagged (0-2,592,000: 30 days)."""
    idle_minutes: float = 30.0
    """A GPU that costs money and holds no process for this many minutes is flagged (0-43,200)."""
    budget_warning_pct: float = 80.0
    """A job that has spent this percent of its budget gets a warning (0-100); 100 % is always an alert."""
    waste_pct: float = 50.0
    """A job whose wasted dollars are more than this percent of its cost over the window is flagged (0-100;
    100: never)."""
    waste_minutes: float = 30.0
    """The window of that share, in minutes (more than 0, up to 10,080: a week)."""
    command: list[str] = field(default_factory=list)
    """Command run for each alert raised, with the alert as JSON on stdin (empty: none)."""


@dataclass(frozen=True)
class BudgetConfig:
    """A ``[budgets."glob"]`` table: a budget with a period and, opt-in, enforcement by the recorder."""

    cap: float
    """Dollars each tag matching the glob may spend in a period (above 0, at most 1,000,000,000)."""
    period: str = "total"
    """``day``, ``week`` (from Monday) or ``month``, on the UTC calendar, or ``total`` (never starts again)."""
    stop: bool = False
    """At the cap the recorder sends the job's processes SIGINT, then SIGTERM after ``grace`` seconds."""
    grace: float = 30.0
    """Seconds between SIGINT and SIGTERM (0-86,400)."""
    users: list[str] = field(default_factory=list)
    """Login names whose processes ``stop`` may signal (empty: only the recorder's own user's)."""


@dataclass(frozen=True)
class MetricsConfig:
    port: int | None = None
    """Serve Prometheus metrics on this port (None: off)."""
    address: str = "127.0.0.1"
    """Address to bind; loopback unless you mean to expose it."""


@dataclass(frozen=True)
class FleetConfig:
    prometheus: str | None = None
    """Base URL of the Prometheus that scrapes your recorders, for ``gputab fleet`` (e.g. http://prom:9090)."""
    refresh: float = 10.0
    """Seconds between refreshes of the fleet screen (each is one fixed batch of queries)."""
    timeout: float = 5.0
    """Seconds one query may take before Prometheus counts as too slow."""
    stale_after: float = 60.0
    """Seconds without a new tick before a host is shown as stale."""


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
    """... while SM occupancy (NVML GPM) is below this ..."""
    small_batch_tensor_pct: float = 50.0
    """... and tensor-core activity, where reported, is below this. Matrix-multiply kernels on Hopper run few warps
    per SM by design: a real H200 doing 8192x8192 fp16 products read 14 % occupancy at 93 % tensor activity, which
    is a busy GPU, not a small batch."""
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
class ServerConfig:
    """``[[servers]]``: an inference server whose token counters discovery cannot see (a container, a port
    mapping). Only this host is asked: ``url`` names a loopback address or this host's name."""

    url: str
    """Its Prometheus page, e.g. ``http://127.0.0.1:8000/metrics``."""
    tag: str
    """The job its tokens count for."""


@dataclass(frozen=True)
class Config:
    recorder: RecorderConfig = field(default_factory=RecorderConfig)
    prices: PricesConfig = field(default_factory=PricesConfig)
    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    budgets: dict[str, float | BudgetConfig] = field(default_factory=dict)
    """Tag glob -> budget cap in dollars (above 0, at most 1,000,000,000), or a :class:`BudgetConfig` table."""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    waste: WasteConfig = field(default_factory=WasteConfig)
    """Thresholds of the waste diagnosis (``[waste]``)."""
    servers: list[ServerConfig] = field(default_factory=list)
    """Inference servers read for tokens besides those found by their GPU processes (``[[servers]]``)."""
    path: str | None = None
    """Where this config was read from (None: defaults)."""


def load_config(path: str | os.PathLike | None, must_exist: bool = False) -> Config:
    """Read and validate the config at ``path``.

    Only a file that does not exist (nothing at all at ``path``, and ``must_exist`` false) means defaults. Anything
    else that cannot be read as a regular file is an error (:class:`ConfigError`, exit 2): a dangling symlink or a
    symlink loop, a directory, a FIFO, a device or a socket (refused from ``fstat`` before a single byte is read,
    so a FIFO cannot hang gputab), a file we may not read, or one over :data:`MAX_CONFIG_BYTES`.
    """
    if path is None:
        return Config()
    p = Path(path)
    text = read_config_text(p)
    if text is None:
        if must_exist:
            raise ConfigError(f"config file {p} does not exist; create it or drop --config / GPUTAB_CONFIG")
        return Config()
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
        cfg = build(Config, data, ())
    except Invalid as exc:
        line = line_of(text, exc.keypath)
        where = f"{source}:{line}" if line else source
        raise ConfigError(f"{where}: {dotted(exc.keypath) or 'config'}: {exc.msg}") from None
    _check_values(cfg, text, source)
    return dataclasses.replace(cfg, path=source)


MAX_RATE_PER_HOUR = 10_000.0
"""The most a GPU-hour may cost, rented or derived from a purchase ($/h): beyond it a figure is a typo."""

# (low, high) of every number field, inclusive: a value outside is refused with its file and line, so every figure
# derived from them (rates, costs, windows, budgets) is finite and sane. Listed in the field docstrings too.
RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "recorder": {
        "interval": (0.05, 86400.0),
        "commit_interval": (0.05, 86400.0),
        "series_interval": (0.05, 86400.0),
        "gap_factor": (1.5, 1000.0),
        "forecast_window": (1.0, 86400.0),
        "forecast_min_span": (1.0, 86400.0),
        "poll_deadline": (0.05, 86400.0),
    },
    "prices": {"default_rate": (0.0, MAX_RATE_PER_HOUR), "price_per_kwh": (0.0, 100.0), "pue": (1.0, 3.0)},
    "override": {
        "rate_per_hour": (0.0, MAX_RATE_PER_HOUR),
        "purchase_price": (0.0, 1e8),
        "useful_life_years": (0.1, 100.0),
        "ownership_utilization": (0.01, 1.0),
        "overhead_per_hour": (0.0, MAX_RATE_PER_HOUR),
        "price_per_kwh": (0.0, 100.0),
        "pue": (1.0, 3.0),
    },
    "alerts": {
        "low_utilization_pct": (0.0, 100.0),
        "low_utilization_minutes": (0.0, 43200.0),
        "memory_pressure_pct": (0.0, 100.0),
        "memory_pressure_seconds": (0.0, 2592000.0),
        "idle_minutes": (0.0, 43200.0),
        "budget_warning_pct": (0.0, 100.0),
        "waste_pct": (0.0, 100.0),
        "waste_minutes": (0.0, 10080.0),
    },
}
MAX_BUDGET_USD = 1e9
"""The largest budget a config or ``gputab run --budget`` accepts, in dollars."""


def _check_values(cfg: Config, text: str, source: str) -> None:
    def fail(keypath: tuple, msg: str) -> None:
        line = line_of(text, keypath)
        where = f"{source}:{line}" if line else source
        raise ConfigError(f"{where}: {dotted(keypath)}: {msg}")

    def check_ranges(obj: Any, ranges: dict[str, tuple[float, float]], keypath: tuple) -> None:
        for name, (lo, hi) in ranges.items():
            v = getattr(obj, name)
            if v is not None and not (lo <= v <= hi):
                fail(keypath + (name,), f"must be between {lo:,g} and {hi:,g}, got {v:g}")

    check_ranges(cfg.recorder, RANGES["recorder"], ("recorder",))
    for i, server in enumerate(cfg.servers):
        problem = server_url_problem(server.url)
        if problem:
            fail(("servers", i, "url"), problem)
        if not 1 <= len(server.tag) <= 64 or server.tag.startswith("(") or not server.tag.isprintable():
            fail(("servers", i, "tag"), "a tag is 1-64 printable characters and may not start with '('")
    p = cfg.prices
    if p.mode not in ("rental", "owned"):
        fail(("prices", "mode"), f"must be 'rental' or 'owned', got {p.mode!r}")
    if p.rental_rate not in ("on_demand", "spot"):
        fail(("prices", "rental_rate"), f"must be 'on_demand' or 'spot', got {p.rental_rate!r}")
    check_ranges(p, RANGES["prices"], ("prices",))
    for table, overrides in (("models", p.models), ("gpus", p.gpus)):
        for key, o in overrides.items():
            if o.mode is not None and o.mode not in ("rental", "owned"):
                fail(("prices", table, key, "mode"), f"must be 'rental' or 'owned', got {o.mode!r}")
            check_ranges(o, RANGES["override"], ("prices", table, key))
            if o.purchase_price is not None:
                # The rate it implies, with the defaults pricing uses for what is not given.
                life, use = o.useful_life_years or 4.0, o.ownership_utilization or 1.0
                rate = o.purchase_price / (life * 8760.0 * use) + (o.overhead_per_hour or 0.0)
                if not rate <= MAX_RATE_PER_HOUR:
                    fail(
                        ("prices", table, key, "purchase_price"),
                        f"gives ${rate:,.0f}/h over {life:g} years at {use:g} use, over the "
                        f"${MAX_RATE_PER_HOUR:,.0f}/h limit; check purchase_price and useful_life_years",
                    )
    check_ranges(cfg.alerts, RANGES["alerts"], ("alerts",))
    if not cfg.alerts.waste_minutes > 0:  # a share of nothing: the window needs some time in it
        fail(("alerts", "waste_minutes"), f"must be more than 0, got {cfg.alerts.waste_minutes:g}")
    for i, rule in enumerate(cfg.attribution.rules):
        try:
            re.compile(rule.pattern)
        except re.error as exc:
            fail(("attribution", "rules", i, "pattern"), f"invalid regular expression: {exc}")
    _check_budgets(cfg, fail)
    if cfg.metrics.port is not None and not (0 < cfg.metrics.port < 65536):
        fail(("metrics", "port"), f"must be 1-65535, got {cfg.metrics.port}")
    for name, low, high in (("refresh", 1.0, 3600.0), ("timeout", 0.1, 120.0), ("stale_after", 1.0, 86400.0)):
        if not (low <= getattr(cfg.fleet, name) <= high):
            fail(("fleet", name), f"must be between {low:g} and {high:g} seconds, got {getattr(cfg.fleet, name)}")
    w = cfg.waste
    for f in dataclasses.fields(w):
        v = getattr(w, f.name)
        if f.name.endswith("_pct") and not (0 <= v <= 100):
            fail(("waste", f.name), f"must be a percentage between 0 and 100, got {v}")
        if not math.isfinite(v):
            fail(("waste", f.name), f"must be a finite number, got {v}")
        if not f.name.endswith("_pct") and v < 0:
            fail(("waste", f.name), f"must not be negative, got {v}")


BUDGET_PERIODS = ("day", "week", "month", "total")
"""Budget periods (``gputab.budgets.model.PERIODS``)."""
MAX_GRACE_SECONDS = 86400.0
"""The longest grace period between SIGINT and SIGTERM a budget accepts (a day)."""


def _check_budgets(cfg: Config, fail: Any) -> None:
    """``[budgets]``: a positive cap up to :data:`MAX_BUDGET_USD`, a known period, a grace of 0 to a day, user
    names that could be login names; a glob (the key) of 1-64 printable characters not starting with ``(``."""
    for tag, entry in cfg.budgets.items():
        if not tag or len(tag) > 64 or not tag.isprintable() or tag.startswith("("):
            fail(("budgets", tag), "a budget's tag glob is 1-64 printable characters, not starting with '('")
        table = isinstance(entry, BudgetConfig)
        cap = entry.cap if isinstance(entry, BudgetConfig) else entry
        where = ("budgets", tag, "cap") if table else ("budgets", tag)
        if not (0 < cap <= MAX_BUDGET_USD):
            fail(where, f"budget must be a positive number of dollars up to {MAX_BUDGET_USD:,.0f}, got {cap:g}")
        if not isinstance(entry, BudgetConfig):
            continue
        if entry.period not in BUDGET_PERIODS:
            fail(("budgets", tag, "period"), f"must be one of {', '.join(BUDGET_PERIODS)}, got {entry.period!r}")
        if not 0 <= entry.grace <= MAX_GRACE_SECONDS:
            fail(
                ("budgets", tag, "grace"), f"must be between 0 and {MAX_GRACE_SECONDS:,g} seconds, got {entry.grace:g}"
            )
        for i, user in enumerate(entry.users):
            if not USER_NAME.fullmatch(user):
                fail(("budgets", tag, "users", i), f"{user!r} is not a login name (letters, digits, '.', '_', '-')")


USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,31}\$?")
"""What a login name looks like (POSIX portable names; a trailing ``$`` for Samba machine accounts)."""


def server_url_problem(url: str) -> str | None:
    """Why ``url`` may not be asked for token counters (None: it may): http, on this host only."""
    import socket
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError as exc:
        return f"not a URL ({exc}); e.g. http://127.0.0.1:8000/metrics"
    if parts.scheme != "http":
        return "must start with http:// (e.g. http://127.0.0.1:8000/metrics)"
    if host in ("localhost", "::1") or host.startswith("127.") or host == socket.gethostname():
        return None
    return f"only this host is asked: use 127.0.0.1, localhost or {socket.gethostname()}, not {host!r}"
