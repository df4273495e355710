"""Snapshot tests: the demo box after a fixed number of polls on a fake clock, at 80x24, 120x40 and 200x60.

Regenerate after an intended change of the screen with ``pytest tests/tui/test_snapshots.py --snapshot-update``
and review the SVG diff. NO_COLOR is set by the suite's conftest, so the pictures are monochrome.
"""

from __future__ import annotations

import pytest
from tui_support import make_app

from gputab.tui.screenshots import drive

STEPS = 90
SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)], ids=["80x24", "120x40", "200x60"])


def _run(app, clock, keys=()):
    async def run_before(pilot) -> None:
        await drive(app, pilot, clock, STEPS, keys)

    return run_before


@SIZES
def test_jobs_view(snap_compare, demo_ctx, clock, size):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=size, run_before=_run(app, clock))


@SIZES
def test_gpus_view(snap_compare, demo_ctx, clock, size):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=size, run_before=_run(app, clock, ("2",)))


@SIZES
def test_processes_view(snap_compare, demo_ctx, clock, size):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=size, run_before=_run(app, clock, ("3",)))


@SIZES
def test_alerts_view(snap_compare, demo_ctx, clock, size):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=size, run_before=_run(app, clock, ("4",)))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_keys_dialog(snap_compare, demo_ctx, clock, size):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=size, run_before=_run(app, clock, ("question_mark",)))


def test_jobs_view_light_theme(snap_compare, demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    app.theme = "textual-light"
    assert snap_compare(app, terminal_size=(120, 40), run_before=_run(app, clock))
