"""Cost of ``gputab.report()`` per call, as a training loop would call it: ``report_cost.py CALLS``.

The first call (which starts the flush thread) is timed apart; the steady state is the median of batches of
1000 calls, during which the daemon thread keeps rewriting the spool file once a second as it would in a job.
Prints JSON on the last line.
"""

from __future__ import annotations

import json
import statistics
import sys
import time


def main() -> None:
    calls = int(sys.argv[1])
    t0 = time.perf_counter()
    import gputab

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    gputab.report(samples=1, tokens=1, tag="bench")
    first_s = time.perf_counter() - t0
    batch = 1000
    per_call = []
    for _ in range(max(1, calls // batch)):
        t0 = time.perf_counter()
        for _ in range(batch):
            gputab.report(samples=32, tokens=4096, tag="bench")
        per_call.append((time.perf_counter() - t0) / batch)
    print(
        json.dumps(
            {
                "import_s": import_s,
                "first_s": first_s,
                "per_call_s": statistics.median(per_call),
                "calls": batch * len(per_call),
            }
        )
    )


if __name__ == "__main__":
    main()
