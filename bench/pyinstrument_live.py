"""Profile gputab's live view on the bench's 8 fake GPUs with pyinstrument: ``python bench/pyinstrument_live.py [SECONDS]``.

Runs ``gputab --interval 1`` under pyinstrument in the same 120x40 pseudo-terminal as the benchmark, quits it
with ``q`` after SECONDS (default 30), and prints where the time went (all threads, start-up included).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fakegpus import FakeBox  # noqa: E402
from measure import PtyProgram  # noqa: E402


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    with tempfile.TemporaryDirectory(prefix="gputab-profile-") as tmp:
        work = Path(tmp)
        box = FakeBox(work)
        out = work / "profile.txt"
        env = box.env(
            GPUTAB_DB=str(work / "p.db"),
            GPUTAB_DATA_DIR=str(work / "data"),
            GPUTAB_CONFIG=str(work / "none.toml"),
            GPUTAB_SPOOL=str(work / "spool"),
        )
        prog = PtyProgram(
            [
                sys.executable,
                "-m",
                "pyinstrument",
                "--show-all",
                "-r",
                "text",
                "-o",
                str(out),
                "-m",
                "gputab",
                "--interval",
                "1",
            ],
            env,
        )
        try:
            time.sleep(seconds)
            os.write(prog._master, b"q")
            prog.proc.wait(30)
        finally:
            prog.stop()
            box.close()
        print(out.read_text() if out.exists() else f"no profile written; last output: {prog.tail[-800:]!r}")


if __name__ == "__main__":
    main()
