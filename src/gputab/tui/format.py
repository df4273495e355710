"""How figures look on screen: money, bytes, percent, bars and sparklines. Pure text, no widgets (charts with
axes: widgets/chart.py).

A value that is not available (``None``) is always written ``n/a``, never 0, so a metric the driver does not
report cannot be mistaken for an idle GPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.text import Text

from gputab import money as money_text

NA = "n/a"
GIB = 1024**3
# Eight levels per cell: the same glyphs nvtop and spark use; they render on any UTF-8 terminal, no color needed.
_SPARK = " ▁▂▃▄▅▆▇█"
_BAR_FULL = "█"
_BAR_PARTS = " ▏▎▍▌▋▊▉"


def money(usd: float | None) -> str:
    """Dollars with cents; sub-dollar amounts get 4 decimals so a young session does not read $0.00."""
    if usd is None:
        return NA
    if abs(usd) >= 1000:
        return f"${usd:,.0f}"
    if abs(usd) >= 1:
        return f"${usd:,.2f}"
    if abs(usd) >= 0.01:
        return f"${usd:.4f}"
    return money_text.usd(usd)  # three significant digits: $0.00523, $0.005 (never $0.0050)


def rate(usd_per_hour: float | None) -> str:
    """A burn rate or a price, $/h."""
    if usd_per_hour is None:
        return NA
    if abs(usd_per_hour) >= 100:
        return f"${usd_per_hour:,.0f}/h"
    if abs(usd_per_hour) >= 1 or usd_per_hour == 0:
        return f"${usd_per_hour:.2f}/h"
    return money_text.usd_per_hour(usd_per_hour)


def gib(nbytes: int | float | None, digits: int = 1) -> str:
    """Bytes as GiB."""
    if nbytes is None:
        return NA
    return f"{nbytes / GIB:.{digits}f}G"


def pct(value: float | None, fraction: bool = False) -> str:
    """A percentage; ``fraction=True`` when the value is 0..1 (the ledger's average utilization)."""
    if value is None:
        return NA
    return f"{value * 100 if fraction else value:.0f}%"


def hours(h: float | None) -> str:
    """GPU-hours: three decimals under 10 h so a minute of work is visible."""
    if h is None:
        return NA
    return f"{h:.3f}" if h < 10 else f"{h:,.1f}"


def duration(seconds: float | None) -> str:
    """Elapsed time as H:MM:SS (days prefixed when a session runs for days)."""
    if seconds is None:
        return NA
    s = max(0, int(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h}:{m:02d}:{s:02d}"


def count(n: int | None) -> str:
    """A reported count (samples, tokens) in short form: 12.3k, 4.5M."""
    if n is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(n)


def bar(fraction: float | None, width: int, label: str = "") -> Text:
    """A horizontal bar ``width`` cells wide with ``label`` written over its right end.

    The fill is drawn with block glyphs (1/8 cell resolution) rather than color, so it reads the same under
    ``NO_COLOR`` and on 16-color terminals. ``None`` draws an empty bar labelled n/a.
    """
    if fraction is None:
        label = NA
        fraction = 0.0
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    cells = _BAR_FULL * full + (_BAR_PARTS[part] if part and full < width else "")
    cells = cells.ljust(width)[:width]
    if label:
        label = label[:width]
        cells = cells[: width - len(label)] + label
    text = Text(cells)
    fill = min(width - len(label), full)
    # Plain ANSI colors only: no truecolor is assumed over SSH, and NO_COLOR strips them entirely.
    text.stylize("red" if fraction >= 0.85 else "green", 0, fill)
    return text


def sparkline(values: Sequence[float | None] | Iterable[float | None], width: int, top: float) -> str:
    """The last ``width`` values as one line of eighth-blocks scaled to ``top``; a missing value is a blank."""
    vals = list(values)[-width:]
    out = []
    for v in vals:
        if v is None or top <= 0:
            out.append(" ")
            continue
        level = round(min(1.0, max(0.0, v / top)) * (len(_SPARK) - 1))
        out.append(_SPARK[level] if level or v <= 0 else _SPARK[1])
    return "".join(out).rjust(width)
