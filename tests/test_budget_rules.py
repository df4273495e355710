"""Budget tables in the config (ranges refused with file and line), and whose processes a stopping budget may
signal: the users it names, or with none named the recorder's own user only (even when that user is root)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gputab.budgets.enforcement import REFUSED, SENT, BudgetEnforcer, ProcessIdentity, identify
from gputab.budgets.model import Budget, from_config
from gputab.config.settings import BudgetConfig, parse_config
from gputab.errors import ConfigError

TABLES = """\
[alerts]
budget_warning_pct = 75

[budgets]
"llama3-8b-lora" = 500
"run[1]" = 3

[budgets."sweep-*"]
cap = 20
period = "week"
stop = true
grace = 60
users = ["alice", "bob"]
"""


def test_config_tables_and_plain_caps_give_the_same_budgets():
    cfg = parse_config(TABLES, "c.toml")
    assert cfg.budgets["llama3-8b-lora"] == 500.0
    assert cfg.budgets["sweep-*"] == BudgetConfig(20.0, "week", True, 60.0, ["alice", "bob"])
    assert from_config(cfg) == (
        Budget("llama3-8b-lora", 500.0),
        Budget("run[1]", 3.0),
        Budget("sweep-*", 20.0, "week", True, 60.0, ("alice", "bob")),
    )


@pytest.mark.parametrize(
    ("table", "where", "says"),
    [
        ("cap = 0", 'c.toml:2: budgets."sweep-*".cap', "positive number of dollars"),
        ("cap = 2e9", 'c.toml:2: budgets."sweep-*".cap', "up to 1,000,000,000"),
        ('cap = 5\nperiod = "year"', 'c.toml:3: budgets."sweep-*".period', "day, week, month, total"),
        ("cap = 5\ngrace = -1", 'c.toml:3: budgets."sweep-*".grace', "between 0 and 86,400"),
        ("cap = 5\ngrace = 90000", 'c.toml:3: budgets."sweep-*".grace', "between 0 and 86,400"),
        ('cap = 5\nusers = ["al ice"]', 'c.toml:3: budgets."sweep-*".users.0', "not a login name"),
        ('cap = 5\nusers = "alice"', 'c.toml:3: budgets."sweep-*".users', "expected a list"),
        ('cap = 5\nstop = "yes"', 'c.toml:3: budgets."sweep-*".stop', "expected true or false"),
        ('period = "day"', 'c.toml:1: budgets."sweep-*"', "missing required key(s): cap"),
        ("cap = 5\nhalt = true", 'c.toml:3: budgets."sweep-*".halt', "unknown key"),
        ("cap = nan", 'c.toml:2: budgets."sweep-*".cap', "finite"),
    ],
)
def test_a_bad_budget_table_is_refused_with_its_file_and_line(table, where, says):
    with pytest.raises(ConfigError) as err:
        parse_config(f'[budgets."sweep-*"]\n{table}\n', "c.toml")
    text = str(err.value)
    assert text.startswith(where) and says in text and "\n" not in text


def test_a_reserved_tag_cannot_have_a_budget():
    with pytest.raises(ConfigError, match=r"budgets.\"\(idle\)\": a budget's tag glob"):
        parse_config('[budgets]\n"(idle)" = 5\n', "c.toml")


STUBBORN = "import signal, sys, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)\n"


@pytest.fixture
def child():
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    proc.kill()
    proc.wait()


def as_owned_by(proc, uid: int):
    real = identify(proc.pid)
    return lambda pid: ProcessIdentity(pid, (uid, uid, uid), real.create_time)


def test_with_no_users_named_only_the_recorders_own_users_processes_are_signalled(child):
    sent = []
    me = os.geteuid()
    # The recorder runs as root here: root may signal anyone, but a budget that names nobody stops root's only.
    enf = BudgetEnforcer(uid=0, signal_fn=lambda pid, sig: sent.append(pid), identify_fn=as_owned_by(child, 1000))
    budget = Budget("train", 1.0, stop=True, grace_seconds=5.0)
    (act,) = enf.stop("train", [(child.pid, None)], 0.0, 0.0, budget=budget)
    assert act.outcome == REFUSED and "uid 1000" in act.reason and sent == []
    mine = BudgetEnforcer(uid=me, signal_fn=lambda pid, sig: sent.append(pid), identify_fn=as_owned_by(child, me))
    (act,) = mine.stop("train", [(child.pid, None)], 0.0, 0.0, budget=budget)
    assert act.outcome == SENT and sent == [child.pid] and "SIGTERM in 5s" in act.reason


def test_named_users_processes_are_signalled_with_the_budgets_grace_and_others_refused(child):
    sent = []
    root = Budget("train", 1.0, stop=True, grace_seconds=2.0, users=("root",))
    enf = BudgetEnforcer(uid=0, signal_fn=lambda pid, sig: sent.append((pid, sig)), identify_fn=as_owned_by(child, 0))
    (act,) = enf.stop("train", [(child.pid, None)], 10.0, 10.0, budget=root)
    assert act.outcome == SENT and enf.pending == [child.pid]
    assert enf.tick(11.9, 11.9) == []  # the budget's grace, not the enforcer's default 30 s
    (term,) = enf.tick(12.0, 12.0)
    assert term.signal == "SIGTERM" and term.outcome == SENT
    other = BudgetEnforcer(
        uid=0, signal_fn=lambda pid, sig: sent.append((pid, sig)), identify_fn=as_owned_by(child, 65534)
    )
    (act,) = other.stop(
        "train", [(child.pid, None)], 0.0, 0.0, budget=Budget("t", 1.0, stop=True, users=("root", "ghost"))
    )
    assert act.outcome == REFUSED and act.uid == 65534
    assert "nobody (uid 65534)" in act.reason and "root, ghost" in act.reason
    assert len(sent) == 2  # the SIGINT and SIGTERM to the named user's process only


def test_run_refuses_a_grace_period_no_budget_accepts():
    from click.testing import CliRunner

    from gputab.cli.main import cli

    result = CliRunner().invoke(
        cli, ["--demo", "run", "-t", "x", "--budget", "5", "--stop-at-cap", "--grace", "1e5", "--", "true"]
    )
    assert result.exit_code == 2 and "0<=x<=86400" in result.output


def test_run_takes_the_config_budget_whose_glob_matches_its_tag(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[budgets."sweep-*"]\ncap = 12.5\nstop = true\ngrace = 7\n')
    env = dict(os.environ, GPUTAB_CONFIG=str(config), GPUTAB_DB=str(tmp_path / "g.db"))
    run = [sys.executable, "-m", "gputab", "--demo", "run"]
    held = subprocess.run([*run, "-t", "sweep-3", "--", "true"], env=env, capture_output=True, text=True, timeout=60)
    assert held.returncode == 0, held.stderr
    assert "watching this run's $12.50 budget by itself" in held.stderr
    assert "stops it at the cap (SIGTERM 7 s after SIGINT)" in held.stderr
    free = subprocess.run([*run, "-t", "eval-1", "--", "true"], env=env, capture_output=True, text=True, timeout=60)
    assert free.returncode == 0 and free.stderr == ""  # no budget holds it: no watching
