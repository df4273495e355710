"""What NVML GPM and clock event reasons add to a poll: ``python bench/gpm_cost.py [POLLS]``.

``python bench/gpm_cost.py --live [--base-src DIR]`` instead measures the live view's CPU (120x40 pty, 1 Hz, 3 runs
of 20 s after 4 s warm-up) with GPM and clock reasons off and on, and, given ``--base-src`` (the ``src`` of a
checkout without waste, e.g. ``git archive 8983c44``), that gputab too.

Same 8 fake H100s and 8 real child processes as bench/run.py (tests/fakenvml), polled by ``NvmlBackend.poll()`` in a
subprocess, three ways, interleaved over 5 repetitions (medians):

- ``off``: GPM not supported and clock event reasons NOT_SUPPORTED (a pre-Hopper GPU, an older driver);
- ``on``: GPM supported (two samples and one ``nvmlGpmMetricsGet`` per GPU per poll) and clock event reasons read;
- ``off/on, no CPU side``: the same with the host's CPU readings of the GPU processes (/proc, for ``input_bound``
  and ``stranded_memory``) switched off, so GPM + clock reasons (on - off) and the CPU side (off - off, no CPU side)
  show apart.

On the fake every NVML call is cheap, so this measures gputab's own work per call. On a real GPU, GPM replaces the
older PCIe throughput call, which blocks for a 20 ms sample each for rx and tx: there ``on`` is faster.
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

from fakegpus import build, scenario  # noqa: E402
from measure import measure_pty  # noqa: E402

from fakenvml import Error, FakeNvml  # noqa: E402

POLL = r"""
import json, sys, time
from gputab.sampling.nvml import NvmlBackend
b = NvmlBackend()
if sys.argv[2] == "0":
    b.inspector().cpu_samples = lambda pids: ()
for _ in range(5):
    b.poll()
times = []
for _ in range(int(sys.argv[1])):
    t0 = time.perf_counter(); b.poll(); times.append(time.perf_counter() - t0)
snap = b.poll()
print(json.dumps({"times": times, "gpus": len(snap.gpus), "gpm": snap.gpus[0].sm_active_pct is not None,
                  "throttle": snap.gpus[0].throttle_seconds is not None, "cpu": len(snap.cpu)}))
"""


def _scenario(pids: list[int], gpm: bool):
    sc = scenario(pids)
    for g in sc.gpus:
        g.gpm, g.gpm_sm_util, g.gpm_tensor, g.clocks_event = int(gpm), 70, 40, 0x4
    if not gpm:
        sc.errors.append(Error("nvmlDeviceGetCurrentClocksEventReasons", "NOT_SUPPORTED"))
    return sc


def _pythonpath(src: Path) -> str:
    return os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))


def live(base_src: Path | None) -> None:
    """The live view's CPU % of a core, GPM and clock reasons off vs on (and the base gputab, if given)."""
    gputab = str(Path(sys.executable).parent / "gputab")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lib = build(work / "nvml")
        children = [subprocess.Popen(["sleep", "100000"]) for _ in range(8)]
        try:
            runs = {"waste, GPM off": (False, HERE.parent / "src"), "waste, GPM on": (True, HERE.parent / "src")}
            if base_src is not None:
                runs["base (no waste)"] = (False, base_src)
            cpu: dict[str, list[float]] = {name: [] for name in runs}
            for rep in range(3):
                for name, (gpm, src) in runs.items():
                    nvml = FakeNvml(lib, work / f"scenario-{rep}-{len(cpu[name])}-{gpm}.txt")
                    nvml.write(_scenario([c.pid for c in children], gpm))
                    env = nvml.env(
                        PYTHONPATH=_pythonpath(src),
                        GPUTAB_DB=str(work / f"{name}-{rep}.db"),
                        GPUTAB_DATA_DIR=str(work / "data"),
                        GPUTAB_CONFIG=str(work / "none.toml"),
                        GPUTAB_SPOOL=str(work / "spool"),
                    )
                    cpu[name].append(measure_pty([gputab, "--interval", "1"], env, 4.0, 20.0).cpu_pct)
        finally:
            for c in children:
                c.kill()
                c.wait()
    print("live view CPU % of a core at 1 Hz, 8 fake H100s, 120x40 pty, 3 runs of 20 s after 4 s (median; runs)")
    for name, vals in cpu.items():
        print(f"  {name:<16} {statistics.median(vals):5.1f} %   {[round(v, 1) for v in vals]}")


def main() -> None:
    if "--live" in sys.argv:
        base = sys.argv[sys.argv.index("--base-src") + 1] if "--base-src" in sys.argv else None
        live(Path(base) if base else None)
        return
    polls = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lib = build(work / "nvml")
        children = [subprocess.Popen(["sleep", "100000"]) for _ in range(8)]
        try:
            modes = {}
            for name, gpm, cpu in (
                ("off", False, True),
                ("on", True, True),
                ("off, no CPU side", False, False),
                ("on, no CPU side", True, False),
            ):
                nvml = FakeNvml(lib, work / f"scenario-{len(modes)}.txt")
                nvml.write(_scenario([c.pid for c in children], gpm))
                modes[name] = (nvml.env(PYTHONPATH=_pythonpath(HERE.parent / "src")), "1" if cpu else "0")
            results: dict[str, list[float]] = {m: [] for m in modes}
            seen = {}
            for _ in range(5):
                for name, (env, cpu) in modes.items():
                    out = subprocess.run(
                        [sys.executable, "-c", POLL, str(polls), cpu],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    doc = json.loads(out.stdout)
                    results[name].append(statistics.median(doc["times"]) / doc["gpus"])
                    seen[name] = {k: doc[k] for k in ("gpm", "throttle", "cpu")}
        finally:
            for c in children:
                c.kill()
                c.wait()
    med = {name: statistics.median(vals) * 1e6 for name, vals in results.items()}
    print(f"poll time per GPU, 8 fake H100s with one process each, median of 5 x {polls} polls")
    for name, us in med.items():
        print(f"  {name:<17} {us:7.1f} µs   read: {seen[name]}")
    print(
        f"GPM + clock event reasons: {med['on, no CPU side'] - med['off, no CPU side']:+.1f} µs per GPU; "
        f"CPU side of the GPU processes: {med['off'] - med['off, no CPU side']:+.1f} µs per GPU"
    )


if __name__ == "__main__":
    main()
