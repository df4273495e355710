"""What a job will cost when it finishes: progress rate, ETA and projected cost (docs/cost-model.md, "Forecast").

Pure: no I/O, no clock of its own. A :class:`ProgressTrack` holds a job's progress fraction as it was seen
(monotonic time, fraction 0-1); :func:`forecast` turns it, with the job's spend and burn rate, into a
:class:`Forecast`:

- rate ``r`` = growth of the fraction per second over the recent window: from the fraction at ``now - window``
  (interpolated between the observations around it; the first observation while the history is shorter) to the
  latest one, divided by the time to ``now`` (a job that stops reporting slows down in the forecast instead of
  keeping its last speed forever);
- ETA = ``(1 - f) / r``; projected cost at completion = spent + burn rate x ETA (the GPUs it holds now);
- the range: the same over the recent half of the window; the faster of the two rates gives the low cost, the
  slower the high one. A steady job has no range (both rates agree); a job that just changed speed has a wide one.

"Unknown" until the window has data: two observations at least ``min_span`` seconds apart with the fraction grown.
With a constant rate and constant burn the projection is exact; it follows a change of rate within one window
(once ``window`` seconds, plus one reporting interval, have passed since the change, the window holds only the
new rate).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

DEFAULT_WINDOW_SECONDS = 600.0
DEFAULT_MIN_SPAN_SECONDS = 30.0
MAX_POINTS = 4096
"""Observations kept per job (a job reporting every tick of a long window is thinned, oldest first)."""


@dataclass(frozen=True)
class Forecast:
    """One job's forecast. ``state``: ``unknown`` (not enough data yet), ``stalled`` (no progress in the window),
    ``running`` or ``done``. Figures are None where the state leaves them unknown."""

    state: str
    progress_fraction: float | None
    rate_per_second: float | None = None
    eta_seconds: float | None = None
    projected_cost_usd: float | None = None
    projected_cost_low_usd: float | None = None
    projected_cost_high_usd: float | None = None
    """None when the slow end of the range is unbounded (the recent half of the window saw no progress)."""

    def to_json(self) -> dict:
        """The keys every JSON output uses (the project's vocabulary)."""
        return {
            "forecast_state": self.state,
            "progress_fraction": self.progress_fraction,
            "progress_rate_per_second": self.rate_per_second,
            "eta_seconds": self.eta_seconds,
            "projected_cost_usd": self.projected_cost_usd,
            "projected_cost_low_usd": self.projected_cost_low_usd,
            "projected_cost_high_usd": self.projected_cost_high_usd,
        }


UNKNOWN = Forecast("unknown", None)


class ProgressTrack:
    """A job's progress fraction over time (the last ``window`` seconds of it, and the latest value).

    Args:
        window: seconds of observations the rate looks back over.
        min_span: the least time between the first and the last observation before a rate is given.
    """

    def __init__(self, window: float = DEFAULT_WINDOW_SECONDS, min_span: float = DEFAULT_MIN_SPAN_SECONDS) -> None:
        if not window > 0:
            raise ValueError("window must be positive")
        self.window = window
        self.min_span = min(min_span, window)
        self.points: deque[tuple[float, float]] = deque()

    @property
    def fraction(self) -> float | None:
        return self.points[-1][1] if self.points else None

    def observe(self, t: float, fraction: float) -> None:
        """The job was at ``fraction`` (clamped to 0-1) at monotonic time ``t``.

        A fraction that went down means the job restarted its count (a new run under the same tag): the history
        before it says nothing about the new run, so it is dropped.
        """
        f = min(max(float(fraction), 0.0), 1.0)
        if self.points and (t < self.points[-1][0] or f < self.points[-1][1]):
            self.points.clear()
        if self.points and self.points[-1][1] == f and len(self.points) > 1 and self.points[-2][1] == f:
            self.points[-1] = (t, f)  # a plateau needs only its ends
        else:
            self.points.append((t, f))
        self._trim(t)
        while len(self.points) > MAX_POINTS:
            del self.points[1]  # thin from the old end, keeping the oldest (the window's anchor)

    def _trim(self, now: float) -> None:
        # Keep the last point at or before the window's start: the rate interpolates the fraction there.
        while len(self.points) > 1 and self.points[1][0] <= now - self.window:
            self.points.popleft()

    def rate(self, now: float, window: float | None = None) -> float | None:
        """Growth of the fraction per second over the last ``window`` seconds, or None while unknown."""
        w = self.window if window is None else window
        if not self.points:
            return None
        pts = self.points
        start = now - w
        last_t, last_f = pts[-1]
        if pts[0][0] >= start:
            t0, f0 = pts[0]  # the history is shorter than the window: from its beginning
        elif last_t <= start:
            return 0.0  # nothing new for a whole window: stalled
        else:
            i = next(i for i in range(len(pts)) if pts[i][0] > start)
            (ta, fa), (tb, fb) = pts[i - 1], pts[i]
            t0, f0 = start, fa + (fb - fa) * (start - ta) / (tb - ta)
        span = max(now, last_t) - t0
        if len(pts) < 2 or span < min(self.min_span, w) or span <= 0:
            return None
        return (last_f - f0) / span


def forecast(track: ProgressTrack | None, now: float, spent_usd: float, burn_usd_per_hour: float) -> Forecast:
    """The job's forecast at monotonic time ``now``; see the module docstring for the rules."""
    if track is None or track.fraction is None:
        return UNKNOWN
    f = track.fraction
    if f >= 1.0:
        return Forecast("done", f, 0.0, 0.0, spent_usd, spent_usd, spent_usd)
    r = track.rate(now)
    if r is None:
        return Forecast("unknown", f)
    if r <= 0:
        return Forecast("stalled", f, 0.0)
    recent = track.rate(now, track.window / 2)
    slow, fast = (min(r, recent), max(r, recent)) if recent is not None else (r, r)
    burn_per_s = max(burn_usd_per_hour, 0.0) / 3600.0
    eta = (1.0 - f) / r
    mid = spent_usd + burn_per_s * eta
    low = min(spent_usd + burn_per_s * (1.0 - f) / fast, mid)  # min/max: rounding never puts mid outside
    high = max(spent_usd + burn_per_s * (1.0 - f) / slow, mid) if slow > 0 else None
    return Forecast("running", f, r, eta, mid, low, high)
