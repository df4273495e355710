"""Money as people read it: at least three significant digits, never a small sum shown as ``$0.00``.

One place for the rule, used by the CLI, the alert messages and the TUI (issue 23): a budget of $0.005 reads
``$0.005``, not ``$0.01``; a cost per sample that would read ``$0.000002`` is shown per 1k samples instead.
Standard library only, and it imports nothing of gputab: any layer may use it.
"""

from __future__ import annotations

import math

PER_SAMPLE_FLOOR = 0.0001
"""Below this a cost per sample is shown per 1k samples: six decimals would show fewer than three digits."""


def usd(dollars: float) -> str:
    """``$1,234.50``, ``$12.35``, ``$0.40``, ``$0.00523``, ``$0.005``: three significant digits or more.

    Sums of $1 and more keep cents; sums under $1 get as many decimals as three significant digits need
    (trailing zeros dropped, at least two decimals).
    """
    if not math.isfinite(dollars):
        return f"${dollars}"
    size = abs(dollars)
    if size >= 1:
        return f"${dollars:,.2f}"
    if size == 0:
        return "$0.00"
    decimals = max(2, 2 - math.floor(math.log10(size)))
    text = f"{dollars:.{decimals}f}"
    if float(text) == 0:  # rounding reached no digit at all (a sum far below a cent): say it
        return f"${dollars:.2e}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"${whole}.{frac}"


def usd_per_hour(dollars: float) -> str:
    """A burn rate or a price: ``$4.76/h``, ``$0.0042/h``."""
    return f"{usd(dollars)}/h"


def per_sample(dollars: float | None, none: str = "-") -> str:
    """A cost per sample: ``$0.000400``, or ``$0.00185/1k`` where six decimals would show fewer than three
    digits (``$0.000002``)."""
    if dollars is None:
        return none
    if abs(dollars) < PER_SAMPLE_FLOOR and dollars != 0:
        return f"{usd(dollars * 1000)}/1k"
    return f"${dollars:.6f}"
