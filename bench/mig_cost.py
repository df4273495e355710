"""What MIG adds to a poll: ``python bench/mig_cost.py [POLLS]``.

8 fake H100s (tests/fakenvml), each in MIG mode with seven 1g.10gb instances and a process on each (56 instances,
56 real child processes), polled by ``NvmlBackend.poll()`` in a subprocess, four ways, interleaved over 5
repetitions (medians of the per-poll time, per GPU):

- ``no MIG, no GPM`` / ``no MIG, GPM``: the same 8 GPUs and processes with MIG off (the baselines);
- ``MIG, no GPM``: MIG on, the GPUs without GPM (an A100): instance handles, ids, memory each poll;
- ``MIG + GPM per instance``: MIG on with GPM, so each GPU instance is also sampled with ``nvmlGpmMigSampleGet``
  (one sample and one ``nvmlGpmMetricsGet`` per GPU instance per poll) besides the GPU's own GPM.

The MIG reads add (MIG, no GPM) - (no MIG, no GPM); GPM per instance adds what is left of
(MIG + GPM per instance) - (no MIG, GPM).

On the fake every NVML call is cheap, so this measures gputab's own work per call; the CPU side of the processes is
switched off in all three (bench/gpm_cost.py measures it).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fakegpus import build  # noqa: E402

from fakenvml import GIB, FakeNvml, GpuSpec, Mig, Proc, Scenario  # noqa: E402

POLL = r"""
import json, sys, time
from gputab.sampling.nvml import NvmlBackend
b = NvmlBackend()
b.inspector().cpu_samples = lambda pids: ()
for _ in range(5):
    b.poll()
times = []
for _ in range(int(sys.argv[1])):
    t0 = time.perf_counter(); b.poll(); times.append(time.perf_counter() - t0)
snap = b.poll()
g = snap.gpus[0]
print(json.dumps({"times": times, "gpus": len(snap.gpus), "instances": sum(len(g.mig or ()) for g in snap.gpus),
                  "gpm_per_instance": bool(g.mig) and g.mig[0].sm_active_pct is not None}))
"""


def _scenario(pids: list[int], mig: bool, gpm: bool) -> Scenario:
    gpus = [
        GpuSpec(
            name="NVIDIA H100 80GB HBM3", util=60, power_mw=400_000, mig=1 if mig else -1, gpm=int(gpm), gpm_sm_util=60
        )
        for _ in range(8)
    ]
    migs, procs = [], []
    for i in range(8):
        for slot in range(7):
            pid = pids[i * 7 + slot]
            if mig:
                migs.append(Mig(i, slot, gi=7 + slot, ci=0, ci_slices=1, mem_total=10 * GIB, mem_used=GIB, sm_util=50))
                procs.append(Proc(i, pid, used_bytes=GIB, gi=7 + slot, ci=0))
            else:
                procs.append(Proc(i, pid, used_bytes=GIB))
    return Scenario(gpus=gpus, migs=migs, processes=procs)


def main() -> None:
    polls = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    src = os.pathsep.join(filter(None, [str(HERE.parent / "src"), os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lib = build(work / "nvml")
        children = [subprocess.Popen(["sleep", "100000"]) for _ in range(56)]
        try:
            modes = {}
            for name, mig, gpm in (
                ("no MIG, no GPM", False, False),
                ("MIG, no GPM", True, False),
                ("no MIG, GPM", False, True),
                ("MIG + GPM per instance", True, True),
            ):
                nvml = FakeNvml(lib, work / f"scenario-{len(modes)}.txt")
                nvml.write(_scenario([c.pid for c in children], mig, gpm))
                modes[name] = nvml.env(PYTHONPATH=src)
            results: dict[str, list[float]] = {m: [] for m in modes}
            seen = {}
            for _ in range(5):
                for name, env in modes.items():
                    out = subprocess.run(
                        [sys.executable, "-c", POLL, str(polls)], env=env, capture_output=True, text=True, check=True
                    )
                    doc = json.loads(out.stdout)
                    results[name].append(statistics.median(doc["times"]) / doc["gpus"])
                    seen[name] = {k: doc[k] for k in ("instances", "gpm_per_instance")}
        finally:
            for c in children:
                c.kill()
                c.wait()
    med = {name: statistics.median(vals) * 1e6 for name, vals in results.items()}
    print(f"poll time per GPU, 8 fake H100s, 7 processes each, median of 5 x {polls} polls")
    for name, us in med.items():
        print(f"  {name:<24} {us:7.1f} µs   read: {seen[name]}")
    mig = med["MIG, no GPM"] - med["no MIG, no GPM"]
    per_instance_gpm = med["MIG + GPM per instance"] - med["no MIG, GPM"] - mig
    print(
        f"MIG instances: {mig:+.1f} µs per GPU ({mig / 7:.1f} per instance); GPM per instance: "
        f"{per_instance_gpm:+.1f} µs per GPU ({per_instance_gpm / 7:.1f} per instance)"
    )


if __name__ == "__main__":
    main()
