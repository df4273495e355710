"""Budgets: a cap in dollars on what each job matching a tag glob may spend in a period, and the alerts about it.

Pure (no I/O). A :class:`Budget` names a tag glob (``fnmatch``, case-sensitive: an exact tag is a glob too), a cap,
a period (``day``, ``week``, ``month`` or ``total``) and, opt-in, whether the recorder stops the job at its cap
(``stop``, with ``grace_seconds`` between SIGINT and SIGTERM and the ``users`` whose processes it may signal).

Each matching tag is held to the whole cap by itself; periods follow the UTC calendar; a later layer (demo, config,
``gputab run --budget``, database) wins for the same glob. Why: docs/design-notes.md, "Budgets".

:class:`BudgetBook` keeps, per period, each tag's *offset*: what it spent in the period outside this session's
ledger (earlier sessions, from the store) less what this session had spent before the period began. A tag's spend
in the period is its offset plus its session cost now. When a period rolls over the book takes the session's costs
as the new period's baseline by itself; the recorder's :class:`gputab.recording.budget_keeper.BudgetKeeper` carries what the
store knows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from gputab.config.settings import BUDGET_PERIODS, MAX_BUDGET_USD, MAX_GRACE_SECONDS
from gputab.cost.buckets import SPECIAL_TAGS

PERIODS = BUDGET_PERIODS
"""How long a budget's spend accumulates before it starts again from zero (UTC calendar; ``total``: never)."""
ORIGINS = ("demo", "config", "run", "database")
"""Where a budget was defined, lowest layer first: a later layer's budget for the same glob wins."""
ADJECTIVES = {"day": " daily", "week": " weekly", "month": " monthly", "total": ""}
DEFAULT_GRACE_SECONDS = 30.0
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Budget:
    """One budget.

    Attributes:
        tag: the tag glob it holds (``llama3-lora``, ``sweep-*``).
        cap_usd: dollars each matching tag may spend in a period.
        period: one of :data:`PERIODS`.
        stop: the recorder stops a job at its cap (SIGINT, SIGTERM after ``grace_seconds``).
        grace_seconds: time a stopped job has to checkpoint.
        users: login names whose processes may be signalled; empty: the recorder's own user's only.
        origin: one of :data:`ORIGINS`.
    """

    tag: str
    cap_usd: float
    period: str = "total"
    stop: bool = False
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    users: tuple[str, ...] = ()
    origin: str = "config"

    def __post_init__(self) -> None:
        if not (self.cap_usd > 0 and math.isfinite(self.cap_usd)):
            raise ValueError(f"a budget must be a positive number of dollars, got {self.cap_usd}")
        if self.period not in PERIODS:
            raise ValueError(f"a budget's period is one of {', '.join(PERIODS)}, got {self.period!r}")
        if not 0 <= self.grace_seconds <= MAX_GRACE_SECONDS:
            raise ValueError(f"a grace period is 0 to {MAX_GRACE_SECONDS:g} seconds, got {self.grace_seconds}")

    @property
    def is_glob(self) -> bool:
        return any(c in GLOB_CHARS for c in self.tag)

    def matches(self, tag: str) -> bool:
        """Whether this budget's glob matches ``tag``, or is ``tag`` itself (a tag may hold ``[``, ``*`` or ``?``);
        gputab's own rows, ``(idle)`` and ``(unobserved)``, never."""
        return tag not in SPECIAL_TAGS and (tag == self.tag or fnmatchcase(tag, self.tag))

    def specificity(self, tag: str) -> tuple[bool, bool, int]:
        """What :func:`resolve` picks the most of for ``tag``: any budget over the demo's own defaults, then the
        tag itself, then globs by their literal characters."""
        return (self.origin != "demo", tag == self.tag, sum(1 for c in self.tag if c not in GLOB_CHARS))

    def to_json(self) -> dict:
        return {
            "tag": self.tag,
            "cap_usd": self.cap_usd,
            "period": self.period,
            "stop": self.stop,
            "grace_seconds": self.grace_seconds,
            "users": list(self.users),
            "defined_in": self.origin,
        }


