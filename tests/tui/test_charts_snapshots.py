"""Snapshots of issue 23's view changes that test_snapshots.py does not take: a job's live details and the GPUs
view in two columns (from 160 columns). Regenerate with ``--snapshot-update`` and look at the SVGs."""

from __future__ import annotations

import pytest
from test_snapshots import _run
from tui_support import make_app


@pytest.fixture(autouse=True)
def steady_toasts(monkeypatch):
    """Alert toasts stay up however long the run takes, as in test_snapshots.py: at their 6 s of real time, whether
    they were still up for the picture depended on the box's load (and on when the GPUs view's module loads)."""
    from gputab.tui.app import GputabApp

    monkeypatch.setattr(GputabApp, "toast_scale", 1000.0)


def test_job_details(snap_compare, demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=(100, 40), run_before=_run(app, clock, dialog_keys=("enter",)))


def test_gpus_view_two_columns(snap_compare, demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=(160, 40), run_before=_run(app, clock, ("2",)))
