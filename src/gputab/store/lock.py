"""One writer per database: an ``flock`` on a lock file beside it.

The kernel drops an ``flock`` when its holder dies, even by ``kill -9``, so a stale lock never needs cleaning
up, and "no one holds the lock" reliably means "no recorder is writing". The file also holds the holder's pid,
host, start time and session id as JSON, so a second recorder can say who is running and a viewer can find
the live session. The file is never deleted: deleting a lock file races with a process about to lock it.

The lock belongs to the database file, not to the path as typed: it is named after the resolved path, so
``r.db``, a symlink to it and ``./x/../r.db`` all find the same lock. A hard link is another name no path
resolves to; SQLite keeps its write-ahead log per name, so gputab never writes a database that has more than one
(:func:`writer_of_file` finds who records it under its other name, to say so).

On a shared box the directory may hold files planted by someone else: the lock file is opened without following
links (``O_NOFOLLOW``) and used only when ``fstat`` says it is a regular file with one link that we own (a
read-only peek also trusts root and the database file's owner). Anything else is refused, never written to.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
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
        return (
            f"pid {self.pid if self.pid is not None else '?'} on {self.host or '?'} since {self.started_at or '?'}{sid}"
        )


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


_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # O_NONBLOCK: a planted FIFO must not hang the open


class UntrustedSideFile(GputabError):
    """A lock (or other side) file that is a link, not a regular file, or someone else's: never used."""


def side_file_problem(fd: int, trusted_uids: tuple[int, ...] = ()) -> str | None:
    """Why the open file ``fd`` is not one gputab may use (None if it may).

    Args:
        fd: the file, opened with ``O_NOFOLLOW``.
        trusted_uids: owners trusted besides ourselves (only for a file we will not write).
    """
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid != os.geteuid() and st.st_uid not in trusted_uids:
        return f"belongs to uid {st.st_uid}, not to you (uid {os.geteuid()})"
    if st.st_nlink != 1 and not trusted_uids:
        return f"has {st.st_nlink} hard links (a file we write must have one)"
    return None


def open_side_file(path: Path, trusted_uids: tuple[int, ...] = ()) -> tuple[int, bool]:
    """Open (creating, 0600) a side file of the database without following links; check it before any write.

    Falls back to read-only when the directory or file is not writable: ``flock`` works on a read-only
    descriptor, so a recorder on a read-only database directory still excludes others (it then cannot write
    its details into the file). A read-only file may also belong to one of ``trusted_uids``.

    Returns:
        (fd, writable).

    Raises:
        UntrustedSideFile: a symbolic link, a special file, a file with other links, or someone else's file.
    """
    writable = True
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UntrustedSideFile(_refusal(path, "is a symbolic link")) from None
        if exc.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise
        writable = False
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        except OSError as exc2:
            if exc2.errno == errno.ELOOP:
                raise UntrustedSideFile(_refusal(path, "is a symbolic link")) from None
            raise
    problem = side_file_problem(fd, () if writable else trusted_uids)
    if problem is not None:
        os.close(fd)
        raise UntrustedSideFile(_refusal(path, problem))
    return fd, writable


def _refusal(path: Path, problem: str) -> str:
    return (
        f"the lock file {path} {problem}; gputab does not use or change it (someone may have planted it). "
        f"Remove it if no gputab is using this database, or record into a private directory with --db"
    )


def peek_writer(lock_path: Path, trusted_uids: tuple[int, ...] = (0,)) -> WriterInfo | None:
    """The live writer of the database whose lock file is ``lock_path``, or None if no one holds it.

    A lock file that is a link, a special file, or belongs to someone outside ``trusted_uids`` (and not to us)
    tells nothing: None.
    """
    try:
        fd = os.open(lock_path, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return None
    try:
        if side_file_problem(fd, trusted_uids or (0,)) is not None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_info(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def writer_of_file(dev: int, ino: int) -> WriterInfo | None:
    """The gputab recorder that has the file (``st_dev``, ``st_ino``) open under any name, or None.

    Looks through ``/proc/*/fd`` (only the processes we may inspect): a process with the file open and a locked
    ``.lock`` file beside some name of it is its recorder, described by that lock file.
    """
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
    except OSError:
        return None
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        has_file, locks = False, []
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            has_file = has_file or (st.st_dev, st.st_ino) == (dev, ino)
            if target.endswith(".lock"):
                locks.append(target)
        if not has_file:
            continue
        for lock in locks:
            info = peek_writer(Path(lock))
            if info is not None and info.pid == pid:
                return info
    return None


class WriterLock:
    """The writer lock of one database, held from :meth:`acquire` until :meth:`release` (or process death)."""

    def __init__(self, lock_path: Path, trusted_uids: tuple[int, ...] = ()) -> None:
        self.path = lock_path
        self.trusted_uids = trusted_uids
        """Owners (besides us) whose lock file may be locked read-only: root and the database file's owner."""
        self._fd: int | None = None
        self._writable = False
        self.info: WriterInfo | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock without waiting; False if someone else holds it."""
        try:
            fd, writable = open_side_file(self.path, self.trusted_uids)
        except OSError as exc:
            raise GputabError(
                f"cannot open the writer lock {self.path}: {exc}; record into a directory you can write (--db)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        self._writable = writable
        return True

    def acquire(self, wait: float = 2.0, started_wall: float | None = None) -> None:
        """Take the lock for a recorder, or raise :class:`RecorderRunning` naming the holder.

        Waits up to ``wait`` seconds because other commands hold the lock for a moment while they close
        orphan sessions; a recorder holds it for good, so it is still held when the wait ends.
        """
        deadline = time.monotonic() + wait
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                holder = peek_writer(self.path, self.trusted_uids) or WriterInfo()
                raise RecorderRunning(
                    f"another gputab recorder is writing to {self.path.with_suffix('')} ({holder.describe()}); "
                    f"stop it first (kill {holder.pid or 'PID'}), or record into another database with --db"
                )
            time.sleep(0.05)
        self.write_info(
            WriterInfo(
                pid=os.getpid(),
                host=socket.gethostname(),
                started_at=utc_iso(started_wall if started_wall is not None else time.time()),
                db=str(self.path.with_suffix("")),
            )
        )

    def write_info(self, info: WriterInfo) -> None:
        """Record who holds the lock (best effort: a read-only lock file keeps no details)."""
        self.info = info
        if self._fd is None or not self._writable:
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
        if self._writable:  # checked ours at open: never truncate a file that is not
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
