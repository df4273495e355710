"""Reading a span of a session's stored series back for the live charts (store/live_series.py): raw or bucketed,
with the session's cost before the span, so a viewer's cumulative chart starts where the session stood."""

from __future__ import annotations

import pytest

from gputab.live.backfill import series_block
from gputab.live.history import TOTAL, History, job_key, util_key
from gputab.store import Store
from gputab.store.live_series import stored_span
from support import record_demo_session


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    db = tmp_path_factory.mktemp("series") / "s.db"
    rec = record_demo_session(db, ticks=600)  # 10 minutes: 60 series steps
    return db, rec


def test_a_raw_span_has_every_step_and_the_cost_before_it(session):
    db, rec = session
    with Store.open(db, readonly=True) as store:
        whole = stored_span(store, 1, 0.0, 601.0)
        late = stored_span(store, 1, 300.0, 601.0)
        gpus = store.gpus(1)
    assert whole.t == [10.0 * k for k in range(1, 61)]
    assert whole.cost_before_usd == 0.0
    assert late.t == [10.0 * k for k in range(30, 61)]
    spent = sum(sum(g.cost_usd) for g in late.gpus.values())
    # What was spent before the span plus what the span holds is the session's total (conservation).
    assert late.cost_before_usd + spent == pytest.approx(rec.ledger.total_cost_usd, rel=1e-9)
    assert late.cost_before_usd == pytest.approx(sum(sum(g.cost_usd[:29]) for g in whole.gpus.values()), rel=1e-9)
    assert late.jobs["llama3-8b-lora"][-1] == pytest.approx(rec.ledger.jobs["llama3-8b-lora"].cost_usd, rel=1e-9)
    block = series_block(late, gpus, 0.0, coarse=False, step=10.0)
    assert block.values[TOTAL][-1] == pytest.approx(rec.ledger.total_cost_usd, rel=1e-9)
    assert list(block.values[util_key(0)]) == [u * 100 for u in late.gpus[0].utilization]


def test_a_bucketed_span_is_short_and_keeps_the_totals(session):
    db, rec = session
    with Store.open(db, readonly=True) as store:
        span = stored_span(store, 1, 0.0, 601.0, bucket_s=60.0)
        gpus = store.gpus(1)
    assert 10 <= len(span.t) <= 11 and span.t == sorted(span.t)
    assert sum(sum(g.cost_usd) for g in span.gpus.values()) == pytest.approx(rec.ledger.total_cost_usd, rel=1e-9)
    history = History()
    history.backfill(series_block(span, gpus, 0.0, coarse=True, step=60.0))
    t, v = history.points(job_key("llama3-8b-lora"), None)
    assert list(t) == span.t and v[-1] == pytest.approx(rec.ledger.jobs["llama3-8b-lora"].cost_usd, rel=1e-9)


def test_an_empty_span_reads_nothing(session):
    db, _ = session
    with Store.open(db, readonly=True) as store:
        span = stored_span(store, 1, 300.0, 300.0)
    assert span.t == [] and span.gpus == {} and span.jobs == {}


def test_a_second_session_follows_the_first_on_the_historys_axis():
    """The frames move to another session (this app started recording where it watched, or the recorder was
    restarted): the first session's points stay, the new session's follow, placed by the sessions' starts."""
    from array import array

    from gputab.live.frame import Frame
    from gputab.live.series_block import SeriesBlock

    history = History()
    stored = SeriesBlock(0.0, array("d", [10.0, 20.0]), {TOTAL: array("d", [1.0, 2.0])}, started_wall=1000.0)
    history.backfill(stored)
    history.add(
        Frame(host="h", state="attached", session_id=1, started_wall=1000.0, elapsed_s=25.0, total_cost_usd=2.5)
    )
    # A later session's stored points are all newer than what is held: nothing is added, nothing claimed.
    later = SeriesBlock(0.0, array("d", [5.0]), {TOTAL: array("d", [0.1])}, started_wall=1030.0)
    history.backfill(later)
    history.add(
        Frame(host="h", state="recording", session_id=2, started_wall=1030.0, elapsed_s=6.0, total_cost_usd=0.2)
    )
    t, v = history.points(TOTAL, 300)
    assert list(t) == [10.0, 20.0, 25.0, 36.0] and list(v) == [1.0, 2.0, 2.5, 0.2]
