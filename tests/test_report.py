"""``gputab.report``: cheap, light, durable in the spool, counted once by the recorder, for the right job."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from gputab.config.settings import Config
from gputab.progress.spool import STALE_SECONDS, SpoolReader
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DemoBackend, FakeClock
from gputab.store import Store

TRAIN = textwrap.dedent("""
    import sys, gputab
    for _ in range(int(sys.argv[1])):
        gputab.report(samples=32, tokens=65536)
    gputab.report(samples=5, tag="other-job")
""")


def _run_trainer(n: int, **env: str) -> None:
    subprocess.run([sys.executable, "-c", TRAIN, str(n)], check=True, timeout=60, env={**os.environ, **env})


def _recorder(tmp_path, clock=None) -> Recorder:
    clock = clock or FakeClock()
    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall),
        Store(tmp_path / "g.db"),
        Config(),
        clock=clock,
        wall_clock=clock.wall,
        spool=tmp_path / "spool",
    )
    rec.fake_clock = clock
    return rec


def _steps(rec: Recorder, n: int) -> None:
    for _ in range(n):
        rec.fake_clock.advance(1.0)
        rec.step()


def test_import_and_report_stay_light():
    code = (
        "import sys, gputab; gputab.report(samples=1, tag='t'); "
        "print(','.join(k for k in sys.modules if k.startswith(('textual', 'sqlite', 'gputab.store', "
        "'gputab.cost.ledger', 'pynvml', 'psutil', 'platformdirs', 'click'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_spool_is_sticky_world_writable_and_files_readable(tmp_path):
    _run_trainer(3, GPUTAB_TAG="job-a")
    spool = tmp_path / "spool"
    assert stat.S_IMODE(spool.stat().st_mode) == 0o1777
    (f,) = [p for p in spool.iterdir()]
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    doc = json.loads(f.read_text())
    assert doc["counts"] == {"job-a": [96, 3 * 65536], "other-job": [5, 0]}
    assert doc["uid"] == os.getuid() and not any(p.name.startswith(".") for p in spool.iterdir())


def test_reports_from_a_child_reach_the_running_recorder(tmp_path):
    rec = _recorder(tmp_path)
    rec.start()
    _steps(rec, 2)
    _run_trainer(4, GPUTAB_TAG="eval-mmlu")
    _steps(rec, 2)
    assert rec.ledger.jobs["eval-mmlu"].samples == 128
    _run_trainer(1, GPUTAB_TAG="eval-mmlu")  # the same job from a second process adds up
    _steps(rec, 2)
    rec.close()
    (row,) = [j for j in Store.open(tmp_path / "g.db").jobs(1) if j["tag"] == "eval-mmlu"]
    assert row["samples"] == 160 and row["cost_usd"] > 0
    progress = (
        Store.open(tmp_path / "g.db")
        .db.execute("SELECT sum(samples), count(*) FROM progress WHERE tag = 'eval-mmlu'")
        .fetchone()
    )
    assert progress == (160, 2)


def test_a_report_with_no_tag_names_its_process(tmp_path):
    """No tag and no GPUTAB_TAG: the report names its pid (the recorder charges it to that process's job)."""
    child = textwrap.dedent("""
        import gputab, os, sys
        gputab.report(samples=7)
        print(os.getpid(), flush=True)
    """)
    reader = SpoolReader(tmp_path / "spool")
    reader.baseline()
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    pid = int(out.stdout)
    reports = reader.sweep(1.0, [])
    assert [(r.tag, r.samples, r.pid, r.owner_uid) for r in reports] == [("", 7, pid, os.getuid())]


def test_reader_counts_only_growth_and_prunes_old_files_it_read(tmp_path):
    spool = tmp_path / "spool"
    reader = SpoolReader(spool)
    reader.baseline()
    _run_trainer(2, GPUTAB_TAG="a")
    assert sorted((r.tag, r.samples) for r in reader.sweep(1.0, [])) == [("a", 64), ("other-job", 5)]
    assert reader.sweep(1.0, []) == [] and reader.read_watched([]) == []
    (name,) = reader.files
    doc = json.loads((spool / name).read_text())
    doc["counts"]["a"] = [100, 2 * 65536]
    (spool / name).write_text(json.dumps(doc))
    assert [(r.tag, r.samples, r.tokens) for r in reader.read_watched([])] == [("a", 36, 0)]
    assert reader.prune(time.time(), 1.0) == 0  # recent
    old = time.time() - STALE_SECONDS - 10
    os.utime(spool / name, (old, old))
    assert reader.prune(time.time(), 1.0) == 0  # changed since it was read (its mtime)
    reader.read_watched([])
    assert reader.prune(time.time(), 1.0) == 1 and not (spool / name).exists()
    (spool / name).write_text(json.dumps(doc))  # the same file again: nothing new in it
    assert reader.sweep(1.0, []) == []


def test_unwritable_spool_warns_once_and_keeps_counts(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    code = textwrap.dedent(f"""
        import gputab, gputab.report as r, os
        for _ in range(3):
            gputab.report(samples=1, tag="x")
            r.flush()
        os.environ["GPUTAB_SPOOL"] = {str(tmp_path / "later")!r}
        print(r.flush())
    """)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "GPUTAB_SPOOL": str(blocker / "spool")},
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("cannot write to the spool") == 1
    assert out.stdout.strip() == "True"
    (f,) = (tmp_path / "later").iterdir()
    assert json.loads(f.read_text())["counts"] == {"x": [3, 0]}


def test_bad_arguments_raise():
    import gputab

    with pytest.raises(ValueError):
        gputab.report(samples=-1, tag="t")
    with pytest.raises(ValueError):
        gputab.report(samples=1.5, tag="t")
    with pytest.raises(ValueError):
        gputab.report(samples=1, tag="two\nlines")


def test_reserved_tags_are_refused_in_a_real_process(tmp_path):
    code = textwrap.dedent("""
        import gputab
        for tag in ("(idle)", " (unobserved)", "(mine"):
            try:
                gputab.report(samples=1, tag=tag)
            except ValueError as exc:
                print("refused", "reserved" in str(exc))
        gputab.report(samples=1, tag="fine")
        gputab.report.flush()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:3] == ["refused True"] * 3
    (f,) = (tmp_path / "spool").iterdir()
    assert json.loads(f.read_text())["counts"] == {"fine": [1, 0]}
