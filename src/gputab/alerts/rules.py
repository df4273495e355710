"""Alert rules: telling the user when money is being wasted.

The rules of docs/cost-model.md, evaluated once per tick with no I/O (:class:`AlertEngine`; the budget rules
are in :mod:`gputab.budgets.model`, the alert record in :mod:`gputab.alerts.record`). :mod:`gputab.alerts.observer` plugs them into
the recorder.

The loop runs every second for months, so every rule keeps O(1) state per job or GPU: the rolling utilization
average lives in a fixed number of time buckets, the others are "since when" timestamps.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from gputab.alerts.budget_rules import Want, budget_alerts
from gputab.alerts.record import (
    IDLE_MONEY,
    LOW_UTILIZATION,
    MEMORY_PRESSURE,
    WARNING,
    WASTE,
    Alert,
    AlertChanges,
    format_duration,
    format_money,
)
from gputab.budgets.model import Budget, BudgetBook, as_budgets, from_caps, merge
from gputab.config.settings import AlertsConfig
from gputab.cost.buckets import SPECIAL_TAGS
from gputab.cost.ledger import GpuInterval
from gputab.cost.shares import all_idle
from gputab.sampling.snapshot import GpuSample

S = TypeVar("S", bound="_JobState | _WasteState")


class RollingSums:
    """Sums of (GPU-seconds, effective GPU-seconds) over the last ``window`` seconds, in ``buckets`` time slots.

    Adding is O(1); expiring drops whole slots, so the window is exact to one slot width (a minute for the
    default hour). The running sums are recomputed from the slots whenever a slot expires, so float error
    cannot pile up over months of ticks.
    """

    def __init__(self, window: float, buckets: int = 60) -> None:
        # A zero window (``low_utilization_minutes = 0``) still needs a slot: 1 ms wide, holding the last tick.
        self.width = max(window / buckets, 1e-3)
        self.window = max(window, self.width)
        self._slots: deque[list[float]] = deque()  # [slot_start, gpu_s, eff_s]
        self.gpu_s = 0.0
        self.eff_s = 0.0

    def add(self, now: float, gpu_s: float, eff_s: float) -> None:
        self.expire(now)
        if not self._slots or now >= self._slots[-1][0] + self.width:
            self._slots.append([now - (now % self.width), 0.0, 0.0])
        slot = self._slots[-1]
        slot[1] += gpu_s
        slot[2] += eff_s
        self.gpu_s += gpu_s
        self.eff_s += eff_s

    def expire(self, now: float) -> None:
        dropped = False
        while self._slots and self._slots[0][0] + self.width <= now - self.window:
            self._slots.popleft()
            dropped = True
        if dropped:
            self.gpu_s = math.fsum(s[1] for s in self._slots)
            self.eff_s = math.fsum(s[2] for s in self._slots)

    @property
    def average(self) -> float | None:
        """Effective / GPU-seconds over the window, None when nothing with a known utilization was seen."""
        return self.eff_s / self.gpu_s if self.gpu_s > 0 else None


@dataclass
class _JobState:
    first_seen: float
    last_seen: float
    util: RollingSums


@dataclass
class _WasteState:
    """A job's waste over the window: ``util`` sums (cost growth, waste growth) as RollingSums does (GPU-seconds,
    effective GPU-seconds), so its average is the waste share; and where the job's totals stood."""

    first_seen: float
    last_growth: float
    cost_usd: float
    waste_usd: float
    util: RollingSums


