"""Stopping a job at its budget cap: opt-in (a budget's ``stop``, ``--stop-at-cap``), polite first, and only the
processes of the users the budget names.

Each process of the job gets SIGINT (a training loop can catch ``KeyboardInterrupt`` and checkpoint), then SIGTERM
after the grace if still running; :meth:`BudgetEnforcer.tick`, called from the recorder's loop, sends what is due.
A process is signalled only when its owner is one of the users the budget names (none named: the user running
gputab), that user may signal it (same uid, or root), and it is still the process seen on the GPU (same create
time: PIDs are reused). Every decision, sent or refused, comes back as an :class:`EnforcementAction` to record.
"""

from __future__ import annotations

import os
import pwd
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any

import psutil

from gputab.alert_command import AlertCommand
from gputab.alert_record import BUDGET_EXCEEDED
from gputab.alert_rules import AlertEngine
from gputab.alerts import AlertObserver
from gputab.budgets import Budget, PeriodKey, period_start
from gputab.config import Config
from gputab.ledger import Ledger
from gputab.sampling.snapshot import Snapshot

SENT = "sent"
REFUSED = "refused"
GONE = "gone"
FAILED = "failed"
CANCELLED = "cancelled"
"""A SIGTERM that was due when the budget's period ended: the new period's spend starts from zero."""

# psutil's create_time and the attributor's may be read a few milliseconds apart; a reused PID differs by far more.
_CREATE_TIME_SLACK = 0.5


@dataclass(frozen=True)
class ProcessIdentity:
    """Who owns a live process and when it started: what the permission and PID-reuse checks need."""

    pid: int
    uids: tuple[int, ...]
    """Real, effective and saved uid (the kernel lets a sender signal a target whose real or saved uid matches)."""
    create_time: float


@dataclass(frozen=True)
class EnforcementAction:
    """One signal sent, or deliberately not sent, to one process of a job over its cap.

    Attributes:
        at: wall time (Unix seconds).
        tag: the job.
        pid: the process.
        signal: ``SIGINT`` or ``SIGTERM``.
        outcome: ``sent``, ``refused`` (not ours to signal), ``gone`` (exited or PID reused) or ``failed``.
        reason: one line for a human.
        uid: the process's real uid when known.
    """

    at: float
    tag: str
    pid: int
    signal: str
    outcome: str
    reason: str
    uid: int | None = None

    def to_json(self) -> dict:
        return asdict(self)


