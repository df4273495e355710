"""What the live charts draw: every GPU's utilization and power and every job's cumulative cost over the session.

The app keeps one :class:`History` (not the widgets), so a view that was hidden shows everything when it comes
back. All series share one time axis (seconds since the session started) and are stored as ``array('d')`` with
NaN for "not available", 8 bytes a point, in two tiers:

* *fine*: every poll of the last hour (:data:`FINE_SECONDS`), for the 5-minute and 1-hour windows;
* *coarse*: one point per ``step`` seconds over the whole session; when it holds :data:`COARSE_POINTS` points,
  every other one is dropped and the step doubles, so a week-long session costs the same memory as an hour.

Memory is bounded: (fine + coarse points) x (2 per GPU + one per job up to :data:`MAX_JOBS` + 2) x 8 bytes, and
two per process up to :data:`MAX_PROCESSES` from the first time the processes view is shown.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from typing import TYPE_CHECKING

from gputab.live.series_block import SeriesBlock
from gputab.live.sm_share import instances_by_key, process_sm

if TYPE_CHECKING:
    from gputab.live.frame import Frame

NAN = float("nan")
GIB = 1024**3
FINE_SECONDS = 3600.0
"""The fine tier covers the last hour: the longest window short of the whole session."""
COARSE_POINTS = 720
"""Points the coarse tier keeps before it halves itself."""
MAX_JOBS = 64
"""Jobs (tags) with a cost series; a session with more keeps the first 64 seen (the table still lists all)."""
MAX_PROCESSES = 64
"""Processes (pid on a GPU) with SM % and VRAM series for the processes view; the first 64 seen."""
WINDOWS = ((300.0, "5 min"), (3600.0, "1 h"), (None, "session"))
"""The chart windows, in the order ``w`` cycles through them: (seconds or None for the whole session, label)."""

TOTAL = "total"
"""Series key of the session's cumulative cost."""
BURN = "burn"
"""Series key of the session's burn rate ($/h)."""


def util_key(index: int) -> str:
    return f"util:{index}"


def power_key(index: int) -> str:
    return f"power:{index}"


def job_key(tag: str) -> str:
    return f"job:{tag}"


def process_sm_key(key: str) -> str:
    """Series of a process's SM % on its GPU; ``key`` is :attr:`ProcessView.key` (``pid@gpu``)."""
    return f"sm:{key}"


def process_vram_key(key: str) -> str:
    """Series of a process's used VRAM on its GPU, in GiB."""
    return f"vram:{key}"


class _Tier:
    """One time axis and the series on it, as parallel arrays."""

    def __init__(self) -> None:
        self.t = array("d")
        self.values: dict[str, array] = {}

    def append(self, t: float, row: dict[str, float]) -> None:
        n = len(self.t)
        self.t.append(t)
        for key in row:
            if key not in self.values:
                self.values[key] = array("d", [NAN]) * n
        for key, series in self.values.items():
            series.append(row.get(key, NAN))

    def prepend(self, t: array, rows: dict[str, array]) -> None:
        """Put points older than every point held before them (``rows``: one array per series, as long as ``t``)."""
        n_old, n_new = len(self.t), len(t)
        for key in set(self.values) | set(rows):
            old = self.values.get(key) or array("d", [NAN]) * n_old
            self.values[key] = (rows.get(key) or array("d", [NAN]) * n_new) + old
        self.t = t + self.t

    def drop_before(self, index: int) -> None:
        del self.t[:index]
        for series in self.values.values():
            del series[:index]

    def halve(self) -> None:
        """Keep every other point, the first included (the session's start stays on the chart; the newest
        points are the fine tier's)."""
        self.t = self.t[::2]
        self.values = {k: v[::2] for k, v in self.values.items()}


