"""Hand-entered counts have one meaning everywhere (issue 12, finding 5).

`gputab samples TAG --add N` adds, `--set N` sets (the review's `n` dialog sets, and says so in the same
words); both refuse the session being recorded before any input, with the way to do it; reserved tags are
refused. The dialog shows outside text (the tag) literally. The session screen shows the rejected reports.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from gputab.store import Store
from gputab.tui.review import ReviewApp
from gputab.tui.review.samples_dialog import SamplesDialog
from gputab.tui.review.session_screen import SessionScreen
from gputab.tui.screenshots import record_demo_session
from spoolkit import demo_recorder, steps
from support import Notified, gputab_cmd

TAG = "[b]evil[/b] $(x)"


def gputab(db, *args, ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([*gputab_cmd(), "--db", str(db), *args], capture_output=True, text=True, timeout=60)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def samples_of(db, sid: int, tag: str) -> tuple:
    with Store.open(db, readonly=True) as store:
        job = next(j for j in store.jobs(sid) if j["tag"] == tag)
    return job["samples"], job["tokens"]


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "g.db"
    record_demo_session(path, 30)
    with Store.open(path) as store:  # a job whose tag is outside text that looks like markup
        store.db.execute("UPDATE jobs SET tag = ? WHERE tag = 'eval-mmlu'", [TAG])
        store.db.conn.commit()
    return path


@pytest.mark.slow
def test_add_adds_and_set_sets(db):
    reported, reported_tokens = samples_of(db, 1, "llama3-8b-lora")  # what the demo job reported itself
    reported, reported_tokens = reported or 0, reported_tokens or 0
    gputab(db, "samples", "llama3-8b-lora", "--add", "500", "--add-tokens", "1000")
    gputab(db, "samples", "llama3-8b-lora", "--add", "500")
    assert samples_of(db, 1, "llama3-8b-lora") == (reported + 1000, reported_tokens + 1000)
    out = gputab(db, "samples", "llama3-8b-lora", "--set", "200", "--set-tokens", "7").stdout
    assert f"200 samples ({200 - reported - 1000:+,d})" in out
    assert samples_of(db, 1, "llama3-8b-lora") == (200, 7)
    old = gputab(db, "samples", "llama3-8b-lora", "--samples", "5", "--tokens", "3")  # the old spelling: adds
    assert "--samples is deprecated" in old.stderr
    assert samples_of(db, 1, "llama3-8b-lora") == (205, 10)
    r = gputab(db, "samples", "llama3-8b-lora", "--add", "1", "--set", "2", ok=False)
    assert r.returncode == 2 and "--add N or --set N, not both" in r.stderr


@pytest.mark.parametrize("tag", ["(idle)", "(unobserved)"])
def test_reserved_tags_are_refused(db, tag):
    with Store.open(db, readonly=True) as store:
        before = {j["tag"]: (j["samples"], j["tokens"]) for j in store.jobs(1)}  # the demo's own reports
    r = gputab(db, "samples", tag, "--add", "5", ok=False)
    assert r.returncode == 2 and "reserved" in r.stderr and "Traceback" not in r.stderr
    with Store.open(db, readonly=True) as store:
        assert {j["tag"]: (j["samples"], j["tokens"]) for j in store.jobs(1)} == before


def test_the_live_session_is_refused_up_front(tmp_path):
    db = tmp_path / "g.db"
    rec = demo_recorder(db, tmp_path / "spool")
    rec.start()
    steps(rec, 3)
    try:
        for how in ("--add", "--set"):
            r = gputab(db, "samples", "llama3-8b-lora", how, "5", ok=False)
            assert r.returncode == 1 and "still being recorded" in r.stderr and "gputab.report(" in r.stderr
    finally:
        rec.close()
    assert samples_of(db, 1, "llama3-8b-lora") == (None, None)


async def open_first_session(app, pilot, key: str | None = None) -> SessionScreen:
    """Open the newest session of the review app, then press ``key``; returns the session screen."""
    await pilot.pause()
    await pilot.press("enter")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, SessionScreen)
    if key is not None:
        await pilot.press(key)
        await pilot.pause()
    return screen


async def test_dialog_sets_in_the_cli_words_and_shows_the_tag_literally(db):
    app = ReviewApp(db)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_first_session(app, pilot)
        table = screen.query_one("#session-jobs")
        table.move_cursor(row=table.get_row_index(TAG))
        await pilot.press("n")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, SamplesDialog)
        heading = dialog.query_one("#samples-heading").render()
        assert TAG in str(heading) and "Set samples" in str(heading)
        assert "--set" in str(dialog.query_one("#samples-help").render())
        dialog.query_one("#samples-input").value = "300"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen
    assert samples_of(db, 1, TAG) == (300, None)


async def test_dialog_refuses_the_live_session_before_any_input(tmp_path):
    db = tmp_path / "g.db"
    rec = demo_recorder(db, tmp_path / "spool")
    rec.start()
    steps(rec, 3)
    try:
        app = ReviewApp(db)
        notified = Notified()
        async with app.run_test(size=(140, 40), message_hook=notified) as pilot:
            screen = await open_first_session(app, pilot, "n")
            assert app.screen is screen  # no dialog opened
            notes = [n.message for n in notified]
            assert any("still being recorded" in m and "gputab.report(" in m for m in notes), notes
    finally:
        rec.close()


async def test_session_screen_and_show_say_what_was_rejected(db):
    with Store.open(db) as store:
        store.db.execute("INSERT INTO rejected_reports VALUES (1, 'not_job_owner', 65534, 3, 1000000000000000, 0)")
        store.db.conn.commit()
    app = ReviewApp(db)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_first_session(app, pilot)
        line = str(screen.query_one("#session-rejected").render())
        assert "3 reports rejected" in line and "nobody" in line and "runs no process of that job" in line
    env = {**os.environ, "GPUTAB_DB": str(db)}
    doc = json.loads(
        subprocess.run(
            [*gputab_cmd(), "show", "1", "--json"], capture_output=True, text=True, env=env, check=True
        ).stdout
    )
    assert doc["rejected_reports"] == [
        {
            "reason": "not_job_owner",
            "owner_uid": 65534,
            "reports": 3,
            "samples": 10**15,
            "tokens": 0,
            "owner": "nobody",
            "reason_text": "its owner runs no process of that job in this session",
        }
    ]
