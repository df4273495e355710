"""What the review screens show, read from the store: session rows, the filter, sorting and the CSV export.

No widgets here, so the figures can be tested without a terminal. Everything comes from the stored totals
(:mod:`gputab.store.review`), the same figures ``gputab sessions``, ``gputab show`` and ``gputab export`` print.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from gputab.cost.buckets import SPECIAL_TAGS
from gputab.errors import GputabError

SERIES_POINTS = 60
"""Points per chart: a sparkline is at most a terminal wide, more points only cost reads."""


@dataclass(frozen=True)
class SessionRow:
    """One line of the sessions list: the session's stored totals."""

    id: int
    host: str
    start: str | None
    """ISO 8601 UTC, as stored."""
    started_wall: float
    end_wall: float
    duration_s: float | None
    gpus: int
    cost_usd: float
    idle_cost_usd: float
    avg_utilization: float | None
    end_reason: str | None
    tags: tuple[str, ...] = ()
    totals: dict = field(default_factory=dict, compare=False, hash=False)
    """``session_totals()`` of the session: what the comparison screen shows."""


def load_rows(db_path: Path) -> list[SessionRow]:
    """Every session of the database at ``db_path``, newest first; an empty list when nothing was recorded."""
    from gputab.store import NoDatabase, Store
    from gputab.store.review import iter_sessions, session_totals

    try:
        store = Store.open(db_path, readonly=True)
    except NoDatabase:
        return []
    with store:
        # sessions() knows which one a live recorder is writing ("recording"); the records carry the totals.
        listed = {s["id"]: s for s in store.sessions()}
        rows = []
        for rec in iter_sessions(store, sorted(listed, reverse=True)):
            t = session_totals(rec)
            start = rec.started_wall or 0.0
            rows.append(
                SessionRow(
                    id=rec.id,
                    host=rec.host or "?",
                    start=rec.started_at,
                    started_wall=start,
                    end_wall=start + (t["duration_s"] or 0.0),
                    duration_s=t["duration_s"],
                    gpus=t["gpu_count"],
                    cost_usd=t["cost_usd"],
                    idle_cost_usd=t["idle_cost_usd"],
                    avg_utilization=t["avg_utilization"],
                    end_reason=listed[rec.id]["end_reason"],
                    tags=tuple(rec.tags),
                    totals=t,
                )
            )
    return rows


@dataclass(frozen=True)
class Filter:
    """A parsed filter line: ``tag:GLOB host:TEXT since:WHEN until:WHEN`` and bare words.

    A bare word matches a tag or the host (substring). ``tag:`` without a wildcard matches part of a tag, so the
    list narrows as the user types; ``since``/``until`` take what ``gputab sessions --since`` takes.
    """

    tags: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None
    error: str | None = None
    """Why part of the line was ignored (a date still being typed), shown under the input."""

    def matches(self, row: SessionRow) -> bool:
        """Whether ``row`` passes every term."""
        if self.since is not None and row.end_wall < self.since:
            return False
        if self.until is not None and row.started_wall >= self.until:
            return False
        tags = [t.lower() for t in row.tags]
        for pat in self.tags:
            glob = pat if any(c in pat for c in "*?[") else f"*{pat}*"
            if not any(fnmatch.fnmatchcase(t, glob) for t in tags):
                return False
        if any(h not in row.host.lower() for h in self.hosts):
            return False
        return all(w in row.host.lower() or any(w in t for t in tags) for w in self.words)


def parse_filter(text: str) -> Filter:
    """Parse the filter line; an unparsable date is reported in ``error`` and ignored, never raised."""
    from gputab.store.review import parse_when

    tags, hosts, words, errors = [], [], [], []
    since = until = None
    for term in text.split():
        key, sep, value = term.partition(":")
        key = key.lower()
        if sep and key in ("since", "until") and value:
            try:
                when = parse_when(value)
            except GputabError:
                errors.append(f"{key}: {value!r} is not a date (2026-01-31) or an age (12h, 7d)")
                continue
            since, until = (when, until) if key == "since" else (since, when)
        elif sep and key == "tag":
            if value:
                tags.append(value.lower())
        elif sep and key == "host":
            if value:
                hosts.append(value.lower())
        else:
            words.append(term.lower())
    return Filter(tuple(tags), tuple(hosts), tuple(words), since, until, "; ".join(errors) or None)


