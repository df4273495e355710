"""Chart points read back from a session's store: the record that carries them from the feed to the history."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SeriesBlock:
    """Points of a session read back from its store, for the charts: what this app would hold had it watched the
    session from ``start`` on (a viewer attached to a running recorder gets them; see :meth:`History.backfill`).

    Times are seconds since the session started, like :attr:`Frame.elapsed_s`; values are keyed as the live
    series are (:func:`gputab.live.history.util_key`, ``job:TAG``, ``total``, ...), NaN where not available.
    """

    start: float
    """The block holds every stored point from this session time until its newest."""
    t: array
    values: dict[str, array] = field(default_factory=dict)
    coarse: bool = False
    """A whole-session block for the coarse tier (bucketed); else points for the fine tier (the last hour)."""
    step: float = 10.0
    """Seconds between its points (the store's series step, or the bucket)."""
    started_wall: float | None = None
    """When the session started (Unix seconds): places the block on the history's time axis."""
