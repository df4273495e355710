"""bench/run.py rewrites bench/RESULTS.md: a partial run (``--only GROUP --write``) replaces its own rows in place
and keeps every other row, including rows other scripts wrote there."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"

RESULTS = """# gputab benchmark results

Measured some day.

| measure | gputab | nvitop | gpustat | gputab / nvitop | how |
| --- | ---: | ---: | ---: | ---: | --- |
| poll latency per GPU (8 GPUs, 8 processes) | 30.0 µs | 201.2 µs | 9 µs | 0.15x | old poll |
| live view RSS | 52 MiB | 24 MiB | 31 MiB | 2.12x | old rss |
| spend over a year: `gputab spend --by tag --since 365d` | 220 ms | — | — | — | written by spend_time.py |
| any of the above on a real GPU | not measured | not measured | not measured | — | no GPU |

Ratios are gputab / nvitop.

## Notes

- kept as written.
"""


def _run_module():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_a_partial_run_replaces_its_rows_and_keeps_the_others():
    run = _run_module()
    t = run.Table()
    t.add(run.LIVE_RSS, "47 MiB", "24 MiB", "31 MiB", "1.96x", "new rss")
    t.add(run.LIVE_FIRST, "0.45 s", "0.14 s", "not seen", "3.2x", "new first frame")
    merged = run.merge_rows(RESULTS, t).splitlines()
    old = RESULTS.splitlines()
    rows = [line for line in merged if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[0][2:] for r in rows] == [
        "poll latency per GPU (8 GPUs, 8 processes)",
        run.LIVE_RSS,
        "spend over a year: `gputab spend --by tag --since 365d`",
        run.LIVE_FIRST,  # new: before the real-GPU row
        "any of the above on a real GPU",
    ]
    assert rows[1].endswith("| 47 MiB | 24 MiB | 31 MiB | 1.96x | new rss |")
    assert rows[0] == old[6] and rows[2] == old[8] and rows[4] == old[9]
    # Everything that is not a table row is left as it was.
    assert [x for x in merged if not x.startswith("| ")] == [x for x in old if not x.startswith("| ")]
