"""A/B of the live view: gputab from two (or more) source trees, and nvitop, interleaved in one run.

    python bench/ab_live.py main=/tmp/main/src branch=src --reps 5 [--window 20] [--nvitop PATH]

Each repetition runs every variant once, in turn, on the bench's 8 fake GPUs in the same 120x40 pty as
``bench/run.py`` (``PYTHONPATH=SRC python -m gputab --interval 1`` on a database created beforehand); with
``--nvitop``, that nvitop too. Prints, per variant, the medians of CPU % over the window, RSS at its end, and the
first frame's wall and CPU seconds, with the ratio to nvitop where it ran. Every tree is byte-compiled first, as
an install is. Nothing is written in the repository.
"""

from __future__ import annotations

import argparse
import compileall
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fakegpus import FakeBox, existing_database  # noqa: E402
from measure import measure_pty, median  # noqa: E402

MIB = 1 << 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", metavar="NAME=SRC", help="a name and a gputab source tree (the src dir)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=float, default=4.0)
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--nvitop", default=None, help="an nvitop program to run in the same rotation")
    args = ap.parse_args()
    variants = {}
    for v in args.variants:
        name, _, src = v.partition("=")
        variants[name] = Path(src).resolve()
        compileall.compile_dir(str(variants[name] / "gputab"), quiet=1)
    rows: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in variants}
    if args.nvitop:
        rows["nvitop"] = []
    with tempfile.TemporaryDirectory(prefix="gputab-ab-") as tmp:
        work = Path(tmp)
        box = FakeBox(work)
        try:
            for rep in range(args.reps):
                for name in rows:
                    env = box.env(
                        GPUTAB_DB=str(work / f"{name}-{rep}.db"),
                        GPUTAB_DATA_DIR=str(work / "data"),
                        GPUTAB_CONFIG=str(work / "none.toml"),
                        GPUTAB_SPOOL=str(work / "spool"),
                    )
                    if name == "nvitop":
                        argv, marker = [args.nvitop, "--interval", "1"], b"MiB"
                    else:
                        env["PYTHONPATH"] = str(variants[name])
                        existing_database(env)
                        argv, marker = [sys.executable, "-m", "gputab", "--interval", "1"], b"spent"
                    u = measure_pty(argv, env, args.warmup, args.window, marker=marker)
                    row = (u.cpu_pct, u.rss_bytes / MIB, u.first_frame_s or float("nan"), u.first_frame_cpu_s or 0.0)
                    rows[name].append(row)
                    print(
                        f"  {rep} {name}: CPU {row[0]:.2f} %, RSS {row[1]:.1f} MiB, first frame {row[2]:.2f} s "
                        f"({row[3]:.2f} s CPU)",
                        flush=True,
                    )
        finally:
            box.close()
    load = os.getloadavg()
    print(f"medians of {args.reps} (load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}):")
    ref = {i: median([r[i] for r in rows["nvitop"]]) for i in range(4)} if "nvitop" in rows else None
    for name, rs in rows.items():
        m = [median([r[i] for r in rs]) for i in range(4)]
        vs = ""
        if ref is not None and name != "nvitop":
            vs = "  vs nvitop: " + ", ".join(f"{m[i] / ref[i]:.2f}x" for i in range(4) if ref[i])
        print(f"  {name:10s} CPU {m[0]:.2f} %  RSS {m[1]:.1f} MiB  first frame {m[2]:.2f} s ({m[3]:.2f} s CPU){vs}")


if __name__ == "__main__":
    main()
