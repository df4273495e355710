"""`gputab budget set|list|rm`: stored budgets beside the config's, readers that never create or migrate, one-line
errors, and what list shows from a live recording (spend this period, time to the cap, the forecast's overrun)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from gputab.alerts.observer import AlertObserver
from gputab.cli.main import cli
from gputab.config.settings import Config
from gputab.errors import GputabError
from gputab.store.schema import migrate
from support import demo_recorder

LORA = "llama3-8b-lora"


class Result:
    def __init__(self, code: int, stdout: str, output: str) -> None:
        self.exit_code, self.stdout, self.output = code, stdout, output


def gputab(*args: str, code: int = 0, config=None) -> Result:
    """Run the CLI in-process; a GputabError ends as gputab's main() ends it (its one line, its exit code)."""
    env = {"GPUTAB_CONFIG": str(config)} if config is not None else {}
    result = CliRunner().invoke(cli, list(args), env=env)
    got = Result(result.exit_code, result.stdout, result.output)
    if isinstance(result.exception, GputabError):
        got = Result(result.exception.exit_code, result.stdout, result.output + f"gputab: {result.exception}\n")
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert got.exit_code == code, got.output
    return got


def listed(db, config=None) -> list[dict]:
    return json.loads(gputab("--db", str(db), "budget", "list", "--json", config=config).stdout)["budgets"]


def migrations(db) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY name")]
    finally:
        conn.close()


def test_set_list_rm_round_trip_and_the_database_wins_over_the_config(tmp_path):
    db = tmp_path / "data" / "g.db"
    config = tmp_path / "config.toml"
    config.write_text('[budgets]\n"sweep-*" = 5\nllama = 7\n')
    out = gputab(
        "--db", str(db), "budget", "set", "sweep-*", "20", "--period", "week", "--stop", "--grace", "60",
        "--user", "root", config=config,
    ).stdout  # fmt: skip
    assert "budget sweep-*: $20.00 weekly" in out and "wins over the config's $5.00" in out
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600  # created the way the recorder creates it
    budgets = {b["tag"]: b for b in listed(db, config)}
    assert budgets["sweep-*"] == {
        **budgets["sweep-*"],
        "cap_usd": 20.0,
        "period": "week",
        "stop": True,
        "grace_seconds": 60.0,
        "users": ["root"],
        "defined_in": "database",
        "set_by": "root",
    }
    assert budgets["llama"]["defined_in"] == "config" and budgets["llama"]["set_at"] is None
    assert budgets["sweep-*"]["period_start_at"].endswith("T00:00:00Z")
    assert "removed" in gputab("--db", str(db), "budget", "rm", "sweep-*", config=config).stdout
    assert {b["tag"]: b["cap_usd"] for b in listed(db, config)} == {"sweep-*": 5.0, "llama": 7.0}  # the config's again
    err = gputab("--db", str(db), "budget", "rm", "llama", code=1, config=config).output
    assert "no budget 'llama' is stored" in err and "in the config file" in err and "Traceback" not in err


def test_readers_never_create_or_migrate(tmp_path):
    missing = tmp_path / "none.db"
    assert listed(missing) == [] and not missing.exists()
    assert "no budget" in gputab("--db", str(missing), "budget", "rm", "x", code=1).output
    assert not missing.exists()
    old = tmp_path / "old.db"
    db = Database(old)
    migrate(db, old, stop_before="m008_budgets")  # a database from before budgets were stored
    db.close()
    before = migrations(old)
    assert "m008_budgets" not in before
    assert listed(old) == []
    gputab("--db", str(old), "budget", "rm", "x", code=1)
    assert migrations(old) == before  # list and rm read it as it is
    gputab("--db", str(old), "budget", "set", "x", "3")  # a writer: it migrates, as the recorder would
    assert "m008_budgets" in migrations(old)
    assert [b["tag"] for b in listed(old)] == ["x"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["set", "x", "5", "--period", "year"], "'year' is not one of"),
        (["set", "x", "5", "--grace", "10"], "add --stop"),
        (["set", "x", "5", "--user", "root"], "add --stop"),
        (["set", "x", "5", "--stop", "--user", "a b"], "is not a login name"),
        (["set", "(idle)", "5"], "reserved"),
        (["set", "x\x1b[2J", "5"], "control or invisible character"),
        (["set", "x", "5", "--stop", "--grace", "86401"], "86400"),
    ],
)
def test_set_refuses_nonsense_in_one_line(tmp_path, args, says):
    db = tmp_path / "g.db"
    result = gputab("--db", str(db), "budget", *args, code=2)
    assert says in result.output and "Traceback" not in result.output
    assert not db.exists()


CAP_SAYS = "a budget cap is a positive number of dollars"


