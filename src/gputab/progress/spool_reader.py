"""Reading the report spool within bounds: what grew in which file, and who owns the file.

:class:`SpoolReader` decides nothing about trust (that is :class:`gputab.progress.spool.ReportSpool`'s): it lists the spool,
opens each report with ``O_NOFOLLOW``, takes the owner from ``fstat``, and says which counts grew since it last read
the file. Per owner and per pass it takes at most :data:`FILES_PER_OWNER` files, :data:`BYTES_PER_OWNER` bytes and
:data:`TAGS_PER_OWNER` tags; files over :data:`MAX_FILE_BYTES` are refused unread; the sweep that finds new files
resumes where it stopped, so a flooded spool slows the discovery of new files, never the ticks.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gputab.report import FORMAT, MAX_COUNT

READ_EVERY = 1.0
"""Seconds between reads of the files already known (the read cadence README states)."""
TICK_BUDGET_SECONDS = 0.02
"""The most one tick spends on the spool; a sweep not finished in it goes on at the next tick."""
BASELINE_BUDGET_SECONDS = 2.0
"""The most the start spends reading files for the baseline (files left are baselined when first read)."""
FINAL_BUDGET_SECONDS = 2.0
"""The most a clean stop spends on its last read."""
MAX_FILE_BYTES = 64 * 1024
"""A spool file is a few hundred bytes; a larger one is refused unread."""
FILES_PER_OWNER = 64
BYTES_PER_OWNER = 256 * 1024
TAGS_PER_OWNER = 64
"""Per owner and per pass: files read, bytes read and tags taken; the rest waits for the next pass."""
KNOWN_PER_OWNER = 10_000
"""Files of one owner the session remembers; that owner's further files are ignored unread (bounds memory)."""
STALE_SECONDS = 86400.0
"""A file read, unchanged and not updated for this long is deleted (when the recorder may)."""
PRUNE_EVERY = 3600.0


@dataclass(frozen=True)
class Report:
    """Counts that grew in one spool file, with the file's owner (from ``fstat``)."""

    name: str
    owner_uid: int
    tag: str
    """As written; empty when the process gave none (the job is its ``pid``'s)."""
    samples: int
    tokens: int
    pid: int | None
    host: str | None
    progress: float | None = None
    """A progress report (the job's fraction done, 0-1) rather than counts; its samples and tokens are 0."""


@dataclass(slots=True)
class _File:
    key: tuple
    """(inode, size, mtime, ctime) when last read: an unchanged file is not opened again."""
    owner: int
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    progress: dict[str, float] = field(default_factory=dict)


def _count_pair(pair: Any) -> tuple[int, int] | None:
    """``[samples, tokens]`` as two sane non-negative integers, or None."""
    try:
        s, t = pair[0], pair[1]
    except (TypeError, IndexError, KeyError):
        return None
    if isinstance(s, bool) or isinstance(t, bool) or not isinstance(s, int) or not isinstance(t, int):
        return None
    if not (0 <= s <= MAX_COUNT and 0 <= t <= MAX_COUNT):
        return None
    return s, t


