"""Opening a database: identity, permissions, WAL, migrations, and closing the sessions of recorders that died.

Every command that opens the database goes through :meth:`Store.open`, so a session left open by a recorder
killed with ``kill -9`` (or a power cut) is closed as ``crashed`` the next time anyone looks, at its last
committed tick; that is safe only while no live recorder holds the writer lock, which is checked first.

Before anything is written, the file is checked (:func:`inspect_database`): another program's SQLite file, a
file that is not SQLite at all, a dangling symlink or a special file is refused with one line and left exactly
as it was. Only the recorder (``create=True``) creates or migrates a database; readers never do.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
from pathlib import Path

import psutil

from gputab.errors import GputabError
from gputab.store.connection import Connection
from gputab.store.lock import RecorderRunning, WriterInfo, WriterLock, peek_writer, utc_iso, writer_of_file
from gputab.store.queries import NoDatabase, StoreError, StoreQueries
from gputab.store.schema import check_not_newer, identify, migrate

#: How long a reader waits for a writer's commit to finish before giving up.
READ_BUSY_MS = 5000

_SQLITE_HEADER = b"SQLite format 3\x00"
_PERMANENT_SQLITE = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB: no retry will make this file work


class NotGputabDatabase(StoreError):
    """The file is not a gputab database (another program's, or not SQLite at all); it is never changed."""


class UntrustedDirectory(StoreError):
    """The database directory lets other users replace files in it (or the file is theirs); gputab won't write."""


_SQLITE_NOTADB = 26
"""SQLITE_NOTADB: the file is not a database."""


def lock_path_for(path: Path) -> Path:
    """The writer lock of the database file at ``path``: named after the resolved path, so every alias finds it."""
    return Path(os.path.realpath(path) + ".lock")


def inspect_database(path: Path, busy_ms: int = READ_BUSY_MS, immutable: bool = False) -> str:
    """What is at ``path``, read without changing anything: ``missing``, ``empty`` or ``ours``.

    Raises:
        NotGputabDatabase: another program's SQLite file, or not a SQLite file at all.
        StoreError: a dangling symlink, a directory or special file, a malformed database.
        sqlite3.Error: a passing fault (locked, cannot open just now): the caller may retry later.
    """
    try:
        st = os.stat(path)
    except NotADirectoryError:
        return "missing"  # a file where a directory should be: creating it will say so
    except FileNotFoundError:
        if os.path.islink(path):
            raise StoreError(
                f"{path} is a symbolic link to {os.readlink(path)!r}, which does not exist; fix or "
                f"remove the link, or give --db the database file itself"
            ) from None
        return "missing"
    except OSError as exc:
        raise StoreError(f"cannot use {path} as a database: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{path} is a directory; give --db a file in it (e.g. {path}/gputab.db)")
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path} is not a regular file (a FIFO, device or socket); give --db a database file")
    if st.st_size == 0:
        return "empty"
    # Never open the file ourselves (to read its header, say): closing any descriptor of a file drops every POSIX
    # lock this process holds on it, SQLite's own included, and a recorder that lost them lets another process's
    # reader take itself for the last connection and delete the write-ahead log under it. SQLite reads the header
    # and answers SQLITE_NOTADB for a file that is not a database.
    conn = sqlite3.connect(_ro_uri(path, immutable), uri=True, timeout=busy_ms / 1000)
    try:
        kind = identify(conn)
        if kind == "foreign":
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' LIMIT 4")]
            shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
            raise NotGputabDatabase(
                f"{path} is another program's SQLite database (tables {shown or 'none'}), not a gputab one; "
                f"gputab leaves it untouched: give --db a new file or a gputab database"
            )
        return kind
    except sqlite3.DatabaseError as exc:
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == _SQLITE_NOTADB and not _sqlite_header(path):
            raise NotGputabDatabase(
                f"{path} is not a SQLite database, so not a gputab one; gputab leaves it "
                f"untouched: give --db a new file or a gputab database"
            ) from None
        if damaged(exc):
            raise damaged_error(path, exc) from None
        raise
    finally:
        conn.close()


