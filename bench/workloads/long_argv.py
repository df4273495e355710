"""Long command lines (issue 24): ``python bench/workloads/long_argv.py [SECONDS]``.

1. Redaction: ``redact_cmdline`` on 2 MiB argvs of several shapes (one 2 MiB word, 16 arguments of 128 KiB,
   100,000 short arguments, one argument of 2 MiB of words, an inline JSON config); the best of 5 runs each.
2. The recorder beside it: a real process whose argv is 2 MiB (16 arguments of 128 KiB, the kernel's limit for
   one; its stack limit raised so ARG_MAX allows it) is listed on one of the project's fake GPUs
   (tests/fakenvml); the real ``Recorder.run`` ticks every 0.2 s for SECONDS (default 10) against a SQLite file
   in a temporary directory until it has made SECONDS / 0.2 ticks. Reported: the time those ticks took (every
   tick kept: ticks x 0.2 s), the first tick (which reads and redacts the command line), the longest gap between
   two ticks, the share of the cost sent to ``(unobserved)``.

Prints JSON on the last line.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARG = 128 * 1024 - 1  # MAX_ARG_STRLEN counts the terminating NUL

ARGVS = {
    "one 2 MiB word": ["python", "train.py", "--shards=" + "a" * (2 << 20)],
    "16 x 128 KiB": ["python", *["x" * (128 << 10)] * 16],
    "100,000 short arguments": ["python", *[f"/data/shard-{i:07d}.tar" for i in range(100_000)]],
    "2 MiB of words in one argument": ["sh", "-c", "ab " * ((2 << 20) // 3)],
    "2 MiB inline JSON": ["python", "--config=" + '{"lr":1,' * ((2 << 20) // 8)],
}

RECORD = r"""
import json, sys, threading, time
from gputab.config.settings import Config, RecorderConfig
from gputab.recording.recorder import Recorder
from gputab.sampling import open_backend
from gputab.store import Store
seconds, db = float(sys.argv[1]), sys.argv[2]
interval = 0.2
durations = []
want = int(seconds / interval)
stop = threading.Event()
class Timing:
    def on_tick(self, tick):
        durations.append(time.perf_counter())
        if len(durations) >= want:
            stop.set()
rec = Recorder(open_backend(), Store(db), Config(recorder=RecorderConfig(interval=interval, commit_interval=1.0)),
               observers=[Timing()])
t0 = time.perf_counter()
rec.start()
first = time.perf_counter() - t0
start = time.perf_counter()
rec.run(stop)  # until the observer has seen `want` ticks
elapsed = time.perf_counter() - start
jobs = {j.tag: j.cost_usd for j in rec.ledger.jobs_by_cost()}
rec.close()
gaps = [b - a for a, b in zip([start, *durations], durations)]
total = sum(jobs.values())
print(json.dumps({"ticks": len(durations), "seconds": elapsed, "interval": interval, "first_tick_s": first,
                  "slowest_gap_s": max(gaps) if gaps else None, "jobs": sorted(jobs),
                  "unobserved_share": jobs.get("(unobserved)", 0.0) / total if total else 0.0}))
"""


def redaction() -> dict[str, float]:
    from gputab.redaction import redact_cmdline

    out = {}
    for name, argv in ARGVS.items():
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            redact_cmdline(argv)
            best = min(best, time.perf_counter() - t)
        out[name] = round(best * 1000, 3)
    return out


def _big_stack() -> None:
    resource.setrlimit(resource.RLIMIT_STACK, (64 << 20, resource.RLIM_INFINITY))


def recorder(seconds: float) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from fakenvml import FakeNvml, GpuSpec, Proc, Scenario, build_library

    with tempfile.TemporaryDirectory() as tmp:
        lib = build_library(Path(tmp) / "lib")
        fake = FakeNvml(lib, Path(tmp) / "scenario.txt")
        args = [f"--shards={i:02d}" + "s" * (ARG - 11) for i in range(16)]
        holder = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)", *args],
            preexec_fn=_big_stack,
            env={"GPUTAB_TAG": "glob"},
        )
        try:
            argv_bytes = len(Path(f"/proc/{holder.pid}/cmdline").read_bytes())
            fake.write(Scenario(gpus=[GpuSpec(util=80)], processes=[Proc(gpu=0, pid=holder.pid)]))
            env = fake.env(GPUTAB_CONFIG=os.devnull, GPUTAB_SPOOL=str(Path(tmp) / "spool"))
            r = subprocess.run(
                [sys.executable, "-c", RECORD, str(seconds), str(Path(tmp) / "g.db")],
                env=env,
                capture_output=True,
                text=True,
            )
            if r.returncode:
                raise SystemExit(r.stderr)
        finally:
            holder.kill()
            holder.wait()
    return {"argv_bytes": argv_bytes, **json.loads(r.stdout.splitlines()[-1])}


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    print(json.dumps({"redaction_ms": redaction(), "recorder": recorder(seconds)}))


if __name__ == "__main__":
    main()
