"""What ``gputab run`` watches by itself: which processes are the run's (its command and every descendant), what
they cost on the GPUs, and the guard that holds them to the run's budget (alerts, and stopping them at the cap
through :class:`gputab.budgets.enforcement.BudgetEnforcer`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import psutil

from gputab.alerts.command import AlertCommand
from gputab.alerts.observer import AlertObserver
from gputab.alerts.record import BUDGET_EXCEEDED
from gputab.alerts.rules import AlertEngine
from gputab.budgets.enforcement import CREATE_TIME_SLACK, BudgetEnforcer
from gputab.budgets.model import Budget
from gputab.config.settings import Config
from gputab.cost.ledger import Ledger
from gputab.sampling.snapshot import Snapshot


def process_tree(root_pid: int) -> list[tuple[int, float]]:
    """``(pid, create_time)`` of ``root_pid`` and all its descendants (those still alive), root first."""
    try:
        root = psutil.Process(root_pid)
        procs = [root] + root.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []
    out = []
    for p in procs:
        try:
            out.append((p.pid, p.create_time()))
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return out


OUTSIDE = "(outside this run)"
"""The ledger bucket of :class:`RunCost` for every GPU process that is not the run's, whatever its tag."""

# Deeper than any real launcher chain; a bound, so a pathological /proc cannot keep the walk going.
_MAX_ANCESTRY = 64


def _key(pid: int) -> tuple[int, float] | None:
    try:
        return pid, psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None


def descends_from(pid: int, root: tuple[int, float]) -> bool:
    """Whether process ``pid`` is ``root`` (``(pid, create_time)``) or one of its descendants, by parent links.

    A parent that started after its child is not its parent (the PID was reused); the walk stops there.
    """
    try:
        p: psutil.Process | None = psutil.Process(pid)
        for _ in range(_MAX_ANCESTRY):
            if p is None or p.pid <= 1:
                return False
            created = p.create_time()
            if p.pid == root[0]:
                return abs(created - root[1]) <= CREATE_TIME_SLACK
            parent = p.parent()
            if parent is not None and parent.create_time() > created + CREATE_TIME_SLACK:
                return False
            p = parent
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False
    return False


class RunCost:
    """What the processes of one ``gputab run`` cost, measured by polling the GPUs itself.

    The run's processes are its command and every process whose parent links lead to it, checked when a process
    first appears on a GPU; once a member, a process stays one (a worker re-parented after its launcher exited is
    still the run's). Every other GPU process goes to :data:`OUTSIDE`, whatever tag it carries: another user who
    sets ``GPUTAB_TAG`` to the same name is charged where the recorder shows it, never to this run's budget.
    Prices, the cost model and the gap rule are the recorder's (same price table, same :class:`Ledger`).

    Args:
        backend: an open sampling backend (closed by the caller).
        prices: the price table in effect.
        tag: the run's tag (the name its figures carry).
        interval: seconds between :meth:`measure` calls.
        gap_factor: the recorder's gap rule.
    """

    def __init__(self, backend: Any, prices: Any, tag: str, interval: float = 1.0, gap_factor: float = 5.0) -> None:
        self.backend = backend
        self.tag = tag
        self.ledger = Ledger(prices, interval=interval, gap_factor=gap_factor)
        self.members: dict[int, float] = {}
        """PID -> create time of each process counted as the run's."""
        self._outside: set[tuple[int, float]] = set()
        self._root: tuple[int, float] | None = None

    def measure(self, root_pid: int) -> list[dict] | None:
        """Poll once, charge the interval, and return ``[figures of the run]`` (``JobTotals.to_json()``).

        Returns None when the poll failed (the budget then keeps its last state).
        """
        if self._root is None or self._root[0] != root_pid:
            self._root = _key(root_pid)
        try:
            snap = self.backend.poll()
        except Exception:  # noqa: BLE001 - a failed poll must not end the supervised command's run
            return None
        tags = {}
        for proc in snap.processes:
            tags[proc.pid] = self.tag if self._is_member(proc.pid) else OUTSIDE
        self.ledger.tick(snap, tags)
        return [self.ledger.job(self.tag).to_json()]

    def _is_member(self, pid: int) -> bool:
        key = _key(pid)
        if key is None:
            return False
        known = self.members.get(pid)
        if known is not None and abs(known - key[1]) <= CREATE_TIME_SLACK:
            return True
        if key in self._outside:
            return False
        if self._root is not None and descends_from(pid, self._root):
            self.members[pid] = key[1]
            return True
        # Parent links never change to lead into the run later, so the answer holds for this process's life.
        self._outside.add(key)
        return False


