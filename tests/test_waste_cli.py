"""Waste where a user looks: stored with the session (m006_waste), `gputab show` (text and JSON), `snapshot`."""

from __future__ import annotations

import json
import subprocess

import pytest
from sqlite_utils import Database

from gputab.store import Store
from gputab.store.schema import migrate
from support import gputab_cmd
from test_review_cli import _session as record_demo


def gputab(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([*gputab_cmd(), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def test_show_json_and_text_carry_the_split_and_the_reasons(tmp_path):
    db = tmp_path / "g.db"
    record_demo(db, 60)
    doc = json.loads(gputab("--db", str(db), "show", "last", "--json").stdout)
    jobs = {j["tag"]: j for j in doc["jobs"]}
    for tag, j in jobs.items():
        assert j["busy_usd"] + j["waste_usd"] == pytest.approx(j["cost_usd"], rel=1e-9), tag
        assert sum(j["waste_by_reason"].values()) == pytest.approx(j["waste_usd"], rel=1e-9), tag
        assert set(j["waste_evidence_by_reason"]) == set(j["waste_by_reason"]), tag
    assert jobs["eval-mmlu"]["waste_top_reason"] == "input_bound"
    assert "pid 32011" in jobs["eval-mmlu"]["waste_evidence"]
    assert jobs["llama3-8b-lora"]["throttled_usd"]["power_cap"] > 0
    # The columns are real columns (queryable), not only JSON.
    row = Store.open(db).db.execute("SELECT busy_usd, waste_usd FROM jobs WHERE tag = 'eval-mmlu'").fetchone()
    assert row == (pytest.approx(jobs["eval-mmlu"]["busy_usd"]), pytest.approx(jobs["eval-mmlu"]["waste_usd"]))

    text = gputab("--db", str(db), "show", "last").stdout
    block = text[text.index("Waste (") :]
    assert "eval-mmlu" in block and "input_bound" in block and "pid 32011" in block
    assert "stranded_memory" in block and "held by pid 35500, which has exited" in block
    assert "throttled: power_cap $" in block


def test_sessions_recorded_before_waste_still_show(tmp_path):
    """A database from before m006_waste gains the columns; its old jobs show without waste figures."""
    db_path = tmp_path / "old.db"
    db = Database(db_path)
    migrate(db, db_path, stop_before="m006_waste")
    db.execute(
        "INSERT INTO sessions (id, host, backend, started_wall, last_wall, ended_wall, end_reason, "
        "interval, ticks, total_cost_usd) "
        "VALUES (1, 'old', 'nvml', 1e9, 1e9 + 60, 1e9 + 60, 'clean', 1, 60, 1.0)"
    )
    db.execute("INSERT INTO jobs (session_id, tag, cost_usd, extra_json) VALUES (1, 'old-job', 1.0, '{}')")
    db.conn.commit()
    db.close()
    doc = json.loads(gputab("--db", str(db_path), "show", "1", "--json").stdout)
    (job,) = doc["jobs"]
    assert job["tag"] == "old-job" and job["waste_usd"] is None and job["busy_usd"] is None
    text = gputab("--db", str(db_path), "show", "1").stdout
    assert "old-job" in text and "Waste (" not in text


def test_snapshot_json_and_table_show_waste_over_the_sampled_interval():
    doc = json.loads(gputab("--demo", "snapshot", "--json").stdout)
    jobs = {j["tag"]: j for j in doc["jobs"]}
    for j in jobs.values():
        assert j["busy_usd"] + j["waste_usd"] == pytest.approx(j["cost_usd"], rel=1e-9)
        assert sum(j["waste_by_reason"].values()) == pytest.approx(j["waste_usd"], rel=1e-9)
    assert jobs["eval-mmlu"]["waste_top_reason"] == "input_bound"
    assert jobs["eval-mmlu"]["waste_evidence"].startswith("GPU util")
    # With one poll there is no interval to charge: nothing is claimed.
    doc = json.loads(gputab("--demo", "snapshot", "--json", "--over", "0").stdout)
    assert all(j["waste_usd"] == 0 and j["waste_top_reason"] is None for j in doc["jobs"])
    table = gputab("--demo", "snapshot").stdout
    assert "input_bound: GPU util" in table and any(
        ln.startswith("job ") and " waste " in ln for ln in table.splitlines()
    )
