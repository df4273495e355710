"""Where the live view's memory, start-up time and CPU per tick go: ``python bench/live_probe.py [SECONDS]``.

Runs ``gputab --interval 1`` on the bench's 8 fake GPUs in the same 120x40 pseudo-terminal as ``bench/run.py``,
inside a small wrapper (this file with ``--inner``) that answers SIGUSR1:

1. at the first frame (the header's ``spent`` line on the pty): RSS, the modules loaded (by top-level package,
   with how long each took to import, from ``-X importtime``), and the largest allocation sites when
   ``--tracemalloc`` is given;
2. after the warm-up: cProfile on (the main thread: Textual's loop, where the drawing happens) and the CPU time
   of every thread noted;
3. SECONDS later: cProfile off; the top functions by cumulative and own time, and each thread's CPU per tick.

    python bench/live_probe.py 20               # profile of 20 ticks, modules at the first frame
    python bench/live_probe.py 20 --tracemalloc # + allocation sites at the first frame (slows start-up)

Prints one report to stdout; nothing is written in the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIB = 1 << 20


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process (the kernel's ``schedstat``: nanoseconds, where ``stat`` counts
    10 ms ticks, too coarse for a thread that runs 1 ms a second)."""
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            out[task.name] = int((task / "schedstat").read_text().split()[0]) / 1e9
        except OSError:
            continue
    return out


def _allocations(snap) -> dict:
    """Live allocations split into those made while importing (a ``<frozen importlib._bootstrap>`` frame on the
    stack: code objects, module globals) and those made since (widgets, styles, caches, data), the latter by file
    and line of the allocating frame."""
    imported = running = 0
    by_file: dict[str, int] = {}
    by_line: dict[str, int] = {}
    for stat in snap.statistics("traceback"):
        frames = stat.traceback
        if any(f.filename == "<frozen importlib._bootstrap>" for f in frames):
            imported += stat.size
            continue
        running += stat.size
        top = frames[0]
        by_file[top.filename] = by_file.get(top.filename, 0) + stat.size
        key = f"{top.filename}:{top.lineno}"
        by_line[key] = by_line.get(key, 0) + stat.size
    return {
        "imported": imported,
        "running": running,
        "running_files": sorted(by_file.items(), key=lambda kv: -kv[1])[:20],
        "running_lines": sorted(by_line.items(), key=lambda kv: -kv[1])[:20],
    }


