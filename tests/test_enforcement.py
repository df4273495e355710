"""Budget enforcement with real child processes: SIGINT first, SIGTERM after the grace period, never another
user's process, and a record for every signal."""

from __future__ import annotations

import io
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import psutil
import pytest

from gputab.alerts.observer import ENFORCEMENT, AlertEngine, AlertObserver
from gputab.budgets.enforcement import (
    FAILED,
    GONE,
    REFUSED,
    SENT,
    BudgetEnforcer,
    ProcessIdentity,
    identify,
    may_signal,
)
from gputab.budgets.model import Budget
from gputab.sampling.snapshot import Snapshot

# Traps SIGINT and keeps going (a job that ignores the polite request), reports SIGTERM and exits.
STUBBORN = """
import os, signal, sys, time
def on_int(signum, frame):
    os.write(1, b"INT\\n")
def on_term(signum, frame):
    os.write(1, b"TERM\\n")
    sys.exit(0)
signal.signal(signal.SIGINT, on_int)
signal.signal(signal.SIGTERM, on_term)
os.write(1, b"ready\\n")
for _ in range(600):
    time.sleep(0.05)
"""

# Checkpoints and exits on SIGINT, like a training loop catching KeyboardInterrupt. Raw os.write: a signal that
# lands inside print() would make the handler's own print a reentrant call on the same buffer.
POLITE = """
import os, time
try:
    os.write(1, b"ready\\n")
    time.sleep(30)
except KeyboardInterrupt:
    os.write(1, b"checkpointed\\n")
"""

# The same contract in sh, for a child that runs as another user (who cannot read this test's interpreter).
STUBBORN_SH = (
    'trap "echo INT" INT; trap "echo TERM; exit 0" TERM; echo ready; i=0; '
    "while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"
)


def read_line(proc: subprocess.Popen, timeout: float = 20.0) -> str | None:
    """The child's next stdout line, or None if it says nothing within ``timeout``."""
    # stdout is unbuffered (bufsize=0), so select() sees every byte that a buffered reader could have hidden.
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().decode().strip() if ready else None


@pytest.fixture
def spawn():
    procs: list[subprocess.Popen] = []

    def start(argv, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, bufsize=0, **kwargs)
        procs.append(proc)
        assert read_line(proc) == "ready"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)


def python_child(spawn, code):
    return spawn([sys.executable, "-I", "-c", code])


def ident(proc) -> tuple[int, float]:
    return proc.pid, psutil.Process(proc.pid).create_time()


class RecordingKill:
    """os.kill that remembers what it sent."""

    def __init__(self):
        self.sent: list[tuple[int, int]] = []

    def __call__(self, pid, sig):
        self.sent.append((pid, sig))
        os.kill(pid, sig)


def test_sigint_then_sigterm_after_the_grace_period(spawn):
    child = python_child(spawn, STUBBORN)
    enf = BudgetEnforcer(grace_seconds=30.0)
    (act,) = enf.stop("train", [ident(child)], now=100.0, wall=5000.0)
    assert (act.pid, act.signal, act.outcome, act.tag, act.at) == (child.pid, "SIGINT", SENT, "train", 5000.0)
    assert act.uid == os.getuid()
    assert read_line(child) == "INT"
    assert enf.pending == [child.pid]
    # Inside the grace period nothing more is sent; the job is still running.
    assert enf.tick(now=129.9, wall=5029.9) == []
    assert read_line(child, timeout=0.2) is None and child.poll() is None
    (term,) = enf.tick(now=130.0, wall=5030.0)
    assert (term.signal, term.outcome, term.pid) == ("SIGTERM", SENT, child.pid)
    assert read_line(child) == "TERM"
    assert child.wait(timeout=5) == 0
    assert enf.pending == [] and enf.tick(now=200.0, wall=5100.0) == []


