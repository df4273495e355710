"""Snapshots of issue 23's view changes that test_snapshots.py does not take: a job's live details and the GPUs
view in two columns (from 160 columns). Regenerate with ``--snapshot-update`` and look at the SVGs."""

from __future__ import annotations

from test_snapshots import _run, steady_toasts  # noqa: F401  (autouse: toasts stay up however slow the run)
from tui_support import make_app


def test_job_details(snap_compare, demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=(100, 40), run_before=_run(app, clock, dialog_keys=("enter",)))


def test_gpus_view_two_columns(snap_compare, demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=(160, 40), run_before=_run(app, clock, ("2",)))