def inner() -> None:
    """The wrapped gputab: the import log goes to a file (fd 2 is the terminal Textual draws on)."""
    out = Path(os.environ["GPUTAB_PROBE_OUT"])
    tty = os.dup(2)
    log = os.open(out / "importtime.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 2)
    sys.stderr = sys.__stderr__ = open(tty, "w", buffering=1)  # noqa: SIM115 - lives as long as the process
    state: dict = {"n": 0}

    def on_usr1(signum, frame) -> None:
        try:
            step(signum)
        except BaseException as exc:  # noqa: BLE001 - said in the report, never raised into the app
            (out / f"error-{state['n']}.txt").write_text(repr(exc))

    def step(signum) -> None:
        state["n"] += 1
        n = state["n"]
        if n == 1:
            if "start_prof" in state:
                state["start_prof"].disable()
                state["start_prof"].dump_stats(str(out / "start.prof"))
            report = {"rss": _rss(), "modules": sorted(k for k, v in sys.modules.items() if v is not None)}
            if "tracemalloc" in sys.modules and sys.modules["tracemalloc"].is_tracing():
                import tracemalloc

                report.update(_allocations(tracemalloc.take_snapshot()))
                tracemalloc.stop()
            (out / "first.json").write_text(json.dumps(report))
        elif n == 2:
            import cProfile
            import gc

            state["gc0"] = [g["collections"] for g in gc.get_stats()]
            state["cpu0"] = _thread_cpu()
            state["t0"] = time.monotonic()
            state["prof"] = cProfile.Profile()
            if not os.environ.get("GPUTAB_PROBE_NO_PROFILE"):
                state["prof"].enable()
        elif n == 3:
            state["prof"].disable()
            state["prof"].dump_stats(str(out / "main.prof"))
            cpu1 = _thread_cpu()
            import gc

            gcs = [g["collections"] - c for g, c in zip(gc.get_stats(), state["gc0"])]
            (out / "ticks.json").write_text(
                json.dumps(
                    {
                        "seconds": time.monotonic() - state["t0"],
                        "cpu0": state["cpu0"],
                        "cpu1": cpu1,
                        "gc": gcs,
                        "objects": len(gc.get_objects()),
                    }
                )
            )

    signal.signal(signal.SIGUSR1, on_usr1)
    if os.environ.get("GPUTAB_PROBE_TRACEMALLOC"):
        import tracemalloc

        tracemalloc.start(12)
    if os.environ.get("GPUTAB_PROBE_START"):
        import cProfile

        state["start_prof"] = cProfile.Profile()
        state["start_prof"].enable()
    import runpy

    sys.argv = ["gputab", "--interval", "1"]
    runpy.run_module("gputab", run_name="__main__", alter_sys=True)


def import_times(path: Path) -> list[tuple[str, int]]:
    """(module, cumulative µs) of each top-level import in a ``-X importtime`` log."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cum, name = line.split(":", 1)[1].split("|")
        cum, name = cum.strip(), name[1:]
        if cum.isdigit() and not name.startswith(" "):  # nested imports are indented
            out.append((name, int(cum)))
    return out


def outer(
    seconds: float,
    warmup: float,
    trace: bool,
    profile: bool = True,
    start: bool = False,
    modules: bool = False,
    importlog: Path | None = None,
) -> None:
    import pstats

    sys.path.insert(0, str(HERE))
    from fakegpus import FakeBox, existing_database
    from measure import PtyProgram

    with tempfile.TemporaryDirectory(prefix="gputab-probe-") as tmp:
        work = Path(tmp)
        box = FakeBox(work)
        env = box.env(
            GPUTAB_DB=str(work / "p.db"),
            GPUTAB_DATA_DIR=str(work / "data"),
            GPUTAB_CONFIG=str(work / "none.toml"),
            GPUTAB_SPOOL=str(work / "spool"),
            GPUTAB_PROBE_OUT=str(work),
        )
        existing_database(env)
        if trace:
            env["GPUTAB_PROBE_TRACEMALLOC"] = "1"
        if not profile:
            env["GPUTAB_PROBE_NO_PROFILE"] = "1"
        if start:
            env["GPUTAB_PROBE_START"] = "1"
        prog = PtyProgram(
            [sys.executable, "-X", "importtime", str(Path(__file__).resolve()), "--inner"], env, marker=b"spent"
        )
        try:
            deadline = time.monotonic() + 90
            while prog.first_seen is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if prog.first_seen is None:
                raise SystemExit(f"no first frame in 90 s; last output: {prog.tail[-600:]!r}")
            prog.proc.send_signal(signal.SIGUSR1)
            time.sleep(warmup)
            prog.proc.send_signal(signal.SIGUSR1)
            time.sleep(seconds)
            prog.proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            os.write(prog._master, b"q")
            prog.proc.wait(20)
        finally:
            prog.stop()
            box.close()
        first = json.loads((work / "first.json").read_text())
        if importlog is not None:
            importlog.write_text((work / "importtime.txt").read_text(errors="replace"))
        print(f"first frame on the pty after {prog.first_seen:.2f} s; RSS then {first['rss'] / MIB:.1f} MiB")
        tops: dict[str, int] = {}
        for m in first["modules"]:
            top = m.split(".")[0]
            tops[top] = tops.get(top, 0) + 1
        print(f"{len(first['modules'])} modules loaded at the first frame; the packages with most:")
        print("  " + ", ".join(f"{k} {v}" for k, v in sorted(tops.items(), key=lambda kv: -kv[1])[:20]))
        if modules:
            print("every module but Textual's, Rich's and gputab's:")
            print("  " + " ".join(m for m in first["modules"] if m.split(".")[0] not in ("textual", "rich", "gputab")))
        print(
            "slowest outermost imports (ms, cumulative; the poll thread imports while Textual does, so they overlap):"
        )
        for name, us in sorted(import_times(work / "importtime.txt"), key=lambda kv: -kv[1])[:30]:
            print(f"  {us / 1000:7.1f}  {name}")
        for err in sorted(work.glob("error-*.txt")):
            print(f"probe error at step {err.stem}: {err.read_text()}")
        if "imported" in first:
            print(
                f"tracemalloc at the first frame: {first['imported'] / MIB:.1f} MiB allocated while importing, "
                f"{first['running'] / MIB:.1f} MiB since; the latter by file, then by line:"
            )
            for name, size in first["running_files"]:
                print(f"  {size / 1024:8.0f} KiB  {name}")
            for name, size in first["running_lines"]:
                print(f"  {size / 1024:8.0f} KiB  {name}")
        if start:
            print("cProfile of the main thread from the interpreter's start to the first frame:")
            stats = pstats.Stats(str(work / "start.prof"))
            stats.sort_stats("cumulative").print_stats(60)
        ticks = json.loads((work / "ticks.json").read_text())
        s = ticks["seconds"]
        print(
            f"garbage collections in the window, generations 0/1/2: {ticks['gc']}; {ticks['objects']:,} objects "
            f"tracked at its end"
        )
        print(f"CPU per second over {s:.1f} s, by thread{' (the main thread under cProfile)' if profile else ''}:")
        for name, c1 in sorted(
            ticks["cpu1"].items(), key=lambda kv: kv[1] - ticks["cpu0"].get(kv[0], 0.0), reverse=True
        ):
            c0 = ticks["cpu0"].get(name, 0.0)
            if c1 - c0 > 0:
                print(f"  {name:28s} {(c1 - c0) / s * 1000:6.1f} ms/s")
        if profile:
            stats = pstats.Stats(str(work / "main.prof"))
            stats.sort_stats("cumulative").print_stats(45)
            stats.sort_stats("tottime").print_stats(30)


def main() -> None:
    if sys.argv[1:2] == ["--inner"]:
        inner()
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("seconds", type=float, nargs="?", default=20.0, help="seconds profiled (default 20)")
    ap.add_argument("--warmup", type=float, default=4.0, help="seconds after the first frame before profiling")
    ap.add_argument("--tracemalloc", action="store_true", help="allocation sites at the first frame")
    ap.add_argument("--no-profile", action="store_true", help="CPU per thread only, without cProfile's overhead")
    ap.add_argument("--start", action="store_true", help="cProfile of the main thread until the first frame")
    ap.add_argument("--modules", action="store_true", help="list every module loaded at the first frame")
    ap.add_argument("--importlog", type=Path, default=None, help="keep the whole `-X importtime` log in this file")
    args = ap.parse_args()
    outer(
        args.seconds,
        args.warmup,
        args.tracemalloc,
        profile=not args.no_profile,
        start=args.start,
        modules=args.modules,
        importlog=args.importlog,
    )


if __name__ == "__main__":
    main()