class AlertEngine:
    """Evaluates the alert rules tick by tick. Pure: it only reads what it is given.

    Args:
        config: thresholds and durations (``[alerts]`` of the config file).
        budgets: :class:`gputab.budgets.model.Budget` objects, or ``{tag: dollars}`` (``[budgets]``, ``run --budget``).
        job_gone_after: seconds without GPU time after which a job counts as ended (its alerts clear).
    """

    def __init__(
        self,
        config: AlertsConfig | None = None,
        budgets: Mapping[str, float] | Iterable[Budget] | None = None,
        job_gone_after: float = 120.0,
    ) -> None:
        self.config = config or AlertsConfig()
        self.book = BudgetBook(as_budgets(budgets))
        """The budgets and the spend carried into their periods (the recorder's BudgetKeeper fills it)."""
        self.job_gone_after = job_gone_after
        self._active: dict[tuple, Alert] = {}
        self._jobs: dict[str, _JobState] = {}
        self._pressure_since: dict[int, float] = {}
        self._idle_since: dict[int, tuple[float, float]] = {}  # gpu -> (mono since, wall since)
        self._idle_cost: dict[int, float] = {}
        self._waste: dict[str, _WasteState] = {}

    @property
    def active(self) -> list[Alert]:
        """The alerts now active, oldest first."""
        return sorted(self._active.values(), key=lambda a: (a.started_at, a.kind))

    @property
    def budgets(self) -> Mapping[str, float]:
        """Glob -> cap in dollars of the budgets in force (read-only: change them through :attr:`book`)."""
        return MappingProxyType({b.tag: b.cap_usd for b in self.book.budgets})

    def set_budget(self, tag: str, cap_usd: float) -> None:
        """Set or change a total cap (dollars) for ``tag``; the next tick re-evaluates its budget alerts."""
        self.book.define(merge(self.book.defined, from_caps({tag: cap_usd})))

    def update(
        self,
        wall: float,
        gpus: Iterable[Any],
        intervals: Iterable[Any],
        jobs: Iterable[Mapping[str, Any]],
        mono: float | None = None,
    ) -> AlertChanges:
        """Feed one tick; return what was raised and cleared.

        Args:
            wall: wall time of the tick (Unix seconds), stamped on alerts.
            gpus: the snapshot's ``GpuSample`` records.
            intervals: the ledger's ``GpuInterval`` records for this tick.
            jobs: ``JobTotals.to_json()`` dicts (cost and burn rate so far).
            mono: monotonic time of the tick; durations are measured on it so a wall-clock jump cannot raise
                or clear anything (defaults to ``wall``).
        """
        now = wall if mono is None else mono
        raised: list[Alert] = []
        cleared: list[Alert] = []

        def want(key: tuple, make: Callable[[], Alert] | None) -> None:
            """Make the active set agree with the rule: ``make`` raises if not yet active, None clears."""
            current = self._active.get(key)
            if make is not None and current is None:
                alert = make()
                self._active[key] = alert
                raised.append(alert)
            elif make is None and current is not None:
                done = dataclasses.replace(current, ended_at=wall)
                del self._active[key]
                cleared.append(done)

        intervals = list(intervals)
        self._memory_pressure(now, wall, gpus, want)
        self._idle_money(now, wall, intervals, want)
        self._low_utilization(now, wall, intervals, want)
        jobs = list(jobs)
        budget_alerts(self.book, wall, jobs, self.config.budget_warning_pct, list(self._active), want)
        self._waste_share(now, wall, jobs, want)
        return AlertChanges(tuple(raised), tuple(cleared))

    # -- rules ----------------------------------------------------------------------------------------------
    def _memory_pressure(self, now: float, wall: float, gpus: Iterable[GpuSample], want: Want) -> None:
        cfg = self.config
        for g in gpus:
            key = (MEMORY_PRESSURE, None, g.index)
            used, total = g.memory_used_bytes, g.memory_total_bytes
            if g.lost or used is None or not total:
                # An unknown reading neither proves nor disproves pressure; start over when it comes back.
                self._pressure_since.pop(g.index, None)
                want(key, None)
                continue
            pct = 100.0 * used / total
            if pct <= cfg.memory_pressure_pct:
                self._pressure_since.pop(g.index, None)
                want(key, None)
                continue
            since = self._pressure_since.setdefault(g.index, now)
            if now - since < cfg.memory_pressure_seconds:
                continue
            want(
                key,
                lambda: Alert(
                    MEMORY_PRESSURE,
                    WARNING,
                    f"GPU {g.index}: memory {pct:.0f}% used for {format_duration(now - since)} "
                    f"(threshold {cfg.memory_pressure_pct:.0f}%)",
                    wall,
                    gpu=g.index,
                    data={
                        "memory_used_bytes": used,
                        "memory_total_bytes": total,
                        "used_pct": pct,
                        "threshold_pct": cfg.memory_pressure_pct,
                        "seconds": now - since,
                    },
                ),
            )

    def _idle_money(self, now: float, wall: float, intervals: Iterable[GpuInterval], want: Want) -> None:
        limit = self.config.idle_minutes * 60.0
        for iv in intervals:
            key = (IDLE_MONEY, None, iv.gpu_index)
            charged = iv.time_cost + iv.energy_cost
            if not all_idle(iv.shares) or charged <= 0:  # a MIG GPU with a busy instance is not idle
                self._idle_since.pop(iv.gpu_index, None)
                self._idle_cost.pop(iv.gpu_index, None)
                want(key, None)
                continue
            # The stretch began when the interval began: the GPU was already idle during it.
            since, since_wall = self._idle_since.setdefault(iv.gpu_index, (now - iv.dt, wall - iv.dt))
            spent = self._idle_cost[iv.gpu_index] = self._idle_cost.get(iv.gpu_index, 0.0) + charged
            idle_for = now - since
            if idle_for < limit:
                continue
            rate = charged / iv.dt * 3600.0 if iv.dt > 0 else 0.0
            want(
                key,
                lambda: Alert(
                    IDLE_MONEY,
                    WARNING,
                    f"GPU {iv.gpu_index}: idle for {format_duration(idle_for)}, {format_money(spent)} spent on nothing "
                    f"({format_money(rate)}/h)",
                    wall,
                    gpu=iv.gpu_index,
                    data={
                        "idle_seconds": idle_for,
                        "idle_since": since_wall,
                        "idle_cost_usd": spent,
                        "burn_rate_usd_per_hour": rate,
                    },
                ),
            )

    def _low_utilization(self, now: float, wall: float, intervals: Iterable[GpuInterval], want: Want) -> None:
        cfg = self.config
        window = cfg.low_utilization_minutes * 60.0
        seen: dict[str, list[float]] = {}
        for iv in intervals:
            # A gap interval's utilization is one reading standing for minutes; it would skew the average.
            if iv.utilization is None or iv.unobserved_cost > 0:
                for tag in iv.shares:
                    seen.setdefault(tag, [0.0, 0.0])
                continue
            for tag, share in iv.shares.items():
                acc = seen.setdefault(tag, [0.0, 0.0])
                acc[0] += share * iv.dt
                acc[1] += share * iv.dt * iv.utilization
        for tag, (gpu_s, eff_s) in seen.items():
            if tag in SPECIAL_TAGS:
                continue
            st = self._jobs.get(tag)
            if st is None:
                st = self._jobs[tag] = _JobState(first_seen=now, last_seen=now, util=RollingSums(window))
            st.last_seen = now
            st.util.add(now, gpu_s, eff_s)
        gone = [tag for tag, st in self._jobs.items() if now - st.last_seen >= self.job_gone_after]
        for tag, st, key, avg in self._full_windows(LOW_UTILIZATION, self._jobs, gone, now, window, want):
            if avg * 100.0 >= cfg.low_utilization_pct:
                want(key, None)
                continue
            want(
                key,
                lambda: Alert(
                    LOW_UTILIZATION,
                    WARNING,
                    f"job {tag}: GPU utilization averaged {avg * 100:.0f}% over the last "
                    f"{format_duration(window)} (threshold {cfg.low_utilization_pct:.0f}%)",
                    wall,
                    tag=tag,
                    data={
                        "avg_utilization": avg,
                        "window_seconds": window,
                        "threshold_pct": cfg.low_utilization_pct,
                        "gpu_hours_in_window": st.util.gpu_s / 3600.0,
                    },
                ),
            )

    @staticmethod
    def _full_windows(
        kind: str, states: dict[str, S], gone: Iterable[str], now: float, window: float, want: Want
    ) -> Iterator[tuple[str, S, tuple[str, str, None], float]]:
        """Per job of ``states`` (each with ``first_seen`` and RollingSums ``util``): forget the ``gone`` ones
        (their alert clears) and yield ``(tag, state, alert key, ratio)`` for those whose window is full."""
        for tag in gone:
            del states[tag]
            want((kind, tag, None), None)
        for tag, st in states.items():
            st.util.expire(now)
            ratio = st.util.average
            if ratio is not None and now - st.first_seen >= window:
                yield tag, st, (kind, tag, None), ratio

    def _waste_share(self, now: float, wall: float, jobs: Iterable[Mapping[str, Any]], want: Want) -> None:
        """``waste``: the job's waste_usd grew by more than ``waste_pct`` % of its cost_usd over the window.

        The window's figures are the growth of the job's running totals (RollingSums of the per-tick deltas,
        so O(1) per job); the reason named is the job's costliest one so far, with its evidence.
        """
        cfg = self.config
        window = cfg.waste_minutes * 60.0
        seen = set()
        for job in jobs:
            tag = job.get("tag")
            cost, waste = job.get("cost_usd"), job.get("waste_usd")
            if tag is None or tag in SPECIAL_TAGS or cost is None or waste is None:
                continue
            seen.add(tag)
            st = self._waste.get(tag)
            if st is None:
                # The first sight is the baseline: what was spent before it is not in any window.
                self._waste[tag] = _WasteState(now, now, float(cost), float(waste), RollingSums(window))
                continue
            d_cost, d_waste = float(cost) - st.cost_usd, float(waste) - st.waste_usd
            st.cost_usd, st.waste_usd = float(cost), float(waste)
            if d_cost > 0:
                st.last_growth = now
                st.util.add(now, d_cost, max(0.0, min(d_waste, d_cost)))
        # A job that ended (or stopped costing) has a share that means nothing now.
        gone = [
            tag for tag, st in self._waste.items() if tag not in seen or now - st.last_growth >= self.job_gone_after
        ]
        for tag, st, key, share in self._full_windows(WASTE, self._waste, gone, now, window, want):
            if share * 100.0 <= cfg.waste_pct:
                want(key, None)
                continue
            job = next(j for j in jobs if j.get("tag") == tag)
            reason = job.get("waste_top_reason") or "unexplained"
            evidence = job.get("waste_evidence")
            spent, wasted = st.util.gpu_s, st.util.eff_s
            why = f"likely {reason}" + (f" ({evidence})" if evidence else "")
            want(
                key,
                lambda: Alert(
                    WASTE,
                    WARNING,
                    f"job {tag}: {share * 100:.0f}% of its cost wasted over the last {format_duration(window)} "
                    f"({format_money(wasted)} of {format_money(spent)}, threshold {cfg.waste_pct:.0f}%); {why}",
                    wall,
                    tag=tag,
                    data={
                        "waste_share": share,
                        "window_seconds": window,
                        "threshold_pct": cfg.waste_pct,
                        "cost_usd_in_window": spent,
                        "waste_usd_in_window": wasted,
                        "reason": reason,
                        "evidence": evidence,
                    },
                ),
            )
