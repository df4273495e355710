"""Opening a database: permissions, WAL, migrations, and closing the sessions of recorders that died.

Every command that opens the database goes through :meth:`Store.open`, so a session left open by a recorder
killed with ``kill -9`` (or a power cut) is closed as ``crashed`` the next time anyone looks, at its last
committed tick; that is safe only while no live recorder holds the writer lock, which is checked first.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlite_utils import Database

from gputab.errors import GputabError
from gputab.store.lock import WriterInfo, WriterLock, peek_writer, utc_iso
from gputab.store.queries import NoDatabase, StoreError, StoreQueries
from gputab.store.schema import check_not_newer, migrate

#: How long a reader waits for a writer's commit to finish before giving up.
READ_BUSY_MS = 5000


def lock_path_for(path: Path) -> Path:
    return Path(str(path) + ".lock")


def prepare_dir(path: Path) -> None:
    """Create the database's directory, private (0700), if it does not exist."""
    parent = path.parent
    if not parent.exists():
        parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        os.chmod(parent, 0o700)  # mkdir's mode is filtered through the umask


def prepare_path(path: Path) -> None:
    """Create the database directory (0700) and an empty file (0600) so SQLite never creates them wider.

    SQLite gives the ``-wal`` and ``-shm`` files the database file's mode, so they stay private too. An
    existing directory keeps its mode: gputab does not change permissions it did not set.
    """
    prepare_dir(path)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)


def connect(path: Path, readonly: bool = False, busy_ms: int = READ_BUSY_MS) -> Database:
    """A sqlite-utils Database on ``path`` in WAL mode (read-only opens never write, not even the mode)."""
    if readonly:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    db = Database(conn, execute_plugins=False)
    if not readonly:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives a process crash; only a power cut can lose the last commits.
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return db


class Store(StoreQueries):
    """The session database of one path.

    Cheap to construct (no I/O); :meth:`open` connects, migrates and closes orphan sessions. The recorder
    writes through a :class:`gputab.store.writes.SessionWriter`; everything else reads through the query
    methods of :mod:`gputab.store.queries`, exposed here.

    Args:
        path: the SQLite file.
        readonly: open without writing anything (viewers of a database another user's recorder writes).
    """

    def __init__(self, path: os.PathLike | str, readonly: bool = False, busy_ms: int = READ_BUSY_MS) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.busy_ms = busy_ms
        """How long SQLite waits for another connection's lock (the recorder keeps it short)."""
        self.lock_path = lock_path_for(self.path)
        self._db: Database | None = None

    # -- opening ----------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: os.PathLike | str, readonly: bool = False, create: bool = True) -> Store:
        """Open the database at ``path`` for a command: create it if asked, migrate, close orphan sessions.

        Raises:
            NoDatabase: ``create`` is False and there is no file.
            SchemaTooNew: the database was written by a newer gputab.
            StoreError: SQLite cannot open or read it.
        """
        store = cls(path, readonly=readonly)
        if not store.path.exists() and (readonly or not create):
            raise NoDatabase(f"no gputab database at {store.path} yet; record a session with `gputab record`")
        try:
            store.connect()
            if not readonly:
                store.close_orphans()
        except sqlite3.Error as exc:
            store.close()
            raise StoreError(f"cannot open database {store.path}: {exc}; check the path and its permissions") from None
        return store

    def connect(self) -> Database:
        """Connect (once) and bring the schema up to date; raises sqlite3.Error on trouble."""
        if self._db is not None:
            return self._db
        if not self.readonly:
            prepare_path(self.path)
        db = connect(self.path, readonly=self.readonly, busy_ms=self.busy_ms)
        try:
            if self.readonly:
                check_not_newer(db, self.path)
            else:
                migrate(db, self.path)
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    @property
    def db(self) -> Database:
        return self.connect()

    def close(self) -> None:
        """Close the connection (a later use reconnects)."""
        if self._db is not None:
            try:
                self._db.close()
            finally:
                self._db = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the writer lock ----------------------------------------------------------------------------------------
    def writer_info(self) -> WriterInfo | None:
        """The live recorder writing this database, or None."""
        return peek_writer(self.lock_path)

    def writer_lock(self) -> WriterLock:
        """The writer lock of this database (not taken yet); creates the directory so it can be."""
        try:
            prepare_dir(self.path)
        except OSError as exc:
            raise StoreError(f"cannot create the database directory {self.path.parent}: {exc}") from None
        return WriterLock(self.lock_path)

    def close_orphans(self, held: bool = False) -> list[int]:
        """Close sessions left open by dead recorders as ``crashed`` at their last committed tick.

        Args:
            held: the caller already holds the writer lock (a recorder starting), so every open session
                is an orphan. Otherwise the lock is taken for a moment, and nothing is done if a live
                recorder holds it.

        Returns:
            The ids of the sessions closed.
        """
        lock = None
        if not held:
            lock = self.writer_lock()
            try:
                if not lock.try_acquire():
                    return []
            except GputabError:
                return []  # no lock file can be made: leave the sessions for a command that can
        try:
            rows = list(self.db.query("SELECT id, started_wall, last_wall FROM sessions WHERE ended_at IS NULL"))
            if not rows:
                return []
            with self.db.atomic():
                for r in rows:
                    end = r["last_wall"] if r["last_wall"] is not None else r["started_wall"]
                    self.db.execute(
                        "UPDATE sessions SET ended_wall = ?, ended_at = ?, end_reason = 'crashed', "
                        "end_detail = 'recorder stopped without closing the session' WHERE id = ?",
                        [end, utc_iso(end), r["id"]],
                    )
            return [r["id"] for r in rows]
        finally:
            if lock is not None:
                lock.release()

