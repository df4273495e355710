"""CSV export of recorded sessions: one row per job, per session, per GPU or per MIG instance.

No UI code: the ``gputab export`` command and the TUI export screen both call :func:`export_csv` (or the row
generators below). Rows come from the stored per-job and per-GPU totals of each session, never from the raw
samples, so a year of sessions exports in a couple of seconds and memory stays flat (everything streams).

Column order is fixed per ``--by`` (:data:`JOB_COLUMNS`, :data:`SESSION_COLUMNS`, :data:`GPU_COLUMNS`); README
lists them, and a test checks the header against these tuples. Column names are the keys of the JSON vocabulary
(:mod:`gputab.publish.vocabulary`, docs/json.md), with their unit; times are ISO 8601 UTC. Empty cells mean "not known" (a job that reported no samples has no cost per sample), never zero.

Totals agree across views: for one session, the ``cost_usd`` and ``energy_kwh`` of its ``--by session`` row equal
the sums over its ``--by job`` rows (the ``(idle)`` and ``(unobserved)`` buckets included) and over its
``--by gpu`` rows; that is the ledger's conservation rule, carried through the store.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from gputab.config.symlinks import link_problem
from gputab.errors import GputabError
from gputab.publish.document import clean_float, iso_utc, public
from gputab.store.review import SessionRecord, session_totals

if TYPE_CHECKING:
    from _csv import Writer as CsvWriter

# The leading session columns, shared by every view so rows can be joined on session_id.
_SESSION_KEYS = ("session_id", "host", "started_at", "ended_at", "end_reason")

JOB_COLUMNS: tuple[str, ...] = _SESSION_KEYS + (
    "tag",
    "cost_usd",
    "gpu_hours",
    "effective_gpu_hours",
    "avg_utilization_pct",
    "idle_gpu_hours",
    "energy_kwh",
    "peak_vram_bytes",
    "samples",
    "tokens",
    "prompt_tokens",
    "generated_tokens",
    "cost_per_sample_usd",
    "cost_per_1k_samples_usd",
    "cost_per_1m_tokens_usd",
    "cost_per_effective_gpu_hour_usd",
    "gpus",
    "unknown_price",
    "busy_usd",
    "waste_usd",
    "unmeasured_usd",
    "waste_pct",
    "waste_top_reason",
    "waste_by_reason",
)
"""``--by job`` (the default): one row per job per session, ``(idle)``, ``(unattributed)`` and ``(unobserved)``
included.

The waste columns are empty for sessions recorded before the waste split; ``waste_by_reason`` is one cell of
compact JSON (reason -> dollars, costliest first), as in ``gputab spend --csv``."""

SESSION_COLUMNS: tuple[str, ...] = _SESSION_KEYS + (
    "duration_seconds",
    "job_count",
    "gpu_count",
    "cost_usd",
    "idle_cost_usd",
    "unattributed_cost_usd",
    "unobserved_cost_usd",
    "gpu_hours",
    "effective_gpu_hours",
    "avg_utilization_pct",
    "energy_kwh",
    "samples",
    "tokens",
    "prompt_tokens",
    "generated_tokens",
    "cost_per_effective_gpu_hour_usd",
    "unknown_price",
)
"""``--by session``: one row per session; money and energy are the sums over its job rows."""

GPU_COLUMNS: tuple[str, ...] = _SESSION_KEYS + (
    "gpu_index",
    "gpu_uuid",
    "gpu_name",
    "model_key",
    "price_mode",
    "rate_usd_per_hour",
    "unknown_price",
    "energy_method",
    "cost_usd",
    "idle_cost_usd",
    "unattributed_cost_usd",
    "unobserved_cost_usd",
    "energy_kwh",
)
"""``--by gpu``: one row per GPU per session; ``cost_usd`` includes the GPU's idle and unobserved time."""

MIG_COLUMNS: tuple[str, ...] = _SESSION_KEYS + (
    "gpu_index",
    "gpu_uuid",
    "gpu_name",
    "gpu_instance_id",
    "compute_instance_id",
    "profile",
    "slices",
    "memory_total_bytes",
    "peak_memory_used_bytes",
    "avg_utilization_pct",
    "gpu_hours",
    "rate_usd_per_hour",
    "cost_usd",
)
"""``--by mig``: one row per MIG instance per session: its part of its GPU (``slices`` of the GPU's), that part of
the GPU's rate and charged cost, and its mean SM activity (empty without GPM). A GPU's instances plus its free
slices make up its charged cost; sessions recorded before MIG instances were stored have no rows."""

COLUMNS: Mapping[str, tuple[str, ...]] = {
    "job": JOB_COLUMNS,
    "session": SESSION_COLUMNS,
    "gpu": GPU_COLUMNS,
    "mig": MIG_COLUMNS,
}
"""Column order per ``--by`` value."""

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection). Tags are user text.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# A reader that splits on `;` or tab (German and French spreadsheets list with `;`), or ignores the quotes, starts a
# new cell after one of these: a formula character there gets the same `'` (issue 24: `x;=2*3;`).
_AFTER_SEPARATOR = re.compile(r"(?<=[;,\t\r\n])(?=[=+\-@\t\r])")


