"""The charts' history of a session another process records, read back from its store.

A viewer attached to a running recorder (:class:`gputab.live.attached_feed.AttachedFeed`) starts with the points
the recorder stored, so its charts show what the recorder's own live view shows: the current window's span when it
attaches (raw series steps), the rest of the last hour when the window widens to an hour, and the whole session,
bucketed, when it widens to the session. Each span is read once, back from the last one read.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping

from gputab.live.history import (
    BURN,
    COARSE_POINTS,
    FINE_SECONDS,
    NAN,
    TOTAL,
    WINDOWS,
    job_key,
    power_key,
    util_key,
)
from gputab.live.series_block import SeriesBlock
from gputab.store.live_series import StoredSpan, stored_span
from gputab.store.queries import StoreQueries


def stored_burn_rate(gpu: Mapping, power_w: float | None) -> float | None:
    """A GPU's $/h now, from its price as the session stored it (``session_gpus``): the rate, plus energy at
    ``power_w`` where the price charges it; the ledger's ``Price.burn_rate``. None without a stored rate."""
    rate = gpu.get("rate_per_hour")
    if rate is None:
        return None
    if gpu.get("charge_energy") and power_w:
        rate += power_w / 1000.0 * (gpu.get("price_per_kwh") or 0.0) * (gpu.get("pue") or 1.0)
    return rate


def series_block(
    span: StoredSpan, gpus: list[dict], started_wall: float | None, coarse: bool, step: float
) -> SeriesBlock:
    """The live series of a stored span: each GPU's utilization (%) and power, each job's cumulative cost, the
    session's cumulative cost and its burn rate ($/h of every GPU at the step's mean power)."""
    n = len(span.t)
    values: dict[str, array] = {}
    prices = {g["index"]: g for g in gpus}
    total, burn = array("d"), array("d")
    running = span.cost_before_usd
    for k in range(n):
        running += sum(g.cost_usd[k] for g in span.gpus.values())
        total.append(running)
        rates = (stored_burn_rate(prices[i], g.power_w[k]) for i, g in span.gpus.items() if i in prices)
        burn.append(sum(r for r in rates if r is not None))
    values[TOTAL], values[BURN] = total, burn
    for index, g in span.gpus.items():
        values[util_key(index)] = array("d", (NAN if u is None else u * 100.0 for u in g.utilization))
        values[power_key(index)] = array("d", (NAN if p is None else p for p in g.power_w))
    for tag, costs in span.jobs.items():
        values[job_key(tag)] = array("d", (NAN if c is None else c for c in costs))
    return SeriesBlock(span.start_s, array("d", span.t), values, coarse=coarse, step=step, started_wall=started_wall)


class Backfill:
    """Which stored spans of the attached session the app's history still lacks, and reading them.

    Args:
        window: the charts' window when the app starts (seconds; None: the whole session).
    """

    def __init__(self, window: float | None = WINDOWS[0][0]) -> None:
        self.window = window
        self._session: int | None = None
        self._fine_from = 0.0  # session time from which the fine tier was given every stored point
        self._first = 0.0  # session time of the first frame: the coarse tier has its own points from then on
        self._coarse_done = False

    def want(self, window: float | None) -> None:
        """The charts now show ``window``: the next :meth:`block` reads what it needs and was not read yet."""
        self.window = window

    def block(
        self, store: StoreQueries, session: Mapping, gpus: list[dict], now_s: float, started_wall: float | None
    ) -> SeriesBlock | None:
        """The stored points the history lacks for the current window, or None when it has them all.

        Args:
            session: the session as :meth:`StoreQueries.session` reads it (``id``, ``series_interval``).
            now_s: the session time of the frame this block goes with (points from then on come with frames).
        """
        sid = session["id"]
        if sid != self._session:  # attached now, or the recorder was restarted: a new session, nothing read yet
            self._session, self._fine_from, self._first, self._coarse_done = sid, now_s, now_s, False
        step = float(session.get("series_interval") or 10.0)
        if self.window is None:
            if self._coarse_done:
                return None
            self._coarse_done = True
            end = self._first
            bucket = max(step, end / (COARSE_POINTS // 2))
            span = stored_span(store, sid, 0.0, end, bucket)
            return series_block(span, gpus, started_wall, coarse=True, step=bucket)
        start = max(0.0, now_s - min(self.window, FINE_SECONDS))
        if start >= self._fine_from - 1e-9:
            return None
        span = stored_span(store, sid, start, self._fine_from)
        self._fine_from = start
        return series_block(span, gpus, started_wall, coarse=False, step=step)
