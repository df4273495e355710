"""A report counts only for a job its writer runs (issue 12, finding 3), with a real second user (``nobody``).

The writer is the spool file's owner as the file system says, never the uid written inside. Rejected reports
are kept with the session and their reason is shown by `gputab show` (text and JSON) and Prometheus.
"""

from __future__ import annotations

import json
import os
import subprocess

from prometheus_client import CollectorRegistry, generate_latest

from gputab.config.settings import Config
from gputab.publish.metrics import TickCollector
from gputab.recording.recorder import Recorder
from gputab.sampling.backend import Backend
from gputab.sampling.demo import FakeClock
from gputab.sampling.host import HostInspector
from gputab.sampling.snapshot import GpuSample, ProcessSample, Snapshot
from gputab.store import Store
from spoolkit import NOBODY, Stepper, job, reporter, shared_spool_fixture, steps  # noqa: F401
from support import gputab_cmd


class HostGpu(Backend):
    """One simulated GPU running real host processes (``pids``), explained by the real process inspector."""

    name = "test"

    def __init__(self, clock: FakeClock, pids: list[int]) -> None:
        self.clock = clock
        self.pids = pids

    def poll(self) -> Snapshot:
        gpu = GpuSample(
            index=0,
            uuid="GPU-test-0",
            name="NVIDIA H100 80GB HBM3",
            utilization_pct=80.0,
            memory_used_bytes=8 << 30,
            memory_total_bytes=80 << 30,
            power_w=400.0,
        )
        procs = tuple(ProcessSample(pid=p, gpu_index=0, used_memory_bytes=1 << 30, sm_pct=40.0) for p in self.pids)
        return Snapshot(mono=self.clock(), wall=self.clock.wall(), gpus=(gpu,), processes=procs)

    def inspector(self) -> HostInspector:
        return HostInspector()


FORGE = """
    # Write a report file by hand, claiming to be root and naming someone else's pid.
    doc = {{"v": 1, "host": {host!r}, "pid": {pid}, "uid": 0, "started": time.time(), "updated": time.time(),
            "counts": {{"": [10**15, 0]}}}}
    gputab.report.write_spool_file(gputab.report.spool_dir(), "forged-{pid}.json", doc)
"""


def test_reports_count_only_for_jobs_their_file_owner_runs(shared_spool, tmp_path):
    spool = shared_spool
    victim = Stepper(spool, env={"GPUTAB_TAG": "victim"})  # root's training job
    theirs = Stepper(spool, user=NOBODY, env={"GPUTAB_TAG": "shared-eval"})  # nobody's own job
    clock = FakeClock()
    db = tmp_path / "g.db"
    rec = Recorder(
        HostGpu(clock, [victim.pid, theirs.pid]), Store(db), Config(), clock=clock, wall_clock=clock.wall, spool=spool
    )
    rec.fake_clock = clock
    rec.start()
    steps(rec, 2)
    victim.report(100, "victim")
    theirs.report(50, "shared-eval")
    theirs.report(5, None)  # no tag: counted for the job of its own process
    reporter("gputab.report(samples=10**15, tag='victim'); gputab.report.flush()", spool, NOBODY)
    reporter(FORGE.format(host=os.uname().nodename, pid=victim.pid), spool, NOBODY)
    forged = spool / f"forged-{victim.pid}.json"
    assert forged.stat().st_uid == NOBODY.pw_uid and json.loads(forged.read_text())["uid"] == 0
    steps(rec, 2)
    tick = rec.step()
    rec.close()
    victim.stop()
    theirs.stop()

    assert job(db, 1, "victim")["samples"] == 100
    assert job(db, 1, "shared-eval")["samples"] == 55
    with Store.open(db, readonly=True) as store:
        owners = dict(store.db.execute("SELECT tag, group_concat(DISTINCT owner_uid) FROM progress GROUP BY tag"))
        rejected = {r["reason"]: r for r in store.rejected_reports(1)}
    assert owners == {"victim": "0", "shared-eval": str(NOBODY.pw_uid)}  # the file's owner, not the uid inside
    assert rejected["not_job_owner"]["owner_uid"] == NOBODY.pw_uid
    assert rejected["not_job_owner"]["samples"] == 10**15 and rejected["not_job_owner"]["reports"] == 1
    assert rejected["not_pid_owner"]["owner_uid"] == NOBODY.pw_uid and rejected["not_pid_owner"]["reports"] == 1

    env = {**os.environ, "GPUTAB_DB": str(db)}
    doc = json.loads(
        subprocess.run(
            [*gputab_cmd(), "show", "1", "--json"], capture_output=True, text=True, env=env, check=True
        ).stdout
    )
    assert {(r["reason"], r["owner"], r["reports"]) for r in doc["rejected_reports"]} == {
        ("not_job_owner", "nobody", 1),
        ("not_pid_owner", "nobody", 1),
    }
    text = subprocess.run([*gputab_cmd(), "show", "1"], capture_output=True, text=True, env=env, check=True).stdout
    assert "2 reports rejected" in text and "runs no process of that job" in text
    assert "names a process its owner does not own" in text

    registry = CollectorRegistry()
    collector = TickCollector("box")
    registry.register(collector)
    collector.update(tick)
    metrics = generate_latest(registry).decode()
    assert 'gputab_rejected_reports_total{hostname="box",reason="not_job_owner"} 1.0' in metrics
    assert 'gputab_rejected_reports_total{hostname="box",reason="too_large"} 0.0' in metrics


def test_root_and_the_recorders_own_user_may_report_for_any_job(shared_spool, tmp_path):
    from spoolkit import demo_recorder

    rec = demo_recorder(tmp_path / "g.db", shared_spool)
    rec.start()
    reporter("gputab.report(samples=9, tag='notebook'); gputab.report.flush()", shared_spool)  # root, no process
    reporter("gputab.report(samples=9, tag='eval-mmlu'); gputab.report.flush()", shared_spool, NOBODY)
    steps(rec, 2)
    rec.close()
    assert job(tmp_path / "g.db", 1, "notebook")["samples"] == 9
    assert job(tmp_path / "g.db", 1, "eval-mmlu")["samples"] is None  # a demo job; nobody runs none of it
    with Store.open(tmp_path / "g.db", readonly=True) as store:
        assert [(r["reason"], r["owner_uid"]) for r in store.rejected_reports(1)] == [("not_job_owner", NOBODY.pw_uid)]
