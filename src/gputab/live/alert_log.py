"""The alerts a live view shows: active ones and those cleared this session, bounded, with what changed.

Fed from the poll thread: by the :class:`gputab.alerts.observer.AlertObserver` sink when this app records (one
:class:`gputab.alerts.observer.Alert` at a time), or from the store's rows when it is attached to a recorder. No textual here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from gputab.live.frame import AlertView

KEEP_CLEARED = 200
"""Cleared alerts kept for the panel: a condition that flaps for months must not grow the app without bound."""


class AlertLog:
    """Active and recently cleared alerts, and the raises and clears not yet handed to the UI.

    Args:
        keep_cleared: how many cleared alerts the panel keeps (newest).
    """

    def __init__(self, keep_cleared: int = KEEP_CLEARED) -> None:
        self._active: dict[tuple, AlertView] = {}
        self._cleared: deque[AlertView] = deque(maxlen=keep_cleared)
        self._raised_now: list[AlertView] = []
        self._cleared_now: list[AlertView] = []
        self._views: tuple[AlertView, ...] = ()
        self._critical = 0
        self._dirty = False
        self._seq = 0
        self._known_cleared: set = set()
        """Store ids of the cleared rows already taken in (as many as the store returns anyway)."""

    # -- this app's own engine ---------------------------------------------------------------------------------
    def add(self, alert: Any) -> None:
        """Take one raised or cleared :class:`gputab.alerts.observer.Alert` (the observer's sink calls this)."""
        ident = (alert.kind, alert.subject, alert.started_at)
        if alert.ended_at is None:
            self._raise(ident, self._view(f"a{self._next()}", alert))
            return
        before = self._active.pop(ident, None)
        view = self._view(before.key if before is not None else f"a{self._next()}", alert)
        if before is None:
            # Raised and ended at once (an enforcement record): news the user has not seen yet.
            self._raised_now.append(view)
        self._clear(view)

    # -- a recorder's alerts, read from the store --------------------------------------------------------------
    def sync_rows(self, rows: Iterable[dict]) -> None:
        """Make the log agree with the store's rows (``Store.alerts``); new rows count as raised, ended as cleared."""
        for r in rows:
            ident = r["id"]
            ended = r["ended_at"]
            before = self._active.get(ident)
            if before is not None and ended is None:
                continue  # the common case: still active, already shown
            if before is None and ident in self._known_cleared:
                continue
            view = AlertView(f"s{ident}", r["kind"], r["severity"], r["subject"], r["message"], r["started_at"], ended)
            if ended is None:
                self._raise(ident, view)
                continue
            if before is None:
                self._raised_now.append(view)
            else:
                del self._active[ident]
            self._known_cleared.add(ident)
            self._clear(view)

    # -- reading ------------------------------------------------------------------------------------------------
    @property
    def views(self) -> tuple[AlertView, ...]:
        """Active (newest first), then cleared (newest first); the same object while nothing changed."""
        if self._dirty:
            active = sorted(self._active.values(), key=lambda a: a.started_at, reverse=True)
            self._views = tuple(active) + tuple(reversed(self._cleared))
            self._critical = sum(1 for a in active if a.severity == "critical")
            self._dirty = False
        return self._views

    @property
    def active_count(self) -> int:
        return len(self._active)

    @property
    def critical_count(self) -> int:
        self.views  # noqa: B018 - refreshes the count when something changed
        return self._critical

    def take_changes(self) -> tuple[tuple[AlertView, ...], tuple[AlertView, ...]]:
        """The raises and clears since the last call (for notifications), oldest first; empties them.

        The feed calls this after every poll, listener or not, so the pending lists never outgrow one poll.
        """
        raised, cleared = tuple(self._raised_now), tuple(self._cleared_now)
        self._raised_now.clear()
        self._cleared_now.clear()
        return raised, cleared

    # -- internals ----------------------------------------------------------------------------------------------
    def _next(self) -> int:
        self._seq += 1
        return self._seq

    @staticmethod
    def _view(key: str, alert: Any) -> AlertView:
        return AlertView(
            key, alert.kind, alert.severity, alert.subject, alert.message, alert.started_at, alert.ended_at
        )

    def _raise(self, ident: Any, view: AlertView) -> None:
        self._active[ident] = view
        self._raised_now.append(view)
        self._dirty = True

    def _clear(self, view: AlertView) -> None:
        self._cleared.append(view)
        self._cleared_now.append(view)
        self._dirty = True
