"""Progress bars read from a job's own output: tqdm's ``n/total [elapsed<remaining, rate]`` lines.

:class:`BarReader` takes the bytes a command writes, in chunks of any size, and keeps the bar that says how far
the job is. It never holds more than :data:`MAX_SEGMENT` bytes of a line, so a 10 MB line without a newline costs
as much as a short one. Which bar counts: the first bar with a total that is still running (a nested loop's outer
bar, a Trainer's training bar); when it completes, the next bar seen takes its place.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_SEGMENT = 2048
"""The most bytes of one line (between two carriage returns or newlines) kept while it is unterminated."""
MAX_BARS = 64
"""Bars remembered at once (by description and total); older ones are forgotten."""

_NUMBER = rb"\d+(?:\.\d+)?[kMGTPEZY]?"
TQDM = re.compile(
    rb"(?:(?P<desc>[^|]{0,200}?): ?)?\s{0,8}\d{1,3}%\|[^|]{0,400}\| ?(?P<n>"
    + _NUMBER
    + rb")/(?P<total>"
    + _NUMBER
    + rb")"
    rb" ?\[[^<\]]{0,24}<[^,\]]{0,24}, ?(?P<rate>[^\]]{0,48})\]"
)
"""One tqdm bar with a total (``desc: 45%|####  | 1234/5000 [02:01<06:10, 42.1it/s]``). Every repeat is bounded,
so a match costs time linear in the segment."""
_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[78=>]")
_UNIT = re.compile(r"(?:[\d.?]+\s*[kMGTPEZY]?(?P<unit>[^\s/]+)/s|s/(?P<unit2>[^\s/,]+))")
SCALE = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "Z": 10**21, "Y": 10**24}
TOKEN_UNITS = frozenset({"tok", "toks", "token", "tokens"})


def parse_count(text: bytes) -> int:
    """``1234`` -> 1234; ``1.23k`` (tqdm's ``unit_scale``) -> 1230."""
    s = text.decode("ascii")
    scale = SCALE.get(s[-1], 1) if s and s[-1].isalpha() else 1
    number = float(s[:-1] if scale != 1 else s)
    return int(round(number * scale))


@dataclass(frozen=True)
class Bar:
    """One reading of a bar: ``n`` of ``total`` ``unit`` done."""

    desc: str
    n: int
    total: int
    unit: str

    @property
    def tokens(self) -> bool:
        """The bar counts tokens (its unit says so), not samples."""
        return self.unit.lower() in TOKEN_UNITS


def parse_segment(segment: bytes, pattern: re.Pattern[bytes] = TQDM) -> Bar | None:
    """The bar in one line of output (escape sequences removed), or None. ``pattern`` needs groups ``n`` and
    ``total``; ``desc`` and ``rate`` are optional."""
    clean = _ANSI.sub(b"", segment)
    m = None
    for found in pattern.finditer(clean):  # the last bar on the line wins
        m = found
    if m is None:
        return None
    groups = m.groupdict()
    try:
        n, total = parse_count(groups["n"]), parse_count(groups["total"])
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        return None
    if total <= 0 or n < 0:
        return None
    desc = (groups.get("desc") or b"").decode("utf-8", "replace").strip()
    unit = "it"
    rate = groups.get("rate")
    if rate:
        u = _UNIT.search(rate.decode("utf-8", "replace"))
        if u:
            unit = u.group("unit") or u.group("unit2") or "it"
    return Bar(desc, min(n, total), total, unit)


Progress = Callable[[Bar, int], None]
"""Called with the bar that counts and how many items it advanced since the last call (0 or more)."""


class BarReader:
    """Feed it a command's output; it calls ``on_progress`` whenever the bar that counts moves.

    Args:
        on_progress: gets the bar and the items it advanced (a bar that starts over counts from zero again).
        pattern: another line format (``--progress-pattern``): a regex with named groups ``n`` and ``total``.
    """

    def __init__(self, on_progress: Progress, pattern: re.Pattern[bytes] | None = None) -> None:
        self.on_progress = on_progress
        self.pattern = pattern or TQDM
        self._tail = b""
        self._main: tuple[str, int] | None = None
        self._last: dict[tuple[str, int], int] = {}
        self.bar: Bar | None = None
        """The bar that counts, as last read."""

    def feed(self, data: bytes) -> None:
        """Take the next chunk of output (any size; a line may span chunks)."""
        parts = re.split(rb"[\r\n]", data)
        parts[0] = self._tail + parts[0]
        self._tail = parts.pop()[-MAX_SEGMENT:]
        for segment in parts:
            if b"/" in segment and b"|" in segment or self.pattern is not TQDM:
                self._segment(segment[-MAX_SEGMENT:])

    def close(self) -> None:
        """The output ended: read what was left without a line end."""
        tail, self._tail = self._tail, b""
        if tail:
            self._segment(tail)

    def _segment(self, segment: bytes) -> None:
        bar = parse_segment(segment, self.pattern)
        if bar is None:
            return
        key = (bar.desc, bar.total)
        if self._main is None or self._main != key and self._done(self._main):
            self._main = key
        last = self._last.get(key)
        if last is None and len(self._last) >= MAX_BARS:
            self._last.pop(next(iter(self._last)))
        self._last[key] = bar.n
        if key != self._main:
            return
        advanced = bar.n - last if last is not None and bar.n >= last else bar.n
        self.bar = bar
        self.on_progress(bar, advanced)

    def _done(self, key: tuple[str, int]) -> bool:
        n = self._last.get(key)
        return n is None or n >= key[1]
