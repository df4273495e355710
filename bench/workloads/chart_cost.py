"""CPU cost of one chart redraw: gputab's braille chart vs textual-plotext's plotext, same data, same size.

    python bench/workloads/chart_cost.py [PLOTEXT_SITE_DIR]

Both draw the same 9 series (8 GPUs' utilization over 5 minutes at 1 Hz, 300 points each) in a 100 x 12 cell
chart, as a Rich Text, which is what a widget hands Textual. For plotext that is what textual-plotext's ``Plot``
does on every render: ``plt.build()`` then ``Text.from_ansi``. Medians of 5 runs of 50 redraws, in process CPU
time. plotext is not a gputab dependency: pass a directory where it is installed (``pip install --target DIR
textual-plotext``) to measure it; without one its row says so.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time


def series():
    ts = [float(t) for t in range(300)]
    return ts, [[50 + 40 * math.sin(t / (10 + g)) for t in ts] for g in range(8)] + [[30.5 + t % 2 for t in ts]]


def ours(n: int) -> float:
    from rich.text import Text

    from gputab.tui.widgets.chart import ChartSpec, Line, render_chart

    ts, vals = series()
    spec = ChartSpec(
        "util", tuple(Line(f"GPU {i}", ts, v, "cyan") for i, v in enumerate(vals)), 100, 0, 299, lambda v: f"{v:.0f}%"
    )
    start = time.process_time()
    for _ in range(n):
        Text("\n").join(render_chart(spec, 100, 12))
    return (time.process_time() - start) / n


def plotext_redraw(n: int) -> float:
    import plotext as plt
    from rich.text import Text

    ts, vals = series()
    start = time.process_time()
    for _ in range(n):
        plt.clf()
        plt.plotsize(100, 12)
        plt.ylim(0, 100)
        for i, v in enumerate(vals):
            plt.plot(ts, v, marker="braille", label=f"GPU {i}")
        Text.from_ansi(plt.build())
    return (time.process_time() - start) / n


def main() -> int:
    if len(sys.argv) > 1:
        sys.path.append(sys.argv[1])
    out = {"gputab_chart_ms": statistics.median(ours(50) for _ in range(5)) * 1000}
    try:
        import plotext  # noqa: F401

        out["plotext_ms"] = statistics.median(plotext_redraw(50) for _ in range(5)) * 1000
    except ImportError:
        out["plotext_ms"] = None
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
