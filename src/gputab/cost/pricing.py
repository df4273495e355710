"""The price of a GPU-hour: the dated built-in table, NVML name -> model key, config overrides.

See docs/cost-model.md, "Price of a GPU over one interval". An unknown model is never priced silently: it gets
``prices.default_rate`` and ``GpuPrice.unknown`` is set, which every view and export shows.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources

from gputab.config.settings import PriceOverride, PricesConfig
from gputab.errors import ConfigError

HOURS_PER_YEAR = 8760.0

# Order matters: the first pattern that matches the NVML name wins (PCIe before SXM, L40S before L4...).
_NAME_RULES: tuple[tuple[re.Pattern, str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), key)
    for p, key in (
        (r"H100.*(PCIe|NVL)", "H100-PCIe"),
        (r"H100", "H100-SXM"),
        (r"H200", "H200"),
        (r"A100.*80\s*GB", "A100-80GB"),
        (r"A100", "A100-40GB"),
        (r"L40S", "L40S"),
        (r"\bL4\b", "L4"),
        (r"A10G", "A10G"),
        (r"\bA10\b", "A10"),
        (r"\bT4\b", "T4"),
        (r"V100", "V100"),
        (r"RTX\s*4090", "RTX-4090"),
    )
)


def match_model(nvml_name: str) -> str | None:
    """The price-table key for an NVML device name (``"NVIDIA H100 80GB HBM3"`` -> ``"H100-SXM"``), or None."""
    for pattern, key in _NAME_RULES:
        if pattern.search(nvml_name):
            return key
    return None


def owned_rate_per_hour(
    purchase_price: float, useful_life_years: float, ownership_utilization: float = 1.0, overhead_per_hour: float = 0.0
) -> float:
    """$/h of an owned GPU: purchase written off over the hours it is used in its life, plus overhead."""
    return purchase_price / (useful_life_years * HOURS_PER_YEAR * ownership_utilization) + overhead_per_hour


def mig_fraction(slices: int, parent_slices: int) -> float:
    """The part of its parent GPU a MIG instance is: its compute slices over the parent's (docs/cost-model.md)."""
    if parent_slices <= 0 or slices < 0:
        raise ValueError(f"MIG slices must be 0..{parent_slices}, got {slices} of {parent_slices}")
    return min(1.0, slices / parent_slices)


def mig_rate_per_hour(parent_rate: float, slices: int, parent_slices: int) -> float:
    """$/h of a MIG instance: the parent's rate x its share of the compute slices (energy likewise)."""
    return parent_rate * mig_fraction(slices, parent_slices)


