"""Alerts in the recorder: the adapter that plugs the rules into the ticks (:class:`AlertObserver`).

The rules themselves are in :mod:`gputab.alerts.rules` (:class:`AlertEngine`, pure), the budget rules in
:mod:`gputab.budgets.model`, the alert record in :mod:`gputab.alerts.record`. The observer prints what is raised, hands
every change to a sink that stores it, runs the user's alert command, and asks the budget enforcer to stop a job at
its cap. The rules and the record are imported from here too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

from gputab.alerts.command import AlertCommand
from gputab.alerts.record import (  # noqa: F401 - the record and its kinds are imported from here too
    BUDGET_EXCEEDED,
    BUDGET_PROJECTED,
    BUDGET_WARNING,
    CRITICAL,
    IDLE_MONEY,
    KINDS,
    LOW_UTILIZATION,
    MEMORY_PRESSURE,
    SEVERITIES,
    WARNING,
    WASTE,
    Alert,
    AlertChanges,
    format_duration,
    format_money,
)
from gputab.alerts.rules import AlertEngine as AlertEngine
from gputab.alerts.rules import RollingSums as RollingSums
from gputab.budgets.model import Budget, BudgetBook, as_budgets, from_config, merge

# -- the observer: alerts leave the engine here ---------------------------------------------------------------

ENFORCEMENT = "budget_enforcement"
"""Kind of the records that note a signal sent (or refused) at a budget cap: events, raised and ended at once."""


class AlertObserver:
    """Plugs the :class:`AlertEngine` into the recorder's ticks.

    Each tick it feeds the engine, prints raised and cleared alerts to ``stream`` (``gputab record``), hands every
    change to ``sink`` (the store), runs the alert command for raised alerts, and, with an enforcer, stops jobs at
    their cap; each enforcement action reaches ``sink`` as an :data:`ENFORCEMENT` record.

    Args:
        engine: the rules.
        stream: where alert lines are printed (None: nowhere).
        sink: called with every raised, cleared or enforcement :class:`Alert`.
        command: the alert command (``[alerts] command``), or None.
        enforcer: a ``gputab.budgets.enforcement.BudgetEnforcer``: it stops the jobs over a cap whose budget says ``stop``
            (the recorder's BudgetKeeper gives one to the observer when a budget does; ``run --stop-at-cap``).
    """

    def __init__(
        self,
        engine: AlertEngine,
        stream: IO[str] | None = None,
        sink: Callable[[Alert], object] | None = None,
        command: AlertCommand | None = None,
        enforcer: Any = None,
    ) -> None:
        self.engine = engine
        self.stream = stream
        self.sink = sink
        self.command = command
        self.enforcer = enforcer

    @classmethod
    def from_config(
        cls,
        config: Any,
        budgets: Mapping[str, float] | Iterable[Budget] | None = None,
        backend: Any = None,
        **kwargs: Any,
    ) -> AlertObserver:
        """Build from the whole config: ``[alerts]``, ``[budgets]`` overlaid with ``budgets`` (the CLI's).

        ``backend`` may adjust ``[alerts]`` (the demo box compresses time: ``DemoBackend.alerts_config``).
        """
        layers = merge(from_config(config), as_budgets(budgets, origin="run"))
        command = AlertCommand(config.alerts.command) if config.alerts.command else None
        observer = cls(AlertEngine(config.alerts, layers), command=command, **kwargs)
        observer.adapt_to(backend)
        return observer

    def adapt_to(self, backend: Any) -> None:
        """Take the backend's adjustment of the thresholds, if it has one; call before the first tick."""
        adjust = getattr(backend, "alerts_config", None)
        if callable(adjust):
            self.engine.config = adjust(self.engine.config)

    @property
    def active(self) -> list[Alert]:
        return self.engine.active

    @property
    def budget_book(self) -> BudgetBook:
        """The engine's budgets and carried spend (the recorder's BudgetKeeper keeps it current)."""
        return self.engine.book

    def on_tick(self, tick: Any) -> None:
        snap = tick.snapshot
        changes = self.engine.update(snap.wall, snap.gpus, tick.intervals, tick.jobs, mono=snap.mono)
        # Clears first: a budget warning gives way to "exceeded" in that order.
        for alert in changes.cleared:
            self._emit(alert, "cleared")
        for alert in changes.raised:
            self._emit(alert, "ALERT")
            if self.command is not None:
                problem = self.command.run(alert.to_json())
                if problem:
                    self._say(problem)
        if self.command is not None and not changes.raised:
            for problem in self.command.reap():
                self._say(problem)
        if self.enforcer is not None:
            self._enforce(tick, snap.mono, snap.wall)

    def _enforce(self, tick: Any, mono: float, wall: float) -> None:
        """Stop the jobs over a cap whose budget says ``stop`` (opt-in), with that budget's grace and users."""
        actions = []
        for a in self.engine.active:
            budget = self.engine.book.budget_for(a.tag) if a.kind == BUDGET_EXCEEDED and a.tag else None
            if budget is None or not budget.stop or not self.enforcer.covers(a.tag):
                continue
            procs = [(pid, getattr(i, "create_time", None)) for pid, i in tick.processes.items() if i.tag == a.tag]
            actions += self.enforcer.stop(a.tag, procs, mono, wall, budget=budget)
        actions += self.enforcer.tick(mono, wall)
        for act in actions:
            severity = CRITICAL if act.outcome in ("sent", "failed") else WARNING
            record = Alert(
                ENFORCEMENT,
                severity,
                f"job {act.tag}: {act.signal} to pid {act.pid} {act.outcome}: {act.reason}",
                act.at,
                tag=act.tag,
                data=act.to_json(),
                ended_at=act.at,
            )
            self._emit(record, "STOP")

    def _emit(self, alert: Alert, label: str) -> None:
        if self.sink is not None:
            self.sink(alert)
        at = alert.started_at if label != "cleared" else alert.ended_at
        stamp = time.strftime("%H:%M:%S", time.localtime(at))
        self._say(f"{stamp} {label} [{alert.severity}] {alert.message}")

    def _say(self, line: str) -> None:
        if self.stream is not None:
            print(f"gputab: {line}", file=self.stream, flush=True)

    def close(self) -> None:
        """Wait briefly for alert commands still running, then kill them."""
        if self.command is not None:
            for problem in self.command.close():
                self._say(problem)
