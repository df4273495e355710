"""A recording that an unexpected exception ends is recorded as `error`, with the exception's one-line summary
(issue 23, item 5): never `clean`, and `gputab sessions` and `gputab show` say so."""

from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner

from gputab.cli import cli
from gputab.cli.context import AppContext
from gputab.cli.record import _record, _StopSignals
from gputab.errors import ERROR_DETAIL_CHARS, one_line
from gputab.store import Store
from support import demo_recorder


def test_one_line_is_the_type_and_the_first_line():
    assert one_line(RuntimeError("disk full\n  at /var/lib")) == "RuntimeError: disk full"
    assert one_line(KeyError()) == "KeyError"
    long = one_line(ValueError("x" * 1000))
    assert len(long) == ERROR_DETAIL_CHARS and long.endswith("…")


def test_an_exception_that_ends_the_recorders_loop_ends_the_session_as_error(tmp_path):
    db = tmp_path / "rec.db"
    rec, clock = demo_recorder(db, store=Store.open(db))
    ticked = threading.Event()

    def run(stop: threading.Event) -> None:  # the loop ticks, then something it calls raises
        for _ in range(5):
            clock.advance(1.0)
            rec.step()
        ticked.set()
        raise RuntimeError("the database file vanished\ntraceback lines")

    rec.run = run
    ctx = AppContext(demo=True, seed=0, db_path=db, config_path=tmp_path / "none.toml")
    with pytest.raises(RuntimeError, match="vanished"):
        _record(rec, ctx, _StopSignals())
    assert ticked.is_set()
    with Store.open(db, readonly=True) as store:
        (session,) = store.sessions()
        assert store.writer_info() is None  # the lock is released: the next recorder can start
    assert (session["end_reason"], session["end_detail"]) == ("error", "RuntimeError: the database file vanished")
    assert session["cost_usd"] > 0 and session["end"] is not None  # the ticks before it are kept
    listed = CliRunner().invoke(cli, ["--db", str(db), "sessions"])
    assert listed.exit_code == 0 and " error " in listed.output, listed.output
    shown = CliRunner().invoke(cli, ["--db", str(db), "show", "1"])
    assert "(error: RuntimeError: the database file vanished)" in shown.output, shown.output