@pytest.mark.parametrize("bad", ["-5", "0", "-0", "abc", "nan", "inf", "-inf", "1e10", "", "-1e3"])
def test_a_bad_cap_says_what_a_cap_is_in_one_line_and_changes_nothing(tmp_path, bad):
    db = tmp_path / "g.db"
    gputab("--db", str(db), "budget", "set", "x", "7")
    before = listed(db)
    for args in (["x", bad], ["x", bad, "--period", "day"], ["--period", "day", "x", bad]):
        result = gputab("--db", str(db), "budget", "set", *args, code=2)
        (line,) = result.output.strip().splitlines()  # one line: no usage block, no "No such option"
        assert line.startswith(f"gputab: {CAP_SAYS}") and f"got {bad!r}" in line and "gputab budget set x 20" in line
    assert listed(db) == before  # nothing changed in the database
    missing = tmp_path / "none.db"
    gputab("--db", str(missing), "budget", "set", "x", bad, code=2)
    assert not missing.exists()


@pytest.mark.parametrize("bad", ["-5", "0", "abc", "nan", "inf", "-inf"])
def test_run_budget_refuses_a_bad_cap_in_one_line(tmp_path, bad):
    marker = tmp_path / "ran"
    result = gputab("run", "--tag", "x", "--budget", bad, "--", "touch", str(marker), code=2)
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"gputab: {CAP_SAYS}") and f"got {bad!r}" in line and "--budget 20" in line
    assert not marker.exists()  # the command never started


def test_a_negative_cap_from_the_real_command_line(tmp_path):
    """The real entry point (click's parser, gputab's main): one line on stderr, exit 2, no database."""
    db = tmp_path / "g.db"
    for args in (["budget", "set", "sweep-*", "-5"], ["run", "--tag", "x", "--budget", "-5", "--", "true"]):
        proc = subprocess.run(
            [sys.executable, "-m", "gputab", "--db", str(db), *args], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2 and proc.stdout == ""
        (line,) = proc.stderr.splitlines()
        assert line.startswith(f"gputab: {CAP_SAYS}") and "got '-5'" in line
    assert not db.exists()


def test_list_shows_the_live_recordings_spend_time_to_cap_and_projected_overrun(tmp_path):
    db = tmp_path / "g.db"
    gputab("--db", str(db), "budget", "set", "llama3-*", "5")
    obs = AlertObserver.from_config(Config())
    rec, clock = demo_recorder(db, [obs])
    rec.start()
    try:
        for _ in range(45):  # the fine-tune's forecast needs 30 s of reported progress
            clock.advance(1.0)
            tick = rec.step()
        job = next(j for j in tick.jobs if j["tag"] == LORA)
        assert job["projected_cost_usd"] is not None
        from gputab.cli.budget import budget_report
        from gputab.cli.context import AppContext

        (b,) = budget_report(AppContext(db_path=db), clock.wall())["budgets"]
        (row,) = b["jobs"]
        # The figures of the last commit (at most a commit interval behind the tick).
        assert row["tag"] == LORA and row["recording"] is True
        assert row["spent_usd"] == pytest.approx(job["cost_usd"], rel=0.1)
        assert row["spent_pct"] == pytest.approx(100 * row["spent_usd"] / 5.0)
        burn = row["burn_rate_usd_per_hour"]
        assert row["time_to_cap_seconds"] == pytest.approx((5.0 - row["spent_usd"]) / burn * 3600)
        assert row["projected_over_usd"] == pytest.approx(row["projected_spent_usd"] - 5.0)
        assert row["projected_over_usd"] > 0  # about 2 h to go at ~$9.5/h: far past $5
        assert obs.budget_book.budget_for(LORA).tag == "llama3-*"  # the stored glob holds it in the recorder too
    finally:
        rec.close()
    text = gputab("--db", str(db), "budget", "list").stdout
    assert "llama3-*: $5.00 in total [database]" in text
    assert LORA in text and "not recording" in text and "will exceed it by $" in text


def test_the_demos_own_budget_gives_way_to_any_other_that_holds_its_tag(tmp_path):
    db = tmp_path / "demo.db"
    (demo,) = json.loads(gputab("--demo", "--db", str(db), "budget", "list", "--json").stdout)["budgets"]
    assert (demo["tag"], demo["cap_usd"], demo["defined_in"]) == (LORA, 15.0, "demo")
    assert [j["tag"] for j in demo["jobs"]] == [LORA]
    gputab("--demo", "--db", str(db), "budget", "set", "llama3-*", "2", "--period", "day")
    doc = json.loads(gputab("--demo", "--db", str(db), "budget", "list", "--json").stdout)
    budgets = {b["tag"]: b for b in doc["budgets"]}
    assert budgets[LORA]["jobs"] == []  # its tag is the glob's now (which lists tags once they spend)
    text = gputab("--demo", "--db", str(db), "budget", "list").stdout
    assert f"{LORA} is held by the budget 'llama3-*' instead" in text


def test_bare_budget_lists_the_budgets(tmp_path):
    db = str(tmp_path / "g.db")
    gputab("--db", db, "budget", "set", "team-*", "25", "--period", "day")
    bare, listed = gputab("--db", db, "budget"), gputab("--db", db, "budget", "list")
    assert bare.stdout == listed.stdout and "team-*" in bare.stdout and "$25" in bare.stdout
