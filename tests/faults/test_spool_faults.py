"""Corrupted and hostile files in the report spool (world-writable by design: any local user may drop a file
there, see gputab/report.py). The recorder must keep recording, count nothing it cannot trust, and still count
the good reports beside them. Files are planted after the recorder started: what is there before is its
baseline, never counted.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from faultkit import committed

from fakenvml import GpuSpec, Scenario
from gputab.progress.spool import READ_EVERY

GOOD = {
    "v": 1,
    "host": "elsewhere",
    "pid": 1,
    "uid": 0,
    "started": 0,
    "updated": 0,
    "counts": {"good-job": [100, 2000]},
}


@pytest.fixture
def spool() -> Path:
    d = Path(os.environ["GPUTAB_SPOOL"])
    d.mkdir(parents=True, exist_ok=True)
    return d


def run_two_ticks(fake_nvml, driver_factory, plant, timeout: float = 10.0) -> tuple[dict, object]:
    """Start a recorder, call ``plant()`` (which writes the spool files), then tick twice."""
    fake_nvml.write(Scenario(gpus=[GpuSpec()]))
    d = driver_factory(fake_nvml.env())
    first = d.ask("start", timeout=timeout)
    assert "exception" not in first, first.get("traceback")
    plant()
    (Path(os.environ["GPUTAB_SPOOL"]) / "good.json").write_text(json.dumps({**GOOD, "started": time.time()}))
    time.sleep(READ_EVERY + 0.05)  # the next tick reads the spool
    t = d.ask("step", timeout=timeout)
    assert "exception" not in t, t.get("traceback")
    t = d.ask("step", timeout=timeout)
    assert "exception" not in t, t.get("traceback")
    return t, d


def test_unreadable_spool_files_are_skipped(fake_nvml, driver_factory, spool, db_path):
    def plant():
        (spool / "a.json").write_text("{not json")
        (spool / "b.json").write_text(json.dumps({"v": 1, "counts": {"bad-types": ["a", None]}}))
        (spool / "c.json").write_text(json.dumps({"v": 1, "counts": {"negative": [-5, -10]}}))
        (spool / "d.json").mkdir()
        (spool / "e.json").write_bytes(b"\xff\xfe" * 10)
        (spool / "f.json").write_text(json.dumps([1, 2]))
        (spool / "g.json").write_text(json.dumps({"v": 1, "counts": {"short": [1]}}))

    t, d = run_two_ticks(fake_nvml, driver_factory, plant)
    assert t["recording"] == "ok"
    assert "good-job" in t["jobs"], t["jobs"]
    assert not {"bad-types", "negative", "short"} & set(t["jobs"])
    assert d.close()["ok"]
    c = committed(db_path)
    assert "good-job" in c["jobs"] and c["end_reason"] == "clean"


def test_one_bad_pair_beside_a_good_one_does_not_stop_the_recorder(fake_nvml, driver_factory, spool, db_path):
    def plant():
        (spool / "mixed.json").write_text(json.dumps({"v": 1, "counts": {"fine": [1, 1], "bad": ["x", 1]}}))

    t, d = run_two_ticks(fake_nvml, driver_factory, plant)
    assert "good-job" in t["jobs"] and "fine" in t["jobs"]
    assert d.close()["ok"]


def test_an_absurd_count_does_not_stop_the_recorder(fake_nvml, driver_factory, spool, db_path):
    fake_nvml.write(Scenario(gpus=[GpuSpec()]))
    d = driver_factory(fake_nvml.env())
    first = d.ask("start", timeout=10)
    assert "exception" not in first, first["exception"]
    (spool / "huge.json").write_text(json.dumps({"v": 1, "counts": {"huge": [10**30, 1]}}))
    for _ in range(3):
        time.sleep(READ_EVERY / 2)  # past the commit interval, so every step commits; the spool is read
        t = d.ask("step", timeout=10)
        assert "exception" not in t, t["exception"]
    assert d.close()["ok"]
    assert committed(db_path)["end_reason"] == "clean"


def test_a_fifo_in_the_spool_does_not_hang_the_recorder(fake_nvml, driver_factory, spool, db_path):
    t, d = run_two_ticks(fake_nvml, driver_factory, lambda: os.mkfifo(spool / "trap.json"), timeout=5.0)
    assert "good-job" in t["jobs"]
    assert d.close()["ok"]


def test_links_in_the_spool_are_not_followed_nor_counted_twice(tmp_path):
    """A symlink to a report elsewhere, and a second name (hard link) of a report: neither counts."""
    from spoolkit import demo_recorder, job, report_once, steps

    spool = tmp_path / "spool"
    elsewhere = tmp_path / "elsewhere"
    rec = demo_recorder(tmp_path / "g.db", spool)
    rec.start()
    report_once(spool, samples=10, tag="notebook")
    (real,) = spool.iterdir()
    report_once(elsewhere, samples=1000, tag="notebook")
    (outside,) = elsewhere.iterdir()
    (spool / "sym.json").symlink_to(outside)
    os.link(real, spool / "second-name.json")
    steps(rec, 2)
    rec.close()
    assert job(tmp_path / "g.db", 1, "notebook") is None  # both names of the linked file refused, the link unread
    reasons = {r["reason"] for r in rec.reports.rejected_rows()}
    assert reasons == {"linked"}
