"""Time ``gputab spend`` over the bench's year of 8-GPU sessions (``store_data.py year``).

    python bench/workloads/spend_time.py [RUNS]

Builds the year database in a temporary directory (365 one-day sessions of 8 GPUs, written through the store's
``SessionWriter``), then runs each command ``RUNS`` times (default 7) as a fresh process, process start
included, and prints the median and every time as JSON on the last line. ``gputab --help`` is timed the same way,
for the share of the figure that is process start and imports. Then the same for the 30-day 8-GPU session
(``store_data.py month``: 2 million job series rows), which ``--by day`` and a ``--since`` inside it must split
by its series.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMANDS = {
    "spend --by tag --since 365d": ["spend", "--by", "tag", "--since", "365d"],
    "spend --by day --since 365d": ["spend", "--by", "day", "--since", "365d"],
    "spend --by user --since 365d --json": ["spend", "--by", "user", "--since", "365d", "--json"],
    "--help": ["--help"],
}
MONTH_COMMANDS = {
    "spend --by day --since 365d (30-day session, cut by its series)": ["spend", "--by", "day", "--since", "365d"],
    "spend --by tag --since 2026-01-15 (clipped by its series)": ["spend", "--by", "tag", "--since", "2026-01-15"],
}


def _time(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "year.db"
        subprocess.run(
            [sys.executable, str(HERE / "store_data.py"), "year", str(db)], check=True, stdout=subprocess.DEVNULL
        )
        out = {}
        for name, args in COMMANDS.items():
            times = _time([sys.executable, "-m", "gputab", "--db", str(db), *args], runs)
            out[name] = {"median_ms": statistics.median(times) * 1000, "times_ms": [t * 1000 for t in times]}
        month = Path(tmp) / "month.db"
        subprocess.run(
            [sys.executable, str(HERE / "store_data.py"), "month", str(month)], check=True, stdout=subprocess.DEVNULL
        )
        for name, args in MONTH_COMMANDS.items():
            times = _time([sys.executable, "-m", "gputab", "--db", str(month), *args], runs)
            out[name] = {"median_ms": statistics.median(times) * 1000, "times_ms": [t * 1000 for t in times]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
