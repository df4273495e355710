"""The cost ledger: every GPU-second priced and charged to a job, ``(idle)``, ``(unattributed)`` or ``(unobserved)``.

Implements docs/cost-model.md exactly. Pure: no I/O, no clocks; it only reads the snapshots it is given.

Per tick ``k`` and GPU ``g``::

    interval_cost = rate_per_hour * dt / 3600 + energy_cost
    charged part  = min(dt, interval) / dt   when dt > gap_limit, else 1   (the rest goes to (unobserved))

and the charged part is split among the processes on the GPU by SM %, else used memory, else equally.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from gputab.config.settings import WasteConfig
from gputab.cost.buckets import IDLE, UNATTRIBUTED, UNOBSERVED
from gputab.cost.forecast import (
    DEFAULT_MIN_SPAN_SECONDS,
    DEFAULT_WINDOW_SECONDS,
    ProgressTrack,
    forecast,
)
from gputab.cost.pricing import GpuPrice, PriceTable
from gputab.cost.shares import (
    charge_instances,
    gpu_shares,
    instance_names,
    mig_utilization,
)
from gputab.cost.shares import split_shares as split_shares  # where callers have always found it
from gputab.cost.totals import GpuTotals, JobTotals
from gputab.cost.waste import UNOBSERVED_DIAGNOSIS, WasteBook
from gputab.sampling.snapshot import GpuSample, ProcessSample, Snapshot

ENERGY_COUNTER_PERIOD_S = 2.0
"""The driver refreshes the energy counter at its own cadence (tens of ms to about a second, by GPU and driver):
a counter that has not moved for less than this is waiting for its next update, not stuck."""


def interval_energy(prev: GpuSample, cur: GpuSample, dt: float, still_s: float = 0.0) -> tuple[float, str]:
    """Joules drawn by one GPU over one interval, and the method: ``counter``, ``power`` or ``none``.

    The counter delta is preferred. It is not trusted when unsupported, when it goes backwards (driver reload),
    or when it did not move while the GPU drew power for longer than :data:`ENERGY_COUNTER_PERIOD_S` (``still_s``:
    how long it had already not moved before this interval); then the trapezoid of the power samples is used, so a
    GPU that drew power is never reported at 0 J. A shorter still window charges 0 J: the counter's next update
    carries its energy (charging the trapezoid too would count it twice).
    """
    p0, p1 = prev.power_w, cur.power_w
    if p0 is not None and p1 is not None:
        trapezoid = (p0 + p1) / 2.0 * dt
    elif p0 is not None or p1 is not None:
        trapezoid = (p0 if p0 is not None else p1 or 0.0) * dt  # the one reading known
    else:
        trapezoid = None
    if prev.energy_mj is not None and cur.energy_mj is not None:
        delta = cur.energy_mj - prev.energy_mj
        if delta > 0 or (delta == 0 and (not trapezoid or still_s + dt < ENERGY_COUNTER_PERIOD_S)):
            return delta / 1000.0, "counter"
    if trapezoid is not None:
        return max(0.0, trapezoid), "power"
    return 0.0, "none"


@dataclass(frozen=True, slots=True)
class GpuInterval:
    """What one GPU cost over one interval and who pays for it."""

    gpu_index: int
    dt: float
    time_cost: float
    """Time cost of the charged part of the interval."""
    energy_cost: float
    """Energy cost of the charged part."""
    unobserved_cost: float
    """Time and energy cost of the part beyond the gap limit (or of a lost GPU), charged to (unobserved)."""
    energy_j: float
    energy_method: str
    utilization: float | None
    """Device utilization fraction over the interval (None if not reported)."""
    shares: Mapping[str, float]
    """Tag -> share of the charged part; ``{(idle): 1}`` when no process held the GPU."""
    tag_utilization: Mapping[str, float | None] = field(default_factory=dict)
    """On MIG, each tag's utilization from its own instances (replaces ``utilization`` for that tag)."""

    @property
    def cost(self) -> float:
        """The whole interval_cost of docs/cost-model.md."""
        return self.time_cost + self.energy_cost + self.unobserved_cost


def _pct(fraction: float | None) -> float | None:
    return None if fraction is None else fraction * 100.0


