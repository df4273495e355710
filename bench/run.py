"""gputab's benchmark, side by side with nvitop and gpustat on the same 8 fake GPUs: ``python bench/run.py``.

Every row runs in this one invocation, several repetitions each (medians), interleaving the tools so that a slow
moment of the machine does not fall on one tool only. The table goes to stdout and to ``bench/RESULTS.md``.

    python bench/run.py            # the full run (about 7 minutes on 2 cores), writes bench/RESULTS.md
    python bench/run.py --quick    # one short repetition of each row (under 2 minutes), printed, not written

The GPUs are the project's fake NVML (tests/fakenvml) with 8 H100s and 8 real child processes on them, loaded
through LD_LIBRARY_PATH by every tool, so all three read the same library through the same pynvml.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fakegpus import FakeBox, existing_database  # noqa: E402
from measure import measure_headless, measure_pty, median  # noqa: E402

PY = sys.executable
WORKLOADS = HERE / "workloads"
MIB = 1 << 20
SERIES_POINTS = 60  # as in gputab/tui/review/data.py (copied: importing gputab.tui may load textual)


class Table:
    """Rows of (what, gputab, nvitop, gpustat, ratio gputab/nvitop, how)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(
        self, what: str, gputab: str, nvitop: str = "—", gpustat: str = "—", ratio: str = "—", how: str = ""
    ) -> None:
        row = dict(what=what, gputab=gputab, nvitop=nvitop, gpustat=gpustat, ratio=ratio, how=how)
        self.rows.append(row)
        print(f"  {what}: gputab {gputab} | nvitop {nvitop} | gpustat {gpustat} | ratio {ratio}", flush=True)

    def markdown(self) -> str:
        out = [
            "| measure | gputab | nvitop | gpustat | gputab / nvitop | how |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in self.rows:
            out.append(f"| {r['what']} | {r['gputab']} | {r['nvitop']} | {r['gpustat']} | {r['ratio']} | {r['how']} |")
        return "\n".join(out)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "—"


def run_json(argv: list[str], env: dict, timeout: float = 300) -> dict:
    """Run a workload script and parse the JSON on its last stdout line."""
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({r.returncode}): {r.stderr[-1500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def versions() -> dict[str, str]:
    out = {}
    for dist in ("gputab", "nvitop", "gpustat", "nvidia-ml-py", "textual", "sqlite-utils", "psutil"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    import sqlite3

    out["SQLite"] = sqlite3.sqlite_version
    out["Python"] = platform.python_version()
    return out


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    return (
        f"{platform.system()} {platform.release()} ({platform.machine()}), {model}, {os.cpu_count()} logical "
        f"cores, {psutil.virtual_memory().total / (1 << 30):.1f} GiB RAM, no GPU"
    )


# --- rows -------------------------------------------------------------------------------------------------------


def bench_poll_latency(box: FakeBox, t: Table, reps: int, polls: int) -> None:
    per_gpu = {"gputab": [], "nvitop": [], "gpustat": []}
    for _ in range(reps):
        for tool in per_gpu:
            # gpustat sleeps 0.1 s per GPU in each refresh: a few of them are enough for a median.
            n = max(5, polls // 30) if tool == "gpustat" else polls
            d = run_json([PY, str(WORKLOADS / "poll_latency.py"), tool, str(n)], box.env())
            per_gpu[tool].append(median(d["times"]) / d["gpus"])
    g, n, s = (median(per_gpu[k]) * 1e6 for k in ("gputab", "nvitop", "gpustat"))
    t.add(
        "poll latency per GPU (8 GPUs, 8 processes)",
        f"{g:.1f} µs",
        f"{n:.1f} µs",
        f"{s:.1f} µs",
        ratio(g, n),
        f"median of {reps} x {polls} polls ({max(5, polls // 30)} for gpustat); `NvmlBackend.poll()` vs "
        f"nvitop's `Device` API reading the same "
        f"figures vs gpustat's `GPUStatCollection.new_query()`, its refresh, which sleeps 0.1 s per GPU that has "
        f"processes to sample their CPU % (gpustat/core.py), so its figure is mostly that sleep",
    )


def find_tool(name: str) -> str | None:
    """The program ``name`` beside this Python (the venv the bench runs in), else the first one on ``PATH``: nvitop
    and gpustat may live in a venv of their own (``PATH="$PATH:OTHER/bin" python bench/run.py --only live``)."""
    beside = Path(PY).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def bench_interactive(
    box: FakeBox, t: Table, reps: int, warmup: float, window: float, work: Path, only: list[str] | None = None
) -> None:
    """TUI CPU % at 1 Hz in a 120x40 pty, and RSS; nvitop interactive and `gpustat -i 1` alike.

    ``only``: the tools to run (default all three; a tool not installed reads "not installed")."""
    flags = {"gputab": ["--interval", "1"], "nvitop": ["--interval", "1"], "gpustat": ["-i", "1"]}
    tools = {}
    for name, args in flags.items():
        path = find_tool(name) if not only or name in only else None
        if path is not None:
            tools[name] = [path, *args]
    if "gputab" not in tools:
        raise RuntimeError(f"gputab not found beside {PY}")
    compiled = compile_gputab()
    made = ""
    # Text each tool writes only once its first frame with the GPUs is drawn: gputab's header money line (after
    # the first poll; before it the header says "starting"), nvitop's and gpustat's GPU memory ("… MiB").
    markers = {"gputab": b"spent", "nvitop": b"MiB", "gpustat": b"MiB"}
    cpu: dict[str, list[float]] = {k: [] for k in flags}
    rss: dict[str, list[float]] = {k: [] for k in flags}
    first: dict[str, list[float]] = {k: [] for k in flags}
    first_cpu: dict[str, list[float]] = {k: [] for k in flags}
    for rep in range(reps):
        for tool, argv in tools.items():
            env = box.env(
                GPUTAB_DB=str(work / f"tui-{rep}.db"),
                GPUTAB_DATA_DIR=str(work / "data"),
                GPUTAB_CONFIG=str(work / "none.toml"),
                GPUTAB_SPOOL=str(work / "spool"),
            )
            if tool == "gputab":
                made = existing_database(env)
            u = measure_pty(argv, env, warmup, window, marker=markers[tool])
            cpu[tool].append(u.cpu_pct)
            rss[tool].append(u.rss_bytes)
            if u.first_frame_s is not None:
                first[tool].append(u.first_frame_s)
            if u.first_frame_cpu_s is not None:
                first_cpu[tool].append(u.first_frame_cpu_s)
            print(
                f"    {tool}: CPU {u.cpu_pct:.2f} %, RSS {u.rss_bytes / MIB:.1f} MiB, first frame "
                f"{u.first_frame_s if u.first_frame_s is None else round(u.first_frame_s, 2)} s "
                f"({u.first_frame_cpu_s if u.first_frame_cpu_s is None else round(u.first_frame_cpu_s, 2)} s CPU)",
                flush=True,
            )
    c = {k: median(v) for k, v in cpu.items() if v}
    r = {k: median(v) / MIB for k, v in rss.items() if v}
    ff = {k: median(v) for k, v in first.items() if v}

    def cell(d: dict[str, float], k: str, fmt: str) -> str:
        if k in d:
            return fmt.format(d[k])
        return "not seen" if k in tools else "not run"

    def rat(d: dict[str, float]) -> str:
        return ratio(d["gputab"], d["nvitop"]) if "gputab" in d and "nvitop" in d else "—"

    when = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())  # the box is shared: the ratios are what compare
    per_run = "; per run (gputab / nvitop): " + ", ".join(
        f"{a:.2f}/{b:.2f} %" for a, b in zip(cpu["gputab"], cpu["nvitop"])
    )
    how = (
        f"median of {reps} runs ({when}, load average at the end {load}){per_run if cpu['nvitop'] else ''}; CPU over {window:.0f} s after {warmup:.0f} s warm-up, process tree, "
        f"120x40 pty, 8 fake GPUs x 8 processes, the jobs view with its money charts; `gputab --interval 1`, "
        f"`nvitop --interval 1`, `gpustat -i 1`, interleaved in the same runs; {compiled}; {made}"
    )

    def add(row: str, d: dict, unit: str, note: str) -> None:
        t.add(row, *(cell(d, tool, unit) for tool in ("gputab", "nvitop", "gpustat")), rat(d), note)

    add(LIVE_CPU, c, "{:.2f} %", how)
    add(
        LIVE_RSS,
        r,
        "{:.0f} MiB",
        "same runs, RSS of the process tree at the end of the window; gputab per run "
        + ", ".join(f"{x / MIB:.1f}" for x in rss["gputab"])
        + " MiB",
    )
    add(
        LIVE_FIRST,
        ff,
        "{:.2f} s",
        "same runs: seconds from the start of the process until its first frame with the GPUs is on the pty "
        "(gputab: the header's `spent` line, written after the first poll; nvitop, gpustat: the GPUs' `MiB`), "
        "process start and imports included; CPU seconds used by then (less sensitive to the box's other load): "
        + ", ".join(f"{k} {median(v):.2f} s" for k, v in first_cpu.items() if v)
        + "; per run (gputab / nvitop): "
        + ", ".join(f"{a:.2f}/{b:.2f} s" for a, b in zip(first["gputab"], first["nvitop"])),
    )


def compile_gputab() -> str:
    """Byte-compile gputab where the bench imports it from, as ``pip install`` does for every tool: a checkout run
    with ``PYTHONDONTWRITEBYTECODE`` (or read-only) would compile about 100 modules from source at every start,
    0.1 s of the first frame on the bench box, which no installed gputab (nor the installed nvitop) pays."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("gputab")
    if spec is None or spec.origin is None:
        return "gputab's bytecode as installed"
    pkg = Path(spec.origin).parent
    compileall.compile_dir(str(pkg), quiet=1)
    return "gputab's bytecode compiled first, as an install does"


LIVE_CPU = "live view CPU % of a core at 1 Hz (gputab also records; charts on screen)"
LIVE_RSS = "live view RSS"
LIVE_FIRST = "live view first frame"


def bench_chart(t: Table, env: dict) -> None:
    """One redraw of a live chart: gputab's braille chart vs plotext (textual-plotext), when plotext is found in
    the directory named by ``GPUTAB_BENCH_PLOTEXT`` (``pip install --target DIR textual-plotext``)."""
    extra = [os.environ["GPUTAB_BENCH_PLOTEXT"]] if os.environ.get("GPUTAB_BENCH_PLOTEXT") else []
    d = bench_workload("chart_cost", t, env, extra)
    plotext = "not installed" if d["plotext_ms"] is None else f"{d['plotext_ms']:.1f} ms"
    t.add(
        "one chart redraw, 9 series x 300 points, 100x12 cells",
        f"{d['gputab_chart_ms']:.1f} ms",
        how=(
            f"gputab's braille chart (`gputab.tui.widgets.chart`) vs textual-plotext's plotext (`plt.build()` + "
            f"`Text.from_ansi`, what its `Plot` widget does each render): {plotext}; median of 5 x 50 redraws, process "
            f"CPU (`bench/workloads/chart_cost.py`; plotext from `GPUTAB_BENCH_PLOTEXT=DIR`, not a dependency)"
        ),
    )


def real_hardware(t: Table) -> None:
    t.add(
        "any of the above on a real GPU",
        "not measured",
        "not measured",
        "not measured",
        "—",
        "no GPU machine was lent to this session (checked); the bench always loads the fake library, so a "
        "real-GPU row needs a run with the driver's libnvidia-ml instead (not implemented)",
    )


def bench_recorder(box: FakeBox, t: Table, reps: int, warmup: float, window: float, work: Path) -> None:
    """Headless `gputab record --interval 1`: CPU % of a core and CPU per tick."""
    cpu, rss = [], []
    for rep in range(reps):
        env = box.env(
            GPUTAB_DB=str(work / f"rec-{rep}.db"),
            GPUTAB_DATA_DIR=str(work / "data"),
            GPUTAB_CONFIG=str(work / "none.toml"),
            GPUTAB_SPOOL=str(work / "spool"),
        )
        u = measure_headless([PY, "-m", "gputab", "record", "--interval", "1"], env, warmup, window)
        cpu.append(u.cpu_pct)
        rss.append(u.rss_bytes)
    c = median(cpu)
    t.add(
        "recorder CPU % of a core at 1 Hz (headless)",
        f"{c:.2f} %",
        how=(f"median of {reps} runs of `gputab record --interval 1`, CPU over {window:.0f} s after {warmup:.0f} s"),
    )
    t.add("recorder CPU per tick", f"{c * 10:.2f} ms", how="CPU % x 1 s / 100: one tick a second, all work included")
    t.add("recorder RSS", f"{median(rss) / MIB:.0f} MiB", how="same runs")


def bench_workload(name: str, t: Table, env: dict, args: list[str], timeout: float = 400) -> dict:
    return run_json([PY, str(WORKLOADS / f"{name}.py"), *args], env, timeout=timeout)


def _wall(argv: list[str], env: dict, timeout: float = 300) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({r.returncode}): {r.stderr[-1500:]}")
    return elapsed


def bench_store(t: Table, env: dict, work: Path, quick: bool) -> None:
    """Open a 30-day 8-GPU session in review; export a year of sessions to CSV."""
    reps = 3 if quick else 5
    month = work / "month.db"
    gen = bench_workload("store_data", t, env, ["month", str(month)], timeout=600)
    menv = dict(env, GPUTAB_DB=str(month))
    show = [PY, "-m", "gputab", "show", str(gen["session"]), "--json"]
    opened = median([_wall(show, menv) for _ in range(reps)])
    t.add(
        "open a 30-day 8-GPU session: `gputab show ID --json`",
        f"{opened * 1000:.0f} ms",
        how=(
            f"median of {reps} x `gputab show ID --json` (process start included) on a {gen['bytes'] / MIB:.0f} MiB "
            f"database: {gen['rows']['gpu_samples']:,} GPU and {gen['rows']['job_samples']:,} job series rows, "
            f"generated through SessionWriter in {gen['seconds']:.0f} s"
        ),
    )
    series = bench_workload(
        "store_data", t, env, ["series", str(month), str(gen["session"]), str(reps), str(SERIES_POINTS)]
    )
    t.add(
        "open that session in the review screen (data)",
        f"{median(series['times']) * 1000:.0f} ms",
        how=(
            f"median of {reps} x what `gputab review`'s session view loads (tui/review/session_screen.py): "
            f"`load_session` + `session_series` ({series['chart_points']} chart points), in process; "
            f"drawing not included. For contrast, every job's full series through `job_series` "
            f"({series['points']:,} points): {series['full_times'][0]:.1f} s"
        ),
    )
    year = work / "year.db"
    gen = bench_workload("store_data", t, env, ["year", str(year)])
    yenv = dict(env, GPUTAB_DB=str(year))
    out = work / "year.csv"
    exported = median(
        [_wall([PY, "-m", "gputab", "export", "--csv", "--all", "-o", str(out)], yenv) for _ in range(reps)]
    )
    rows = sum(1 for _ in out.open()) - 1
    t.add(
        "export a year of sessions to CSV",
        f"{exported * 1000:.0f} ms",
        how=(
            f"median of {reps} x `gputab export --csv --all -o FILE` (process start included): 365 daily 8-GPU "
            f"sessions, {rows:,} job rows; totals only, no series (export reads none)"
        ),
    )
    start = median([_wall([PY, "-m", "gputab", "--help"], env) for _ in range(reps)])
    t.add("for reference: `gputab --help` (process start)", f"{start * 1000:.0f} ms", how="same machine, same runs")


def bench_report(t: Table, env: dict, quick: bool) -> None:
    calls = 50_000 if quick else 500_000
    runs = [bench_workload("report_cost", t, env, [str(calls)]) for _ in range(1 if quick else 3)]
    per = median([r["per_call_s"] for r in runs]) * 1e6
    first = median([r["first_s"] for r in runs]) * 1e3
    imp = median([r["import_s"] for r in runs]) * 1e3
    t.add(
        "`gputab.report()` per call",
        f"{per:.2f} µs",
        how=(
            f"median over batches of 1000 calls, {calls:,} calls, {len(runs)} runs; the first call (starts the "
            f"flush thread) {first:.1f} ms; `import gputab` {imp:.1f} ms"
        ),
    )


def bench_soak(t: Table, env: dict, work: Path, quick: bool) -> None:
    """Simulated day at 1 Hz: database bytes per GPU-day, memory at start and end, CPU per step."""
    hours = 2.0 if quick else 24.0
    db = work / "soak.db"
    d = bench_workload("sim_recorder", t, env, [str(hours), str(db)], timeout=900)
    per_gpu_day = d["bytes"] / d["gpus"] * (24.0 / hours)
    scaled = "" if hours == 24 else f" (measured over {hours:g} h, scaled to a day)"
    t.add(
        "database bytes per GPU-day at 1 s",
        f"{per_gpu_day / 1024:.0f} KiB",
        how=(
            f"`Recorder.step()` {d['steps']:,} times on a simulated clock (1 s a step, commits every 2 s simulated, "
            f"series step 10 s), 8 fake GPUs with 8 processes; file size at close / 8{scaled}"
        ),
    )
    t.add(
        f"soak: {hours:g} h at 1 Hz (simulated clock), RSS start -> end",
        f"{d['rss_start'] / MIB:.1f} -> {d['rss_end'] / MIB:.1f} MiB",
        how=(
            f"RSS after the first step and after the last; hourly: "
            f"{', '.join(f'{x / MIB:.1f}' for x in d['rss_hourly'])} MiB; ran in {d['wall_s']:.0f} s real time"
        ),
    )
    t.add(
        "recorder CPU per tick, in process (simulated clock)",
        f"{d['cpu_s'] / d['steps'] * 1000:.2f} ms",
        how="process CPU time of the soak / steps: poll, attribution, ledger, series, commits",
    )


def bench_spool(t: Table, env: dict, work: Path, quick: bool) -> None:
    """The real 1 Hz loop with and without another user's flood of the report spool."""
    seconds, files = (10.0, 10_000) if quick else (30.0, 100_000)
    for n in (0, files):
        d = bench_workload("spool_flood", t, env, [str(seconds), str(n), str(work / f"flood-{n}")], timeout=600)
        what = (
            f"spool flood: {n:,} hostile files + one 440 KB file of 20,000 tags"
            if n
            else "spool flood: none (the row to compare with)"
        )
        t.add(
            what,
            f"{d['ticks']}/{d['ticks_expected']} ticks, p99 {d['p99_tick_s'] * 1000:.1f} ms",
            how=(
                f"`python bench/workloads/spool_flood.py {seconds:g} {n} DIR`: real `Recorder.run` of the demo box at "
                f"1 Hz for {d['window_s']:.0f} s after the flood was written (by {d['writer']}, in "
                f"{d['flood_written_s']:.0f} s); median tick {d['p50_tick_s'] * 1000:.1f} ms, max "
                f"{d['max_tick_s'] * 1000:.1f} ms; (unobserved) {d['unobserved_share'] * 100:.1f} % of the window's "
                f"cost; {d['jobs']} jobs; database {d['db_bytes'] / 1024:.0f} KiB; an honest job's samples counted "
                f"{d['honest_counted']} of {d['honest_reported']}; rejected {d['rejected'] or 'none'}"
            ),
        )


def _row_label(line: str) -> str | None:
    """The first cell of a table row of RESULTS.md (None for anything else, the header and rule included)."""
    if not line.startswith("| ") or line.startswith("| measure |") or line.startswith("| ---"):
        return None
    return line[2:].split(" | ", 1)[0].strip()


def merge_rows(old_text: str, t: Table) -> str:
    """``old_text`` (a RESULTS.md) with the rows ``t`` measured replaced in place, by their first cell; rows it
    did not measure (other groups, and rows other scripts wrote) are kept; new ones go before the real-GPU row."""
    new = {r["what"]: line for r, line in zip(t.rows, t.markdown().splitlines()[2:], strict=True)}
    lines = old_text.splitlines()
    seen = {_row_label(line) for line in lines}
    out: list[str] = []
    last_row = None
    for line in lines:
        label = _row_label(line)
        if label is not None and label.startswith("any of the above on a real GPU"):
            out += [new[k] for k in new if k not in seen]
            seen.update(new)
        out.append(new.get(label, line) if label is not None else line)
        if label is not None:
            last_row = len(out)
    if last_row is None:
        raise ValueError("no table in the results file")
    out[last_row:last_row] = [new[k] for k in new if k not in seen]
    return "\n".join(out) + "\n"


def write_results(path: Path, t: Table, elapsed: float, quick: bool, argv: list[str]) -> None:
    v = versions()
    # Rows other scripts wrote into the file (spend times, GPM cost, real-GPU rows) outlive a full run.
    kept = []
    if path.exists():
        produced = {r["what"] for r in t.rows}
        kept = [
            line
            for line in path.read_text().splitlines()
            if (label := _row_label(line)) is not None and label not in produced
        ]
    lines = [
        "# gputab benchmark results",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `{' '.join(argv)}` "
        f"({'quick: one short repetition, not for comparison' if quick else 'full run'}), in {elapsed:.0f} s; "
        f"rows that say another date or command were measured then (kept from the file).",
        "",
        f"- Machine: {machine()}.",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "- GPUs: the project's fake NVML (`tests/fakenvml`) scripted with 8 H100s and 8 real child processes "
        "(one per GPU, with SM samples), loaded by every tool through `LD_LIBRARY_PATH`; functions the fake does "
        "not implement answer NOT_SUPPORTED (see `bench/fakegpus.py`).",
        "- **Real hardware: not measured.** No GPU machine was lent to this session; every figure is on the fake "
        "library, so the driver's own call latency is in none of them.",
        "",
        t.markdown(),
        *kept,
        "",
        "Ratios are gputab / nvitop (below 1: gputab uses less). CPU % is of one core, summed over the process "
        "and its children, measured from the kernel's accounting after a warm-up; RSS is resident memory at the "
        "end of the window.",
        "",
        "## Commands",
        "",
        "```sh",
        ".venv/bin/pip install -e '.[bench]'   # nvitop and gpustat",
        ".venv/bin/python bench/run.py         # full run, writes this file",
        ".venv/bin/python bench/run.py --quick # smoke test: one short repetition, printed only",
        ".venv/bin/python bench/run.py --only live --write  # re-measure some rows, the others kept",
        ".venv/bin/python bench/live_probe.py 20  # where the live view's CPU, memory and first frame go",
        ".venv/bin/python bench/workloads/spend_time.py 11   # the gputab spend rows (not part of run.py), JSON",
        "```",
        "",
    ]
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    path.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one short repetition of each row (smoke test)")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the table (default: bench/RESULTS.md for a full run; a --quick run only "
        "prints it, so a smoke test never replaces the measured results)",
    )
    ap.add_argument("--only", nargs="*", default=None, help="run only these row groups (for development)")
    ap.add_argument(
        "--write",
        action="store_true",
        help="with --only: replace those rows in bench/RESULTS.md (or --out), keeping every other row",
    )
    ap.add_argument("--reps", type=int, default=None, help="repetitions of each row (default 3; 1 with --quick)")
    ap.add_argument(
        "--live-tools",
        nargs="*",
        default=None,
        metavar="TOOL",
        help="the live views to run (default: gputab nvitop gpustat, each found beside this Python or on PATH)",
    )
    args = ap.parse_args()
    # SIGTERM ends the run through the finally blocks, so the fake GPUs' child processes do not outlive it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    reps = args.reps or (1 if args.quick else 3)
    warmup, window = (3.0, 6.0) if args.quick else (4.0, 20.0)
    started = time.monotonic()
    t = Table()
    with tempfile.TemporaryDirectory(prefix="gputab-bench-") as tmp:
        work = Path(tmp)
        box = FakeBox(work)
        env = box.env(
            GPUTAB_DATA_DIR=str(work / "data"),
            GPUTAB_CONFIG=str(work / "none.toml"),
            GPUTAB_SPOOL=str(work / "spool"),
            GPUTAB_DB=str(work / "w.db"),
        )
        groups = {
            "poll": lambda: bench_poll_latency(box, t, reps, 50 if args.quick else 300),
            "live": lambda: bench_interactive(box, t, reps, warmup, window, work, args.live_tools),
            "chart": lambda: bench_chart(t, env),
            "recorder": lambda: bench_recorder(box, t, reps, warmup, window, work),
            "store": lambda: bench_store(t, env, work, args.quick),
            "report": lambda: bench_report(t, env, args.quick),
            "soak": lambda: bench_soak(t, env, work, args.quick),
            "spool": lambda: bench_spool(t, env, work, args.quick),
            "hardware": lambda: real_hardware(t),
        }
        try:
            for name, fn in groups.items():
                if args.only and name not in args.only:
                    continue
                print(f"[{time.monotonic() - started:5.0f} s] {name}", flush=True)
                try:
                    fn()
                except Exception as exc:  # one broken row must not cost the others; the table says what failed
                    print(f"  {name} FAILED: {exc}", file=sys.stderr, flush=True)
                    t.add(f"{name}: not measured", "failed", how=str(exc).splitlines()[0][:200])
        finally:
            box.close()
    elapsed = time.monotonic() - started
    if args.only and args.write:
        out = args.out or HERE / "RESULTS.md"
        out.write_text(merge_rows(out.read_text(), t))
        print(t.markdown())
        print(f"replaced {len(t.rows)} rows of {out} in {elapsed:.0f} s")
        return
    out = args.out if args.out is not None else (None if args.quick or args.only else HERE / "RESULTS.md")
    if out is None:
        print(t.markdown())
        print(f"done in {elapsed:.0f} s (not written: pass --out FILE, or --write with --only)")
        return
    write_results(out, t, elapsed, args.quick, ["python", "bench/run.py", *sys.argv[1:]])
    print(f"wrote {out} in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
