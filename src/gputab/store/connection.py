"""The store's connection: sqlite-utils' ``Database`` API on the standard library, sqlite-utils loaded only if needed.

What the store uses on every tick and every read (``execute``, ``query``, ``atomic``, ``conn``, ``close``,
``db[name].exists()``) is done here with :mod:`sqlite3`, with sqlite-utils' own semantics (``execute`` commits a
write made outside a transaction; ``atomic`` nests with savepoints). Anything else (``db[name].insert(...)``,
``table_names()``, creating tables in a migration) is handed to a sqlite-utils ``Database`` on the same connection,
imported on first use. sqlite-utils with its dependencies (dateutil, pluggy, csv, ctypes, zoneinfo, hashlib) is
3.6 MiB of a process's memory: a database at the current schema, written and read through this class, never loads it
(the live view's share of bench/NOTES.md).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlite_utils import Database

_NO_AUTOCOMMIT = ("BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE")
_savepoints = itertools.count(1)


def unique_keys(names: list[str]) -> list[str]:
    """Column names made unique as sqlite-utils makes them: a repeated ``id`` becomes ``id_2``, ``id_3``..."""
    taken = set(names)
    if len(taken) == len(names):
        return names
    seen: set[str] = set()
    out = []
    for name in names:
        new, n = name, 2
        while name in seen and (new in seen or new in taken):
            new, n = f"{name}_{n}", n + 1
        seen.add(new)
        out.append(new)
    return out


def _first_keyword(sql: str) -> str:
    """The statement's first word, upper-cased (leading comments and blanks skipped, as SQLite does)."""
    text = sql.lstrip(" \t\r\n;\ufeff")
    while text.startswith(("--", "/*")):
        end = text.find("\n") + 1 if text.startswith("--") else text.find("*/") + 2
        if end <= 1:
            return ""
        text = text[end:].lstrip(" \t\r\n;\ufeff")
    word = text.split(None, 1)[0] if text else ""
    return "".join(c for c in word if c.isalpha() or c == "_").upper()


class Connection:
    """A sqlite3 connection with the part of sqlite-utils' ``Database`` the store uses (see the module)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._full: Database | None = None
        conn.execute("PRAGMA recursive_triggers=on")  # as sqlite-utils sets it on every connection it wraps

    def sqlite_utils(self) -> Database:
        """A sqlite-utils ``Database`` on this same connection (sqlite-utils is imported the first time)."""
        if self._full is None:
            from gputab.store._sqlite_utils import Database  # without numpy and pandas

            self._full = Database(self.conn, recursive_triggers=False, execute_plugins=False)
        return self._full

    def execute(self, sql: str, parameters: Sequence | dict[str, Any] | None = None) -> sqlite3.Cursor:
        """Run one statement; a write outside a transaction is committed at once (as in sqlite-utils)."""
        conn = self.conn
        was_in_transaction = conn.in_transaction
        try:
            cursor = conn.execute(sql) if parameters is None else conn.execute(sql, parameters)
        except Exception:
            if not was_in_transaction and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if (
            not was_in_transaction
            and conn.in_transaction
            and cursor.description is None
            and _first_keyword(sql) not in _NO_AUTOCOMMIT
        ):
            conn.execute("COMMIT")
        return cursor

    def query(self, sql: str, params: Sequence | dict[str, Any] | None = None) -> Iterator[dict]:
        """The rows of a ``SELECT`` (or a ``PRAGMA`` that returns rows) as dicts; the statement runs at once."""
        cursor = self.conn.execute(sql) if params is None else self.conn.execute(sql, params)
        if cursor.description is None:
            raise ValueError("query() can only be used with SQL that returns rows - use execute() for other statements")
        keys = unique_keys([d[0] for d in cursor.description])
        return (dict(zip(keys, row, strict=True)) for row in cursor)

    @contextmanager
    def atomic(self) -> Generator[Connection, None, None]:
        """One transaction (a savepoint inside another), rolled back if the block raises."""
        conn = self.conn
        if conn.in_transaction:
            savepoint = f"gputab_{next(_savepoints)}"
            conn.execute(f"SAVEPOINT {savepoint}")
            try:
                yield self
            except BaseException:
                if conn.in_transaction:
                    conn.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                    conn.execute(f"RELEASE SAVEPOINT {savepoint}")
                raise
            conn.execute(f"RELEASE SAVEPOINT {savepoint}")
            return
        conn.execute("BEGIN")
        try:
            yield self
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def table_exists(self, name: str) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
            is not None
        )

    def __getitem__(self, name: str) -> _Table:
        return _Table(self, name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not set yet (copy, pickle) or private: never sqlite-utils'
            raise AttributeError(name)
        return getattr(self.sqlite_utils(), name)

    def close(self) -> None:
        self.conn.close()


class _Table:
    """``db[name]``: ``exists()`` answered with plain SQL, everything else by sqlite-utils' ``Table``."""

    def __init__(self, db: Connection, name: str) -> None:
        self.db = db
        self.name = name

    def exists(self) -> bool:
        return self.db.table_exists(self.name)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_") or attr in ("db", "name"):  # not set yet (copy, pickle)
            raise AttributeError(attr)
        return getattr(self.db.sqlite_utils()[self.name], attr)
