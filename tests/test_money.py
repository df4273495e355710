"""Money shows at least three significant digits everywhere (issue 23): the one formatter and its users."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gputab.alerts.record import format_money
from gputab.money import per_sample, usd, usd_per_hour
from gputab.tui import format as fmt


@pytest.mark.parametrize(
    ("dollars", "text"),
    [
        (0.005, "$0.005"),
        (0.001, "$0.001"),
        (0.00523456, "$0.00523"),
        (0.0123, "$0.0123"),
        (0.4, "$0.40"),
        (0.99949, "$0.999"),
        (1.234, "$1.23"),
        (1234.5, "$1,234.50"),
        (0.0, "$0.00"),
        (-0.0052, "$-0.0052"),
    ],
)
def test_usd_keeps_three_significant_digits(dollars, text):
    assert usd(dollars) == text


@pytest.mark.parametrize("dollars", [0.005, 0.00123, 0.000456, 0.0789, 0.5, 3.21])
def test_no_money_text_rounds_away_more_than_half_a_percent(dollars):
    for text in (usd(dollars), format_money(dollars), fmt.money(dollars)):
        shown = float(text.lstrip("$").replace(",", ""))
        assert shown == pytest.approx(dollars, rel=0.005), text


def test_a_tiny_cost_per_sample_is_shown_per_1k_samples():
    assert per_sample(0.0004) == "$0.000400"  # cost-model.md worked example 1
    assert per_sample(0.0000021) == "$0.0021/1k"  # not $0.000002
    assert per_sample(None) == "-"
    assert usd_per_hour(0.0042) == "$0.0042/h" and fmt.rate(0.0042) == "$0.0042/h"


def test_run_budget_banner_says_the_cap_it_was_given(tmp_path):
    env = dict(os.environ, GPUTAB_DB=str(tmp_path / "g.db"))
    for cap, text in (("0.005", "$0.005"), ("0.001", "$0.001")):
        done = subprocess.run(
            [sys.executable, "-m", "gputab", "--demo", "run", "-t", "tiny", "--budget", cap, "--", "true"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert f"watching this run's {text} budget by itself" in done.stderr