class JobGuard:
    """The budget of one job started by ``gputab run --budget``: alerts, and with ``--stop-at-cap`` the stop.

    ``gputab run`` calls :meth:`check` about once a second with its command's PID; with a ``meter``
    (:class:`RunCost`) the figures are what the run's own processes cost, so a process outside the run that
    carries the same tag never counts toward the cap. The job's processes are the command and its descendants
    (and any process the meter counted as the run's), so nothing outside the run is ever signalled. Alert lines, the alert
    command and the enforcement records go through an ``AlertObserver``, exactly as in ``gputab record``.

    Args:
        tag: the job.
        cap_usd: its budget in dollars.
        stop_at_cap: signal the job when it reaches the cap.
        grace_seconds: time between SIGINT and SIGTERM.
        config: the config (``[alerts]`` thresholds and command); defaults when None.
        stream: where alert and enforcement lines go (``run`` passes stderr: stdout belongs to the command).
        sink: receives every alert and enforcement record.
        clock, wall_clock: monotonic and Unix time.
        meter: a :class:`RunCost`; when given, :meth:`check` measures instead of taking figures.
    """

    def __init__(
        self,
        tag: str,
        cap_usd: float,
        stop_at_cap: bool = False,
        grace_seconds: float = 30.0,
        config: Any = None,
        stream: Any = None,
        sink: Callable[[Any], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        meter: RunCost | None = None,
    ) -> None:
        config = config or Config()
        budget = Budget(tag, cap_usd, stop=stop_at_cap, grace_seconds=grace_seconds, origin="run")
        engine = AlertEngine(config.alerts, [budget])
        command = AlertCommand(config.alerts.command) if config.alerts.command else None
        self.enforcer = BudgetEnforcer(grace_seconds, tags=[tag]) if stop_at_cap else None
        self.observer = AlertObserver(engine, stream=stream, sink=sink, command=command, enforcer=self.enforcer)
        self.tag = tag
        self._clock = clock
        self._wall = wall_clock
        self.meter = meter
        self._jobs: tuple[dict, ...] = ()

    def check(self, root_pid: int, jobs: Iterable[Mapping[str, Any]] | None = None) -> None:
        """Evaluate the budget with the latest figures and send any signal that is due.

        Args:
            root_pid: the PID of the command ``gputab run`` started.
            jobs: ``JobTotals.to_json()``-shaped dicts (only ``tag``, ``cost_usd`` and ``burn_rate_usd_per_hour``
                are read), or None when there is no new reading: the budget then keeps its last state, and
                signals already scheduled are still sent. Ignored with a meter, which measures instead.
        """
        if self.meter is not None:
            jobs = self.meter.measure(root_pid)
        if jobs is not None:
            self._jobs = tuple(dict(j) for j in jobs if j.get("tag") == self.tag)
        engine = self.observer.engine
        # Walking the process tree costs a little: only when the cap is (or is about to be) reached.
        over = any(a.kind == BUDGET_EXCEEDED for a in engine.active) or any(
            float(j.get("cost_usd") or 0.0) >= engine.budgets[self.tag] for j in self._jobs
        )
        members = process_tree(root_pid) if self.enforcer is not None and over else []
        if members and self.meter is not None:
            # Processes the run started that were re-parented since are still the run's to stop (those alive).
            in_tree = {pid for pid, _ in members}
            for pid, ct in self.meter.members.items():
                key = _key(pid) if pid not in in_tree else None
                if key is not None and abs(key[1] - ct) <= CREATE_TIME_SLACK:
                    members.append(key)
        procs = MappingProxyType({pid: _Member(self.tag, ct) for pid, ct in members})
        self.observer.on_tick(_GuardTick(Snapshot(mono=self._clock(), wall=self._wall()), (), self._jobs, procs))

    def close(self) -> None:
        self.observer.close()


@dataclass(frozen=True)
class _Member:
    tag: str
    create_time: float | None


@dataclass(frozen=True)
class _GuardTick:
    """The part of a recorder tick the alert observer reads."""

    snapshot: Any
    intervals: tuple
    jobs: tuple
    processes: Mapping[int, _Member]