class Ledger:
    """Accumulates a session's money, tick by tick.

    Args:
        prices: the price table in effect (resolved once per GPU, the first time it is seen).
        interval: the poll interval in seconds (what the gap rule charges of a long interval).
        gap_factor: an interval longer than ``gap_factor * interval`` is a gap.
        waste: thresholds of the waste diagnosis (default: the config's defaults).
        forecast_window: seconds of progress the forecast's rate looks back over.
        forecast_min_span: seconds of progress needed before a forecast is given.
    """

    def __init__(
        self,
        prices: PriceTable,
        interval: float = 1.0,
        gap_factor: float = 5.0,
        waste: WasteConfig | None = None,
        forecast_window: float = DEFAULT_WINDOW_SECONDS,
        forecast_min_span: float = DEFAULT_MIN_SPAN_SECONDS,
    ) -> None:
        self.prices = prices
        self.forecast_window = forecast_window
        self.forecast_min_span = forecast_min_span
        self.waste = WasteBook(waste)
        self.interval = interval
        self.gap_limit = gap_factor * interval
        self.jobs: dict[str, JobTotals] = {}
        self.gpus: dict[int, GpuTotals] = {}
        self.total_cost_usd = 0.0
        self.total_energy_j = 0.0
        self.ticks = 0
        self._prev: Snapshot | None = None

    # -- prices ---------------------------------------------------------------------------------------------
    def price_of(self, index: int) -> GpuPrice:
        return self.gpus[index].price

    def _gpu(self, g: GpuSample) -> GpuTotals:
        t = self.gpus.get(g.index)
        if t is None:
            t = GpuTotals(g.index, g.uuid, g.name, self.prices.price_for(g.index, g.uuid, g.name))
            t.provisional = g.lost
            self.gpus[g.index] = t
        elif t.provisional and not g.lost:
            # First seen lost (placeholder name, no UUID): price it by its real model once it answers.
            t.uuid, t.name, t.price = g.uuid, g.name, self.prices.price_for(g.index, g.uuid, g.name)
            t.provisional = False
        return t

    def job(self, tag: str) -> JobTotals:
        j = self.jobs.get(tag)
        if j is None:
            j = self.jobs[tag] = JobTotals(tag)
        return j

    # -- progress -------------------------------------------------------------------------------------------
    def add_progress(self, tag: str, samples: int = 0, tokens: int = 0) -> None:
        """Add reported samples / tokens to a job (it need not have run yet in this session)."""
        j = self.job(tag)
        if samples:
            j.samples = (j.samples or 0) + samples
        if tokens:
            j.tokens = (j.tokens or 0) + tokens

    def add_server_tokens(self, tag: str, prompt: int, generated: int) -> None:
        """Add an inference server's prompt and generated tokens to a job: counted by kind and in its ``tokens``.
        A dollar is not split by kind: ``cost_per_1m_tokens_usd`` stays the cost over all its tokens."""
        j = self.job(tag)
        j.prompt_tokens = (j.prompt_tokens or 0) + prompt
        j.generated_tokens = (j.generated_tokens or 0) + generated
        self.add_progress(tag, tokens=prompt + generated)

    def observe_fraction(self, tag: str, fraction: float) -> None:
        """The job said it is ``fraction`` (0-1) done, as of the latest tick; its forecast is remade."""
        j = self.job(tag)
        if j.progress is None:
            j.progress = ProgressTrack(self.forecast_window, self.forecast_min_span)
        now = self._prev.mono if self._prev is not None else 0.0
        j.progress.observe(now, fraction)
        self._forecast(j)

    def _forecast(self, j: JobTotals) -> None:
        if j.progress is None or self._prev is None:
            return
        j.forecast = forecast(j.progress, self._prev.mono, j.cost_usd, j.burn_rate_usd_per_hour)
        j.forecast_wall = self._prev.wall
        if j.first_forecast is None and j.forecast.projected_cost_usd is not None and j.forecast.state == "running":
            j.first_forecast, j.first_forecast_wall = j.forecast, self._prev.wall

    def set_progress(self, tag: str, samples: int | None = None, tokens: int | None = None) -> None:
        """Set absolute counts (a user correcting them after the fact)."""
        j = self.job(tag)
        if samples is not None:
            j.samples = samples
        if tokens is not None:
            j.tokens = tokens

    # -- the tick -------------------------------------------------------------------------------------------
    def tick(self, snap: Snapshot, tags: Mapping[int, str]) -> list[GpuInterval]:
        """Charge the interval that ends at ``snap``. The first tick is the baseline and charges nothing."""
        prev = self._prev
        self._prev = snap
        self.ticks += 1
        out: list[GpuInterval] = []
        # Grouped and split once per tick: both the charge and the 'now' figures read them.
        procs_by_gpu: dict[int, list[ProcessSample]] = {}
        for p in snap.processes:
            procs_by_gpu.setdefault(p.gpu_index, []).append(p)
        shares = {g.index: gpu_shares(g, procs_by_gpu.get(g.index, ()), tags) for g in snap.gpus if not g.lost}
        mig_util = {
            g.index: mig_utilization(g, procs_by_gpu.get(g.index, ()), tags) for g in snap.gpus if g.mig and not g.lost
        }
        dt = snap.mono - prev.mono if prev is not None else 0.0
        self.waste.begin_tick(snap, tags)
        if prev is not None and dt > 0:
            prev_gpus = {g.index: g for g in prev.gpus}
            for g in snap.gpus:
                pg = prev_gpus.get(g.index)
                if pg is None:
                    self._gpu(g)  # appeared this tick: its first interval starts now
                    continue
                out.append(self._charge(pg, g, dt, shares.get(g.index, {}), mig_util.get(g.index, {})))
        self._update_current(snap, tags, shares)
        for j in self.jobs.values():
            self._forecast(j)
        return out

    def _charge(
        self,
        pg: GpuSample,
        g: GpuSample,
        dt: float,
        gpu_shares: Mapping[str, float],
        tag_util: Mapping[str, float | None],
    ) -> GpuInterval:
        """Charge one GPU's interval. ``tag_util``: on MIG, each tag's utilization from its own instances (see
        :func:`gputab.cost.shares.mig_utilization`), which replaces the GPU's for that tag."""
        gt = self._gpu(g)
        price = gt.price
        time_cost_full = price.rate_per_hour * dt / 3600.0
        lost = g.lost or pg.lost
        if lost:
            energy_j, method = 0.0, "none"
        else:
            energy_j, method = interval_energy(pg, g, dt, gt.counter_still_s)
            still = pg.energy_mj is not None and g.energy_mj == pg.energy_mj
            gt.counter_still_s = gt.counter_still_s + dt if still else 0.0
        energy_cost_full = price.energy_cost(energy_j)
        # Gap rule: beyond the gap limit only one interval is charged as usual; a lost GPU is unobserved.
        if lost:
            frac = 0.0
        elif dt > self.gap_limit:
            frac = self.interval / dt
        else:
            frac = 1.0
        time_cost = time_cost_full * frac
        energy_cost = energy_cost_full * frac
        unobserved = (time_cost_full - time_cost) + (energy_cost_full - energy_cost)
        charged_dt = dt * frac
        util = None if lost or g.utilization_pct is None else g.utilization_pct / 100.0
        shares = gpu_shares if not lost else {}
        charged = time_cost + energy_cost
        for tag, w in shares.items():
            j = self.job(tag)
            j.cost_usd += w * charged
            j.energy_j += w * energy_j * frac
            hours = w * charged_dt / 3600.0
            j.gpu_hours += hours
            # (idle) is all waste by definition: nobody held the GPU, whatever (if anything) it reported.
            tu = 0.0 if tag == IDLE else tag_util[tag] if tag in tag_util else util
            if tu is not None:
                j.util_gpu_hours += hours
                j.effective_gpu_hours += hours * tu
                if tu == 0 and tag != IDLE:
                    j.idle_gpu_hours += hours
            j.gpus.add(g.index)
            j.unknown_price |= price.unknown
            j.waste.charge(
                w * charged,
                tu,
                self.waste.diagnose(tag, g if tu is util else replace(g, utilization_pct=_pct(tu)), charged_dt),
                dt=dt,
                tensor_pct=g.tensor_active_pct,
                throttle_seconds=g.throttle_seconds,
                share=w,
            )
        if unobserved > 0 or lost:
            u = self.job(UNOBSERVED)
            u.cost_usd += unobserved
            u.waste.charge(unobserved, 0.0, UNOBSERVED_DIAGNOSIS)  # paid for time nobody saw: its own reason
            u.energy_j += energy_j * (1 - frac)
            u.gpus.add(g.index)
        interval_cost = time_cost_full + energy_cost_full
        gt.cost_usd += interval_cost
        gt.unobserved_cost_usd += unobserved
        if IDLE in shares:  # all of it off MIG; on MIG the free slices' and empty instances' part
            gt.idle_cost_usd += shares[IDLE] * charged
        if UNATTRIBUTED in shares:
            gt.unattributed_cost_usd += shares[UNATTRIBUTED] * charged
        if not lost:
            charge_instances(gt.mig, g, charged, charged_dt)
            gt.mig_slices = g.mig_slices or gt.mig_slices
        gt.energy_j += energy_j
        gt.seconds += dt
        if method != "none":
            gt.energy_method = method
        self.total_cost_usd += interval_cost
        self.total_energy_j += energy_j
        return GpuInterval(
            g.index, dt, time_cost, energy_cost, unobserved, energy_j, method, util, shares, dict(tag_util)
        )

    def _update_current(
        self, snap: Snapshot, tags: Mapping[int, str], shares: Mapping[int, Mapping[str, float]]
    ) -> None:
        """Burn rates and VRAM are 'now' figures: recomputed from the latest snapshot alone."""
        for j in self.jobs.values():
            j.burn_rate_usd_per_hour = 0.0
            j.vram_bytes = 0
            j.mig_instances.clear()
        for p in snap.processes:
            tag = tags.get(p.pid) or f"untagged:?/pid{p.pid}"
            if p.used_memory_bytes:
                self.job(tag).vram_bytes += p.used_memory_bytes
        for g in snap.gpus:
            gt = self._gpu(g)
            burn = gt.price.burn_rate(None if g.lost else g.power_w)
            gt.burn_rate_usd_per_hour = burn
            if g.lost:
                self.job(UNOBSERVED).burn_rate_usd_per_hour += burn
                continue
            if g.mig:
                for tag, name in instance_names(g, snap.processes_on(g.index), tags):
                    self.job(tag).mig_instances.add(name)
            for tag, w in shares[g.index].items():
                j = self.job(tag)
                j.burn_rate_usd_per_hour += w * burn
                j.gpus.add(g.index)
                j.unknown_price |= gt.price.unknown
        for j in self.jobs.values():
            if j.vram_bytes > j.peak_vram_bytes:
                j.peak_vram_bytes = j.vram_bytes

    # -- read-outs ------------------------------------------------------------------------------------------
    @property
    def burn_rate_usd_per_hour(self) -> float:
        return sum(g.burn_rate_usd_per_hour for g in self.gpus.values())

    def jobs_by_cost(self) -> list[JobTotals]:
        """Jobs sorted by cost, most expensive first; the special buckets after the real jobs."""
        return sorted(self.jobs.values(), key=lambda j: (j.special, -j.cost_usd, j.tag))

    def check_waste_conservation(self, rel: float = 1e-9) -> bool:
        """Per job: busy + waste + unmeasured = cost, and the reasons sum to the waste."""
        for j in self.jobs.values():
            w = j.waste
            if not math.isclose(w.busy_usd + w.waste_usd + w.unmeasured_usd, j.cost_usd, rel_tol=rel, abs_tol=1e-12):
                return False
            if not math.isclose(math.fsum(w.by_reason.values()), w.waste_usd, rel_tol=rel, abs_tol=1e-12):
                return False
        return True

    def check_conservation(self, rel: float = 1e-9) -> bool:
        """Sum over jobs (incl. buckets) equals the sum of GPU interval costs."""
        jobs = math.fsum(j.cost_usd for j in self.jobs.values())
        gpus = math.fsum(g.cost_usd for g in self.gpus.values())
        return math.isclose(jobs, gpus, rel_tol=rel, abs_tol=1e-12)
