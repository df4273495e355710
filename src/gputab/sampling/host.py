"""Facts about real host processes, read with psutil for the NVML backend.

NVML only gives PIDs. Attribution needs to know who a PID is (user, name, command line, environment, parent,
cgroup) to give it a tag; this module reads those facts and nothing else. It never raises for a process that
vanished or that it may not read: a vanished process is ``None``, an unreadable field is ``None`` or empty.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import psutil

from gputab.sampling.backend import ProcessFacts, ProcessInspector
from gputab.sampling.containers import PidVisibility
from gputab.sampling.snapshot import CpuSample

T = TypeVar("T")

CHILDREN_EVERY = 10.0
"""Where the kernel lacks /proc/PID/task/TID/children: seconds between scans of every /proc/PID/stat for the
process trees (dataloader workers come and go rarely); in between, only the known members of each tree are read."""
LARGE_TREE = 32
"""A process tree with more members than this is read again only every ``members / TREE_READS_PER_SECOND``
seconds (its figures stand in between): a job with 2,000 idle children must not cost the recorder a core."""
TREE_READS_PER_SECOND = 25.0
"""Members of one large tree read per second of polling, on average."""
START_TIMES_KEPT = 4096
"""Start times kept by :meth:`HostInspector.create_time` before the cache is emptied (pids that went away)."""
_TICK = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0

# Errors that mean "this one field cannot be read": another user's process without root (AccessDenied), or a
# process that has exited but not been reaped (ZombieProcess: /proc/PID/environ and cmdline are empty or gone).
_UNREADABLE = (psutil.AccessDenied, psutil.ZombieProcess)


class HostInspector(ProcessInspector):
    """Reads facts about host PIDs with psutil, one ``psutil.Process`` and one ``oneshot()`` per call.

    Besides :meth:`facts`, it offers :meth:`create_time`, a cheap identity check the attributor uses to tell a
    cached process from a new one that reuses its PID without re-reading the environment.

    Args:
        proc_root: where procfs is mounted; tests point it elsewhere to feed cgroup files.
        visibility: the backend's record of NVML PIDs this PID namespace cannot see (containers); PIDs stay host
            PIDs everywhere, and are read here under the local PID it maps them to.
    """

    def __init__(self, proc_root: str | Path = "/proc", visibility: PidVisibility | None = None) -> None:
        self._proc = Path(proc_root)
        self._visibility = visibility
        # The CPU side (cpu_samples): last readings per (pid, start time), the process trees, pids seen alive.
        self._last_cpu: dict[tuple[int, int], tuple[float, float, float, float | None]] = {}
        self._children: dict[int, list[int]] = {}
        self._children_at = -CHILDREN_EVERY
        self._seen_alive: set[int] = set()
        self._delayacct: bool | None = None
        self._cores: dict[tuple[int, int], int | None] = {}
        self._children_files: bool | None = None  # /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)
        self._thread_kids: dict[int, tuple[float, list[int]]] = {}
        self._start_times: dict[int, tuple[int, float]] = {}  # create_time: pid -> (start ticks, start time)
        # Large trees: (pid, start ticks) -> (when read, members read, the sample then); see LARGE_TREE.
        self._large: dict[tuple[int, int], tuple[float, list[tuple[int, int]], CpuSample]] = {}

    def create_time(self, pid: int) -> float | None:
        """Start time of ``pid`` (Unix seconds), or None if no such process: (pid, create_time) names a process.

        Asked for every GPU process on every poll: the time psutil computes (from the start ticks and the boot time,
        which it reads from /proc/stat at each call) is kept per pid with the start ticks read from /proc/PID/stat,
        and reused while that pid's start ticks are the same; a reused pid has other start ticks, so it is computed
        again.
        """
        local = self._local(pid)
        stat = self._stat(local)
        if stat is not None:
            cached = self._start_times.get(local)
            if cached is not None and cached[0] == stat[2]:
                return cached[1]
        try:
            created = psutil.Process(local).create_time()
        except psutil.NoSuchProcess:  # ZombieProcess is a subclass, but psutil reads a zombie's start time fine
            return None
        except psutil.AccessDenied:
            # Should not happen on Linux (/proc/PID/stat is world-readable); elsewhere, fall back to full facts.
            facts = self.facts(pid)
            return None if facts is None else facts.create_time
        if stat is not None:
            if len(self._start_times) >= START_TIMES_KEPT:
                self._start_times.clear()  # pids long gone; the live ones are read again once
            self._start_times[local] = (stat[2], created)
        return created

    def facts(self, pid: int) -> ProcessFacts | None:
        """Facts about ``pid``, or None if it no longer exists.

        ``environ`` is None (not empty) when it cannot be read, so attribution can tell "no tag" from "cannot
        know". Note that ``environ`` is the environment the process was started with: a variable a program sets
        in itself later is not visible, which is why tags are given at launch (``gputab run``).
        """
        local = self._local(pid)
        try:
            proc = psutil.Process(local)
            with proc.oneshot():
                create_time = proc.create_time()
                name = _read(proc.name, "")
                ppid = _read(proc.ppid, None)
                uids = _read(proc.uids, None)
                user = _read(proc.username, None)
                cmdline: tuple[str, ...] = tuple(_read(proc.cmdline, ()) or ())
                try:
                    environ, denied = proc.environ(), False
                except psutil.AccessDenied:
                    environ, denied = None, True
                except psutil.ZombieProcess:
                    environ, denied = None, False
        except psutil.NoSuchProcess:
            # It exited between the NVML list and now (ZombieProcess fields are caught one by one in _read).
            return None
        return ProcessFacts(
            pid=pid,
            create_time=create_time,
            name=name,
            user=user,
            uid=None if uids is None else uids.real,
            cmdline=cmdline,
            environ=environ,
            environ_denied=denied,
            ppid=ppid,
            cgroup=self._cgroup(local),
        )

    def hidden(self, pid: int) -> bool:
        """True when ``pid`` is a host PID NVML listed that this PID namespace cannot see (see containers.py)."""
        return self._visibility is not None and self._visibility.hidden(pid)

    def _local(self, pid: int) -> int:
        return pid if self._visibility is None else self._visibility.local_pid(pid)

    # -- the CPU side of GPU processes (waste diagnosis: input_bound, stranded_memory) --------------------------

    def _read(self, pid: int | str, name: str) -> bytes | None:
        """``/proc/PID/NAME`` (plain strings and one open: this runs for every GPU process every poll)."""
        try:
            with open(f"{self._proc}/{pid}/{name}", "rb") as f:
                return f.read()
        except OSError:
            return None

    def _stat(self, pid: int) -> tuple[str, int, int, float, float] | None:
        """(state, ppid, start time, cpu seconds, block-I/O wait seconds) from /proc/PID/stat, or None if gone."""
        raw = self._read(pid, "stat")
        if raw is None:
            return None
        # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
        rest = raw[raw.rfind(b")") + 2 :].split()
        try:
            utime, stime = int(rest[11]), int(rest[12])
            blkio = int(rest[39]) if len(rest) > 39 else 0
            return rest[0].decode(), int(rest[1]), int(rest[19]), (utime + stime) / _TICK, blkio / _TICK
        except (IndexError, ValueError):
            return None

    def _runqueue_wait(self, pid: int) -> float | None:
        """Seconds ``pid`` spent runnable but waiting for a CPU (/proc/PID/schedstat), None where not kept."""
        raw = self._read(pid, "schedstat")
        try:
            return int(raw.split()[1]) / 1e9 if raw is not None else None
        except (IndexError, ValueError):
            return None

    def _scan_children(self) -> None:
        children: dict[int, list[int]] = {}
        try:
            names = os.listdir(self._proc)
        except OSError:
            names = []
        for name in names:
            if name.isdigit():
                st = self._stat(int(name))
                if st is not None:
                    children.setdefault(st[1], []).append(int(name))
        self._children = children

    def _kids(self, pid: int, now: float) -> list[int]:
        """Children of ``pid``: from the kernel's per-thread lists when it keeps them, else the last full scan.

        The main thread's list is read every poll (dataloaders fork from it); every thread's, which a training
        process has dozens of, every ``CHILDREN_EVERY`` seconds.
        """
        if not self._children_files:
            return self._children.get(pid, [])
        raw = self._read(pid, f"task/{pid}/children") or b""
        kids = [int(k) for k in raw.split() if k.isdigit()]
        at, from_threads = self._thread_kids.get(pid, (-CHILDREN_EVERY, []))
        if now - at >= CHILDREN_EVERY:
            from_threads = []
            try:
                tids = [t for t in os.listdir(f"{self._proc}/{pid}/task") if t != str(pid)]
            except OSError:
                tids = []
            for tid in tids:
                from_threads += [
                    int(k) for k in (self._read(pid, f"task/{tid}/children") or b"").split() if k.isdigit()
                ]
            self._thread_kids[pid] = (now, from_threads)
        return kids + [k for k in from_threads if k not in kids]

    def _tree(self, pid: int, now: float) -> list[int]:
        out: list[int] = []
        seen: set[int] = set()
        todo = [pid]
        while todo and len(out) < 512:  # a fork bomb must not stall the poll
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            out.append(p)
            todo.extend(self._kids(p, now))
        return out

    def _iowait_known(self) -> bool:
        """Block-I/O wait per process needs the kernel's delay accounting; without it the field reads 0 (unknown)."""
        if self._delayacct is None:
            try:
                self._delayacct = (self._proc / "sys/kernel/task_delayacct").read_text().strip() == "1"
            except OSError:
                self._delayacct = False
        return self._delayacct

    def cpu_samples(self, pids: Iterable[int], now: float | None = None) -> tuple[CpuSample, ...]:
        """The CPU side of each GPU process since the last call: the process and its descendants.

        A process seen alive earlier that is now gone (or a zombie) while NVML still lists it is ``alive=False``;
        one never seen is ``alive=None`` (it may live in another PID namespace: no claim). Rates need two readings,
        so a new process has ``cpu_pct`` None at first.
        """
        now = time.monotonic() if now is None else now
        if self._children_files is None:
            self._children_files = (self._proc / "self/task" / str(os.getpid()) / "children").exists()
        if not self._children_files and now - self._children_at >= CHILDREN_EVERY:
            self._scan_children()
            self._children_at = now
        iowait_known = self._iowait_known()
        out = []
        seen: dict[tuple[int, int], tuple[float, float, float, float | None]] = {}
        for host_pid in pids:
            pid = self._local(host_pid)
            st = self._stat(pid)
            if st is None or st[0] == "Z":
                alive = False if (pid in self._seen_alive or st is not None) else None
                out.append(CpuSample(pid=host_pid, alive=None if self.hidden(host_pid) else alive, tree_size=0))
                continue
            self._seen_alive.add(pid)
            large = self._large.get((pid, st[2]))
            if large is not None and now - large[0] < len(large[1]) / TREE_READS_PER_SECOND:
                for key in large[1]:  # the tree's last readings stay the base of its next rates
                    if key in self._last_cpu:
                        seen[key] = self._last_cpu[key]
                out.append(dataclasses.replace(large[2], pid=host_pid))
                continue
            read: list[tuple[int, int]] = []
            total = busiest = busiest_ready = wait = 0.0
            busiest_pid, rated, members, ready_known = pid, False, 0, False
            for member in self._tree(pid, now):
                mst = st if member == pid else self._stat(member)
                if mst is None:
                    continue
                members += 1
                key = (member, mst[2])
                read.append(key)
                rq = self._runqueue_wait(member)
                seen[key] = (now, mst[3], mst[4], rq)
                last = self._last_cpu.get(key)
                if last is None or now <= last[0]:
                    continue
                rated = True
                dt = now - last[0]
                pct = max(0.0, (mst[3] - last[1]) / dt * 100.0)
                total += pct
                # Runnable = on a CPU or waiting for one: on a crowded box a CPU-bound worker gets little CPU
                # but is still never idle, which is what "its CPU side is saturated" means.
                ready = pct
                if rq is not None and last[3] is not None:
                    ready_known = True
                    ready += max(0.0, (rq - last[3]) / dt * 100.0)
                if ready > busiest_ready or (ready == busiest_ready and pct > busiest):
                    busiest, busiest_ready, busiest_pid = pct, ready, member
                wait = max(wait, (mst[4] - last[2]) / dt * 100.0)
            cores = self._cores.get((pid, st[2]), -1)
            if cores == -1:
                try:
                    cores = len(os.sched_getaffinity(pid))
                except (AttributeError, OSError):
                    cores = os.cpu_count()
                self._cores[(pid, st[2])] = cores
            sample = CpuSample(
                pid=host_pid,
                alive=True,
                cpu_pct=total if rated else None,
                busiest_pid=busiest_pid if rated else None,
                busiest_cpu_pct=busiest if rated else None,
                busiest_runnable_pct=min(100.0, busiest_ready) if rated and ready_known else None,
                cores=cores,
                iowait_pct=min(100.0, wait) if rated and iowait_known else None,
                tree_size=members,
            )
            out.append(sample)
            if members > LARGE_TREE and rated:
                self._large[(pid, st[2])] = (now, read, sample)
            else:
                self._large.pop((pid, st[2]), None)
        self._last_cpu = seen
        if len(self._large) > 64:
            self._large = {k: v for k, v in self._large.items() if k in seen}
        if len(self._cores) > 4 * len(out) + 64:
            self._cores = {k: v for k, v in self._cores.items() if k in seen}
        if len(self._thread_kids) > 4 * len(seen) + 64:
            self._thread_kids = {k: v for k, v in self._thread_kids.items() if any(k == m for m, _ in seen)}
        if len(self._seen_alive) > 10_000:
            self._seen_alive = {p for p in self._seen_alive if (self._proc / str(p)).exists()}
        return tuple(out)

    def _cgroup(self, pid: int) -> str | None:
        """Text of /proc/PID/cgroup (container detection), or None where it cannot be read (not Linux, gone)."""
        try:
            return (self._proc / str(pid) / "cgroup").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None


def _read(getter: Callable[[], T], default: T) -> T:
    """Call one psutil getter, returning ``default`` when that field alone is unreadable."""
    try:
        return getter()
    except _UNREADABLE:
        return default
    except KeyError:
        # username() of a uid with no passwd entry raises KeyError on some psutil versions.
        return default
