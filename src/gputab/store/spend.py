"""Spend over time: what each job, user, GPU and host cost across sessions, and per day or week.

Reads the stored totals (``jobs``, ``session_gpus``) of every session that overlaps the window, from one or more
databases opened read-only through :class:`gputab.store.Store`. A job is a tag on a host: the same tag in two
sessions of one host (a recorder restart, a multi-day run) is one row; the same tag on two hosts is two rows, so
databases copied from several boxes never mix their hosts.

Modules: :mod:`~gputab.store.spend_window` (the window, days and weeks), :mod:`~gputab.store.spend_pieces`
(the stored totals read and pro-rated into pieces), and this one (pieces grouped into rows, the stores opened).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gputab.cost.buckets import IDLE as IDLE  # importable from here, as before
from gputab.cost.buckets import SPECIAL_TAGS
from gputab.cost.buckets import UNOBSERVED as UNOBSERVED  # importable from here, as before
from gputab.store.database import Store
from gputab.store.spend_pieces import COST_INDEX, FIGURES, OPTIONAL_FIGURES, Piece, gpu_pieces, job_pieces

# The window and the pieces moved to their own modules; these names stay importable from here.
from gputab.store.spend_pieces import UNKNOWN_USER as UNKNOWN_USER
from gputab.store.spend_pieces import utilization_histogram as utilization_histogram
from gputab.store.spend_window import Window
from gputab.store.spend_window import bucket_start as bucket_start
from gputab.store.spend_window import bucket_wall as bucket_wall
from gputab.store.spend_window import last_days as last_days
from gputab.store.spend_window import timezone_label as timezone_label

GROUPS = ("tag", "user", "gpu", "host", "day", "week")
"""What ``gputab spend --by`` can group by."""


# -- rows: pieces summed per host and key ----------------------------------------------------------------------
@dataclass
class SpendRow:
    """The spend of one key (a tag, user, GPU, day or week) on one host, or of a host (``--by host``)."""

    host: str
    key: str
    sums: dict = field(default_factory=lambda: dict.fromkeys(FIGURES, 0.0))
    reported: dict = field(default_factory=lambda: dict.fromkeys(OPTIONAL_FIGURES, False))
    """Per optional figure (samples, tokens, waste_usd, prompt/generated tokens): whether any piece of the row reported it."""
    sessions: set = field(default_factory=set)
    daily_cost: dict = field(default_factory=dict)
    """Bucket -> cost, when the pieces were cut by day or week."""
    first_wall: float = math.inf
    last_wall: float = -math.inf
    waste_by_reason: dict | None = None
    """The row's waste dollars by reason, summed over its pieces that have waste figures (None: none has)."""

    def add(self, p: Piece) -> None:
        sums, figures = self.sums, p.figures
        for k, v in zip(FIGURES, figures, strict=True):
            if v is not None:
                sums[k] += v
        for k, i in OPTIONAL_FIGURES.items():
            if figures[i] is not None:
                self.reported[k] = True
        if p.waste_by_reason is not None:
            self._add_reasons(p.waste_by_reason)
        self.sessions.add((p.source, p.session_id))
        if p.bucket is not None:
            self.daily_cost[p.bucket] = self.daily_cost.get(p.bucket, 0.0) + p.figures[COST_INDEX]
        self.first_wall = min(self.first_wall, p.first_wall)
        self.last_wall = max(self.last_wall, p.last_wall)

    def _add_reasons(self, reasons: dict[str, float]) -> None:
        mine = self.waste_by_reason if self.waste_by_reason is not None else {}
        for k, v in reasons.items():
            mine[k] = mine.get(k, 0.0) + v
        self.waste_by_reason = mine

    def to_json(self, by: str) -> dict:
        """The row with the project's JSON keys (``*_usd``, ``gpu_hours``, fractions 0..1)."""
        s = self.sums
        samples = _count(s["samples"]) if self.reported["samples"] else None
        tokens = _count(s["tokens"]) if self.reported["tokens"] else None
        out: dict[str, object] = {"host": self.host} if by == "host" else {"host": self.host, by: self.key}
        out.update(
            {
                "cost_usd": s["cost_usd"],
                "gpu_hours": s["gpu_hours"],
                "effective_gpu_hours": s["effective_gpu_hours"],
                "avg_utilization": s["effective_gpu_hours"] / s["util_gpu_hours"] if s["util_gpu_hours"] > 0 else None,
                "idle_usd": s["idle_usd"],
                "idle_gpu_hours": s["idle_gpu_hours"],
                "energy_kwh": s["energy_kwh"],
                "samples": samples,
                "tokens": tokens,
                # Tokens by kind are counts only: a dollar is not split between prompt and generated tokens.
                **{k: _count(s[k]) if self.reported[k] else None for k in ("prompt_tokens", "generated_tokens")},
                "cost_per_sample_usd": s["cost_usd"] / samples if samples else None,
                "cost_per_1m_tokens_usd": s["cost_usd"] / tokens * 1e6 if tokens else None,
                "cost_per_effective_gpu_hour_usd": (
                    s["cost_usd"] / s["effective_gpu_hours"] if s["effective_gpu_hours"] > 0 else None
                ),
                "busy_usd": s["busy_usd"] if self.reported["waste_usd"] else None,
                "waste_usd": s["waste_usd"] if self.reported["waste_usd"] else None,
                "unmeasured_usd": s["unmeasured_usd"] if self.reported["waste_usd"] else None,
                "waste_by_reason": (
                    None
                    if self.waste_by_reason is None
                    else dict(sorted(self.waste_by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
                ),
                "sessions": len(self.sessions),
            }
        )
        return out


def _count(v: float) -> int | float:
    """A summed count: whole when it is (pro-rated pieces of a split job may leave a fraction)."""
    return round(v) if abs(v - round(v)) < 1e-6 else v


def group(pieces: Iterable[Piece], by: str) -> list[SpendRow]:
    """Sum pieces into rows per host and ``by`` key, costliest first (days and weeks in time order)."""
    rows: dict[tuple[str, str], SpendRow] = {}
    for p in pieces:
        key = {"tag": p.tag, "user": p.user, "gpu": p.gpu, "host": "", "day": p.bucket, "week": p.bucket}[by] or ""
        row = rows.get((p.host, key))
        if row is None:
            row = rows[(p.host, key)] = SpendRow(p.host, key)
        row.add(p)
    out = list(rows.values())
    if by in ("day", "week"):
        out.sort(key=lambda r: (r.key, r.host))
    else:
        out.sort(key=lambda r: (r.key in SPECIAL_TAGS, -r.sums["cost_usd"], r.host, r.key))
    return out


def total(rows: Iterable[SpendRow]) -> SpendRow:
    """All rows summed into one (``host`` and ``key`` ``total``)."""
    t = SpendRow("total", "total")
    for r in rows:
        for k in FIGURES:
            t.sums[k] += r.sums[k]
        for k in t.reported:
            t.reported[k] = t.reported[k] or r.reported[k]
        if r.waste_by_reason is not None:
            t._add_reasons(r.waste_by_reason)
        t.sessions |= r.sessions
        for b, c in r.daily_cost.items():
            t.daily_cost[b] = t.daily_cost.get(b, 0.0) + c
        t.first_wall = min(t.first_wall, r.first_wall)
        t.last_wall = max(t.last_wall, r.last_wall)
    return t


def spend(stores: Sequence[Store], by: str, window: Window) -> list[SpendRow]:
    """The rows of ``gputab spend --by BY`` over ``window``."""
    if by not in GROUPS:
        raise ValueError(f"by must be one of {', '.join(GROUPS)}, not {by!r}")
    cut = by if by in ("day", "week") else None
    pieces = gpu_pieces(stores, window, cut) if by == "gpu" else job_pieces(stores, window, cut)
    return group(pieces, by)


def open_stores(paths: Sequence[os.PathLike | str]) -> list[Store]:
    """Open each database read-only (never created, migrated or written), once even when named twice.

    Raises:
        NoDatabase, SchemaTooNew, StoreError: as :meth:`Store.open`; the stores opened so far are closed.
    """
    stores: list[Store] = []
    seen: set[tuple[int, int]] = set()
    try:
        for p in paths:
            try:
                st = os.stat(p)
                ident = (st.st_dev, st.st_ino)
            except OSError:
                ident = None
            if ident is not None and ident in seen:
                continue
            stores.append(Store.open(p, readonly=True))
            if ident is not None:
                seen.add(ident)
    except BaseException:
        for s in stores:
            s.close()
        raise
    return stores


def latest_wall(stores: Sequence[Store]) -> float | None:
    """The newest recorded moment across ``stores`` (a session's end, or its last commit while it records)."""
    ends = [
        r[0]
        for s in stores
        for r in s.db.execute("SELECT max(coalesce(ended_wall, last_wall, started_wall)) FROM sessions")
        if r[0] is not None
    ]
    return max(ends) if ends else None
