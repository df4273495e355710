"""The recorder's side of the report spool: what grew while it recorded, who wrote it, and whether to believe it.

The rule (docs: cost-model.md, "Samples and tokens: what a session counts"):

- A session counts what was reported **while it recorded**. :meth:`ReportSpool.baseline` runs before the
  recorder says it is recording: it lists the spool and takes every file's counts as they stand; from then on
  only growth counts. A file the recorder has not read yet counts from zero only if it appeared after that
  listing. What a session took from each file lives in its memory only, so another database, the demo or the
  next session never count old reports again, and reports made while nothing recorded count nowhere.
- A report counts only for a job its writer runs. The writer is the file's owner as the file system says
  (``fstat`` of the file opened with ``O_NOFOLLOW``), never the uid written inside. Root and the recorder's
  own user may report for any job; any other owner only for a job one of its processes ran on a GPU in this
  session. A report without a tag names its process: it counts only if the owner owns that process. Anything
  else is ignored and counted as a *rejected report* with its reason (stored with the session).
- Reading is bounded: per owner and per pass at most :data:`FILES_PER_OWNER` files, :data:`BYTES_PER_OWNER`
  bytes and :data:`TAGS_PER_OWNER` tags are taken, files larger than :data:`MAX_FILE_BYTES` are refused, and
  each tick spends at most :data:`TICK_BUDGET_SECONDS` on the spool. Files that produced reports before are
  re-read every :data:`READ_EVERY` seconds; the sweep that finds new files resumes where it stopped, so a spool
  flooded with files slows the discovery of new files, never the ticks nor the files already known.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import socket
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gputab.attribution import ProcessInfo, sanitize_tag
from gputab.report import FORMAT, MAX_COUNT, spool_dir

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

REASONS = {
    "not_job_owner": "its owner runs no process of that job in this session",
    "not_pid_owner": "it names a process its owner does not own",
    "unknown_pid": "it names no process on this host",
    "reserved_tag": "it names a reserved tag such as (idle)",
    "too_large": f"the file is larger than {MAX_FILE_BYTES // 1024} KiB",
    "too_many_tags": f"its owner reported more than {TAGS_PER_OWNER} tags in one read",
    "too_many_files": f"its owner has more than {KNOWN_PER_OWNER:,} files in the spool",
    "linked": "the file has other names (a hard link)",
    "bad_count": "a count is not a whole number from 0 to 2^53, or went down, or a progress is not from 0 to 1",
    "unreadable": "the file is not a gputab report",
}
"""Why a report was rejected: key (stored, Prometheus label) -> plain words (shown)."""


def spool_for(backend: object, db_path: Path) -> Path:
    """The spool a recorder reads: the demo's own beside its database, else :func:`gputab.report.spool_dir`.

    The demo never reads, writes or deletes the real spool: its pictures must not depend on what real training
    scripts reported, and the real recorder must find every real report.
    """
    if getattr(backend, "name", None) == "demo":
        return demo_spool(db_path)
    return spool_dir()


def demo_spool(db_path: Path) -> Path:
    """The demo's spool: ``<db dir>/<db name>-spool`` (``demo-spool`` beside ``demo.db``)."""
    return Path(db_path).parent / f"{Path(db_path).stem}-spool"