class History:
    """Series of the session for the charts, fed one :class:`Frame` a poll.

    The time axis is seconds since the first session shown started: when the frames move to another session (a
    recorder restarted, or this app started recording where it had watched), the new session's points follow on
    the same axis, placed by the sessions' start times, and nothing drawn so far is lost.

    Args:
        coarse_step: seconds between points of the coarse (whole-session) tier at the start.
    """

    def __init__(self, coarse_step: float = 5.0) -> None:
        self.fine = _Tier()
        self.coarse = _Tier()
        self.coarse_step = coarse_step
        self._next_coarse = 0.0
        self._jobs: set[str] = set()
        self._processes: set[str] = set()
        self.track_processes = False
        """Keep each process's SM % and VRAM: set when the processes view first shows (a session that never opens
        it pays nothing for them; up to 2 x :data:`MAX_PROCESSES` series more once it does)."""
        self._fine_from = 0.0
        """Session time from which the fine tier holds every point: 0 while it holds the whole session; the
        first point kept once it was trimmed; the start of the stored points it was filled with."""
        self._base_wall: float | None = None
        self.power_limits: dict[int, float] = {}
        """Each GPU's power limit (W) as last reported: the top of its power chart."""
        self.memory_totals: dict[int, float] = {}
        """Each GPU's VRAM in GiB as last reported: the top of a process's VRAM chart."""
        self.max_burn = 0.0
        """What every GPU together costs an hour (the sum of their prices): the top of the burn-rate chart."""
        self.version = 0
        """Bumped on every :meth:`add`: charts redraw only when it moved."""

    @property
    def now(self) -> float:
        """Session time (s) of the newest point; 0 before any."""
        return self.fine.t[-1] if len(self.fine.t) else 0.0

    def add(self, frame: Frame) -> None:
        """Append the frame's readings; a lost GPU or a missing metric is NaN (drawn as a gap)."""
        if frame.elapsed_s is None:
            t = self.now + 1.0
        else:
            t = frame.elapsed_s + self._shift(frame.started_wall)
        if len(self.fine.t) and t <= self.fine.t[-1]:
            return  # the same tick again (an attached view re-reading an unchanged session)
        row: dict[str, float] = {TOTAL: frame.total_cost_usd, BURN: frame.burn_rate_usd_per_hour}
        prices = 0.0
        for g in frame.gpus:
            row[util_key(g.index)] = NAN if g.lost or g.utilization_pct is None else g.utilization_pct
            row[power_key(g.index)] = NAN if g.lost or g.power_w is None else g.power_w
            if g.power_limit_w:
                self.power_limits[g.index] = g.power_limit_w
            if g.memory_total_bytes:
                self.memory_totals[g.index] = g.memory_total_bytes / GIB
            prices += g.rate_per_hour or 0.0
        self.max_burn = max(self.max_burn, prices, frame.burn_rate_usd_per_hour)
        for j in frame.jobs:
            if j.tag in self._jobs or len(self._jobs) < MAX_JOBS:
                self._jobs.add(j.tag)
                row[job_key(j.tag)] = j.cost_usd
        procs = process_sm(frame.processes, instances_by_key(frame.gpus)) if self.track_processes else ()
        for p, sm in procs:  # the driver's SM %, or on MIG the process's part of its instance's (the ~SM)
            key = p.key
            if key in self._processes or len(self._processes) < MAX_PROCESSES:
                self._processes.add(key)
                row[process_sm_key(key)] = NAN if sm is None else sm
                row[process_vram_key(key)] = NAN if p.used_memory_bytes is None else p.used_memory_bytes / GIB
        self.fine.append(t, row)
        cut = bisect_left(self.fine.t, t - FINE_SECONDS)
        if cut > 256:  # trim in batches: one slice copy every few minutes, not one per poll
            self.fine.drop_before(cut)
            self._fine_from = max(self._fine_from, self.fine.t[0])
        if t >= self._next_coarse:
            self.coarse.append(t, row)
            self._next_coarse = t + self.coarse_step
            if len(self.coarse.t) >= COARSE_POINTS:
                self.coarse.halve()
                self.coarse_step *= 2
        self.version += 1

    def window(self, seconds: float | None) -> tuple[float, float]:
        """The (start, end) session times a window covers; the whole session when ``seconds`` is None.

        A session younger than the window is drawn from 0 over the window's full span (the line grows to the
        right), so the axis keeps its scale and never shows times before the session started.
        """
        end = self.now
        if seconds is None:
            return 0.0, max(end, 60.0)
        start = max(0.0, end - seconds)
        return start, max(end, start + seconds)

    def points(self, key: str, seconds: float | None) -> tuple[array, array]:
        """(times, values) of series ``key`` in the window: the fine tier when it covers it, else the coarse one
        followed by the fine points newer than its last."""
        start, _ = self.window(seconds)
        fine = self.fine
        # The fine tier covers the window when it holds every point since its start (a session younger than the
        # window, never trimmed, gets every poll, not the coarse steps).
        if seconds is not None and len(fine.t) and self._fine_from <= max(start, 0.0) + 1e-9 or not len(self.coarse.t):
            i = bisect_left(fine.t, start)
            values = fine.values.get(key)
            return fine.t[i:], (values[i:] if values is not None else array("d", [NAN]) * (len(fine.t) - i))
        coarse = self.coarse
        i = bisect_left(coarse.t, start)
        j = bisect_left(fine.t, coarse.t[-1] + 1e-9) if len(coarse.t) else 0
        # The fine tier's points older than the coarse tier's first: an attached view's stored points of the
        # window it opened with, before its coarse tier began (or before it recorded here itself).
        h0 = bisect_left(fine.t, max(start, self._fine_from))
        h1 = bisect_left(fine.t, coarse.t[0] - 1e-9) if i == 0 else h0
        cv = coarse.values.get(key)
        fv = fine.values.get(key)
        if fv is None:
            fv = array("d", [NAN]) * len(fine.t)
        times = fine.t[h0:h1] + coarse.t[i:] + fine.t[j:]
        values = fv[h0:h1] + (cv[i:] if cv is not None else array("d", [NAN]) * (len(coarse.t) - i)) + fv[j:]
        return times, values

    def _shift(self, started_wall: float | None) -> float:
        """Where a session's time 0 lies on this history's axis: its start minus the first session's."""
        if started_wall is None:
            return 0.0
        if self._base_wall is None:
            self._base_wall = started_wall
        return started_wall - self._base_wall

    def backfill(self, block: SeriesBlock) -> None:
        """Add stored points older than any held: the fine tier's (the last hour) or the coarse tier's (the whole
        session, bucketed), so the charts draw what they would have had this app watched from the start."""
        shift = self._shift(block.started_wall)
        tier = self.coarse if block.coarse else self.fine
        held = len(tier.t)
        first = tier.t[0] if held else math.inf
        n = bisect_left(block.t, first - shift - 1e-9)
        if n:
            t = array("d", (x + shift for x in block.t[:n]))
            rows: dict[str, array] = {}
            for key, values in block.values.items():
                if key.startswith("job:"):
                    tag = key[4:]
                    if tag not in self._jobs and len(self._jobs) >= MAX_JOBS:
                        continue
                    self._jobs.add(tag)
                rows[key] = values[:n]
            tier.prepend(t, rows)
        if block.coarse:
            self.coarse_step = max(self.coarse_step, block.step)
            while len(self.coarse.t) >= COARSE_POINTS:
                self.coarse.halve()
                self.coarse_step *= 2
            last = self.coarse.t[-1] if len(self.coarse.t) else 0.0
            self._next_coarse = max(self._next_coarse, last + self.coarse_step)
        elif n or not held:
            # The feed reads each span once, back from what it gave before; a block of a later session (a restarted
            # recorder) has nothing older than the points held, and changes nothing.
            self._fine_from = block.start + shift
        self.version += 1

    def jobs(self) -> set[str]:
        """Tags that have a cost series."""
        return set(self._jobs)