SORTS: tuple[tuple[str, str], ...] = (
    ("start", "started_wall"),
    ("duration", "duration_s"),
    ("host", "host"),
    ("GPUs", "gpus"),
    ("cost", "cost_usd"),
    ("idle", "idle_cost_usd"),
    ("util", "avg_utilization"),
    ("end", "end_reason"),
    ("id", "id"),
)
"""Sort column label -> SessionRow attribute, in the order the sort key cycles through them."""


def sort_rows(rows: list[SessionRow], attr: str, descending: bool) -> list[SessionRow]:
    """``rows`` by ``attr``; rows without a value go last whichever the direction."""
    known = [r for r in rows if getattr(r, attr) is not None]
    unknown = [r for r in rows if getattr(r, attr) is None]
    known.sort(key=lambda r: (getattr(r, attr), r.id), reverse=descending)
    return known + unknown


def job_figures(job: dict) -> dict:
    """The figures the comparison screen lines up for a job (keys as in ``JobTotals.to_json()``)."""
    return {k: job.get(k) for k in COMPARED}


COMPARED: tuple[str, ...] = (
    "cost_usd",
    "gpu_hours",
    "effective_gpu_hours",
    "avg_utilization",
    "cost_per_effective_gpu_hour_usd",
    "energy_kwh",
    "samples",
    "cost_per_sample_usd",
)
"""The figures side by side in a comparison, in order."""


def session_figures(row: SessionRow) -> dict:
    """A session's figures for the comparison: its totals, with $/sample over the samples its jobs reported."""
    t = row.totals
    per_sample = t["cost_usd"] / t["samples"] if t.get("samples") else None
    return {**{k: t.get(k) for k in COMPARED}, "cost_per_sample_usd": per_sample}


def is_special(tag: str) -> bool:
    """``(idle)`` and ``(unobserved)``: buckets, not jobs."""
    return tag in SPECIAL_TAGS


def export_dir() -> Path:
    """Where an export from the screen goes: the current directory when writable, else the user data dir."""
    from gputab.config.paths import data_dir

    here = Path.cwd()
    if os.access(here, os.W_OK):
        return here
    out = data_dir()
    out.mkdir(parents=True, exist_ok=True)
    return out


def default_export_path(ids: list[int], directory: Path | None = None) -> Path:
    """The path the export dialog offers: ``gputab-session-1.csv`` (or ``gputab-sessions-1-2.csv``) in
    :func:`export_dir`, absolute, so the user sees where it goes before it is written."""
    name = f"gputab-session-{ids[0]}.csv" if len(ids) == 1 else f"gputab-sessions-{'-'.join(map(str, ids))}.csv"
    return ((directory or export_dir()) / name).absolute()


def export_sessions(
    db_path: Path, ids: list[int], directory: Path | None = None, target: Path | None = None
) -> tuple[Path, int]:
    """Write the ``--by job`` CSV of sessions ``ids`` through :mod:`gputab.publish.csv_export`; returns (path, rows).

    Args:
        target: the file to write (default :func:`default_export_path` in ``directory``); ``~`` is expanded.

    The file is written beside its final name and renamed into place, so a spreadsheet never opens half of it;
    the target rules are ``gputab export -o``'s (:func:`gputab.publish.csv_export.write_file_atomically`).
    """
    from gputab.publish.csv_export import export_csv, write_file_atomically
    from gputab.store import Store
    from gputab.store.review import iter_sessions

    path = target.expanduser().absolute() if target is not None else default_export_path(ids, directory)
    with Store.open(db_path, readonly=True) as store:
        return write_file_atomically(path, lambda fh: export_csv(iter_sessions(store, ids), fh, by="job"))