def parse_cap(text: str) -> float:
    """A cap as a person types it (``20``, ``19.99``, ``1e3``): dollars above 0, up to :data:`MAX_BUDGET_USD`.

    Raises:
        ValueError: for anything else (``-5``, ``0``, ``abc``, ``nan``, ``inf``), saying what a cap is and what
            was given, in one line.
    """
    try:
        cap = float(text)
    except ValueError:
        cap = math.nan
    if not 0 < cap <= MAX_BUDGET_USD:  # nan and the infinities fail this too
        raise ValueError(f"a budget cap is a positive number of dollars up to {MAX_BUDGET_USD:,.0f}, got {text!r}")
    return cap


def _utc(wall: float) -> datetime:
    # Whole seconds: fromtimestamp rounds to the microsecond, which would put 23:59:59.9999995 in the next day
    # (period boundaries are whole seconds, so the floor is in the same period as ``wall``).
    return datetime.fromtimestamp(math.floor(wall), tz=UTC)


def period_start(period: str, wall: float) -> float | None:
    """Unix time at which the ``period`` holding ``wall`` began (UTC calendar); None for ``total``.

    ``day``: 00:00 UTC of that day; ``week``: 00:00 UTC of its Monday; ``month``: 00:00 UTC on the 1st.
    """
    if period == "total":
        return None
    d = _utc(wall).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        d -= timedelta(days=d.weekday())
    elif period == "month":
        d = d.replace(day=1)
    elif period != "day":
        raise ValueError(f"unknown budget period {period!r}")
    return d.timestamp()


def next_period_start(period: str, wall: float) -> float | None:
    """Unix time at which the period after the one holding ``wall`` begins (when the spend restarts); None for
    ``total``."""
    start = period_start(period, wall)
    if start is None:
        return None
    d = _utc(start)
    if period == "month":
        return (d.replace(year=d.year + 1, month=1) if d.month == 12 else d.replace(month=d.month + 1)).timestamp()
    return (d + timedelta(days=7 if period == "week" else 1)).timestamp()


def resolve(budgets: Iterable[Budget], tag: str) -> Budget | None:
    """The budget that holds ``tag``: its exact one, else the matching glob with the most literal characters (the
    first of equals); the demo's own budgets only where no other matches. None when none matches."""
    best: Budget | None = None
    for b in budgets:
        if b.matches(tag) and (best is None or b.specificity(tag) > best.specificity(tag)):
            best = b
    return best


def merge(*layers: Iterable[Budget]) -> tuple[Budget, ...]:
    """The budgets of all ``layers``, lowest first: a later layer's budget for the same glob replaces an earlier
    one (in its place, so the order of first definition is kept)."""
    out: dict[str, Budget] = {}
    for layer in layers:
        for b in layer:
            out[b.tag] = b
    return tuple(out.values())


def from_caps(caps: Mapping[str, float], origin: str = "config") -> tuple[Budget, ...]:
    """``{tag: dollars}`` (the old ``[budgets]`` form, ``gputab run --budget``, the demo's) as budgets."""
    return tuple(Budget(tag, float(cap), origin=origin) for tag, cap in caps.items())


def from_config(config: Any) -> tuple[Budget, ...]:
    """The config's ``[budgets]``: ``tag = dollars`` entries and ``[budgets."glob"]`` tables."""
    out = []
    for tag, entry in config.budgets.items():
        if isinstance(entry, (int, float)):
            out.append(Budget(tag, float(entry)))
        else:
            out.append(
                Budget(tag, entry.cap, entry.period, entry.stop, entry.grace, tuple(entry.users), origin="config")
            )
    return tuple(out)


def as_budgets(budgets: Mapping[str, float] | Iterable[Budget] | None, origin: str = "config") -> tuple[Budget, ...]:
    """Budgets given either way (a ``{tag: dollars}`` mapping or :class:`Budget` objects)."""
    if budgets is None:
        return ()
    if isinstance(budgets, Mapping):
        return from_caps(budgets, origin)
    return tuple(budgets)