def test_a_job_that_checkpoints_and_exits_gets_no_sigterm(spawn):
    child = python_child(spawn, POLITE)
    kill = RecordingKill()
    enf = BudgetEnforcer(grace_seconds=5.0, signal_fn=kill)
    enf.stop("train", [ident(child)], now=0.0, wall=0.0)
    assert read_line(child) == "checkpointed"
    child.wait(timeout=5)
    (act,) = enf.tick(now=5.0, wall=5.0)
    assert act.outcome == GONE and act.signal == "SIGTERM" and "exited after SIGINT" in act.reason
    assert kill.sent == [(child.pid, signal.SIGINT)]


def test_one_record_per_signal_and_each_process_handled_once(spawn):
    a, b = python_child(spawn, STUBBORN), python_child(spawn, STUBBORN)
    kill = RecordingKill()
    enf = BudgetEnforcer(grace_seconds=1.0, signal_fn=kill)
    first = enf.stop("train", [ident(a), ident(b)], now=0.0, wall=0.0)
    # Called again every tick while the job is over its cap: nothing is sent twice.
    again = enf.stop("train", [ident(a), ident(b)], now=0.5, wall=0.5)
    later = enf.tick(now=1.0, wall=1.0)
    records = first + again + later
    assert [(r.pid, r.signal, r.outcome) for r in records] == [
        (a.pid, "SIGINT", SENT),
        (b.pid, "SIGINT", SENT),
        (a.pid, "SIGTERM", SENT),
        (b.pid, "SIGTERM", SENT),
    ]
    assert sorted(kill.sent) == sorted(
        [(a.pid, signal.SIGINT), (b.pid, signal.SIGINT), (a.pid, signal.SIGTERM), (b.pid, signal.SIGTERM)]
    )
    for child in (a, b):
        assert child.wait(timeout=5) == 0
    assert all(r.to_json()["tag"] == "train" for r in records)


def test_another_users_process_is_refused_and_never_signalled(spawn):
    """The uid check alone: a real child of ours presented as owned by uid 4242."""
    child = python_child(spawn, STUBBORN)
    kill = RecordingKill()
    real = identify(child.pid)
    foreign = ProcessIdentity(child.pid, (4242, 4242, 4242), real.create_time)
    enf = BudgetEnforcer(grace_seconds=0.0, uid=1000, signal_fn=kill, identify_fn=lambda pid: foreign)
    (act,) = enf.stop("train", [ident(child)], now=0.0, wall=0.0)
    assert act.outcome == REFUSED and "uid 4242" in act.reason and act.uid == 4242
    assert enf.tick(now=10.0, wall=10.0) == []
    assert kill.sent == []
    assert read_line(child, timeout=0.3) is None and child.poll() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a process as another user")
def test_real_process_of_another_user_is_never_signalled(spawn):
    """As root: one child runs as nobody, one as root; the enforcer acts for nobody's uid and spares root's."""
    nobody = 65534
    theirs = spawn(["/bin/sh", "-c", STUBBORN_SH], user=nobody, group=nobody, cwd="/")
    mine = spawn(["/bin/sh", "-c", STUBBORN_SH], cwd="/")
    assert identify(theirs.pid).uids[0] == nobody and identify(mine.pid).uids[0] == 0
    kill = RecordingKill()
    enf = BudgetEnforcer(grace_seconds=0.5, uid=nobody, signal_fn=kill)
    acts = enf.stop("shared", [ident(theirs), ident(mine)], now=0.0, wall=0.0)
    assert [(a.pid, a.outcome) for a in acts] == [(theirs.pid, SENT), (mine.pid, REFUSED)]
    assert read_line(theirs) == "INT"
    acts = enf.tick(now=0.5, wall=0.5)
    assert [(a.pid, a.signal, a.outcome) for a in acts] == [(theirs.pid, "SIGTERM", SENT)]
    assert read_line(theirs) == "TERM"
    assert all(pid == theirs.pid for pid, _ in kill.sent)
    assert read_line(mine, timeout=0.3) is None and mine.poll() is None