@dataclass(frozen=True, slots=True)
class GpuPrice:
    """What one GPU costs, resolved from the table and the overrides."""

    model_key: str | None
    """Price-table key; None when the model is not in the table."""
    mode: str
    """``rental`` or ``owned``."""
    rate_per_hour: float
    """Time cost, $/GPU-hour."""
    charge_energy: bool
    """Whether energy is charged on top of the rate (owned GPUs; rentals include it)."""
    price_per_kwh: float
    pue: float
    source: str
    date: str
    unknown: bool = False
    """True when the model is not in the table and the default rate was used."""

    def energy_cost(self, energy_j: float) -> float:
        """Dollars for ``energy_j`` joules at this GPU's energy price (0 unless energy is charged)."""
        if not self.charge_energy:
            return 0.0
        return energy_j / 3.6e6 * self.price_per_kwh * self.pue

    def burn_rate(self, power_w: float | None) -> float:
        """Current $/h of the whole GPU: rate plus energy at ``power_w``."""
        rate = self.rate_per_hour
        if self.charge_energy and power_w:
            rate += power_w / 1000.0 * self.price_per_kwh * self.pue
        return rate

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@lru_cache(maxsize=1)
def builtin_table() -> dict:
    """The packaged ``data/prices.toml``, parsed once."""
    text = resources.files("gputab").joinpath("data/prices.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


class PriceTable:
    """The table in effect: built-in rows plus the config's mode, rates and overrides."""

    def __init__(self, config: PricesConfig, table: dict | None = None) -> None:
        self.config = config
        self.table = table if table is not None else builtin_table()

    @classmethod
    def load(cls, config: PricesConfig | None = None) -> PriceTable:
        return cls(config or PricesConfig())

    def _row_rate(self, key: str) -> tuple[float, str, str]:
        row = self.table["models"][key]
        if self.config.rental_rate == "spot" and row.get("spot") is not None:
            return float(row["spot"]), f"{row['source']} (spot)", str(row["date"])
        note = " (no spot price; on-demand used)" if self.config.rental_rate == "spot" else ""
        return float(row["on_demand"]), row["source"] + note, str(row["date"])

    def _override(self, key: str | None, index: int, uuid: str) -> PriceOverride:
        """Merge overrides, most specific last: model, then GPU index, then UUID."""
        merged: dict = {}
        for o in (self.config.models.get(key or ""), self.config.gpus.get(str(index)), self.config.gpus.get(uuid)):
            if o is None:
                continue
            merged.update({f.name: getattr(o, f.name) for f in fields(o) if getattr(o, f.name) is not None})
        return PriceOverride(**merged)

    def price_for(self, index: int, uuid: str, name: str) -> GpuPrice:
        """Resolve the price of one GPU. Raises ConfigError when owned mode lacks a purchase price."""
        cfg = self.config
        key = match_model(name)
        if key is not None and key not in self.table["models"]:
            key = None
        o = self._override(key, index, uuid)
        mode = o.mode or cfg.mode
        price_per_kwh = cfg.price_per_kwh if o.price_per_kwh is None else o.price_per_kwh
        pue = cfg.pue if o.pue is None else o.pue
        charge_energy = (mode == "owned") if o.charge_energy is None else o.charge_energy
        if mode == "owned":
            if o.purchase_price is None:
                where = f"[prices.models.{key}]" if key else f'[prices.gpus."{index}"]'
                raise ConfigError(
                    f"GPU {index} ({name}) is priced as owned but has no purchase_price; "
                    f"set purchase_price (and useful_life_years) under {where} in the config"
                )
            rate = owned_rate_per_hour(
                o.purchase_price, o.useful_life_years or 4.0, o.ownership_utilization or 1.0, o.overhead_per_hour or 0.0
            )
            return GpuPrice(
                key, "owned", rate, charge_energy, price_per_kwh, pue, "config (owned)", "config", unknown=False
            )
        if o.rate_per_hour is not None:
            return GpuPrice(
                key,
                "rental",
                o.rate_per_hour,
                charge_energy,
                price_per_kwh,
                pue,
                "config override",
                "config",
                unknown=False,
            )
        if key is None:
            d = self.table["default"]
            return GpuPrice(
                None,
                "rental",
                cfg.default_rate,
                charge_energy,
                price_per_kwh,
                pue,
                f"default rate for an unknown model ({d['source']})",
                str(d["date"]),
                unknown=True,
            )
        rate, source, date = self._row_rate(key)
        return GpuPrice(key, "rental", rate, charge_energy, price_per_kwh, pue, source, date, unknown=False)

    def rows(self) -> list[dict]:
        """The table in effect, one row per model key (for ``gputab prices``)."""
        out = []
        for key, row in self.table["models"].items():
            o = self.config.models.get(key)
            mode = (o.mode if o and o.mode else None) or self.config.mode
            if o is not None and o.rate_per_hour is not None and mode == "rental":
                rate, source, date = o.rate_per_hour, "config override", "config"
            else:
                rate, source, date = self._row_rate(key)
            out.append(
                {
                    "model_key": key,
                    "mode": mode,
                    "rate_per_hour": rate,
                    "on_demand": row.get("on_demand"),
                    "spot": row.get("spot"),
                    "source": source,
                    "date": date,
                    "also": row.get("also", []),
                }
            )
        d = self.table["default"]
        out.append(
            {
                "model_key": "(default)",
                "mode": "rental",
                "rate_per_hour": self.config.default_rate,
                "on_demand": d["on_demand"],
                "spot": None,
                "source": d["source"],
                "date": str(d["date"]),
                "also": [],
            }
        )
        return out

    def to_json(self) -> dict:
        """What is stored with each session: the rows and the settings that shaped them."""
        c = self.config
        return {
            "table_date": self.table.get("table_date"),
            "mode": c.mode,
            "rental_rate": c.rental_rate,
            "default_rate": c.default_rate,
            "price_per_kwh": c.price_per_kwh,
            "pue": c.pue,
            "rows": self.rows(),
        }
