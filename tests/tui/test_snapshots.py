"""Snapshot tests: the demo box after a fixed number of polls on a fake clock, at 80x24 and 120x40.

Regenerate after an intended change of the screen with ``pytest tests/tui/test_snapshots.py --snapshot-update``
and review the SVG diff. NO_COLOR is set by the suite's conftest, so the pictures are monochrome.
"""

from __future__ import annotations

import pytest
from tui_support import make_app

from gputab.tui.screenshots import drive

STEPS = 90


def _run(app, clock, keys=()):
    async def run_before(pilot) -> None:
        await drive(app, pilot, clock, STEPS, keys)

    return run_before


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_jobs_view(snap_compare, demo_ctx, clock, size):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=size, run_before=_run(app, clock))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_gpus_view(snap_compare, demo_ctx, clock, size):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=size, run_before=_run(app, clock, ("2",)))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_processes_view(snap_compare, demo_ctx, clock, size):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=size, run_before=_run(app, clock, ("3",)))
