"""Snapshot tests of the review screens at 80x24, 120x40 and 200x60, over demo sessions on a fake clock.

Regenerate after an intended change with ``pytest tests/tui/test_review_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import pytest

from gputab.tui.review import ReviewApp
from gputab.tui.screenshots import STEPS, record_demo_session

SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)], ids=["80x24", "120x40", "200x60"])


@pytest.fixture
def review_db(tmp_path):
    db = tmp_path / "review.db"
    record_demo_session(db, STEPS)
    record_demo_session(db, 30, day=2, seed=1)
    record_demo_session(db, 60, day=4, host="gpu-node-7")
    return db


@SIZES
def test_sessions_screen(snap_compare, review_db, size):
    assert snap_compare(ReviewApp(review_db), terminal_size=size)


@SIZES
def test_session_screen(snap_compare, review_db, size):
    # The newest session is under the cursor; open the first one recorded, the one the README shows.
    assert snap_compare(ReviewApp(review_db), terminal_size=size, press=["down", "down", "enter"])


@SIZES
def test_compare_screen(snap_compare, review_db, size):
    # The first session's two costliest jobs, marked with m and compared with c.
    keys = ["down", "down", "enter", "m", "down", "m", "c"]
    assert snap_compare(ReviewApp(review_db), terminal_size=size, press=keys)
