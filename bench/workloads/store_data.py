"""Generate and time gputab databases of a realistic size, through the store's public API only.

    store_data.py month DB        a 30-day, 8-GPU session, series at the store's series step (10 s)
    store_data.py year DB         365 one-day sessions of 8 GPUs (totals, processes, progress; see below)
    store_data.py series DB SID N P  open session SID as the review screen does (P chart points), N times
    store_data.py bytes DB        file size and row counts of DB

The series are written through :class:`gputab.store.writes.SessionWriter`, as the recorder writes them, but
flushed once per simulated hour instead of every 2 s: the rows and pages are the same, only the number of
transactions differs (generation would otherwise take an hour). Prints JSON on the last line.

The year database has no per-step series: ``gputab export`` reads only sessions, jobs and GPU totals (see
``gputab/publish/csv_export.py`` and ``store/review.load_session``), and 25 million series rows would take longer to
generate than the whole bench may run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path

from gputab import __version__
from gputab.store.database import Store
from gputab.store.writes import SessionMeta, SessionWriter

GPUS = 8
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
GIB = 1 << 30


def _meta(started: float, series: float = 10.0) -> SessionMeta:
    return SessionMeta(
        host="bench-box",
        backend="nvml",
        pid=4242,
        gputab_version=__version__,
        started_wall=started,
        interval=1.0,
        commit_interval=2.0,
        series_interval=series,
        prices_json="{}",
    )


def _gpu_totals(i: int, seconds: float) -> dict:
    rate = 3.0
    return {
        "index": i,
        "uuid": f"GPU-bench-{i:04d}",
        "name": "NVIDIA H100 80GB HBM3",
        "model_key": "H100-SXM",
        "mode": "rental",
        "rate_per_hour": rate,
        "charge_energy": 0,
        "price_per_kwh": 0.12,
        "pue": 1.0,
        "price_source": "table",
        "price_date": "2026-01-01",
        "unknown_price": 0,
        "energy_method": "counter",
        "cost_usd": rate * seconds / 3600,
        "idle_cost_usd": 0.0,
        "unobserved_cost_usd": 0.0,
        "energy_j": 400.0 * seconds,
    }


def _job_totals(tag: str, seconds: float, gpus: int = 1) -> dict:
    hours = seconds / 3600 * gpus
    cost = 3.0 * hours
    return {
        "tag": tag,
        "cost_usd": cost,
        "burn_rate_usd_per_hour": 3.0 * gpus,
        "gpu_hours": hours,
        "effective_gpu_hours": hours * 0.6,
        "avg_utilization": 0.6,
        "energy_kwh": 0.4 * hours,
        "peak_vram_bytes": 40 * GIB,
        "samples": int(hours * 1000),
        "tokens": int(hours * 1e6),
        "cost_per_sample_usd": cost / max(1, int(hours * 1000)),
        "cost_per_1k_samples_usd": None,
        "cost_per_1m_tokens_usd": None,
        "cost_per_effective_gpu_hour_usd": cost / (hours * 0.6),
        "idle_gpu_hours": 0.0,
    }


def write_session(store: Store, started: float, seconds: float, series: bool, tags: list[str]) -> int:
    """One session of ``seconds`` on 8 GPUs, GPU i running job tags[i]; returns its id."""
    w = SessionWriter(store, _meta(started))
    step = w.meta.series_interval
    n_steps = int(seconds / step)
    for i in range(GPUS):
        w.see_process(
            50_000 + i, started, i, "maria", "python", f"python train.py --rank {i}", tags[i], "env", started, new=True
        )
    per_flush = int(3600 / step)
    cost = [0.0] * GPUS
    for k in range(1, n_steps + 1 if series else 1):
        t_ms = int(k * step * 1000)
        for i in range(GPUS):
            c = 3.0 * step / 3600
            cost[i] += c
            w.add_gpu_sample(
                i, t_ms, int(step * 1000), 0.6 + i / 100, (40 + i) * GIB, 400.0 + i, 60.0 + i, 400.0 * step, c
            )
            w.add_job_sample(tags[i], t_ms, cost[i], step, step * 0.6, (38 + i) * GIB, 3.0)
        if k % per_flush == 0:
            w.set_totals(
                [_job_totals(t, k * step) for t in tags],
                [_gpu_totals(i, k * step) for i in range(GPUS)],
                started + k * step,
                int(k * step),
                3.0 * GPUS * k * step / 3600,
                400.0 * GPUS * k * step,
            )
            w.flush()
    for i, t in enumerate(tags):
        w.add_progress(t, int(seconds), int(seconds * 1000), started + seconds, "report", f"bench-{i}")
    w.set_totals(
        [_job_totals(t, seconds) for t in tags],
        [_gpu_totals(i, seconds) for i in range(GPUS)],
        started + seconds,
        int(seconds),
        3.0 * GPUS * seconds / 3600,
        400.0 * GPUS * seconds,
    )
    w.end("stopped", None, started + seconds)
    w.flush()
    return w.session_id


def counts(db: Path) -> dict:
    conn = sqlite3.connect(db)
    try:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("sessions", "gpu_samples", "job_samples", "jobs", "processes")
        }
    finally:
        conn.close()


def main() -> None:
    what, db = sys.argv[1], Path(sys.argv[2])
    t0 = time.perf_counter()
    if what == "month":
        with Store.open(db) as store:
            sid = write_session(store, START, 30 * 86400, True, [f"llama-70b-rank{i}" for i in range(GPUS)])
        out = {"session": sid}
    elif what == "year":
        with Store.open(db) as store:
            for day in range(365):
                write_session(
                    store,
                    START + day * 86400,
                    86400,
                    False,
                    [f"exp-{day:03d}-{i % 3}" if i < 6 else f"sweep-{day % 20}" for i in range(GPUS)],
                )
        out = {"sessions": 365}
    elif what == "series":
        # What the review screen's session view loads (gputab/tui/review/session_screen.py): the totals and
        # session_series, the charts' points. And, for comparison, every job's full series via job_series.
        from gputab.store.review import load_session, session_series

        sid, reps, chart_points = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        times, full_times, points = [], [], 0
        for _ in range(reps):
            t1 = time.perf_counter()
            with Store.open(db, readonly=True) as store:
                load_session(store, sid)
                series = session_series(store, sid, chart_points)
            times.append(time.perf_counter() - t1)
        t1 = time.perf_counter()
        with Store.open(db, readonly=True) as store:
            points = sum(len(store.job_series(sid, j["tag"])) for j in load_session(store, sid).jobs)
        full_times.append(time.perf_counter() - t1)
        out = {"times": times, "full_times": full_times, "points": points, "chart_points": len(series["t"])}
    elif what == "bytes":
        out = {}
    else:
        raise SystemExit(f"unknown workload {what}")
    out.update(seconds=time.perf_counter() - t0, bytes=os.path.getsize(db), rows=counts(db))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
