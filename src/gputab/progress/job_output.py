"""``gputab run``'s progress from the command's own output: tqdm bars become samples, tokens and progress.

The counts go to the spool as :func:`gputab.report` would write them from inside the job (same file format, same
owner), so the recorder counts them by the same rules: only what grows while a session records, trusted as the
command's owner. See docs/no-code.md.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Sequence

from gputab.progress.bars import Bar, BarReader
from gputab.progress.tap import Tap
from gputab.report import Reporter


def compile_pattern(text: str) -> re.Pattern[bytes]:
    """``--progress-pattern``: a regex with named groups ``n`` and ``total`` (ValueError if not)."""
    try:
        pattern = re.compile(text.encode("utf-8"))
    except re.error as exc:
        raise ValueError(f"--progress-pattern is not a valid regular expression: {exc}") from None
    missing = {"n", "total"} - set(pattern.groupindex)
    if missing:
        raise ValueError(
            f"--progress-pattern needs the named groups (?P<n>...) and (?P<total>...); missing {sorted(missing)}"
        )
    return pattern


class OutputProgress:
    """Taps the command's stdout and stderr and reports the bar that counts for ``tag``.

    Args:
        tag: the job's tag (``gputab run --tag``).
        pattern: a ``--progress-pattern`` regex, or None for tqdm's format.
        targets: gputab's descriptors to tap (stdout and stderr: Lightning's bars go to stdout, tqdm's to stderr).
    """

    def __init__(self, tag: str, pattern: re.Pattern[bytes] | None = None, targets: Sequence[int] = (1, 2)) -> None:
        self.tag = tag
        self.reporter = Reporter()
        self._lock = threading.Lock()
        self.bar: Bar | None = None
        self.samples = 0
        self.tokens = 0
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        # Where stdout and stderr are one file (a terminal, or `> log 2>&1`), one tap takes both: the command's
        # writes to the two then keep their order, as they would without gputab in between.
        self.shared = {t: targets[0] for t in targets[1:] if _same_file(targets[0], t)}
        self.taps = [Tap(fd, BarReader(self._moved, pattern).feed) for fd in targets if fd not in self.shared]

    @property
    def fds(self) -> dict[int, int]:
        """The command's descriptor number -> the descriptor it gets instead."""
        out = {tap.target: tap.child_fd for tap in self.taps}
        for fd, to in self.shared.items():
            out[fd] = out[to]
        return out

    def started(self) -> None:
        for tap in self.taps:
            tap.started()

    def resized(self) -> None:
        for tap in self.taps:
            tap.copy_size()

    def finish(self) -> None:
        """The command ended: copy the rest of its output, then write the last counts."""
        for tap in self.taps:
            tap.wait()
        self.reporter.flush(sync=True)

    def _moved(self, bar: Bar, advanced: int) -> None:
        with self._lock:
            self.bar = bar
            samples, tokens = (0, advanced) if bar.tokens else (advanced, 0)
            self.samples += samples
            self.tokens += tokens
            totals = {"total_tokens": bar.total} if bar.tokens else {"total_samples": bar.total}
            self.reporter.add(samples, tokens, self.tag, progress=min(bar.n / bar.total, 1.0), **totals)


def _same_file(a: int, b: int) -> bool:
    """Descriptors ``a`` and ``b`` write to the same file or terminal."""
    try:
        sa, sb = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino, sa.st_rdev) == (sb.st_dev, sb.st_ino, sb.st_rdev)