def neutralise(value: str) -> str:
    """A text cell a spreadsheet will not run, as OWASP advises for CSV injection: a ``'`` goes before a formula
    character (``= + - @``, tab, CR) at the start of the cell and right after a ``;``, ``,``, tab or line break,
    where a reader splitting on another separator than ours would start a cell."""
    value = _AFTER_SEPARATOR.sub("'", value)
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def format_cell(value: object) -> str | int | float:
    """One CSV cell: numbers stay numbers (negatives too), None is empty, bools are ``true``/``false``.

    Only text is neutralised, so ``-3.5`` is still a number in a spreadsheet while a tag ``-cmd`` is text.
    Floats are cleaned of float noise (:func:`gputab.publish.document.clean_float`, 15 significant digits), as in JSON,
    and stay floats, so :func:`csv_writer` leaves them unquoted (the csv module writes a float's ``repr``).
    A dict is one cell of compact JSON.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return "" if math.isnan(value) or math.isinf(value) else clean_float(value)
    if isinstance(value, (list, tuple)):
        return neutralise(" ".join(str(v) for v in value))
    if isinstance(value, dict):  # an object (waste_by_reason) is one cell of compact JSON, as in --json
        return neutralise(json.dumps(value, separators=(",", ":")))
    return neutralise(str(value))


def csv_writer(out: IO[str]) -> CsvWriter:
    """The writer of every CSV gputab writes: each text cell quoted (so no locale's separator splits it), numbers
    bare (so they stay numbers), ``\\r\\n`` line ends (RFC 4180). Pass it cells from :func:`format_cell`."""
    return csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")


def _session_cells(s: SessionRecord) -> dict:
    return {
        "session_id": s.id,
        "host": s.host,
        "started_at": iso_utc(s.started_at),
        "ended_at": iso_utc(s.ended_at),
        "end_reason": s.end_reason,
    }


def job_rows(sessions: Iterable[SessionRecord]) -> Iterator[dict]:
    """One dict per job per session (keys: :data:`JOB_COLUMNS`), in session order then by cost."""
    for s in sessions:
        head = _session_cells(s)
        for job in s.jobs:
            row = dict(head)
            job = public(job)
            for key in JOB_COLUMNS[len(_SESSION_KEYS) :]:
                row[key] = job.get(key)
            yield row


def session_rows(sessions: Iterable[SessionRecord]) -> Iterator[dict]:
    """One dict per session (keys: :data:`SESSION_COLUMNS`)."""
    for s in sessions:
        yield {**_session_cells(s), **public(session_totals(s))}


def gpu_rows(sessions: Iterable[SessionRecord]) -> Iterator[dict]:
    """One dict per GPU per session (keys: :data:`GPU_COLUMNS`), from the stored per-GPU totals."""
    for s in sessions:
        head = _session_cells(s)
        for g in s.gpus:
            yield {
                **head,
                "gpu_index": g.get("index"),
                "gpu_uuid": g.get("uuid"),
                "gpu_name": g.get("name"),
                "model_key": g.get("model_key"),
                "price_mode": g.get("mode"),
                "rate_usd_per_hour": g.get("rate_per_hour"),
                "unknown_price": bool(g.get("unknown_price")),
                "energy_method": g.get("energy_method"),
                "cost_usd": g.get("cost_usd"),
                "idle_cost_usd": g.get("idle_cost_usd"),
                "unattributed_cost_usd": g.get("unattributed_cost_usd"),
                "unobserved_cost_usd": g.get("unobserved_cost_usd"),
                "energy_kwh": g.get("energy_kwh"),
            }


def mig_rows(sessions: Iterable[SessionRecord]) -> Iterator[dict]:
    """One dict per MIG instance per session (keys: :data:`MIG_COLUMNS`), by GPU then instance ids."""
    for s in sessions:
        head = _session_cells(s)
        for g in s.gpus:
            for m in g.get("mig") or ():
                inst = public(m)
                yield {
                    **head,
                    "gpu_uuid": g.get("uuid"),
                    "gpu_name": g.get("name"),
                    **{k: inst.get(k) for k in MIG_COLUMNS[len(_SESSION_KEYS) :] if k not in ("gpu_uuid", "gpu_name")},
                }


ROWS: Mapping[str, Callable[[Iterable[SessionRecord]], Iterator[dict]]] = {
    "job": job_rows,
    "session": session_rows,
    "gpu": gpu_rows,
    "mig": mig_rows,
}
"""Row generator per ``--by`` value."""


def csv_lines(sessions: Iterable[SessionRecord], by: str = "job") -> Iterator[str]:
    """The CSV text, one line at a time (header first): what a streaming writer or a TUI preview consumes."""
    if by not in COLUMNS:
        raise ValueError(f"by must be one of {', '.join(COLUMNS)}, not {by!r}")
    columns = COLUMNS[by]
    buf = io.StringIO()
    writer = csv_writer(buf)

    def flush() -> str:
        text = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return text

    writer.writerow(columns)
    yield flush()
    for row in ROWS[by](sessions):
        writer.writerow([format_cell(row.get(c)) for c in columns])
        yield flush()


def export_csv(sessions: Iterable[SessionRecord], out: IO[str], by: str = "job") -> int:
    """Write the CSV of ``sessions`` to ``out`` and return the number of data rows (header not counted)."""
    rows = -1
    for line in csv_lines(sessions, by):
        out.write(line)
        rows += 1
    return rows


# -- where a file goes: ``export -o FILE`` ---------------------------------------------------------------------

T = TypeVar("T")

_SPECIAL = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_MAX_LINKS = 40  # as the kernel's own limit on a chain of symlinks


class OutputError(GputabError):
    """``-o FILE`` names something gputab will not write a file to (exit 2, like a bad option)."""

    exit_code = 2


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _SPECIAL if test(mode)), "not a regular file")


def output_target(path: str | os.PathLike) -> Path:
    """The regular file that ``-o path`` will replace (or create), with the rules of docs/review.md.

    - A symlink is written through to its target, when every link of the chain belongs to the user running gputab
      or to root and lies in a directory no other user can write (:func:`gputab.config.symlinks.link_problem`); a
      link another user planted, or could swap, is refused (a shared directory must not steer our writes).
    - A directory, FIFO, device or socket is refused: the file would replace it, or the write would block or vanish.
    - The directory must exist and be a directory.

    Raises:
        OutputError: one line saying what ``path`` is and why nothing is written there.
    """
    given = Path(os.path.expanduser(os.fspath(path)))
    if not os.fspath(given):
        raise OutputError("-o needs a file name")
    problem = link_problem(given)
    if problem is not None:
        raise OutputError(
            f"cannot write {given}: {problem}, so it could steer the write elsewhere; remove it or write elsewhere"
        )
    target = given
    me = os.geteuid()
    for _ in range(_MAX_LINKS):
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            break
        except OSError as exc:
            raise OutputError(f"cannot write {given}: {_reason(exc, target)}") from None
        if stat.S_ISLNK(st.st_mode):
            if st.st_uid not in (me, 0):
                raise OutputError(
                    f"cannot write {given}: {target} is a symlink owned by uid {st.st_uid}, not by you; "
                    f"remove it or write elsewhere"
                )
            target = Path(os.path.join(os.path.dirname(target), os.readlink(target)))
            continue
        kind = _kind(st.st_mode)
        if kind is not None:
            via = f" (through the symlink {given})" if target != given else ""
            raise OutputError(f"cannot write {target}{via}: it is {kind}; give -o a regular file name")
        return target
    else:
        raise OutputError(f"cannot write {given}: too many levels of symlinks")
    parent = target.parent
    try:
        pst = os.stat(parent)
    except FileNotFoundError:
        raise OutputError(f"cannot write {given}: directory {parent} does not exist") from None
    except OSError as exc:
        raise OutputError(f"cannot write {given}: {_reason(exc, parent)}") from None
    if not stat.S_ISDIR(pst.st_mode):
        raise OutputError(f"cannot write {given}: {parent} is not a directory")
    return target


def _reason(exc: OSError, where: os.PathLike | str) -> str:
    if exc.errno == errno.ENOTDIR:
        return f"a part of {where} is not a directory"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied ({where})"
    if exc.errno == errno.ELOOP:
        return f"{where} is a symlink loop"
    return f"{exc.strerror or exc} ({where})"


def write_file_atomically(path: str | os.PathLike, write: Callable[[IO[str]], T]) -> tuple[Path, T]:
    """Write a text file: ``write(fh)`` into a temp file beside the target, fsync, then rename over the target.

    A failed or interrupted write (disk full, Ctrl-C) leaves the old file as it was and no temp file behind, so a
    spreadsheet never opens half an export. An existing file keeps its permission bits. See :func:`output_target`
    for what ``path`` may be.

    Returns:
        The file written (the symlink's target when ``path`` is a symlink) and what ``write`` returned.

    Raises:
        OutputError: ``path`` is not a place for a file (exit 2).
        GputabError: the write itself failed (exit 1): no space, I/O error, no permission in the directory.
    """
    target = output_target(path)
    try:
        old_mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        old_mode = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise GputabError(
            f"cannot write {path}: cannot create a file in {target.parent}: {exc.strerror or exc}"
        ) from None
    try:
        # newline="" lets the csv module write its own \r\n line ends (RFC 4180) untouched.
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            result = write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if old_mode is not None:
            os.chmod(tmp, old_mode)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise GputabError(f"cannot write {path}: {exc.strerror or exc}; nothing was changed there") from None
        raise
    return target, result
