"""Attaching the live view to a recorder 24 hours into its session: how long until the first full frame.

    attach_time.py DIR REPS

Builds, in DIR, a database whose open session started 24 hours ago (8 GPUs, a series step every 10 s: 69,120 GPU
and 69,120 job series rows, written through SessionWriter as the recorder writes them) and holds its writer lock
the whole time, as a running ``gputab record`` does (this process plays the recorder: it commits nothing more,
which changes nothing for a viewer's first frame). Then, REPS times each, interleaved:

- ``in process``: what attaching costs gputab: ``open_feed`` (the attached feed, read-only), its first poll (the
  store's figures, budgets, alerts, and the stored chart points of the 5-minute window), the history filled with
  them: seconds;
- ``pty``: ``gputab --demo --db DB`` started in a 120x40 pseudo-terminal, seconds from the process start until its
  first frame is on the terminal (the header's ``spent`` line; that frame carries the stored chart points, so its
  charts are drawn in the same paint); and, for comparison, the same command on a database no recorder holds (it
  records itself: the live-view first-frame row of RESULTS.md).

Prints JSON on the last line.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from measure import measure_pty  # noqa: E402
from store_data import GIB, GPUS, _gpu_totals, _job_totals, _meta  # noqa: E402

from gputab.store.database import Store  # noqa: E402
from gputab.store.writes import SessionWriter  # noqa: E402

DAY = 86400.0


def build(db: Path, started: float):
    """The 24-hour open session, and the writer lock held on it (returned: keep it for as long as it must hold)."""
    store = Store.open(db)
    lock = store.writer_lock()
    lock.acquire(started_wall=started)
    meta = _meta(started)
    w = SessionWriter(store, meta)
    step = meta.series_interval
    tags = [f"llama-70b-rank{i}" for i in range(GPUS)]
    cost = [0.0] * GPUS
    n = int(DAY / step)
    for k in range(1, n + 1):
        t_ms = int(k * step * 1000)
        for i in range(GPUS):
            c = 3.0 * step / 3600
            cost[i] += c
            w.add_gpu_sample(
                i, t_ms, int(step * 1000), 0.5 + 0.4 * ((k + i) % 7) / 7, 40 * GIB, 300.0 + k % 50, 60.0, 4000.0, c
            )
            w.add_job_sample(tags[i], t_ms, cost[i], step, step * 0.6, 38 * GIB, 3.0)
        if k % 360 == 0 or k == n:
            w.set_totals(
                [_job_totals(t, k * step) for t in tags],
                [_gpu_totals(i, k * step) for i in range(GPUS)],
                started + k * step,
                int(k * step),
                3.0 * GPUS * k * step / 3600,
                400.0 * GPUS * k * step,
            )
            w.flush()
    assert w.session_id is not None
    lock.set_session(w.session_id)
    return store, lock, w.session_id


def attach_in_process(db: Path, tmp: Path) -> tuple[float, float, int]:
    """Seconds (wall, CPU) from opening the feed to a history holding the first frame and its stored points; and
    how many stored points it got."""
    from gputab.cli.context import AppContext
    from gputab.live.attached_feed import AttachedFeed
    from gputab.live.history import History
    from gputab.live.start import open_feed

    ctx = AppContext(demo=True, seed=0, db_path=db, config_path=tmp / "none.toml")
    t0, c0 = time.perf_counter(), time.process_time()
    feed = open_feed(ctx)
    frame = feed.poll()
    history = History()
    if frame.stored_series is not None:
        history.backfill(frame.stored_series)
    history.add(frame)
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert isinstance(feed, AttachedFeed), type(feed)
    points = len(frame.stored_series.t) if frame.stored_series is not None else 0
    feed.close("quit")
    return took, cpu, points


def main() -> None:
    work, reps = Path(sys.argv[1]), int(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    db = work / "day.db"
    for p in work.glob("day.db*"):
        p.unlink()
    t0 = time.perf_counter()
    store, lock, sid = build(db, time.time() - DAY)
    built = time.perf_counter() - t0
    env = dict(
        os.environ,
        GPUTAB_CONFIG=str(work / "none.toml"),
        GPUTAB_DATA_DIR=str(work / "data"),
        GPUTAB_SPOOL=str(work / "spool"),
    )
    in_process, in_process_cpu, attached, recording, points = [], [], [], [], 0
    attached_cpu, recording_cpu = [], []
    attach_in_process(db, work)  # once for the imports: a live view has them loaded before it attaches
    for rep in range(reps):
        took, cpu, points = attach_in_process(db, work)
        in_process.append(took)
        in_process_cpu.append(cpu)
        u = measure_pty([sys.executable, "-m", "gputab", "--demo", "--db", str(db)], env, 6.0, 1.0, marker=b"spent")
        attached.append(u.first_frame_s)
        attached_cpu.append(u.first_frame_cpu_s)
        own = work / f"own-{rep}.db"
        u = measure_pty([sys.executable, "-m", "gputab", "--demo", "--db", str(own)], env, 6.0, 1.0, marker=b"spent")
        recording.append(u.first_frame_s)
        recording_cpu.append(u.first_frame_cpu_s)
    lock.release()
    store.close()
    rows = {}
    with Store.open(db, readonly=True) as s:
        for t in ("gpu_samples", "job_samples"):
            rows[t] = s.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
    print(
        json.dumps(
            {
                "session": sid,
                "rows": rows,
                "bytes": os.path.getsize(db),
                "build_s": built,
                "stored_points": points,
                "load_average": os.getloadavg()[0],
                "in_process_s": in_process,
                "in_process_cpu_s": in_process_cpu,
                "pty_attached_cpu_s": attached_cpu,
                "pty_recording_cpu_s": recording_cpu,
                "pty_attached_s": attached,
                "pty_recording_s": recording,
                "median_in_process_s": statistics.median(in_process),
                "median_in_process_cpu_s": statistics.median(in_process_cpu),
                "median_pty_attached_cpu_s": statistics.median(x for x in attached_cpu if x is not None),
                "median_pty_recording_cpu_s": statistics.median(x for x in recording_cpu if x is not None),
                "median_pty_attached_s": statistics.median(x for x in attached if x is not None),
                "median_pty_recording_s": statistics.median(x for x in recording if x is not None),
            }
        )
    )


if __name__ == "__main__":
    main()
