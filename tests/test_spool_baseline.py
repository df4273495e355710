"""A session counts what was reported while it recorded (issue 12, findings 1 and 2), with real reporting processes.

- Before the recorder says it is recording, it takes every spool file's counts as its baseline: a report made
  before that line is not counted; one made after it is, and a clean stop reads the spool one last time.
- Reports made while nothing recorded count in no session; a new database, the demo or a restart never count
  old reports again; a crash loses nothing already committed and counts nothing twice.
- The demo has its own spool and never reads, writes or deletes the real one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from gputab.progress.spool import demo_spool
from gputab.sampling.demo_reports import REPORTERS
from gputab.store import Store
from spoolkit import Stepper, demo_recorder, job, report_once, steps
from support import gputab_cmd


def test_reports_before_the_start_are_the_baseline_and_growth_counts(tmp_path):
    spool = tmp_path / "spool"
    trainer = Stepper(spool)
    trainer.report(500, "llama3-8b-lora")  # before any recorder
    db = tmp_path / "g.db"
    rec = demo_recorder(db, spool)
    rec.start()
    steps(rec, 2)
    assert rec.ledger.jobs["llama3-8b-lora"].samples is None  # a demo job, running: its earlier reports are not ours
    trainer.report(100, "llama3-8b-lora")
    steps(rec, 2)
    assert rec.ledger.jobs["llama3-8b-lora"].samples == 100
    trainer.report(7, "llama3-8b-lora")  # after the last tick: the clean stop reads it
    rec.close()
    trainer.stop()
    row = job(db, 1, "llama3-8b-lora")
    assert row["samples"] == 107 and row["tokens"] == 214


def test_a_new_database_never_counts_old_reports(tmp_path):
    spool = tmp_path / "spool"
    report_once(spool, samples=500, tag="alpha")
    trainer = Stepper(spool)
    trainer.report(40, "alpha")
    first = demo_recorder(tmp_path / "a.db", spool)
    first.start()
    trainer.report(10, "alpha")
    steps(first, 2)
    first.close()
    for name in ("b.db", "c.db"):  # a fresh --db (or a test, or another user's database) counts nothing old
        rec = demo_recorder(tmp_path / name, spool)
        rec.start()
        steps(rec, 3)
        rec.close()
        assert job(tmp_path / name, 1, "alpha") is None
    assert job(tmp_path / "a.db", 1, "alpha")["samples"] == 10
    trainer.stop()


def test_reports_while_nothing_records_count_in_no_session(tmp_path):
    spool = tmp_path / "spool"
    db = tmp_path / "g.db"
    trainer = Stepper(spool)
    rec = demo_recorder(db, spool)
    rec.start()
    trainer.report(100, "eval-mmlu")
    steps(rec, 2)
    rec.close()
    trainer.report(1000, "eval-mmlu")  # nobody records: this GPU time is charged nowhere, nor are its samples
    rec2 = demo_recorder(db, spool)
    rec2.start()
    steps(rec2, 2)
    trainer.report(3, "eval-mmlu")
    steps(rec2, 2)
    rec2.close()
    trainer.stop()
    assert job(db, 1, "eval-mmlu")["samples"] == 100
    assert job(db, 2, "eval-mmlu")["samples"] == 3


def test_a_file_pruned_while_its_process_paused_is_not_counted_again(tmp_path):
    spool = tmp_path / "spool"
    trainer = Stepper(spool)
    trainer.report(500, "eval-mmlu")
    (f,) = spool.iterdir()
    f.unlink()  # what a recorder's prune does to a file idle for a day
    rec = demo_recorder(tmp_path / "g.db", spool)
    rec.start()
    steps(rec, 2)
    trainer.report(10, "eval-mmlu")  # rewrites its file: 510 so far, 500 of them from before this session
    steps(rec, 2)
    trainer.report(1, "eval-mmlu")
    steps(rec, 2)
    rec.close()
    trainer.stop()
    assert job(tmp_path / "g.db", 1, "eval-mmlu")["samples"] == 1  # the 10 are lost within the read cadence


def _wait_for(pred, timeout: float = 15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def _samples(db: Path, sid: int, tag: str):
    try:
        row = job(db, sid, tag)
    except Exception:  # noqa: BLE001 - not written yet
        return None
    return row and row["samples"]


def test_recording_line_is_the_boundary_and_a_crash_counts_nothing_twice(tmp_path):
    """Real `gputab --demo record` processes: killed with SIGKILL, then restarted. The trainer reports for
    ci-gpu-tests, a demo job that reports nothing itself."""
    db = tmp_path / "data" / "demo.db"
    spool = demo_spool(db)
    trainer = Stepper(spool)
    trainer.report(500, "ci-gpu-tests")
    cmd = [*gputab_cmd(), "--demo", "record", "--interval", "0.2"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "gputab: recording" in first.stdout.readline()
        trainer.report(100, "ci-gpu-tests")  # after the line: this session's
        assert _wait_for(lambda: _samples(db, 1, "ci-gpu-tests") == 100)
    finally:
        first.kill()
        first.wait(timeout=20)
    trainer.report(20, "ci-gpu-tests")  # between the crash and the restart: nobody's
    second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "recording session 2" in second.stdout.readline()
        trainer.report(3, "ci-gpu-tests")
        time.sleep(1.5)
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=20)
    trainer.stop()
    with Store.open(db) as store:
        assert store.session(1)["end_reason"] == "crashed"
    assert _samples(db, 1, "ci-gpu-tests") == 100
    assert _samples(db, 2, "ci-gpu-tests") == 3


def test_the_demo_never_touches_the_real_spool(tmp_path):
    real = Path(os.environ["GPUTAB_SPOOL"])
    trainer = Stepper(real)
    trainer.report(1500, "alpha")
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in real.iterdir()}
    old = time.time() - 3 * 86400  # stale: a recorder reading this spool would delete it
    for p in real.iterdir():
        os.utime(p, (old, old))
    before = {p.name: p.stat().st_mtime_ns for p in real.iterdir()}
    db = tmp_path / "data" / "demo.db"
    proc = subprocess.Popen(
        [*gputab_cmd(), "--demo", "record", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "gputab: recording" in proc.stdout.readline()
        trainer.report(5, "eval-mmlu")  # a real job reporting while the demo records: not the demo's
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    trainer.stop()
    doc = json.loads(
        subprocess.run(
            [*gputab_cmd(), "--demo", "show", "last", "--json"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert "alpha" not in {j["tag"] for j in doc["jobs"]}
    with Store.open(db, readonly=True) as store:
        rows = store.db.execute("SELECT source, reporter, tag FROM progress").fetchall()
    demo_pids = {r.pid for r in REPORTERS}
    # Only the demo's own jobs' reports (through its own spool) were counted, never the real trainer's; "server"
    # rows are its simulated inference server's token counters, read for its own serving job.
    reporters = {r for source, r, _ in rows if source != "server"}
    assert reporters and all(int(r.split(" ")[0].split(":")[1]) in demo_pids for r in reporters), reporters
    assert {tag for source, _, tag in rows if source == "server"} <= {r.tag for r in REPORTERS}
    after = {p.name: p.stat().st_mtime_ns for p in real.iterdir()}
    assert set(after) == set(before)  # nothing deleted, nothing written by the demo
    assert demo_recorder(db).spool == demo_spool(db) == db.parent / "demo-spool"


def test_screenshots_do_not_depend_on_the_real_spool(tmp_path):
    from gputab.tui.screenshots import record_demo_session

    def figures(db: Path) -> list[tuple]:
        with Store.open(db, readonly=True) as store:
            return [(j["tag"], j["samples"], j["tokens"], j["cost_usd"]) for j in store.jobs(1)]

    record_demo_session(tmp_path / "empty.db", 30)
    real = Path(os.environ["GPUTAB_SPOOL"])
    for tag in ("alpha", "eval-mmlu", "llama3-8b-lora"):
        report_once(real, samples=1234, tokens=99, tag=tag)
    record_demo_session(tmp_path / "full.db", 30)
    assert figures(tmp_path / "full.db") == figures(tmp_path / "empty.db")
    assert len(list(real.iterdir())) == 3