@functools.lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    """The login name of ``uid`` (as psutil names a process's user), or the number as text."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


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


def _count_pair(pair) -> tuple[int, int] | None:
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


class ReportSpool:
    """Counts the spool's reports into a session: baseline, bounded reads, trust, and the rejected reports.

    Args:
        directory: the spool directory.
        attributor: tags the process a report without a tag names.
        my_uid: the recorder's own user (trusted like root).
        host: this host's name (a report naming a pid elsewhere cannot be checked).
        timer: real monotonic time for the budgets.
    """

    def __init__(
        self,
        directory: Path,
        attributor,
        my_uid: int | None = None,
        host: str | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.reader = SpoolReader(directory, timer)
        self.attributor = attributor
        self.my_uid = os.geteuid() if my_uid is None else my_uid
        self.host = host or socket.gethostname()
        self.rejected: dict[tuple[str, int], list[int]] = {}
        """(reason, owner uid) -> [reports, samples, tokens] in this session."""
        self._users_by_tag: dict[str, set[str]] = {}
        self._last_read = -float("inf")
        self._last_prune: float | None = None

    def baseline(self) -> None:
        """Before the session says it is recording: every report made so far is not this session's."""
        self.reader.baseline()

    def see(self, procs: Mapping[int, ProcessInfo]) -> None:
        """Remember which users ran processes of which jobs (called every tick with the tick's processes)."""
        for info in procs.values():
            if info.user:
                self._users_by_tag.setdefault(info.tag, set()).add(info.user)

    def tick(self, procs: Mapping[int, ProcessInfo], ledger, writer, wall: float, now: float) -> None:
        """One tick's share of the spool: re-read the known files when due, go on with the sweep, count."""
        self.see(procs)
        due = now - self._last_read >= READ_EVERY
        if not due and not self.reader.sweeping:
            return
        rejects: list = []
        reports: list[Report] = []
        if due:
            self._last_read = now
            reports += self.reader.read_watched(rejects)
        reports += self.reader.sweep(TICK_BUDGET_SECONDS, rejects)
        self._count(reports, rejects, ledger, writer, wall)
        if self._last_prune is None:
            self._last_prune = now
        elif now - self._last_prune >= PRUNE_EVERY:
            self._last_prune = now
            self.reader.prune(wall, TICK_BUDGET_SECONDS)

    def finish(self, ledger, writer, wall: float) -> None:
        """The clean stop's last read: the known files, then a whole sweep within :data:`FINAL_BUDGET_SECONDS`."""
        rejects: list = []
        reports = self.reader.read_watched(rejects)
        self.reader.end_sweep()  # a fresh sweep, from the start of the directory
        reports += self.reader.sweep(FINAL_BUDGET_SECONDS, rejects)
        self.reader.end_sweep()
        self._count(reports, rejects, ledger, writer, wall)

    # -- trust ------------------------------------------------------------------------------------------------
    def _count(self, reports: list[Report], rejects: list, ledger, writer, wall: float) -> None:
        changed = bool(rejects) | self._merge_ignored()
        for reason, owner, samples, tokens in rejects:
            self._reject(reason, owner, samples, tokens)
        for r in reports:
            tag, reason = self.judge(r)
            if tag is None:
                self._reject(reason, r.owner_uid, r.samples, r.tokens)
                changed = True
                continue
            if r.progress is not None:
                ledger.observe_fraction(tag, r.progress)
                continue
            ledger.add_progress(tag, samples=r.samples, tokens=r.tokens)
            writer.add_progress(
                tag,
                r.samples,
                r.tokens,
                wall,
                "report",
                f"{r.host or '?'}:{r.pid if r.pid is not None else '?'} {r.name}",
                r.owner_uid,
            )
        if changed:
            writer.set_rejected(self.rejected_rows())  # stored with the figures at the next commit

    def judge(self, r: Report) -> tuple[str | None, str]:
        """The job a report counts for, or ``(None, reason)`` (a key of :data:`REASONS`)."""
        owner = r.owner_uid
        if not r.tag:
            if r.pid is None or (r.host is not None and r.host != self.host):
                return None, "unknown_pid"
            info = self.attributor.attribute([r.pid])[r.pid]
            if info.user is None:
                return None, "unknown_pid"
            if owner != 0 and info.user != user_name(owner):
                return None, "not_pid_owner"
            return info.tag, ""
        if r.tag.lstrip().startswith("("):
            return None, "reserved_tag"
        tag = sanitize_tag(r.tag)
        if tag is None:
            return None, "unreadable"
        if owner == 0 or owner == self.my_uid or user_name(owner) in self._users_by_tag.get(tag, ()):
            return tag, ""
        return None, "not_job_owner"

    def _reject(self, reason: str, owner: int, samples: int, tokens: int) -> None:
        row = self.rejected.setdefault((reason, owner), [0, 0, 0])
        row[0] += 1
        row[1] = min(row[1] + samples, MAX_COUNT)
        row[2] = min(row[2] + tokens, MAX_COUNT)

    def _merge_ignored(self) -> bool:
        changed = False
        for owner, n in self.reader.ignored.items():
            row = self.rejected.setdefault(("too_many_files", owner), [0, 0, 0])
            if row[0] != n:
                row[0] = n  # files, not reads: the most ignored in one sweep
                changed = True
        return changed

    def rejected_rows(self) -> list[dict]:
        """The session's rejected reports: ``reason``, ``owner_uid``, ``reports``, ``samples``, ``tokens``."""
        return [
            {"reason": reason, "owner_uid": owner, "reports": n, "samples": s, "tokens": t}
            for (reason, owner), (n, s, t) in sorted(self.rejected.items())
        ]

    def rejected_by_reason(self) -> tuple[tuple[str, int], ...]:
        """Rejected reports per reason (every reason, 0 included), for the Prometheus counter."""
        totals = dict.fromkeys(REASONS, 0)
        for (reason, _), (n, _, _) in self.rejected.items():
            totals[reason] = totals.get(reason, 0) + n
        return tuple(totals.items())


def explain(rows: list[dict]) -> list[dict]:
    """Stored rejected-report rows with ``reason_text`` (plain words) and ``owner`` (the owner's login name)."""
    return [
        {**r, "reason_text": REASONS.get(r["reason"], r["reason"]), "owner": user_name(r["owner_uid"])} for r in rows
    ]


def rejected_summary(rows: list[dict]) -> str:
    """One line for people: ``12 reports rejected: 10 from nobody (its owner runs no process ...); ...``."""
    total = sum(r["reports"] for r in rows)
    parts = [f"{r['reports']:,} from {r['owner']} ({r['reason_text']})" for r in explain(rows)]
    return f"{total:,} report{'s' if total != 1 else ''} rejected: " + "; ".join(parts)
