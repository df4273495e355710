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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

import psutil

from gputab.budgets.model import Budget, PeriodKey, period_start

SENT = "sent"
REFUSED = "refused"
GONE = "gone"
FAILED = "failed"
CANCELLED = "cancelled"
"""A SIGTERM that was due when the budget's period ended: the new period's spend starts from zero."""

# psutil's create_time and the attributor's may be read a few milliseconds apart; a reused PID differs by far more.
CREATE_TIME_SLACK = 0.5


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
        if create_time is not None and not abs(who.create_time - create_time) <= CREATE_TIME_SLACK:
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
