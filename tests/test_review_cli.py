"""``gputab sessions``, ``show`` and ``samples`` against real databases."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from gputab.config.settings import Config
from gputab.publish.document import SCHEMA_VERSION
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DemoBackend, FakeClock
from gputab.store import Store
from support import gputab_cmd


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([*gputab_cmd(), *args], capture_output=True, text=True, timeout=60)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def _session(db, seconds: int = 120) -> None:
    clock = FakeClock()
    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall), Store(db), Config(), clock=clock, wall_clock=clock.wall
    )
    rec.start()
    for _ in range(seconds):
        clock.advance(1.0)
        rec.step()
    rec.close()


def test_demo_record_then_show_last(tmp_path):
    """The issue's acceptance: `gputab --demo record` a while, then `show last --json` adds up."""
    proc = subprocess.Popen(
        [*gputab_cmd(), "--demo", "record", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert "recording session 1" in proc.stdout.readline()
    time.sleep(3.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "closed (clean, SIGINT)" in out, err
    doc = json.loads(run("--demo", "show", "last", "--json").stdout)
    jobs = {j["tag"]: j for j in doc["jobs"]}
    real = [j for t, j in jobs.items() if not t.startswith("(")]
    assert real and all(j["cost_usd"] > 0 for j in real)
    assert "(idle)" in jobs
    buckets = jobs["(idle)"]["cost_usd"] + jobs.get("(unobserved)", {"cost_usd": 0.0})["cost_usd"]
    assert sum(j["cost_usd"] for j in real) + buckets == pytest.approx(doc["total"]["cost_usd"], rel=1e-9)
    keys = {
        "tag",
        "cost_usd",
        "burn_rate_usd_per_hour",
        "gpu_hours",
        "effective_gpu_hours",
        "avg_utilization_pct",
        "energy_kwh",
        "peak_vram_bytes",
        "samples",
        "tokens",
        "cost_per_sample_usd",
    }
    assert all(keys <= j.keys() for j in doc["jobs"])
    assert doc["session"]["end_reason"] == "clean" and doc["session"]["host"]


def test_sessions_table_and_json(tmp_path):
    db = tmp_path / "data" / "gputab.db"
    assert "No sessions yet" in run("sessions").stdout
    assert json.loads(run("sessions", "--json").stdout) == {"schema_version": SCHEMA_VERSION, "sessions": []}
    _session(db)
    _session(db, 60)
    rows = json.loads(run("sessions", "--json").stdout)["sessions"]
    assert [r["id"] for r in rows] == [2, 1]
    assert rows[1]["started_at"] == "2026-01-01T00:00:00Z" and rows[1]["duration_seconds"] == 120.0
    assert rows[1]["end_reason"] == "clean" and rows[1]["cost_usd"] > rows[0]["cost_usd"] > 0
    table = run("sessions").stdout
    assert "2026-01-01T00:00:00Z" in table and "clean" in table and "2m00s" in table


def test_show_text_and_errors(tmp_path):
    _session(tmp_path / "data" / "gputab.db")
    text = run("show", "1").stdout
    assert "llama3-8b-lora" in text and "(idle)" in text and "total" in text
    r = run("show", "7", ok=False)
    assert r.returncode == 1 and "no session 7" in r.stderr and "Traceback" not in r.stderr


def test_samples_after_the_fact(tmp_path):
    _session(tmp_path / "data" / "gputab.db")
    before = json.loads(run("show", "last", "--json").stdout)
    reported = next(j for j in before["jobs"] if j["tag"] == "llama3-8b-lora")["samples"]
    assert reported > 0  # what the demo's fine-tune reported through its spool while it recorded
    run("samples", "llama3-8b-lora", "--samples", "200000", "--tokens", "4000000")
    run("samples", "llama3-8b-lora", "--samples", "1000", "--session", "last")
    doc = json.loads(run("show", "last", "--json").stdout)
    job = next(j for j in doc["jobs"] if j["tag"] == "llama3-8b-lora")
    assert job["samples"] == reported + 201000 and job["tokens"] == 4000000
    assert job["cost_per_sample_usd"] == pytest.approx(job["cost_usd"] / (reported + 201000))
    assert job["cost_per_1m_tokens_usd"] == pytest.approx(job["cost_usd"] / 4)
    r = run("samples", "no-such-job", "--samples", "1", ok=False)
    assert r.returncode == 1 and "no session has a job 'no-such-job'" in r.stderr
    r = run("samples", "llama3-8b-lora", ok=False)
    assert r.returncode == 2 and "--add N or --set N" in r.stderr


def test_samples_for_the_live_session_are_refused_up_front(tmp_path):
    proc = subprocess.Popen(
        [*gputab_cmd(), "--demo", "record", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "recording session 1" in proc.stdout.readline()
        time.sleep(1.0)
        r = run("--demo", "samples", "eval-mmlu", "--add", "500", ok=False)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert "session 1 is still being recorded" in r.stderr and "gputab.report(" in r.stderr
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    doc = json.loads(run("--demo", "show", "last", "--json").stdout)
    job = next(j for j in doc["jobs"] if j["tag"] == "eval-mmlu")
    with Store.open(tmp_path / "data" / "demo.db", readonly=True) as store:
        by_source = dict(
            store.db.execute(
                "SELECT source, SUM(samples) FROM progress WHERE session_id = 1 AND tag = 'eval-mmlu' GROUP BY source"
            ).fetchall()
        )
    assert "cli" not in by_source  # the refused count was sent nowhere
    assert job["samples"] == by_source.get("report")  # only what the demo's eval reported through its spool
    assert "samples" in run("--demo", "samples", "eval-mmlu", "--add", "500").stdout  # after the session: fine
