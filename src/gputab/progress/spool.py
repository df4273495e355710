"""The recorder's side of the report spool: what grew while it recorded, who wrote it, and whether to believe it.

The rule (docs/cost-model.md, "Samples and tokens: what a session counts"):

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
- Reading is bounded (:mod:`gputab.progress.spool_reader`): per owner and per pass at most :data:`FILES_PER_OWNER` files, :data:`BYTES_PER_OWNER`
  bytes and :data:`TAGS_PER_OWNER` tags are taken, files larger than :data:`MAX_FILE_BYTES` are refused, and
  each tick spends at most :data:`TICK_BUDGET_SECONDS` on the spool. Files that produced reports before are
  re-read every :data:`READ_EVERY` seconds; the sweep that finds new files resumes where it stopped, so a spool
  flooded with files slows the discovery of new files, never the ticks nor the files already known.
"""

from __future__ import annotations

import functools
import os
import pwd
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gputab.attribution import Attributor, ProcessInfo, sanitize_tag
from gputab.progress.spool_reader import (  # the reading limits are the reader's; re-exported for callers and tests
    BASELINE_BUDGET_SECONDS,
    BYTES_PER_OWNER,
    FILES_PER_OWNER,
    FINAL_BUDGET_SECONDS,
    KNOWN_PER_OWNER,
    MAX_FILE_BYTES,
    PRUNE_EVERY,
    READ_EVERY,
    STALE_SECONDS,
    TAGS_PER_OWNER,
    TICK_BUDGET_SECONDS,
    Report,
    SpoolReader,
)
from gputab.report import MAX_COUNT, spool_dir

if TYPE_CHECKING:
    from gputab.cost.ledger import Ledger

__all__ = [
    "BASELINE_BUDGET_SECONDS",
    "BYTES_PER_OWNER",
    "FILES_PER_OWNER",
    "FINAL_BUDGET_SECONDS",
    "KNOWN_PER_OWNER",
    "MAX_FILE_BYTES",
    "PRUNE_EVERY",
    "READ_EVERY",
    "REASONS",
    "STALE_SECONDS",
    "TAGS_PER_OWNER",
    "TICK_BUDGET_SECONDS",
    "Report",
    "ReportSpool",
    "SpoolReader",
    "demo_spool",
    "explain",
    "rejected_summary",
    "spool_for",
    "user_name",
]

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


Reject = tuple[str, int, int, int]
"""A report refused while reading: ``(reason, owner uid, samples, tokens)``."""


class ProgressWriter(Protocol):
    """Where the spool's counts are stored with the session (the store's session writer)."""

    def add_progress(
        self, tag: str, samples: int, tokens: int, wall: float, source: str, reporter: str, owner_uid: int | None = None
    ) -> None: ...

    def set_rejected(self, rows: list[dict[str, Any]]) -> None: ...


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
        attributor: Attributor,
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

    def tick(
        self, procs: Mapping[int, ProcessInfo], ledger: Ledger, writer: ProgressWriter, wall: float, now: float
    ) -> None:
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

    def finish(self, ledger: Ledger, writer: ProgressWriter, wall: float) -> None:
        """The clean stop's last read: the known files, then a whole sweep within :data:`FINAL_BUDGET_SECONDS`."""
        rejects: list = []
        reports = self.reader.read_watched(rejects)
        self.reader.end_sweep()  # a fresh sweep, from the start of the directory
        reports += self.reader.sweep(FINAL_BUDGET_SECONDS, rejects)
        self.reader.end_sweep()
        self._count(reports, rejects, ledger, writer, wall)

    # -- trust ------------------------------------------------------------------------------------------------
    def _count(
        self, reports: list[Report], rejects: list[Reject], ledger: Ledger, writer: ProgressWriter, wall: float
    ) -> None:
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