PeriodKey = tuple[str, float | None]
"""A period: its name and its start (None for ``total``)."""


class BudgetBook:
    """The budgets in force and, per period, what each tag spent in it outside this session's ledger.

    Args:
        budgets: the budgets defined outside the database (demo, config, ``run --budget``).
    """

    def __init__(self, budgets: Iterable[Budget] = ()) -> None:
        self.defined: tuple[Budget, ...] = tuple(budgets)
        self.stored: tuple[Budget, ...] = ()
        """Budgets from the database (``gputab budget set``): they win over :attr:`defined` for the same glob."""
        self.budgets: tuple[Budget, ...] = self.defined
        self._resolved: dict[str, Budget | None] = {}
        self._offsets: dict[PeriodKey, dict[str, float]] = {}
        self._base: dict[PeriodKey, dict[str, float]] = {}
        """This session's costs when a period rolled over under it (what the new period does not count)."""
        self._carried: set[PeriodKey] = set()
        self._current: dict[str, float | None] = {}

    # -- which budgets ---------------------------------------------------------------------------------------
    def _merge(self) -> None:
        self.budgets = merge(self.defined, self.stored)
        self._resolved.clear()

    def define(self, budgets: Iterable[Budget]) -> None:
        """Replace the budgets defined outside the database."""
        self.defined = tuple(budgets)
        self._merge()

    def add_defaults(self, budgets: Iterable[Budget]) -> None:
        """Budgets below every other layer (the demo's own: a configured one for the same glob wins)."""
        self.defined = merge(budgets, self.defined)
        self._merge()

    def store(self, budgets: Iterable[Budget]) -> bool:
        """Replace the database's budgets; True when that changed anything."""
        budgets = tuple(budgets)
        if budgets == self.stored:
            return False
        self.stored = budgets
        self._merge()
        return True

    def budget_for(self, tag: str) -> Budget | None:
        """The budget holding ``tag`` (see :func:`resolve`), or None."""
        if tag not in self._resolved:
            self._resolved[tag] = resolve(self.budgets, tag)
        return self._resolved[tag]

    # -- spend per period -------------------------------------------------------------------------------------
    def periods(self, wall: float) -> set[PeriodKey]:
        """The periods the budgets in force count in at ``wall``."""
        return {(b.period, period_start(b.period, wall)) for b in self.budgets}

    def uncarried(self, wall: float) -> list[PeriodKey]:
        """Periods in use that the store's spend was not carried into yet (oldest start first, total last).

        A period that began since the last :meth:`roll` is left out until it has rolled: the rollover's baseline
        (this session's costs at that tick) is exact, where the store's lags a series step."""
        keys = [
            (period, start)
            for period, start in self.periods(wall) - self._carried
            if not (start is not None and (self._current.get(period) or start) < start)
        ]
        return sorted(keys, key=lambda k: (k[1] is None, k[1] or 0.0, k[0]))

    def base(self, key: PeriodKey) -> dict[str, float] | None:
        """This session's costs when period ``key`` began under it (a rollover it saw), or None."""
        return self._base.get(key)

    def carry(self, key: PeriodKey, prior: Mapping[str, float], base: Mapping[str, float] | None = None) -> None:
        """Carry into period ``key`` what each tag spent in it before this session (``prior``), less what this
        session had spent when the period began (``base``; default: the rollover's, else nothing)."""
        before = self._base.get(key, {}) if base is None else base
        offsets = {tag: float(usd) for tag, usd in prior.items()}
        for tag, usd in before.items():
            offsets[tag] = offsets.get(tag, 0.0) - float(usd)
        self._offsets[key] = offsets
        self._carried.add(key)

    def roll(self, wall: float, costs: Mapping[str, float]) -> set[str]:
        """Note the time; return the periods that began since the last call (their spend restarts at ``costs``,
        this session's cost of each tag now)."""
        rolled = set()
        for period, start in self.periods(wall):
            last = self._current.get(period, start)
            if start is not None and last is not None and start > last:
                key = (period, start)
                self._base[key] = dict(costs)
                self._offsets[key] = {tag: -usd for tag, usd in costs.items()}
                for old in [k for k in self._offsets if k[0] == period and k[1] is not None and k[1] < start]:
                    self._offsets.pop(old, None)
                    self._base.pop(old, None)
                    self._carried.discard(old)
                rolled.add(period)
            self._current[period] = start
        return rolled

    def spent(self, budget: Budget, tag: str, cost_now: float, wall: float, start: float | None = None) -> float:
        """What ``tag`` spent in ``budget``'s current period: carried offset + this session's cost now (an
        uncarried period counts this session only). ``start``: the period's start at ``wall``, if known."""
        if start is None:
            start = period_start(budget.period, wall)
        offsets = self._offsets.get((budget.period, start), {})
        return offsets.get(tag, 0.0) + cost_now


