"""The recorder's real 1 Hz loop while another user floods the report spool: ``spool_flood.py SECONDS FILES WORK``.

A recorder of the demo box (no GPU needed) runs ``Recorder.run`` on the real clock, with its database in WORK,
reading a production-like spool (mode 1777, in its own directory under /tmp, removed at the end). Once it records,
a second user (``nobody`` when this runs as root, else the same user, which the JSON says) writes FILES small
report files, each claiming another job, plus one 440 KB file with 20,000 tags. When the flood is written, the
loop is measured for SECONDS: ticks made against ticks expected, each tick's duration (its p99), the share of
the window's cost sent to ``(unobserved)``, the jobs of the session, the database size, and whether an honest
job's reports (written twice a second by a real process of the recorder's user) were all counted. FILES 0 is
the row without a flood.

Prints JSON on the last line.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from gputab.config.settings import Config
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DemoBackend
from gputab.store import Store

FLOOD = """
import json, os, sys, time
uid, gid, spool, files = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
if uid != os.getuid():
    os.setgroups([]); os.setgid(gid); os.setuid(uid)
doc = {"v": 1, "host": "x", "pid": 1, "uid": 0, "started": time.time(), "updated": time.time()}
for i in range(files):
    with open(os.path.join(spool, f"flood-{i:06d}.json"), "w") as f:
        json.dump({**doc, "counts": {f"victim-{i % 1000}": [10**12, 10**12]}}, f)
if files:
    with open(os.path.join(spool, "wide.json"), "w") as f:
        json.dump({**doc, "counts": {f"tag-{i:05d}": [10**9, 10**9] for i in range(20000)}}, f)
"""

HONEST = """
import sys, time, gputab
end = time.time() + float(sys.argv[1])
n = 0
while time.time() < end:
    gputab.report(samples=10, tag="honest-job")
    gputab.report.flush()
    n += 10
    time.sleep(0.5)
print(n)
"""


class Timed(Recorder):
    """The recorder, with each tick's duration kept (the loop itself is the real one)."""

    durations: list[float]

    def step(self):
        t = time.perf_counter()
        try:
            return super().step()
        finally:
            self.durations.append(time.perf_counter() - t)


def main() -> None:
    seconds, files, work = float(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    # The spool must be reachable by the second user: its own directory under /tmp, not inside WORK (0700).
    top = Path(tempfile.mkdtemp(prefix="gputab-flood-", dir="/tmp"))
    os.chmod(top, 0o755)
    spool = top / "spool"
    spool.mkdir()
    os.chmod(spool, 0o1777)
    try:
        measure(seconds, files, work, spool)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def measure(seconds: float, files: int, work: Path, spool: Path) -> None:
    user = pwd.getpwnam("nobody") if os.getuid() == 0 else pwd.getpwuid(os.getuid())
    env = {**os.environ, "GPUTAB_SPOOL": str(spool)}
    rec = Timed(DemoBackend(), Store(work / "flood.db"), Config(), spool=spool)
    rec.durations = []
    rec.start()
    stop = threading.Event()
    loop = threading.Thread(target=rec.run, args=(stop,), daemon=True)
    loop.start()
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", FLOOD, str(user.pw_uid), str(user.pw_gid), str(spool), str(files)], check=True, env=env
    )
    written_s = time.monotonic() - t0
    honest = subprocess.Popen(
        [sys.executable, "-c", HONEST, str(seconds - 2)], env=env, stdout=subprocess.PIPE, text=True
    )
    start_ticks, start_cost = len(rec.durations), dict(_costs(rec))
    window_start = time.monotonic()
    time.sleep(seconds)
    window = time.monotonic() - window_start
    ticks = rec.durations[start_ticks:]
    costs = _costs(rec)
    reported = int(honest.communicate(timeout=60)[0])
    stop.set()
    loop.join(30)
    rec.close()
    spent = {k: costs.get(k, 0.0) - start_cost.get(k, 0.0) for k in costs}
    total = sum(spent.values())
    ticks_sorted = sorted(ticks)
    with Store.open(work / "flood.db", readonly=True) as store:
        jobs = store.jobs(rec.session_id)
        counted = next((j["samples"] for j in jobs if j["tag"] == "honest-job"), None)
        rejected = store.rejected_reports(rec.session_id)
    print(
        json.dumps(
            {
                "files": files,
                "writer": user.pw_name,
                "flood_written_s": written_s,
                "window_s": window,
                "ticks": len(ticks),
                "ticks_expected": int(window // rec.rc.interval),
                "p50_tick_s": ticks_sorted[len(ticks) // 2],
                "p99_tick_s": ticks_sorted[min(len(ticks) - 1, int(len(ticks) * 0.99))],
                "max_tick_s": ticks_sorted[-1],
                "unobserved_share": spent.get("(unobserved)", 0.0) / total if total else 0.0,
                "jobs": len(jobs),
                "db_bytes": (work / "flood.db").stat().st_size,
                "honest_reported": reported,
                "honest_counted": counted,
                "rejected": {r["reason"]: r["reports"] for r in rejected},
                "sweeps": rec.reports.reader.passes,
            }
        )
    )


def _costs(rec: Recorder) -> dict[str, float]:
    with rec._mutex:
        return {tag: j.cost_usd for tag, j in rec.ledger.jobs.items()}


if __name__ == "__main__":
    main()
