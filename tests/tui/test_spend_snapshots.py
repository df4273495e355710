"""Snapshot tests of the Spend screen at 80x24, 120x40 and 200x60, over a month of demo sessions on a fake clock.

Opened the way a user opens it: ``$`` in ``gputab review``. Days are cut in UTC (TZ=UTC for these tests) so the
pictures are the same in every zone. Regenerate after an intended change with
``pytest tests/tui/test_spend_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import pytest

from gputab.tui.review import ReviewApp
from gputab.tui.screenshots import record_demo_month

SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)], ids=["80x24", "120x40", "200x60"])


@pytest.fixture(scope="module")
def month_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("spend") / "month.db"
    record_demo_month(db)
    return db


@SIZES
@pytest.mark.slow
def test_spend_screen(snap_compare, utc, month_db, size):
    assert snap_compare(ReviewApp(month_db), terminal_size=size, press=["dollar_sign"])


@SIZES
@pytest.mark.slow
def test_spend_screen_on_another_job(snap_compare, utc, month_db, size):
    # The cursor on the second job: its own utilization histogram.
    assert snap_compare(ReviewApp(month_db), terminal_size=size, press=["dollar_sign", "down"])
