"""One writer per database: an ``flock`` on a lock file beside it.

The kernel drops an ``flock`` when its holder dies, even by ``kill -9``, so a stale lock never needs cleaning
up, and "no one holds the lock" reliably means "no recorder is writing". The file also holds the holder's pid,
host, start time and session id as JSON, so a second recorder can say who is running and a viewer can find
the live session. The file is never deleted: deleting a lock file races with a process about to lock it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from gputab.errors import GputabError


class RecorderRunning(GputabError):
    """Another recorder holds the writer lock of this database."""


@dataclass(frozen=True)
class WriterInfo:
    """Who holds the writer lock (as the holder wrote it; fields may be missing on an old file)."""

    pid: int | None = None
    host: str | None = None
    started_at: str | None = None
    """ISO 8601 UTC time the recorder started."""
    session_id: int | None = None
    db: str | None = None

    def describe(self) -> str:
        """One line naming the holder, for messages."""
        sid = f", session {self.session_id}" if self.session_id is not None else ""
        return f"pid {self.pid if self.pid is not None else '?'} on {self.host or '?'} since {self.started_at or '?'}{sid}"


def utc_iso(wall: float) -> str:
    """Unix seconds as ISO 8601 UTC with a ``Z`` (what the store and the CLI show)."""
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _read_info(fd: int) -> WriterInfo:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 4096)
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        return WriterInfo(**{k: data.get(k) for k in WriterInfo.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return WriterInfo()


def _open_lock_file(path: Path) -> int:
    """Open (creating, 0600) the lock file; read-only when the directory or file is not writable.

    ``flock`` works on a read-only descriptor, so a recorder on a read-only database directory still excludes
    others (it then cannot write its details into the file).
    """
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def peek_writer(lock_path: Path) -> WriterInfo | None:
    """The live writer of the database whose lock file is ``lock_path``, or None if no one holds it."""
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_info(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class WriterLock:
    """The writer lock of one database, held from :meth:`acquire` until :meth:`release` (or process death)."""

    def __init__(self, lock_path: Path) -> None:
        self.path = lock_path
        self._fd: int | None = None
        self.info: WriterInfo | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock without waiting; False if someone else holds it."""
        try:
            fd = _open_lock_file(self.path)
        except OSError as exc:
            raise GputabError(f"cannot open the writer lock {self.path}: {exc}; record into a directory you can "
                              f"write (--db)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def acquire(self, wait: float = 2.0, started_wall: float | None = None) -> None:
        """Take the lock for a recorder, or raise :class:`RecorderRunning` naming the holder.

        Waits up to ``wait`` seconds because other commands hold the lock for a moment while they close
        orphan sessions; a recorder holds it for good, so it is still held when the wait ends.
        """
        deadline = time.monotonic() + wait
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                holder = peek_writer(self.path) or WriterInfo()
                raise RecorderRunning(
                    f"another gputab recorder is writing to {self.path.with_suffix('')} ({holder.describe()}); "
                    f"stop it first (kill {holder.pid or 'PID'}), or record into another database with --db"
                )
            time.sleep(0.05)
        self.write_info(WriterInfo(pid=os.getpid(), host=socket.gethostname(),
                                   started_at=utc_iso(started_wall if started_wall is not None else time.time()),
                                   db=str(self.path.with_suffix(""))))

    def write_info(self, info: WriterInfo) -> None:
        """Record who holds the lock (best effort: a read-only lock file keeps no details)."""
        self.info = info
        if self._fd is None:
            return
        data = json.dumps(asdict(info)).encode("utf-8")
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError:
            pass

    def set_session(self, session_id: int) -> None:
        if self.info is not None:
            self.write_info(WriterInfo(**{**asdict(self.info), "session_id": session_id}))

    def release(self) -> None:
        """Drop the lock; the details are cleared so no one mistakes them for a live writer."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