def identify(pid: int) -> ProcessIdentity | None:
    """The owner and start time of ``pid``, or None when it does not exist (or cannot be read at all)."""
    try:
        p = psutil.Process(pid)
        uids = p.uids()
        return ProcessIdentity(pid, (uids.real, uids.effective, uids.saved), p.create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        # Without its uids we cannot prove it is ours; refusing is the safe answer, so report no owner.
        return ProcessIdentity(pid, (), float("nan"))


def may_signal(my_uid: int, target: ProcessIdentity) -> bool:
    """Whether a user with effective uid ``my_uid`` may signal ``target``: root, or a real/saved uid match."""
    if my_uid == 0:
        return True
    if len(target.uids) < 3:
        return False
    real, _effective, saved = target.uids
    return my_uid in (real, saved)


@dataclass
class _Target:
    tag: str
    pid: int
    create_time: float | None
    interrupted_at: float
    grace_seconds: float
    period: PeriodKey | None = None
    """The budget period in which it got SIGINT (None: a budget that never starts again)."""


def _period(budget: Budget | None, wall: float) -> PeriodKey | None:
    """The budget's period holding ``wall``, or None for none (``total``, or no budget: ``gputab run``'s own)."""
    if budget is None or budget.period == "total":
        return None
    return budget.period, period_start(budget.period, wall)


def user_uids(names: Iterable[str]) -> dict[int, str]:
    """uid -> login name of each user ``names`` names that exists on this machine (others match no process)."""
    out = {}
    for name in names:
        try:
            out[pwd.getpwnam(name).pw_uid] = name
        except KeyError:
            continue
    return out


def user_name(uid: int | None) -> str:
    """``alice (uid 1000)``, or ``uid 1234`` for a uid with no login name."""
    if uid is None:
        return "an unknown user"
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


class BudgetEnforcer:
    """SIGINT now, SIGTERM after ``grace_seconds``, for the processes of jobs that hit their cap.

    Args:
        grace_seconds: time a job has to checkpoint and exit after SIGINT.
        tags: the jobs this enforcer may stop (None: every job with a budget). ``gputab run --stop-at-cap``
            passes just its own tag.
        uid: the effective uid whose permissions apply (default: this process's).
        signal_fn: ``os.kill``; tests pass a recorder.
        identify_fn: ``pid -> ProcessIdentity | None``; tests pass a fake.
    """

    def __init__(
        self,
        grace_seconds: float = 30.0,
        tags: Iterable[str] | None = None,
        uid: int | None = None,
        signal_fn: Callable[[int, int], None] = os.kill,
        identify_fn: Callable[[int], ProcessIdentity | None] = identify,
    ) -> None:
        if grace_seconds < 0:
            raise ValueError(f"grace period must not be negative, got {grace_seconds}")
        self.grace_seconds = grace_seconds
        self.tags = None if tags is None else frozenset(tags)
        self.uid = os.geteuid() if uid is None else uid
        self._kill = signal_fn
        self._identify = identify_fn
        self._pending: dict[int, _Target] = {}
        self._stopped: set[str] = set()
        # Each process is handled once per budget period: one SIGINT, at most one SIGTERM, then it is the user's
        # business until the period ends. (pid, create time) -> the period it got its SIGINT in.
        self._handled: dict[tuple[int, float | None], PeriodKey | None] = {}

    def covers(self, tag: str) -> bool:
        """Whether this enforcer is allowed to stop ``tag``."""
        return self.tags is None or tag in self.tags

    @property
    def pending(self) -> list[int]:
        """PIDs that got SIGINT and will get SIGTERM when their grace period ends (unless they exit)."""
        return sorted(self._pending)

    def stop(
        self,
        tag: str,
        processes: Iterable[tuple[int, float | None]],
        now: float,
        wall: float,
        budget: Budget | None = None,
    ) -> list[EnforcementAction]:
        """Send SIGINT to the job's processes; the SIGTERMs follow from :meth:`tick`.

        Args:
            tag: the job over its cap.
            processes: ``(pid, create_time)`` of each process the attributor put in the job; ``create_time``
                None skips the PID-reuse check.
            now: monotonic time (the grace period is measured on it).
            wall: wall time, stamped on the records.
            budget: the budget it is over: its ``grace_seconds`` and ``users`` (whose processes may be signalled;
                none named: only this user's). None: this enforcer's grace, this user's processes.

        Returns:
            One action per process (sent, refused, gone or failed). A process already handled in the budget's
            current period is skipped, so calling this every tick signals only processes that joined the job
            later; in a later period (a new day of a daily budget) the job is over a new cap, and each process is
            handled again.
        """
        if not self.covers(tag):
            return []
        self._stopped.add(tag)
        grace = self.grace_seconds if budget is None else budget.grace_seconds
        named = user_uids(budget.users) if budget is not None and budget.users else None
        period = _period(budget, wall)
        out = []
        for pid, create_time in processes:
            key = (pid, create_time)
            if key in self._handled and self._handled[key] == period:
                continue
            self._handled[key] = period
            action = self._signal(tag, pid, create_time, signal.SIGINT, wall, grace, named, budget)
            out.append(action)
            if action.outcome == SENT:
                self._pending[pid] = _Target(tag, pid, create_time, now, grace, period)
        return out

    def stopping(self, tag: str) -> bool:
        """Whether :meth:`stop` was called for ``tag`` (the observer uses it to signal late-comers only)."""
        return tag in self._stopped

    def tick(self, now: float, wall: float) -> list[EnforcementAction]:
        """Send SIGTERM to the processes whose grace period is over; forget the ones that exited.

        A SIGTERM whose budget period ended before it was due is cancelled (and recorded): the job's spend starts
        again from zero in the new period, so it is under its cap there.
        """
        out = []
        for pid, target in list(self._pending.items()):
            period = target.period
            ended = period is not None and period_start(period[0], wall) != period[1]
            if not ended and now - target.interrupted_at < target.grace_seconds:
                continue
            del self._pending[pid]
            if period is not None and ended:
                why = f"a new {period[0]} began before it was due: the job's spend starts again from zero"
                out.append(EnforcementAction(wall, target.tag, pid, signal.SIGTERM.name, CANCELLED, why))
                continue
            out.append(self._signal(target.tag, pid, target.create_time, signal.SIGTERM, wall, target.grace_seconds))
        return out

    def _signal(
        self,
        tag: str,
        pid: int,
        create_time: float | None,
        sig: signal.Signals,
        wall: float,
        grace: float,
        named: Mapping[int, str] | None = None,
        budget: Budget | None = None,
    ) -> EnforcementAction:
        name = sig.name
        gone = "exited after SIGINT, no SIGTERM needed" if sig == signal.SIGTERM else "process already exited"

        def record(outcome: str, reason: str, uid: int | None = None) -> EnforcementAction:
            return EnforcementAction(wall, tag, pid, name, outcome, reason, uid)

        if pid in (os.getpid(), os.getppid()) or pid <= 1:
            return record(REFUSED, "never signals gputab itself, its parent or init")
        who = self._identify(pid)
        if who is None:
            return record(GONE, gone)
        uid = who.uids[0] if who.uids else None
        if create_time is not None and not abs(who.create_time - create_time) <= _CREATE_TIME_SLACK:
            # NaN (unreadable) also lands here: a process we cannot identify is not signalled.
            return record(GONE, "PID now belongs to another process", uid)
        if sig == signal.SIGINT and named is not None and uid not in named:
            users = ", ".join(budget.users) if budget is not None else ""
            return record(REFUSED, f"owned by {user_name(uid)}, not a user the budget names ({users})", uid)
        if sig == signal.SIGINT and named is None and uid != self.uid:
            return record(REFUSED, f"owned by {user_name(uid)}, not by {user_name(self.uid)}", uid)
        if not may_signal(self.uid, who):
            return record(REFUSED, f"owned by {user_name(uid)}, not by {user_name(self.uid)}", uid)
        try:
            self._kill(pid, sig)
        except ProcessLookupError:
            return record(GONE, gone, uid)
        except OSError as exc:
            return record(FAILED, f"{name} failed: {exc.strerror or exc}", uid)
        if sig == signal.SIGINT:
            reason = f"budget cap reached: SIGINT so it can checkpoint; SIGTERM in {grace:g}s"
        else:
            reason = f"still running {grace:g}s after SIGINT"
        return record(SENT, reason, uid)


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
                return abs(created - root[1]) <= _CREATE_TIME_SLACK
            parent = p.parent()
            if parent is not None and parent.create_time() > created + _CREATE_TIME_SLACK:
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
        if known is not None and abs(known - key[1]) <= _CREATE_TIME_SLACK:
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
                if key is not None and abs(key[1] - ct) <= _CREATE_TIME_SLACK:
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
