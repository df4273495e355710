"""The running figures of one job and of one GPU in a session, as :class:`gputab.cost.ledger.Ledger` keeps them.
Their ``to_json`` keys are the project's contract (docs/json.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from gputab.cost.buckets import SPECIAL_TAGS
from gputab.cost.forecast import UNKNOWN, Forecast, ProgressTrack
from gputab.cost.pricing import GpuPrice
from gputab.cost.shares import MigTotals
from gputab.cost.waste import WasteTotals


def reported_tokens(tokens: int, prompt: int | None, generated: int | None) -> int:
    """Of a job's ``tokens``, those it reported itself (``gputab.report``, a callback, by hand), which carry no kind:
    the total less the prompt and generated tokens its inference servers counted."""
    return max(0, tokens - (prompt or 0) - (generated or 0))


@dataclass
class JobTotals:
    """Running figures of one job (tag) in a session. ``to_json`` keys are the project's contract."""

    tag: str
    cost_usd: float = 0.0
    burn_rate_usd_per_hour: float = 0.0
    gpu_hours: float = 0.0
    effective_gpu_hours: float = 0.0
    util_gpu_hours: float = 0.0
    """GPU-hours whose utilization was known (denominator of avg_utilization)."""
    idle_gpu_hours: float = 0.0
    """GPU-hours the job held a GPU at 0 % utilization."""
    energy_j: float = 0.0
    peak_vram_bytes: int = 0
    vram_bytes: int = 0
    """Used GPU memory of the job's processes at the last tick."""
    samples: int | None = None
    tokens: int | None = None
    """All its tokens: an inference server's prompt and generated tokens plus what the job reported (no kind)."""
    prompt_tokens: int | None = None
    generated_tokens: int | None = None
    """Its inference servers' prompt / generated tokens (None until a server counted any); part of ``tokens``."""
    gpus: set[int] = field(default_factory=set)
    mig_instances: set[str] = field(default_factory=set)
    """The MIG instances its processes run on now (``4:3g.40gb``); empty off MIG."""
    unknown_price: bool = False
    waste: WasteTotals = field(default_factory=WasteTotals)
    """Busy and wasted dollars, waste by reason (see :mod:`gputab.cost.waste`)."""
    progress: ProgressTrack | None = None
    """The job's reported progress fraction over the recent window (None: it never reported one)."""
    forecast: Forecast = UNKNOWN
    forecast_wall: float | None = None
    """Unix time the forecast was made at (its ``eta_at`` is this plus the ETA)."""
    first_forecast: Forecast | None = None
    first_forecast_wall: float | None = None
    """The session's first forecast with figures and when it was made: the review sets it against the actual cost."""

    @property
    def special(self) -> bool:
        return self.tag in SPECIAL_TAGS

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / 3.6e6

    @property
    def avg_utilization(self) -> float | None:
        return self.effective_gpu_hours / self.util_gpu_hours if self.util_gpu_hours > 0 else None

    def _per(self, count: int | None, unit: float) -> float | None:
        return self.cost_usd / count * unit if count else None

    def to_json(self) -> dict:
        eff = self.effective_gpu_hours
        return {
            "tag": self.tag,
            "cost_usd": self.cost_usd,
            "burn_rate_usd_per_hour": self.burn_rate_usd_per_hour,
            "gpu_hours": self.gpu_hours,
            "effective_gpu_hours": eff,
            "avg_utilization": self.avg_utilization,
            "energy_kwh": self.energy_kwh,
            "peak_vram_bytes": self.peak_vram_bytes,
            "samples": self.samples,
            "tokens": self.tokens,
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "cost_per_sample_usd": self._per(self.samples, 1),
            "cost_per_1k_samples_usd": self._per(self.samples, 1000),
            "cost_per_1m_tokens_usd": self._per(self.tokens, 1_000_000),
            "cost_per_effective_gpu_hour_usd": self.cost_usd / eff if eff > 0 else None,
            "idle_gpu_hours": self.idle_gpu_hours,
            "vram_bytes": self.vram_bytes,
            "gpus": sorted(self.gpus),
            "mig_instances": sorted(self.mig_instances),
            "unknown_price": self.unknown_price,
            **self.waste.to_json(self.cost_usd),
            **self.forecast_json(),
        }

    def forecast_json(self) -> dict:
        """The forecast keys (docs/cost-model.md, "Forecast"), ``eta_at`` as ISO 8601 UTC."""
        fc, first, wall = self.forecast, self.first_forecast, self.forecast_wall
        eta_at = _iso(wall + fc.eta_seconds) if fc.eta_seconds is not None and wall is not None else None
        return {
            **fc.to_json(),
            "eta_at": eta_at,
            "first_projected_cost_usd": first.projected_cost_usd if first else None,
            "first_projected_progress_fraction": first.progress_fraction if first else None,
            "first_projected_at": _iso(self.first_forecast_wall) if first else None,
        }


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class GpuTotals:
    """Running figures of one GPU in a session."""

    index: int
    uuid: str
    name: str
    price: GpuPrice
    cost_usd: float = 0.0
    idle_cost_usd: float = 0.0
    unattributed_cost_usd: float = 0.0
    """Cost of the intervals it worked with no process listed (its ``(unattributed)`` part)."""
    unobserved_cost_usd: float = 0.0
    energy_j: float = 0.0
    energy_method: str = "none"
    burn_rate_usd_per_hour: float = 0.0
    seconds: float = 0.0
    provisional: bool = False
    """Priced from a lost GPU's placeholder; re-priced when the GPU answers."""
    counter_still_s: float = 0.0
    """Seconds the energy counter has not moved (see :func:`interval_energy`)."""
    mig: dict[tuple[int, int], MigTotals] = field(default_factory=dict)
    """Its MIG instances by (GPU instance, compute instance) id, each with its part of the cost."""
    mig_slices: int | None = None
    """Its compute slices in MIG mode (the ``7`` of ``3/7``), as last seen; None off MIG."""

    def mig_json(self) -> list[dict]:
        """Each MIG instance's totals (see :class:`gputab.cost.shares.MigTotals`), by GPU and compute instance id."""
        return [t.to_json(self.price.rate_per_hour) for _, t in sorted(self.mig.items())]

    def to_json(self) -> dict:
        p = self.price
        return {
            "index": self.index,
            "uuid": self.uuid,
            "name": self.name,
            "model_key": p.model_key,
            "mode": p.mode,
            "rate_per_hour": p.rate_per_hour,
            "unknown_price": p.unknown,
            "cost_usd": self.cost_usd,
            "idle_cost_usd": self.idle_cost_usd,
            "unattributed_cost_usd": self.unattributed_cost_usd,
            "unobserved_cost_usd": self.unobserved_cost_usd,
            "energy_j": self.energy_j,
            "energy_kwh": self.energy_j / 3.6e6,
            "energy_method": self.energy_method,
            "burn_rate_usd_per_hour": self.burn_rate_usd_per_hour,
            "seconds": self.seconds,
            "mig": self.mig_json() or None,
            "mig_slices": self.mig_slices,
        }