class SpoolReader:
    """Reads the spool within budgets and says what grew; it decides nothing about trust.

    Args:
        directory: the spool directory.
        timer: a monotonic clock for the budgets (real time even when the recorder runs on a fake clock).
    """

    def __init__(self, directory: Path, timer: Callable[[], float] = time.perf_counter) -> None:
        self.directory = Path(directory)
        self.timer = timer
        self.files: dict[str, _File] = {}
        self.watched: dict[str, int] = {}
        """Files read before (name -> owner), at most FILES_PER_OWNER per owner: re-read every READ_EVERY."""
        self._watched_per_owner: Counter[int] = Counter()
        self._unread_at_start: set[str] = set()
        self._sweep: Iterator[os.DirEntry] | None = None
        self._pass_files: Counter[int] = Counter()
        self._pass_bytes: Counter[int] = Counter()
        self._pass_tags: Counter[int] = Counter()
        self._pass_ignored: Counter[int] = Counter()
        self._known_per_owner: Counter[int] = Counter()
        self.ignored: dict[int, int] = {}
        """Owner -> the most files of it ignored unread in one sweep because of :data:`KNOWN_PER_OWNER`."""
        self._baselining = False
        self.started_wall = float("inf")
        """When :meth:`baseline` ran (Unix time)."""
        self.passes = 0
        """Sweeps finished."""
        self.deferred = 0
        """Files left for a later pass by the per-owner caps (all passes together)."""

    # -- passes ---------------------------------------------------------------------------------------------
    def baseline(self, budget: float = BASELINE_BUDGET_SECONDS) -> None:
        """Take the counts of every file as they stand now: none of them is reported later."""
        self.started_wall = time.time()  # real time, like the ``started`` of the reports (not a test's clock)
        try:
            with os.scandir(self.directory) as it:
                self._unread_at_start = {e.name for e in it if _is_report_name(e.name)}
        except OSError:
            self._unread_at_start = set()
        self._baselining = True
        try:
            self.sweep(budget, [])
        finally:
            self._baselining = False

    def read_watched(self, out: list) -> list[Report]:
        """Re-read the files known to report (cheap: an ``lstat`` each when nothing changed)."""
        reports: list[Report] = []
        for name in list(self.watched):
            self._visit(name, None, reports, out, capped=False)
        return reports

    def sweep(self, budget: float, out: list) -> list[Report]:
        """Go on with the sweep of the whole directory for up to ``budget`` seconds (a new one if none runs).

        Args:
            out: rejections found on the way are appended here as ``(reason, owner, samples, tokens)``.

        Returns:
            The reports found; :attr:`sweeping` says whether the sweep finished.
        """
        deadline = self.timer() + budget
        reports: list[Report] = []
        if self._sweep is None:
            try:
                self._sweep = os.scandir(self.directory)
            except OSError:
                return reports
            self._pass_files.clear()
            self._pass_bytes.clear()
            self._pass_tags.clear()
            self._pass_ignored.clear()
        for entry in self._sweep:
            if not _is_report_name(entry.name) or entry.name in self.watched:
                continue
            self._visit(entry.name, entry, reports, out, capped=True)
            if self.timer() >= deadline:
                return reports
        self.end_sweep()
        return reports

    @property
    def sweeping(self) -> bool:
        return self._sweep is not None

    def end_sweep(self) -> None:
        """Finish the sweep under way (the next one starts from the top of the directory)."""
        for owner, n in self._pass_ignored.items():
            self.ignored[owner] = max(self.ignored.get(owner, 0), n)
        self._pass_ignored.clear()
        if self._sweep is not None:
            close = getattr(self._sweep, "close", None)
            if close is not None:
                close()
            self._sweep = None
            self.passes += 1

    # -- one file ---------------------------------------------------------------------------------------------
    def _visit(self, name: str, entry: os.DirEntry | None, reports: list, out: list, capped: bool) -> None:
        try:
            st = entry.stat(follow_symlinks=False) if entry is not None else os.lstat(self.directory / name)
        except OSError:
            gone = self.watched.pop(name, None)  # gone (its counts stay remembered under its name)
            if gone is not None:
                self._watched_per_owner[gone] -= 1
            return
        if not stat.S_ISREG(st.st_mode):
            return  # a link, FIFO or directory: not a report, and never opened
        key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        known = self.files.get(name)
        if known is not None and known.key == key:
            return
        owner = st.st_uid
        if known is None and self._known_per_owner[owner] >= KNOWN_PER_OWNER:
            self._pass_ignored[owner] += 1
            return
        large = st.st_size > MAX_FILE_BYTES  # refused without reading, so not held back by the caps
        if (
            capped
            and not large
            and (self._pass_files[owner] >= FILES_PER_OWNER or self._pass_bytes[owner] + st.st_size > BYTES_PER_OWNER)
        ):
            self.deferred += 1
            return
        try:
            fd = os.open(self.directory / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return
        try:
            fst = os.fstat(fd)
            owner = fst.st_uid  # the file's owner, from the file opened, not from what it says
            key = (fst.st_ino, fst.st_size, fst.st_mtime_ns, fst.st_ctime_ns)
            if not stat.S_ISREG(fst.st_mode):
                return
            if fst.st_size > MAX_FILE_BYTES or fst.st_nlink != 1:
                # A second name of one file (a hard link) would count its growth twice, under its owner.
                self._remember(name, key, owner, known)
                out.append(("too_large" if fst.st_size > MAX_FILE_BYTES else "linked", owner, 0, 0))
                return
            self._pass_files[owner] += 1
            data = os.read(fd, MAX_FILE_BYTES + 1)
        except OSError:
            return
        finally:
            os.close(fd)
        self._pass_bytes[owner] += len(data)
        f = self._remember(name, key, owner, known)
        try:
            doc = json.loads(data)
            counts = doc["counts"]
            if doc.get("v") != FORMAT or not isinstance(counts, dict):
                raise ValueError("not a report")
        except (ValueError, KeyError, TypeError, AttributeError):
            out.append(("unreadable", owner, 0, 0))
            return
        if name not in self.watched and self._watched_per_owner[owner] < FILES_PER_OWNER:
            self.watched[name] = owner
            self._watched_per_owner[owner] += 1
        started = doc.get("started")
        # A file not there at the start but written by a process that started reporting before it (one whose
        # file was pruned while it paused) holds counts from before: its first read is its baseline too.
        baseline = self._baselining or (
            known is None
            and (name in self._unread_at_start or (type(started) in (int, float) and started < self.started_wall))
        )
        self._unread_at_start.discard(name)
        pid, host = doc.get("pid"), doc.get("host")
        pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None
        host = host if isinstance(host, str) else None
        for tag, pair in counts.items():
            parsed = _count_pair(pair)
            before = f.counts.get(tag)
            if parsed is None:
                if not baseline:
                    out.append(("bad_count", owner, 0, 0))
                continue
            if parsed == before:
                continue
            if before is None and self._pass_tags[owner] >= TAGS_PER_OWNER:
                out.append(("too_many_tags", owner, 0, 0))
                continue
            if before is None:
                self._pass_tags[owner] += 1
            f.counts[tag] = parsed
            if baseline:
                continue
            s0, t0 = before or (0, 0)
            ds, dt = parsed[0] - s0, parsed[1] - t0
            if ds < 0 or dt < 0:
                out.append(("bad_count", owner, max(ds, 0), max(dt, 0)))
                continue
            if not (ds or dt):
                continue  # a tag first seen at zero (a progress report's): nothing to count
            reports.append(Report(name, owner, tag, ds, dt, pid, host))
        progress = doc.get("progress")
        if isinstance(progress, dict):
            self._progress(f, progress, baseline, reports, out, (name, owner, pid, host))

    @staticmethod
    def _progress(f: _File, progress: dict, baseline: bool, reports: list, out: list, who: tuple) -> None:
        """Progress fractions that changed; only for tags the file's counts hold (so the tag caps bound them too)."""
        name, owner, pid, host = who
        for tag, v in progress.items():
            if tag not in f.counts:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                if not baseline:
                    out.append(("bad_count", owner, 0, 0))
                continue
            if f.progress.get(tag) == v:
                continue
            f.progress[tag] = float(v)
            if not baseline:
                reports.append(Report(name, owner, tag, 0, 0, pid, host, progress=float(v)))

    def _remember(self, name: str, key: tuple, owner: int, known: _File | None) -> _File:
        if known is None or known.owner != owner:
            if known is not None:
                self._known_per_owner[known.owner] -= 1
            known = self.files[name] = _File(key, owner)  # a new owner starts from nothing
            self._known_per_owner[owner] += 1
        known.key = key
        return known

    # -- housekeeping -----------------------------------------------------------------------------------------
    def prune(self, now_wall: float, budget: float) -> int:
        """Delete files read whole and not updated for :data:`STALE_SECONDS`; returns how many went.

        Their names stay remembered with their counts, so a file recreated under the same name only counts growth.
        """
        deadline = self.timer() + budget
        gone = 0
        for name, f in list(self.files.items()):
            if self.timer() >= deadline:
                break
            path = self.directory / name
            try:
                st = os.lstat(path)
                if (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) != f.key:
                    continue
                if now_wall - st.st_mtime < STALE_SECONDS:
                    continue
                path.unlink()
                gone += 1
            except OSError:
                continue
        return gone


def _is_report_name(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(".")
