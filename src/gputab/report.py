"""``gputab.report()``: training scripts report the samples and tokens they processed.

Standard library only, so ``import gputab`` stays cheap in a training script. A call adds to counts in memory
(about a microsecond); a daemon thread writes them at most once a second, and an ``atexit`` hook writes the
last ones. Counts go to a *spool file*, never to the database, so reporting works while no recorder runs and
from a user other than the recorder's:

- The spool directory (``GPUTAB_SPOOL``, default ``/var/tmp/gputab-spool``) is world-writable and sticky
  (mode 1777, like ``/tmp``): any user can add files, nobody can delete or replace another user's. It lives
  in ``/var/tmp`` because that survives reboots (reports made before a power cut are still counted).
- Each reporting process owns one file, ``<host>-<pid>-<random>.json`` (the random part means no one can
  claim the name first), holding the *cumulative* counts per tag, rewritten atomically (write a temporary
  file, then ``rename``), mode 0644 so the recorder can read it whatever user it runs as.
- A recording session counts only what grew in the files while it recorded (it takes the counts it finds
  when it starts as its baseline), and only for a job the file's owner runs: see :mod:`gputab.progress.spool`. It
  deletes files it has read whole a day after their last update (when it may: the sticky bit stops it for
  other users' files, which ``systemd-tmpfiles`` ages out of ``/var/tmp``).
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

FLUSH_SECONDS = 1.0
"""The most often a process rewrites its spool file."""
DEFAULT_SPOOL = "/var/tmp/gputab-spool"
FORMAT = 1
MAX_TAG = 64
MAX_COUNT = 1 << 53
"""Counts beyond this are absurd (and would overflow SQLite's integers once summed): spool reports and
hand-entered counts are both held to it."""


def spool_dir() -> Path:
    """``GPUTAB_SPOOL`` or ``/var/tmp/gputab-spool`` (here, not in gputab.config.paths, so this module stays stdlib-only)."""
    env = os.environ.get("GPUTAB_SPOOL")
    return Path(env) if env else Path(DEFAULT_SPOOL)


def ensure_spool_dir(directory: Path) -> None:
    """Create the spool directory world-writable and sticky (1777) if it does not exist."""
    if directory.is_dir():
        return
    try:
        directory.mkdir(parents=True, mode=0o1777)
    except FileExistsError:
        return  # another process made it first
    os.chmod(directory, 0o1777)  # mkdir's mode passes through the umask


def write_spool_file(directory: Path, name: str, doc: dict, sync: bool = False) -> None:
    """Write ``doc`` as ``directory/name`` atomically (temporary file + rename), mode 0644."""
    ensure_spool_dir(directory)
    tmp = directory / f".{name}.tmp"
    data = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.fchmod(fd, 0o644)  # readable by a recorder of another user whatever the umask
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / name)


def new_file_name(pid: int | None = None) -> str:
    # os.urandom, as secrets.token_hex uses: importing secrets (with hmac and hashlib, 0.3 MiB) would cost every
    # process that only reads the spool (the live view), and an import here, at the first report, fails in a
    # script that has dropped its privileges since it started.
    return f"{socket.gethostname()}-{pid if pid is not None else os.getpid()}-{os.urandom(6).hex()}.json"


def _check(samples: int, tokens: int, tag: str | None) -> None:
    for what, v in (("samples", samples), ("tokens", tokens)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"gputab.report: {what} must be a non-negative integer, got {v!r}")
    if tag is not None and (
        not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_TAG or any(c in tag for c in "\n\r\t\0")
    ):
        raise ValueError(f"gputab.report: tag must be a non-empty one-line string of at most {MAX_TAG} characters")
    if tag is not None and tag.strip().startswith("("):
        raise ValueError(
            f"gputab.report: tag {tag!r} is reserved: tags starting with '(' name gputab's own rows "
            f"such as (idle); start the tag with another character"
        )


def _check_totals(total_samples: int | None, total_tokens: int | None, progress: float | None) -> None:
    for what, v in (("total_samples", total_samples), ("total_tokens", total_tokens)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= MAX_COUNT):
            raise ValueError(f"gputab.report: {what} must be a positive integer, got {v!r}")
    if progress is not None and (
        isinstance(progress, bool) or not isinstance(progress, (int, float)) or not 0.0 <= progress <= 1.0
    ):
        raise ValueError(f"gputab.report: progress must be a fraction from 0 to 1, got {progress!r}")


class Reporter:
    """The counts of this process and the thread that writes them. One per process (see :func:`report`)."""

    def __init__(self) -> None:
        self._init_state()
        atexit.register(self.close)
        if hasattr(os, "register_at_fork"):
            # A forked child (a DataLoader worker) has its own counts and file; the parent's lock may be held.
            os.register_at_fork(after_in_child=self._init_state)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}
        self._totals: dict[str, list] = {}
        """Tag -> [total_samples, total_tokens, progress fraction] (None where not given)."""
        self._dirty = False
        self._pid = os.getpid()
        self._name = new_file_name(self._pid)
        self._started = time.time()
        self._thread: threading.Thread | None = None
        self._warned = False

    def add(
        self,
        samples: int,
        tokens: int,
        tag: str | None,
        total_samples: int | None = None,
        total_tokens: int | None = None,
        progress: float | None = None,
    ) -> None:
        """Add counts (``tag`` None: the recorder tags them by this process, like its GPU work) and set totals."""
        key = tag if tag is not None else os.environ.get("GPUTAB_TAG") or ""
        with self._lock:
            c = self._counts.get(key)
            if c is None:
                c = self._counts[key] = [0, 0]
            c[0] += samples
            c[1] += tokens
            if total_samples is not None or total_tokens is not None or progress is not None:
                t = self._totals.setdefault(key, [None, None, None])
                for i, v in enumerate((total_samples, total_tokens, progress)):
                    if v is not None:
                        t[i] = v
            self._dirty = True
        if self._thread is None:
            self._start_thread()

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="gputab-report", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()

    def flush(self, sync: bool = False) -> bool:
        """Write the spool file if counts changed; True on success. Never raises: training goes on."""
        with self._lock:
            if not self._dirty:
                return True
            counts = {k: list(v) for k, v in self._counts.items()}
            progress = {k: f for k in self._totals if (f := self._fraction(k)) is not None}
            self._dirty = False
        doc = {
            "v": FORMAT,
            "host": socket.gethostname(),
            "pid": self._pid,
            "uid": os.getuid(),
            "started": self._started,
            "updated": time.time(),
            "counts": counts,
        }
        if progress:
            doc["progress"] = progress
        try:
            write_spool_file(spool_dir(), self._name, doc, sync=sync)
            return True
        except OSError as exc:
            with self._lock:
                self._dirty = True  # keep them: the next flush tries again
            if not self._warned:
                self._warned = True
                print(
                    f"gputab.report: cannot write to the spool {spool_dir()}: {exc}; counts are kept in memory "
                    f"and retried (set GPUTAB_SPOOL to a writable directory)",
                    file=sys.stderr,
                )
            return False

    def _fraction(self, key: str) -> float | None:
        """The job's progress (0-1) from this process: the fraction given last, else its counts over a total."""
        total_samples, total_tokens, progress = self._totals[key]
        if progress is not None:
            return min(float(progress), 1.0)
        samples, tokens = self._counts[key]
        if total_samples:
            return min(samples / total_samples, 1.0)
        if total_tokens:
            return min(tokens / total_tokens, 1.0)
        return None

    def close(self) -> None:
        if os.getpid() == self._pid:
            self.flush(sync=True)


_reporter: Reporter | None = None
_reporter_lock = threading.Lock()


def report(
    samples: int = 0,
    tokens: int = 0,
    tag: str | None = None,
    *,
    total_samples: int | None = None,
    total_tokens: int | None = None,
    progress: float | None = None,
) -> None:
    """Add ``samples`` and ``tokens`` processed to this job's counts, and say how far along the job is.

    The recorder forecasts a job's ETA and cost at completion from its progress: give the total once
    (``total_samples=`` or ``total_tokens=``: the progress is then what this process reported over it) or the
    fraction itself (``progress=``, e.g. ``step / max_steps``) as often as you like.

    Args:
        samples: samples (examples) processed since the last call.
        tokens: tokens processed since the last call.
        tag: the job; default ``$GPUTAB_TAG`` (set by ``gputab run``), else the recorder tags the counts like
            this process's GPU work.
        total_samples: the samples this process will report over the whole job.
        total_tokens: the tokens this process will report over the whole job (used when no sample total).
        progress: the job's progress as a fraction from 0 to 1 (wins over the totals).

    Raises:
        ValueError: a negative or non-integer count, or an unusable or reserved tag. Trouble writing the spool never
            raises: it is said once on stderr and the counts are kept and retried.
    """
    global _reporter
    _check(samples, tokens, tag)
    _check_totals(total_samples, total_tokens, progress)
    r = _reporter
    if r is None:
        with _reporter_lock:
            if _reporter is None:
                _reporter = Reporter()
            r = _reporter
    r.add(samples, tokens, tag, total_samples, total_tokens, progress)


def flush() -> bool:
    """Write this process's counts now (tests and scripts about to ``os._exit``)."""
    return _reporter.flush(sync=True) if _reporter is not None else True


class _CallableModule(types.ModuleType):
    """Importing ``gputab.report`` binds this module as the package attribute ``report``, hiding the
    function ``gputab.report()`` that training scripts call; calling the module calls the function."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        report(*args, **kwargs)  # the one signature is report()'s


sys.modules[__name__].__class__ = _CallableModule