def test_may_signal_is_same_uid_or_root():
    p = ProcessIdentity(1, (1000, 1000, 1000), 0.0)
    assert may_signal(1000, p) and may_signal(0, p)
    assert not may_signal(1001, p)
    assert may_signal(1001, ProcessIdentity(1, (1000, 0, 1001), 0.0))  # saved uid matches, as the kernel allows
    assert not may_signal(1000, ProcessIdentity(1, (), float("nan")))  # unreadable owner: not ours


def test_reused_pid_is_not_signalled(spawn):
    child = python_child(spawn, STUBBORN)
    kill = RecordingKill()
    enf = BudgetEnforcer(signal_fn=kill)
    pid, created = ident(child)
    (act,) = enf.stop("train", [(pid, created - 3600.0)], now=0.0, wall=0.0)
    assert act.outcome == GONE and "another process" in act.reason
    assert kill.sent == [] and read_line(child, timeout=0.2) is None


def test_never_signals_itself_its_parent_init_or_a_process_group():
    kill = RecordingKill()
    enf = BudgetEnforcer(signal_fn=kill)
    pids = [os.getpid(), os.getppid(), 1, 0]
    acts = enf.stop("train", [(pid, None) for pid in pids], 0.0, 0.0)
    # one action a pid: a test run whose parent has exited has init as its parent (getppid() == 1)
    assert [a.outcome for a in acts] == [REFUSED] * len(set(pids))
    assert kill.sent == []


