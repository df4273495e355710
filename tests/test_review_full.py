"""``gputab sessions`` filters and ``gputab show`` with every per-job figure, checked against the ledger."""

from __future__ import annotations

import csv
import io
import json
import math
import signal
import subprocess
import time

import pytest
from click.testing import CliRunner

from gputab.cli.main import cli
from gputab.cost.ledger import IDLE, UNOBSERVED
from gputab.publish.document import public
from gputab.sampling.demo import DEMO_START_WALL
from test_export import DAY, GPUTAB, record_demo

JOB_KEYS = {
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
    "cost_per_1k_samples_usd",
    "cost_per_1m_tokens_usd",
    "cost_per_effective_gpu_hour_usd",
    "idle_gpu_hours",
    "gpus",
    "unknown_price",
}


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "data" / "gputab.db"


def run(db_path, *args):
    return CliRunner().invoke(cli, ["--db", str(db_path), *args])


def show_json(db_path, ref="last") -> dict:
    result = run(db_path, "show", ref, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_show_json_has_every_figure_of_the_ledger(db_path):
    ledger = record_demo(db_path, ticks=30, gaps={10: 30.0})
    doc = show_json(db_path)
    tags = [j["tag"] for j in doc["jobs"]]
    assert IDLE in tags and UNOBSERVED in tags
    assert tags[-2:] == [IDLE, UNOBSERVED] or set(tags[-2:]) == {IDLE, UNOBSERVED}  # buckets after real jobs
    for job in doc["jobs"]:
        assert JOB_KEYS <= job.keys(), job["tag"]
        want = public(ledger.jobs[job["tag"]].to_json())
        for key in JOB_KEYS - {"burn_rate_usd_per_hour", "gpus"}:
            if isinstance(want[key], float):
                assert job[key] == pytest.approx(want[key], rel=1e-12, abs=1e-15), (job["tag"], key)
            else:
                assert job[key] == want[key], (job["tag"], key)
        assert job["gpus"] == want["gpus"]
    assert doc["total"]["cost_usd"] == pytest.approx(ledger.total_cost_usd, rel=1e-9)
    assert "total_cost_usd" not in doc and "cost_usd" not in doc["session"]  # one figure, once
    assert doc["total"]["unobserved_cost_usd"] == pytest.approx(ledger.jobs[UNOBSERVED].cost_usd)
    assert doc["total"]["unobserved_cost_usd"] > 0
    assert doc["total"]["energy_kwh"] == pytest.approx(ledger.total_energy_j / 3.6e6, rel=1e-9)
    assert [g["index"] for g in doc["gpus"]] == [0, 1, 2, 3, 4]
    for g in doc["gpus"]:
        totals = ledger.gpus[g["index"]]
        assert g["model_key"] == totals.price.model_key
        assert g["rate_usd_per_hour"] == totals.price.rate_per_hour
        assert g["unknown_price"] is False
        assert g["energy_method"] == "counter"
        assert g["energy_kwh"] == pytest.approx(totals.energy_j / 3.6e6)
        assert g["cost_usd"] == pytest.approx(totals.cost_usd)
    assert math.fsum(g["cost_usd"] for g in doc["gpus"]) == pytest.approx(doc["total"]["cost_usd"], rel=1e-9)


def test_show_text_lists_jobs_total_and_gpus(db_path):
    record_demo(db_path, ticks=20)
    with_samples = run(db_path, "samples", "llama3-8b-lora", "1000", "--session", "1")
    result = run(db_path, "show", "1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for word in (
        "llama3-8b-lora",
        "eval-mmlu",
        IDLE,
        "total",
        "$/eff-h",
        "$/1M tok",
        "H100-SXM",
        "A100-80GB",
        "by counter",
    ):
        assert word in out, word
    if with_samples.exit_code == 0:  # counts entered after the fact show up with their cost per sample
        assert "1,000" in out


def test_show_and_export_agree(db_path):
    record_demo(db_path, ticks=25)
    doc = show_json(db_path, "1")
    rows = list(csv.DictReader(io.StringIO(run(db_path, "export", "--csv", "--session", "1").stdout)))
    assert [r["tag"] for r in rows] == [j["tag"] for j in doc["jobs"]]
    for r, j in zip(rows, doc["jobs"]):
        assert float(r["cost_usd"]) == pytest.approx(j["cost_usd"], rel=1e-15)
        assert float(r["energy_kwh"]) == pytest.approx(j["energy_kwh"], rel=1e-15)


def test_sessions_filters(db_path):
    record_demo(db_path, ticks=5, start_wall=DEMO_START_WALL)
    record_demo(db_path, ticks=5, start_wall=DEMO_START_WALL + 10 * DAY, retag=("eval-mmlu", "sweep-7"))

    def ids(*args):
        result = run(db_path, "sessions", "--json", *args)
        assert result.exit_code == 0, result.output
        return [s["id"] for s in json.loads(result.stdout)["sessions"]]

    assert ids() == [2, 1]
    assert ids("--since", "2026-01-05") == [2]
    assert ids("--since", "2026-01-01T00:00:00Z") == [2, 1]
    assert ids("--tag", "sweep-*") == [2]
    assert ids("--tag", "sweep-7") == [2]
    assert ids("--tag", "no-such-job") == []
    assert ids("--tag", "llama3-8b-lora", "--since", "2026-01-05") == [2]
    assert ids("--host", "demo-box") == [2, 1]
    assert ids("--host", "no-such-host") == []
    listed = json.loads(run(db_path, "sessions", "--json").stdout)["sessions"]
    assert "sweep-7" in listed[0]["tags"] and IDLE not in listed[0]["tags"]
    text = run(db_path, "sessions", "--host", "no-such-host").stdout
    assert "No sessions match --host no-such-host" in text


def test_errors_exit_nonzero_with_a_message(db_path):
    record_demo(db_path, ticks=3)
    for args, code, message in (
        (["show", "77"], 1, "there is no session 77"),
        (["sessions", "--since", "soonish"], 2, "bad date"),
        (["show", "x1"], 1, "not a session"),
    ):
        proc = subprocess.run([*GPUTAB, "--db", str(db_path), *args], capture_output=True, text=True)
        assert proc.returncode == code, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_real_demo_recording_reviews_and_exports(tmp_path):
    """`gputab --demo record` as a process, stopped by SIGTERM, then reviewed and exported like a user would."""
    proc = subprocess.Popen(
        [*GPUTAB, "--demo", "record", "--interval", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(3.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    doc = json.loads(
        subprocess.run([*GPUTAB, "--demo", "show", "last", "--json"], capture_output=True, text=True, check=True).stdout
    )
    assert doc["session"]["end_reason"] == "clean"
    assert {"llama3-8b-lora", IDLE} <= {j["tag"] for j in doc["jobs"]}
    out = tmp_path / "s.csv"
    done = subprocess.run(
        [*GPUTAB, "--demo", "export", "--csv", "--session", "last", "-o", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0 and str(out) in done.stderr
    rows = list(csv.DictReader(out.open(newline="")))
    assert math.fsum(float(r["cost_usd"]) for r in rows) == pytest.approx(doc["total"]["cost_usd"], rel=1e-9)
