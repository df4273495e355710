"""What an alert is: its kind, severity and one line of text, and the words figures are written in.

The record every alert rule produces (:mod:`gputab.alerts.observer` for the GPU and job rules, :mod:`gputab.budgets.model` for the
budget rules), the store keeps, and the TUI, ``gputab record`` and the Prometheus exporter show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gputab.money import usd

LOW_UTILIZATION = "low_utilization"
MEMORY_PRESSURE = "memory_pressure"
IDLE_MONEY = "idle_money"
BUDGET_WARNING = "budget_warning"
BUDGET_EXCEEDED = "budget_exceeded"
BUDGET_PROJECTED = "budget_projected"
"""The job's forecast says it will exceed its cap at completion (docs/forecast.md)."""
WASTE = "waste"
"""A job wasted more than ``waste_pct`` % of its cost over the window (README "Alerts")."""
KINDS = (LOW_UTILIZATION, MEMORY_PRESSURE, IDLE_MONEY, BUDGET_WARNING, BUDGET_EXCEEDED, BUDGET_PROJECTED, WASTE)

WARNING = "warning"
CRITICAL = "critical"
SEVERITIES = (WARNING, CRITICAL)


@dataclass(frozen=True)
class Alert:
    """One alert, raised once and cleared at most once. A cleared alert is the same record with ``ended_at`` set.

    Attributes:
        kind: one of :data:`KINDS`.
        severity: ``warning`` or ``critical``.
        message: one line for a human.
        started_at: wall time (Unix seconds) at which it was raised.
        tag: the job it is about (job rules), else None.
        gpu: the GPU index it is about (GPU rules), else None.
        data: the figures behind it (JSON-safe), e.g. ``projected_seconds_to_cap`` for budgets.
        ended_at: wall time at which it cleared, None while active.
    """

    kind: str
    severity: str
    message: str
    started_at: float
    tag: str | None = None
    gpu: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict, compare=False)
    ended_at: float | None = None

    @property
    def key(self) -> tuple[str, str | None, int | None]:
        """Identity of the condition: at most one active alert per key."""
        return (self.kind, self.tag, self.gpu)

    @property
    def active(self) -> bool:
        return self.ended_at is None

    @property
    def subject(self) -> str:
        """What it is about, as one string: the tag, ``gpu N``, or ``host``."""
        if self.tag is not None:
            return self.tag
        return f"gpu {self.gpu}" if self.gpu is not None else "host"

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "subject": self.subject,
            "tag": self.tag,
            "gpu": self.gpu,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "data": dict(self.data),
        }


@dataclass(frozen=True)
class AlertChanges:
    """What one tick changed: alerts newly raised and alerts that cleared."""

    raised: tuple[Alert, ...] = ()
    cleared: tuple[Alert, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.raised or self.cleared)


def format_duration(seconds: float) -> str:
    """``3h05m``, ``12m``, ``45s``: short enough for one alert line (``a very long time`` past 100 years)."""
    if not seconds < 100 * 365 * 86400.0:  # inf and nan too: int() of them raises
        return "a very long time"
    s = max(0, int(round(seconds)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m"
    return f"{s}s"


def format_money(dollars: float) -> str:
    """``$1,234.50``, ``$0.40``, ``$0.00312``: at least three significant digits (:func:`gputab.money.usd`)."""
    return usd(dollars)
