"""scripts/wheel-smoke.sh catches a wheel that lacks a stylesheet: built from a copy of the source without one, the
wheel installs and starts, and the smoke fails at the screen that needs the file, naming it.

CI runs the same script on the real source (.ci/run), where it passes. Slow: it builds a wheel and installs it with
its dependencies into a fresh venv (pip reaches PyPI, or its cache).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gputab import __version__
from support import subprocess_env

ROOT = Path(__file__).resolve().parent.parent
LEFT_OUT = "src/gputab/tui/review/compare_screen.tcss"  # a screen three keys deep: the smoke must go that far


@pytest.mark.slow
def test_the_smoke_fails_when_a_stylesheet_is_left_out_of_the_wheel(tmp_path):
    copy = tmp_path / "gputab"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, copy / name)
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (copy / LEFT_OUT).unlink()
    r = subprocess.run(
        ["bash", str(ROOT / "scripts" / "wheel-smoke.sh"), "--wheel-only", str(copy)],
        capture_output=True,
        text=True,
        timeout=1500,
        env=subprocess_env(PYTHON=sys.executable),
        check=False,
    )
    said = r.stdout + r.stderr
    assert r.returncode != 0, said[-3000:]
    assert (
        f"gputab {__version__}" in r.stdout
    )  # the wheel was built, installed and started: the stylesheet is what failed
    assert "wheel smoke: FAILED at the compare screen" in r.stderr, said[-3000:]
    assert "compare_screen.tcss" in r.stderr.replace("\n", ""), said[-3000:]  # Textual wraps the path at 80 columns
