"""Real-hardware rows for bench/RESULTS.md: nvmlInit time and poll latency per GPU, gputab vs nvitop's library,
on this machine's real driver. Part of the real-GPU check (``scripts/gpu-check.sh``); about a minute.

    python bench/real_gpu.py            # print the rows
    python bench/real_gpu.py --write    # also append them, dated, to bench/RESULTS.md

Each measurement runs in a fresh subprocess (nvmlInit is timed cold in its own process, as a user starting gputab
sees it). Poll latency reuses ``bench/workloads/poll_latency.py`` (the same figures for both tools). Where nvitop is
not installed its row says so.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
POLLS = 200
INIT_RUNS = 3

_INIT = r"""
import json, time
t0 = time.perf_counter()
import pynvml
pynvml.nvmlInit()
t1 = time.perf_counter()
n = pynvml.nvmlDeviceGetCount()
names = [pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(n)]
driver = pynvml.nvmlSystemGetDriverVersion()
mig = []
for i in range(n):
    try:
        mig.append(pynvml.nvmlDeviceGetMigMode(pynvml.nvmlDeviceGetHandleByIndex(i))[0])
    except pynvml.NVMLError:
        mig.append(None)
try:
    persistence = [pynvml.nvmlDeviceGetPersistenceMode(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(n)]
except pynvml.NVMLError:
    persistence = None
pynvml.nvmlShutdown()
print(json.dumps({"init_s": t1 - t0, "gpus": n, "names": names, "driver": driver, "mig": mig,
                  "persistence": persistence}))
"""


def _run(code_or_args: list[str], timeout: float = 180) -> dict:
    out = subprocess.run([sys.executable, *code_or_args], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sandbox() -> str | None:
    sys.path.insert(0, str(HERE.parent / "src"))
    from gputab.sampling.containers import sandboxed_kernel

    return sandboxed_kernel()


def measure() -> dict:
    inits = [_run(["-c", _INIT]) for _ in range(INIT_RUNS)]
    if "error" in inits[0]:
        return {"error": f"no real NVML here: {inits[0]['error']}"}
    polls = {}
    for tool in ("gputab", "nvitop"):
        polls[tool] = _run([str(HERE / "workloads" / "poll_latency.py"), tool, str(POLLS)])
    return {
        "init": inits,
        "polls": polls,
        "sandbox": _sandbox(),
        "host": platform.node(),
        "python": platform.python_version(),
    }


def rows(m: dict) -> list[str]:
    if "error" in m:
        return [f"- real GPU check: {m['error']}"]
    first = m["init"][0]
    init = [r["init_s"] for r in m["init"] if "init_s" in r]
    names = ", ".join(sorted(set(first["names"])))
    out = [
        f"### Real hardware, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"{first['gpus']} x {names}, driver {first['driver']}, persistence mode {first['persistence']}, "
        f"MIG mode {first['mig']}, Python {m['python']}"
        + (f", kernel sandbox: {m['sandbox']}" if m["sandbox"] else ""),
        "",
        "| figure | gputab | nvitop |",
        "| --- | --- | --- |",
        f"| nvmlInit, cold, in a fresh process (median of {len(init)}) | {statistics.median(init) * 1000:.1f} ms "
        f"(runs: {', '.join(f'{s * 1000:.0f}' for s in init)} ms) | (same library call) |",
    ]
    cells = []
    for tool in ("gputab", "nvitop"):
        p = m["polls"][tool]
        if "error" in p:
            cells.append(f"not measured ({p['error'][:60]})")
        else:
            per_gpu = [t / max(1, p["gpus"]) for t in p["times"]]
            cells.append(
                f"{statistics.median(per_gpu) * 1000:.2f} ms (p95 "
                f"{sorted(per_gpu)[int(0.95 * len(per_gpu)) - 1] * 1000:.2f} ms)"
            )
    out.append(f"| poll latency per GPU, real driver, median of {POLLS} | {cells[0]} | {cells[1]} |")
    return out


def main() -> int:
    m = measure()
    text = "\n".join(rows(m))
    print(text)
    print(json.dumps(m), file=sys.stderr)
    if "--write" in sys.argv[1:] and "error" not in m:
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write("\n" + text + "\n")
        print(f"appended to {RESULTS}")
    return 0 if "error" not in m else 1


if __name__ == "__main__":
    raise SystemExit(main())
