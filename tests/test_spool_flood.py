"""A spool flooded by another user (``nobody``) never delays a tick nor grows the session (issue 12, finding 4).

Thousands of small files plus one 440 KB file with 20,000 tags and one just under the size cap with 2,000:
each tick stays within its spool budget, the honest job's reports still count at the next read, no job is
created from the flood, the database stays small, and the ignored reports are counted with their reasons.
"""

from __future__ import annotations

import time

import pytest

from gputab.progress.spool import TAGS_PER_OWNER, TICK_BUDGET_SECONDS
from gputab.store import Store
from spoolkit import NOBODY, Stepper, demo_recorder, job, reporter, shared_spool_fixture, steps  # noqa: F401

FLOOD = """
    import json, os
    spool = gputab.report.spool_dir()
    doc = {{"v": 1, "host": "x", "pid": 1, "uid": 0, "started": time.time(), "updated": time.time()}}
    for i in range({files}):
        with open(os.path.join(spool, f"flood-{{i:06d}}.json"), "w") as f:
            json.dump({{**doc, "counts": {{f"victim-{{i % 50}}": [10**12, 10**12]}}}}, f)
    for name, n in (("wide", 20000), ("just-under", 2000)):
        with open(os.path.join(spool, f"{{name}}.json"), "w") as f:
            json.dump({{**doc, "counts": {{f"tag-{{i:05d}}": [1, 1] for i in range(n)}}}}, f)
    print(os.path.getsize(os.path.join(spool, "wide.json")), os.path.getsize(os.path.join(spool, "just-under.json")))
"""


@pytest.mark.slow
def test_a_flood_of_hostile_files_delays_no_tick(shared_spool, tmp_path):
    spool = shared_spool
    db = tmp_path / "g.db"
    trainer = Stepper(spool, env={"GPUTAB_TAG": "llama3-8b-lora"})
    trainer.report(1, "llama3-8b-lora")
    rec = demo_recorder(db, spool)
    rec.start()
    steps(rec, 1)
    jobs_before = set(rec.ledger.jobs)
    out = reporter(FLOOD.format(files=20_000), spool, NOBODY).stdout.split()
    assert int(out[0]) > 400_000 and int(out[1]) < 64 * 1024
    times = []
    for i in range(40):
        if i == 5:
            trainer.report(100, "llama3-8b-lora")
        t = time.perf_counter()
        rec.fake_clock.advance(1.0)
        rec.step()
        times.append(time.perf_counter() - t)
        if i == 7:  # read at the next tick after the report, flood or not
            assert rec.ledger.jobs["llama3-8b-lora"].samples == 100
    sweeps = rec.reports.reader.passes
    for _ in range(400):  # let the sweeps go through the whole flood a few times
        steps(rec, 1)
    print(
        f"tick times over the flood: median {sorted(times)[20] * 1000:.1f} ms, max {max(times) * 1000:.1f} ms; "
        f"{rec.reports.reader.passes - sweeps} sweeps in 400 ticks"
    )
    rec.close()
    trainer.stop()
    # The spool's share of a tick is bounded by its budget (plus one file's read and the tick's own work).
    assert max(times) < TICK_BUDGET_SECONDS + 0.25, times
    assert sorted(times)[len(times) // 2] < TICK_BUDGET_SECONDS + 0.05, times
    assert rec.reports.reader.passes > sweeps  # the sweeps finished, spread over ticks
    assert not [t for t in rec.ledger.jobs if t.startswith(("victim-", "tag-"))]  # not one job from the flood
    assert jobs_before <= set(rec.ledger.jobs)
    assert job(db, 1, "llama3-8b-lora")["samples"] == 100
    reasons = {r["reason"]: r["reports"] for r in rec.reports.rejected_rows() if r["owner_uid"] == NOBODY.pw_uid}
    assert reasons["too_large"] == 1  # the 440 KB file, refused unread at the first sweep
    assert reasons["not_job_owner"] >= 64  # small files read so far, all someone else's jobs
    assert db.stat().st_size < 2 * 1024 * 1024
    assert rec.reports.reader.deferred > 0  # the per-owner caps spread the flood over passes


def test_one_owner_gets_a_bounded_number_of_tags_per_read(shared_spool, tmp_path, monkeypatch):
    import gputab.progress.spool_reader

    rec = demo_recorder(tmp_path / "g.db", shared_spool)
    rec.start()
    reporter(FLOOD.format(files=0), shared_spool, NOBODY)  # just the 20,000-tag and the 2,000-tag files
    steps(rec, 2)
    parsed: list[int] = []
    real = gputab.progress.spool_reader.json

    class Counting:
        @staticmethod
        def loads(data):
            parsed.append(len(data))
            return real.loads(data)

    monkeypatch.setattr(gputab.progress.spool_reader, "json", Counting)
    steps(rec, 1)
    assert parsed == []  # read once: a file that did not change is not parsed again (how long a tick takes: bench/)
    rec.close()
    reasons = {r["reason"]: r["reports"] for r in rec.reports.rejected_rows()}
    assert reasons == {"too_large": 1, "not_job_owner": TAGS_PER_OWNER, "too_many_tags": 2000 - TAGS_PER_OWNER}
    assert not [t for t in rec.ledger.jobs if t.startswith("tag-")]


def test_an_owner_with_too_many_files_is_remembered_up_to_a_bound(shared_spool, tmp_path, monkeypatch):
    import gputab.progress.spool_reader

    monkeypatch.setattr(gputab.progress.spool_reader, "KNOWN_PER_OWNER", 5)
    rec = demo_recorder(tmp_path / "g.db", shared_spool)
    rec.start()
    reporter(FLOOD.format(files=20), shared_spool, NOBODY)  # 22 files
    steps(rec, 3)
    rec.close()
    assert len(rec.reports.reader.files) == 5
    rows = {r["reason"]: r["reports"] for r in rec.reports.rejected_rows()}
    assert rows["too_many_files"] == 22 - 5
    with Store.open(tmp_path / "g.db", readonly=True) as store:
        stored = {r["reason"]: r["reports"] for r in store.rejected_reports(1)}
    assert stored == rows
