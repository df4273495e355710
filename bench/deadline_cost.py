"""What the poll's deadline costs: ``python bench/deadline_cost.py [POLLS]``.

With a deadline (the recorder always sets one: 2 x its interval) each GPU is read by its own thread and the poll
waits for them (docs/speed-and-faults.md); without one the GPUs are read one after the other in the caller's thread. Both
are measured on 8 fake GPUs (tests/fakenvml), each with one process and its SM sample, in subprocesses, interleaved
over 3 rounds; the figures are medians of wall and CPU time (all threads) per poll. On the fake every NVML call is
cheap, so this is gputab's own overhead: the thread hand-off per GPU.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakenvml import FakeNvml, GpuSpec, Proc, Sample, Scenario, build_library  # noqa: E402

CHILD = r"""
import json, sys, time
from gputab.sampling.nvml import NvmlBackend
b = NvmlBackend()
b.poll_deadline = None if sys.argv[1] == "none" else float(sys.argv[1])
b.poll()
wall, cpu = [], []
for _ in range(int(sys.argv[2])):
    w, c = time.perf_counter(), time.process_time()
    b.poll()
    wall.append(time.perf_counter() - w)
    cpu.append(time.process_time() - c)
b.close()
print(json.dumps({"wall": wall, "cpu": cpu}))
"""


def main() -> None:
    polls = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_library(Path(tmp))
        fake = FakeNvml(lib, Path(tmp) / "scenario.txt")
        pid = os.getpid()
        fake.write(
            Scenario(
                gpus=[GpuSpec(util=50) for _ in range(8)],
                processes=[Proc(gpu=i, pid=pid) for i in range(8)],
                samples=[Sample(gpu=i, pid=pid, ts=1, sm=50) for i in range(8)],
            )
        )
        res: dict[str, dict[str, list[float]]] = {}
        for _ in range(3):
            for mode in ("none", "2.0"):
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, mode, str(polls)],
                    env=fake.env(),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                doc = json.loads(out.stdout)
                r = res.setdefault(mode, {"wall": [], "cpu": []})
                r["wall"] += doc["wall"]
                r["cpu"] += doc["cpu"]
    for mode, r in res.items():
        print(
            f"deadline {mode:>4}: median wall {statistics.median(r['wall']) * 1e3:.2f} ms, "
            f"median CPU {statistics.median(r['cpu']) * 1e3:.2f} ms per poll of 8 GPUs ({len(r['wall'])} polls)"
        )


if __name__ == "__main__":
    main()