def test_exited_process_and_failed_signal_are_recorded():
    def deny(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    me = identify(os.getpid())
    enf = BudgetEnforcer(
        signal_fn=deny, identify_fn=lambda pid: None if pid == 999_999 else ProcessIdentity(pid, me.uids, 0.0)
    )
    acts = enf.stop("train", [(999_999, None), (4242, None)], 0.0, 0.0)
    assert [(a.outcome, a.reason) for a in acts] == [
        (GONE, "process already exited"),
        (FAILED, "SIGINT failed: Operation not permitted"),
    ]
    assert enf.pending == []


def test_enforcer_only_stops_the_tags_it_was_given():
    enf = BudgetEnforcer(tags=["mine"], signal_fn=RecordingKill())
    assert enf.covers("mine") and not enf.covers("yours")
    assert enf.stop("yours", [(os.getpid(), None)], 0.0, 0.0) == []
    with pytest.raises(ValueError):
        BudgetEnforcer(grace_seconds=-1)


@dataclass(frozen=True)
class Proc:
    tag: str
    create_time: float | None


@dataclass(frozen=True)
class Tick:
    snapshot: Snapshot
    jobs: list
    processes: dict
    intervals: list = field(default_factory=list)


def test_alert_observer_stops_a_job_at_its_cap_end_to_end(spawn):
    """Budget exceeded -> SIGINT through the observer; ticks past the grace period -> SIGTERM; all recorded."""
    child = python_child(spawn, STUBBORN)
    bystander = python_child(spawn, STUBBORN)
    stored = []
    obs = AlertObserver(
        AlertEngine(budgets=[Budget("train", 5.0, stop=True, grace_seconds=10.0)]),
        sink=stored.append,
        enforcer=BudgetEnforcer(grace_seconds=10.0, tags=["train"]),
    )
    pid, created = ident(child)
    procs = {pid: Proc("train", created), bystander.pid: Proc("eval", ident(bystander)[1])}

    def tick(t, cost):
        job = {"tag": "train", "cost_usd": cost, "burn_rate_usd_per_hour": 36.0}
        obs.on_tick(Tick(Snapshot(mono=t, wall=1000.0 + t), [job], procs))

    tick(1.0, 3.0)
    assert stored == []
    tick(2.0, 5.01)
    assert read_line(child) == "INT"
    tick(11.0, 5.1)
    assert read_line(child, timeout=0.2) is None
    tick(12.0, 5.2)
    assert read_line(child) == "TERM" and child.wait(timeout=5) == 0
    kinds = [(a.kind, a.data.get("signal")) for a in stored]
    assert kinds == [("budget_exceeded", None), (ENFORCEMENT, "SIGINT"), (ENFORCEMENT, "SIGTERM")]
    assert stored[1].started_at == 1002.0 and stored[2].started_at == 1012.0
    assert read_line(bystander, timeout=0.2) is None and bystander.poll() is None


# A command that starts a worker, like torchrun: both trap SIGINT and report it, and exit on SIGTERM. The worker
# notes what it got in a file (argv[1]); its stdout is the launcher's.
WORKER = """
import os, signal, sys, time
def note(word):
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, word + b"\\n")
    os.close(fd)
def on_term(signum, frame):
    note(b"TERM")
    sys.exit(0)
signal.signal(signal.SIGINT, lambda signum, frame: note(b"INT"))
signal.signal(signal.SIGTERM, on_term)
note(b"ready")
for _ in range(600):
    time.sleep(0.05)
"""
LAUNCHER = (
    "import subprocess, sys\nsubprocess.Popen([sys.executable, '-I', '-c', sys.argv[1], sys.argv[2]])\n" + STUBBORN
)


def test_job_guard_stops_the_command_and_its_children_of_gputab_run(spawn, tmp_path):
    from gputab.recording.run_watch import JobGuard, process_tree

    worker_log = tmp_path / "worker.log"
    launcher = spawn([sys.executable, "-I", "-c", LAUNCHER, WORKER, str(worker_log)])
    deadline = time.monotonic() + 10
    while not worker_log.exists() or b"ready" not in worker_log.read_bytes():
        assert time.monotonic() < deadline, "the launcher's worker never started"
        time.sleep(0.02)
    tree = process_tree(launcher.pid)
    assert tree[0][0] == launcher.pid and len(tree) == 2
    clock, out, stored = [0.0], io.StringIO(), []
    guard = JobGuard(
        "train",
        10.0,
        stop_at_cap=True,
        grace_seconds=30.0,
        stream=out,
        sink=stored.append,
        clock=lambda: clock[0],
        wall_clock=lambda: 1000.0 + clock[0],
    )
    guard.check(
        launcher.pid,
        [{"tag": "train", "cost_usd": 8.5, "burn_rate_usd_per_hour": 3.0}, {"tag": "someone-else", "cost_usd": 99.0}],
    )
    assert [a.kind for a in stored] == ["budget_warning"]
    clock[0] = 1.0
    guard.check(launcher.pid, [{"tag": "train", "cost_usd": 10.0, "burn_rate_usd_per_hour": 3.0}])
    assert read_line(launcher) == "INT"
    deadline = time.monotonic() + 5
    while b"INT" not in worker_log.read_bytes():
        assert time.monotonic() < deadline, "the worker never got SIGINT"
        time.sleep(0.02)
    clock[0] = 20.0
    guard.check(launcher.pid, None)  # no recorder answering: the stop goes on regardless
    assert read_line(launcher, timeout=0.2) is None
    clock[0] = 31.0
    guard.check(launcher.pid, None)
    assert read_line(launcher) == "TERM" and launcher.wait(timeout=5) == 0
    guard.close()
    signals = [(a.data["pid"], a.data["signal"], a.data["outcome"]) for a in stored if a.kind == ENFORCEMENT]
    assert sorted(signals) == sorted([(pid, sig, SENT) for pid, _ in tree for sig in ("SIGINT", "SIGTERM")])
    assert "budget exceeded" in out.getvalue() and out.getvalue().count("STOP") == 4


def test_job_guard_without_stop_at_cap_only_warns(spawn):
    from gputab.recording.run_watch import JobGuard

    child = python_child(spawn, STUBBORN)
    out = io.StringIO()
    guard = JobGuard("train", 1.0, stream=out)
    guard.check(child.pid, [{"tag": "train", "cost_usd": 5.0, "burn_rate_usd_per_hour": 3.0}])
    assert "ALERT [critical] job train: budget exceeded" in out.getvalue() and guard.enforcer is None
    assert read_line(child, timeout=0.3) is None and child.poll() is None
