"""What the ``kind`` label of ``gputab_job_tokens_total`` adds to a /metrics scrape: ``python bench/metrics_tokens.py``.

Builds 100 jobs that each have prompt, generated and reported tokens (three ``kind`` series each), hands them to
:class:`gputab.publish.metrics.TickCollector` in the tick of tests/test_metrics.py, and prints the median time of
``collect()`` over 200 runs and how many samples it produced. To compare with a checkout from before the label, run
it with ``PYTHONPATH=OTHER/src`` (the jobs then have no kinds and one ``tokens`` series each).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from gputab.cost.ledger import JobTotals  # noqa: E402
from gputab.publish.metrics import TickCollector  # noqa: E402
from gputab.publish.metrics import __file__ as metrics_file  # noqa: E402
from test_metrics import make_tick  # noqa: E402 - the tick the metric tests use


def main(jobs: int = 100, runs: int = 200) -> None:
    rows = []
    for i in range(jobs):
        j = JobTotals(f"job-{i}", cost_usd=1.0 + i, gpu_hours=1.0, tokens=1_000_000 + i)
        if hasattr(j, "prompt_tokens"):
            j.prompt_tokens, j.generated_tokens = 600_000, 300_000
        rows.append(j.to_json())
    collector = TickCollector("box")
    collector.update(make_tick(rows))
    took, families = [], []
    for _ in range(runs):
        start = time.perf_counter()
        families = list(collector.collect())
        took.append(time.perf_counter() - start)
    samples = sum(len(f.samples) for f in families)
    print(f"{metrics_file}: collect() median {statistics.median(took) * 1e3:.2f} ms, {samples} samples")


if __name__ == "__main__":
    main()