@dataclass(frozen=True)
class BudgetStatus:
    """Where one tag stands against its budget at one moment (what the alerts and ``budget list`` show)."""

    tag: str
    budget: Budget
    spent_usd: float
    burn_rate_usd_per_hour: float | None
    period_start: float | None
    projected_cost_usd: float | None = None
    """The tag's spend in the period when the job completes, from its forecast; None without one."""

    @property
    def spent_pct(self) -> float:
        return 100.0 * self.spent_usd / self.budget.cap_usd

    @property
    def exceeded(self) -> bool:
        return self.spent_usd >= self.budget.cap_usd

    @property
    def seconds_to_cap(self) -> float | None:
        """At the burn rate now; 0 once exceeded; None when not burning (or absurdly far)."""
        if self.exceeded:
            return 0.0
        burn = self.burn_rate_usd_per_hour or 0.0
        if burn <= 0:
            return None
        seconds = (self.budget.cap_usd - self.spent_usd) / burn * 3600.0
        return seconds if math.isfinite(seconds) else None

    @property
    def projected_over_usd(self) -> float | None:
        """By how much the forecast says the period's spend will pass the cap (negative: under it)."""
        if self.projected_cost_usd is None:
            return None
        return self.projected_cost_usd - self.budget.cap_usd

    def data(self, wall: float) -> dict:
        """The figures behind a budget alert (its ``data``)."""
        to_cap = self.seconds_to_cap
        return {
            "cap_usd": self.budget.cap_usd,
            "spent_usd": self.spent_usd,
            "spent_pct": self.spent_pct,
            "burn_rate_usd_per_hour": self.burn_rate_usd_per_hour or 0.0,
            "projected_seconds_to_cap": to_cap,
            "projected_cap_at": wall + to_cap if to_cap is not None else None,
            "budget_tag": self.budget.tag,
            "period": self.budget.period,
            "period_start": self.period_start,
        }


def budget_statuses(book: BudgetBook, wall: float, by_tag: Mapping[str, Mapping[str, Any]]) -> list[BudgetStatus]:
    """Where each budgeted tag stands at ``wall`` (no side effect: the live view's budgets read this too).

    The budgets' own tags first, in the order they were given, then the jobs a glob holds (in ``by_tag``'s order).

    Args:
        by_tag: this session's jobs, ``JobTotals.to_json()`` dicts by tag.
    """
    tags = dict.fromkeys([b.tag for b in book.budgets if not b.is_glob or b.tag in by_tag] + list(by_tag))
    starts = {b.period: period_start(b.period, wall) for b in book.budgets}  # once per tick, not per tag
    out = []
    for tag in tags:
        budget = book.budget_for(tag)
        if budget is None:
            continue
        job = by_tag.get(tag)
        cost = float(job.get("cost_usd") or 0.0) if job else 0.0
        start = starts[budget.period]
        spent = book.spent(budget, tag, cost, wall, start)
        raw = job.get("projected_cost_usd") if job else None
        burn = float(job.get("burn_rate_usd_per_hour") or 0.0) if job else 0.0
        projected = spent - cost + float(raw) if raw is not None else None
        out.append(BudgetStatus(tag, budget, spent, burn, start, projected))
    return out
