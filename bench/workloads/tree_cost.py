"""CPU the CPU side of the poll costs beside a GPU job whose process has many children.

Usage: python bench/workloads/tree_cost.py CHILDREN SECONDS [--record]

Starts a process with CHILDREN sleeping children, then calls ``HostInspector.cpu_samples([root])`` once a second
(as the recorder does each tick) for SECONDS, and prints JSON: process CPU time used per call, and that as a
percentage of one core at 1 Hz. Process CPU time (not wall time), so other load on the box matters little.

With ``--record``: a real ``gputab record --interval 1`` on one fake H100 (tests/fakenvml) that lists the root
process, measured from the kernel's accounting over SECONDS after a 4 s warm-up (bench/measure.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from gputab.sampling.host import HostInspector

SPAWN = "import os,sys,time\nfor _ in range(int(sys.argv[1])):\n    if os.fork() == 0:\n        time.sleep(3600); os._exit(0)\nprint('ready', flush=True)\ntime.sleep(3600)\n"


def record(root: int, seconds: float) -> dict:
    import os
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fakegpus import GIB, FakeNvml, GpuSpec, Proc, Scenario, build
    from measure import measure_headless

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        nvml = FakeNvml(build(work / "nvml"), work / "scenario.txt")
        nvml.write(Scenario(gpus=[GpuSpec(util=60, mem_used=10 * GIB)], processes=[Proc(0, root, used_bytes=GIB)]))
        env = nvml.env(GPUTAB_DB=str(work / "g.db"), GPUTAB_CONFIG=str(work / "none.toml"), HOME=tmp)
        env["PATH"] = os.environ.get("PATH", "")
        usage = measure_headless([sys.executable, "-m", "gputab", "record", "--interval", "1"], env, 4.0, seconds)
    return {"recorder_cpu_pct": round(usage.cpu_pct, 2), "rss_mib": round(usage.rss_bytes / 2**20, 1)}


def main() -> None:
    children, seconds = int(sys.argv[1]), float(sys.argv[2])
    root = subprocess.Popen([sys.executable, "-c", SPAWN, str(children)], stdout=subprocess.PIPE, text=True)
    try:
        assert root.stdout is not None and root.stdout.readline().strip() == "ready"
        if "--record" in sys.argv:
            print(json.dumps({"children": children, **record(root.pid, seconds)}))
            return
        inspector = HostInspector()
        inspector.cpu_samples([root.pid], now=0.0)  # the first call walks the tree and takes the base readings
        calls, cpu = 0, 0.0
        t = 1.0
        while t <= seconds:
            start = time.process_time()
            (sample,) = inspector.cpu_samples([root.pid], now=t)
            cpu += time.process_time() - start
            calls += 1
            t += 1.0
        per_call = cpu / calls
        print(
            json.dumps(
                {
                    "children": children,
                    "tree_size": sample.tree_size,
                    "calls": calls,
                    "cpu_ms_per_call": round(per_call * 1000, 3),
                    "pct_of_core_at_1hz": round(per_call * 100, 2),
                }
            )
        )
    finally:
        root.kill()
        subprocess.run(["pkill", "-KILL", "-P", str(root.pid)], check=False)
        root.wait()


if __name__ == "__main__":
    main()
