import json

import pytest
from click.testing import CliRunner

from gputab.cli import cli


def test_snapshot_json_has_jobs_with_burn_rates():
    r = CliRunner().invoke(cli, ["--demo", "snapshot", "--json"], catch_exceptions=False)
    doc = json.loads(r.output)
    jobs = {j["tag"]: j for j in doc["jobs"]}
    assert jobs["llama3-8b-lora"]["gpus"] == [0, 1]
    assert jobs["(idle)"]["gpus"] == [3, 4]  # GPU 4: its empty MIG instance and free slice
    assert "eval-mmlu" in jobs
    # burn rates of jobs add up to the box's
    assert sum(j["burn_rate_usd_per_hour"] for j in doc["jobs"]) == pytest.approx(doc["burn_rate_usd_per_hour"])
    # secrets in command lines never leave the process
    cmds = " ".join(p["command"] or "" for p in doc["processes"])
    assert "demo0secret" not in cmds and "***" in cmds
    assert {p["tag_source"] for p in doc["processes"]} >= {"env"}


def test_snapshot_table_lists_jobs():
    r = CliRunner().invoke(cli, ["--demo", "snapshot"], catch_exceptions=False)
    assert r.exit_code == 0
    assert "llama3-8b-lora" in r.output and "Burn rate of the box" in r.output
