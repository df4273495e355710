"""The recorder's budgets: the config's and the database's, merged, kept current, with the spend the store knows.

:class:`BudgetKeeper` serves every observer that keeps budgets (a ``budget_book``: :class:`gputab.alerts.observer.AlertObserver`):

- At start it adds the demo's own budgets (the lowest layer), reads the database's (``gputab budget set``) and
  carries into each period in use what every tag spent in it in earlier sessions (a restart resets nothing).
- Every :data:`REREAD_SECONDS` it reads the ``budgets`` table again on the recorder's own connection (one small
  SELECT), so ``gputab budget set`` takes effect in a running recorder within seconds.
- When a period is in use that nothing was carried into (a new budget, a new period kind, or a period that rolled
  over: the book saw that itself and took this session's costs as the new baseline), it carries the store's spend in
  that period from the other sessions (and, for a period that began during this session before the budget was
  known, this session's stored cost at its start).
- When a budget says ``stop``, the observer gets a :class:`gputab.budgets.enforcement.BudgetEnforcer` (if it has none).

The store may be in trouble (locked, read-only): a read that fails is retried at the next re-read, and until then
the budgets count this session only (said once in the log).

:func:`stored_book` builds the same book from the store alone, for a reader: the live view attached to a running
recorder shows the budgets as the recorder keeps them, as of its last commit.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Iterable
from typing import Any

from gputab.budgets.model import Budget, BudgetBook, from_caps
from gputab.store import NoDatabase, Store, StoreError
from gputab.store.budgets import read_budgets, session_cost_at, spend_since
from gputab.store.queries import StoreQueries

log = logging.getLogger("gputab.recording.recorder")

REREAD_SECONDS = 5.0
"""How often a running recorder reads the ``budgets`` table again (monotonic seconds)."""


def stored_budgets(rows: Iterable[dict]) -> tuple[Budget, ...]:
    """Rows of the ``budgets`` table as budgets (a row that no longer validates is skipped)."""
    out = []
    for r in rows:
        try:
            out.append(
                Budget(
                    str(r["tag"]),
                    float(r["cap_usd"]),
                    str(r["period"]),
                    bool(r["stop"]),
                    float(r["grace_seconds"]),
                    tuple(r["users"]),
                    origin="database",
                )
            )
        except (ValueError, TypeError):
            continue
    return tuple(out)


def stored_book(
    store: StoreQueries,
    budgets: Iterable[Budget],
    wall: float,
    session_id: int | None,
    defaults: Iterable[Budget] = (),
) -> BudgetBook:
    """The budget book the recorder of ``session_id`` keeps, rebuilt from the store alone (only SELECTs).

    Args:
        store: a store, read-only will do (a database without the ``budgets`` table has no stored budgets).
        budgets: the budgets defined outside the database (the config's).
        wall: the time whose periods are carried.
        session_id: the session being recorded: what its jobs cost is the caller's (its ``jobs`` rows); the other
            sessions' spend in each period is carried, less what this session had spent when the period began.
        defaults: budgets below every other layer (the demo's own, when the session records the demo box).

    Returns:
        A book whose :meth:`BudgetBook.spent` gives each tag's spend in its period from this session's cost.
    """
    book = BudgetBook(budgets)
    book.add_defaults(defaults)
    book.store(stored_budgets(read_budgets(store)))
    for key in book.periods(wall):
        base = None
        if session_id is not None and key[1] is not None:
            base = session_cost_at(store, session_id, key[1])
        book.carry(key, spend_since(store, key[1], exclude_session=session_id), base)
    return book


class BudgetKeeper:
    """Keeps the budget books of the recorder's observers current (see the module's docstring).

    Args:
        store: the recorder's store (its connection is used once the session runs).
        observers: the recorder's observers; those with a ``budget_book`` are served.
        backend: the sampling backend (the demo has budgets of its own: ``demo_budgets``).
    """

    def __init__(self, store: Store, observers: Iterable[Any], backend: Any = None) -> None:
        self.store = store
        self.observers = [o for o in observers if getattr(o, "budget_book", None) is not None]
        self.books: list[BudgetBook] = [o.budget_book for o in self.observers]
        self.backend = backend
        self._next_read = -math.inf
        self._retry_at = -math.inf
        self._trouble_said = False

    def start(self, wall: float, mono: float) -> None:
        """Before the session is written: the demo's budgets, the database's, and the earlier sessions' spend."""
        if not self.books:
            return
        demo = getattr(self.backend, "demo_budgets", None)
        if demo is not None:
            for book in self.books:
                book.add_defaults(from_caps(demo(), origin="demo"))
        try:
            # A connection of its own, read-only: the recorder's may not be open (or usable) yet.
            with Store.open(self.store.path, readonly=True, create=False) as earlier:
                self._read(earlier, mono)
                self._carry(earlier, wall, None)
        except NoDatabase:
            self._next_read = mono + REREAD_SECONDS
            for book in self.books:  # nothing was spent before: carry nothing, say nothing
                for key in book.uncarried(wall):
                    book.carry(key, {})
        except (StoreError, sqlite3.Error, OSError) as exc:
            self._trouble(exc, mono)
        self._arm()

    def tick(self, wall: float, mono: float, session_id: int | None) -> None:
        """Before the observers see a tick: re-read the table when due, carry periods nothing was carried into."""
        if not self.books:
            return
        due = mono >= self._next_read
        pending = mono >= self._retry_at and any(book.uncarried(wall) for book in self.books)
        if not (due or pending):
            return
        try:
            if due:
                self._read(self.store, mono)
            self._carry(self.store, wall, session_id)
        except (StoreError, sqlite3.Error, OSError) as exc:
            self._next_read = mono + REREAD_SECONDS
            self._trouble(exc, mono)
        self._arm()

    def _read(self, store: Store, mono: float) -> None:
        self._next_read = mono + REREAD_SECONDS
        budgets = stored_budgets(read_budgets(store))
        for book in self.books:
            book.store(budgets)

    def _carry(self, store: Store, wall: float, session_id: int | None) -> None:
        """Carry every period in use that nothing was carried into (one query per period, not per tag)."""
        keys = {key for book in self.books for key in book.uncarried(wall)}
        for key in sorted(keys, key=lambda k: (k[1] is None, k[1] or 0.0, k[0])):
            prior = spend_since(store, key[1], exclude_session=session_id)
            for book in self.books:
                if key not in book.uncarried(wall):
                    continue
                base = book.base(key)
                if base is None and session_id is not None and key[1] is not None:
                    base = session_cost_at(store, session_id, key[1])  # the period began during this session
                book.carry(key, prior, base)
        self._trouble_said = False

    def _arm(self) -> None:
        """Give the observers whose budgets stop jobs an enforcer (opt-in: only a budget with ``stop``)."""
        for obs in self.observers:
            if getattr(obs, "enforcer", None) is None and any(b.stop for b in obs.budget_book.budgets):
                from gputab.budgets.enforcement import BudgetEnforcer

                obs.enforcer = BudgetEnforcer()

    def _trouble(self, exc: BaseException, mono: float) -> None:
        self._retry_at = mono + REREAD_SECONDS
        if not self._trouble_said:
            self._trouble_said = True
            log.warning("budgets count this session only for now: cannot read the database's budgets (%s)", exc)