def _sqlite_header(path: Path) -> bool:
    """Whether the file starts with SQLite's header; read only after SQLite refused it as not a database (so no
    connection of this process is open on it, and closing this descriptor cannot drop a lock SQLite holds)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
    except OSError:
        return True  # unreadable: let the damaged-file message stand


def damaged(exc: BaseException) -> bool:
    """True for a SQLite error no retry fixes: a malformed file (SQLITE_CORRUPT) or not a database (SQLITE_NOTADB)."""
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in _PERMANENT_SQLITE


def damaged_error(path: Path, exc: BaseException) -> StoreError:
    return StoreError(
        f"{path} is not a usable SQLite database ({exc}); move it aside (or restore a backup), or "
        f"give --db another file"
    )


def open_directory(path: Path) -> str | None:
    """Why the directory of the database at ``path`` (as typed and resolved) lets others swap its files, or None.

    Unsafe: writable by other users (group or world) without the sticky bit, or owned by another user (not root):
    either could swap the database, its lock or its ``-wal`` for their own file between two of our checks.
    A directory not made yet is judged by the first existing one above it (gputab creates the rest 0700).
    """
    me = os.geteuid()
    for d in dict.fromkeys((Path(os.path.abspath(path)).parent, Path(os.path.realpath(path)).parent)):
        while not d.exists() and d != d.parent:
            d = d.parent
        try:
            st = os.stat(d)
        except OSError:
            continue
        if st.st_uid not in (me, 0):
            return f"the directory {d} belongs to uid {st.st_uid}, not to you (uid {me})"
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            return (
                f"the directory {d} is writable by other users (mode {stat.S_IMODE(st.st_mode):04o}) and has "
                f"no sticky bit"
            )
    return None


def unsafe_location(path: Path) -> str | None:
    """Why gputab must not write the database at ``path``: an open directory, a file that is someone else's,
    or a file with hard links (SQLite keeps its write-ahead log per name: two names corrupt one database)."""
    me = os.geteuid()
    try:
        st = os.stat(path)
    except OSError:
        return open_directory(path)
    if st.st_uid != me:
        return f"the database file belongs to uid {st.st_uid}, not to you (uid {me})"
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        return (
            f"the database file has {st.st_nlink} names (hard links), and SQLite keeps its log per name, so "
            f"writing through two of them corrupts it"
        )
    return open_directory(path)


def _recorder_under_another_name(path: Path) -> None:
    """Raise :class:`RecorderRunning` naming the recorder that writes the file at ``path`` under a hard link."""
    try:
        st = os.stat(path)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode) or st.st_nlink < 2:
        return
    holder = writer_of_file(st.st_dev, st.st_ino)
    if holder is not None:
        raise RecorderRunning(
            f"another gputab recorder is writing to {path} under another name ({holder.db or '?'}, a hard link: "
            f"{holder.describe()}); stop it first (kill {holder.pid or 'PID'}), or record into another database "
            f"with --db"
        )


def _refusal(path: Path, problem: str, doing: str = "record into") -> str:
    if "hard links" in problem:
        return f"will not {doing} {path}: {problem}; keep one name (a symlink is fine), or use another --db"
    if "file belongs" in problem:
        return f"will not {doing} {path}: {problem}; do it as its owner, or use another --db"
    return (
        f"will not {doing} {path}: {problem}, so another user could swap the database or its lock file; "
        f"make the directory private (chmod 700) or sticky (chmod +t), or use another --db"
    )


def recorder_alive(row: dict) -> bool:
    """True if the recorder process that opened session ``row`` (a ``sessions`` row) is still running.

    The writer lock covers every path to one file but a hard link; this catches a recorder writing through
    another name: the same host, a live pid that is not ours, and a process started before its session.
    """
    pid = row.get("pid")
    if not pid or pid == os.getpid() or row.get("started_wall") is None:
        return False
    if row.get("backend") != "demo" and row.get("host") != socket.gethostname():
        return False
    try:
        proc = psutil.Process(int(pid))
        return proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= row["started_wall"] + 1.0
    except (psutil.Error, ValueError, OverflowError):
        return False


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
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)


def _ro_uri(path: Path, immutable: bool = False) -> str:
    return f"{Path(os.path.abspath(path)).as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")


def connect(
    path: Path, readonly: bool = False, busy_ms: int = READ_BUSY_MS, wal: bool = True, immutable: bool = False
) -> Connection:
    """A :class:`~gputab.store.connection.Connection` on ``path``, switched to WAL mode if ``wal`` (read-only opens never write, not even
    the mode; readers that may close an orphan session leave the mode as they find it)."""
    if readonly:
        conn = sqlite3.connect(_ro_uri(path, immutable), uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    db = Connection(conn)
    if not readonly and wal:
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
        create: create the file and migrate its schema (the recorder); False: the database must already be
            gputab's, and its schema is read as it is.
    """

    def __init__(
        self, path: os.PathLike | str, readonly: bool = False, busy_ms: int = READ_BUSY_MS, create: bool = True
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.create = create and not readonly
        self.busy_ms = busy_ms
        """How long SQLite waits for another connection's lock (the recorder keeps it short)."""
        self.lock_path = lock_path_for(self.path)
        self.immutable = False
        """Read the main file only, creating no -wal/-shm (a reader in a directory others can write)."""
        self._db: Connection | None = None

    # -- opening ----------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: os.PathLike | str, readonly: bool = False, create: bool = True, write: bool = False) -> Store:
        """Open the database at ``path`` for a command: create and migrate it if asked, close orphan sessions.

        ``write``: the caller writes into an existing database (``create=False``): refused where the recorder
        would be. Readers (``create=False``) never create or migrate anything. On another user's database they open
        read-only and close no orphans; in a directory other users can write in (see :func:`open_directory`)
        they also read the main file alone (``immutable``), so no ``-wal``/``-shm`` file is created or followed.

        Raises:
            NoDatabase: ``create`` is False and there is no file (or an empty one).
            NotGputabDatabase: another program's file; it is left untouched.
            UntrustedDirectory: ``create`` or ``write``, and the location is not safe to write in.
            SchemaTooNew: the database was written by a newer gputab.
            StoreError: SQLite cannot open or read it.
        """
        store = cls(path, readonly=readonly, create=create)
        if write and not store.create:
            problem = unsafe_location(store.path)
            if problem is not None:
                raise UntrustedDirectory(_refusal(store.path, problem, doing="write to"))
        elif not store.create:
            if open_directory(store.path) is not None:
                # Others could plant a -wal or -shm link there: read the main file alone, create nothing.
                store.readonly = store.immutable = True
            elif unsafe_location(store.path) is not None:
                store.readonly = True  # someone else's database, or one with hard links: read, never write
        try:
            store.connect()
            if not store.readonly:
                store.close_orphans()
        except sqlite3.Error as exc:
            store.close()
            raise StoreError(f"cannot open database {store.path}: {exc}; check the path and its permissions") from None
        return store

    def connect(self) -> Connection:
        """Connect (once), checking the file is gputab's first; the recorder's store also migrates.

        Raises:
            sqlite3.Error: a passing fault (locked, read-only, full): retry later.
            StoreError: a fault no retry fixes (see :func:`inspect_database`), or no database for a reader.
        """
        if self._db is not None:
            return self._db
        kind = inspect_database(self.path, self.busy_ms, immutable=self.immutable)
        if kind != "ours" and not self.create:
            raise NoDatabase(
                f"no gputab database at {self.path} yet (no sessions recorded); record a session with `gputab record`"
            )
        if self.create:
            problem = unsafe_location(self.path)
            if problem is not None:
                raise UntrustedDirectory(_refusal(self.path, problem))
            prepare_path(self.path)
        db = connect(self.path, readonly=self.readonly, busy_ms=self.busy_ms, wal=self.create, immutable=self.immutable)
        try:
            if not self.create:
                check_not_newer(db, self.path)
            else:
                migrate(db, self.path)
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    @property
    def db(self) -> Connection:
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

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer lock ----------------------------------------------------------------------------------------
    def _trusted_uids(self) -> tuple[int, ...]:
        """Whose lock file a read-only peek believes: root's and the database file's owner's."""
        try:
            return (0, os.stat(self.path).st_uid)
        except OSError:
            return (0,)

    def writer_info(self) -> WriterInfo | None:
        """The live recorder writing this database, or None."""
        return peek_writer(self.lock_path, self._trusted_uids())

    def writer_lock(self) -> WriterLock:
        """The writer lock of this database (not taken yet); creates the directory so it can be."""
        try:
            prepare_dir(self.path)
        except OSError as exc:
            raise StoreError(f"cannot create the database directory {self.path.parent}: {exc}") from None
        return WriterLock(self.lock_path, self._trusted_uids())

    def preflight(self) -> None:
        """Refuse, before a recorder starts, a database that cannot work whatever is retried.

        Passing faults (locked, read-only, cannot open just now) are let through: the recorder holds its figures
        and retries. Raises what :meth:`connect` raises for the rest.
        """
        if self.create:
            _recorder_under_another_name(self.path)
            problem = unsafe_location(self.path)
            if problem is not None:
                raise UntrustedDirectory(_refusal(self.path, problem))
        try:
            inspect_database(self.path, busy_ms=250)
        except sqlite3.Error:
            pass

    def live_recorder_elsewhere(self) -> None:
        """Raise :class:`RecorderRunning` if an open session's recorder is alive (writing through a hard link).

        Called by a recorder holding the writer lock; a database that cannot be read now is not checked.
        """
        try:
            rows = list(
                self.db.query(
                    "SELECT id, host, backend, pid, started_wall, started_at FROM sessions WHERE ended_at IS NULL"
                )
            )
        except (sqlite3.Error, OSError):
            self.close()
            return
        for r in rows:
            if recorder_alive(r):
                raise RecorderRunning(
                    f"another gputab recorder is writing to {self.path} through another name (a hard link?): "
                    f"pid {r['pid']} on {r['host']} since {r['started_at']}, session {r['id']}; stop it first "
                    f"(kill {r['pid']}), or record into another database with --db"
                )

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
            if (
                not self.create
                and not self.db.execute("SELECT 1 FROM sessions WHERE ended_at IS NULL LIMIT 1").fetchone()
            ):
                return []  # a reader with nothing to close makes no lock file just to look
            lock = self.writer_lock()
            try:
                if not lock.try_acquire():
                    return []
            except GputabError:
                return []  # no lock file can be made: leave the sessions for a command that can
        try:
            rows = [
                r
                for r in self.db.query(
                    "SELECT id, host, backend, pid, started_wall, last_wall FROM sessions WHERE ended_at IS NULL"
                )
                if not recorder_alive(r)
            ]
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
