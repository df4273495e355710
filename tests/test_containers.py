"""Containers: NVML's host PIDs seen from a PID namespace that lacks them.

gputab runs under ``unshare --pid --fork --mount-proc`` (a real child PID namespace with its own /proc, as in a
container without ``--pid=host``) against the fake NVML, which lists the host PIDs of real processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from fakenvml import GpuSpec, Proc, Scenario
from gputab.live.frame import Frame
from gputab.sampling.containers import INIT_PID_NS, UNATTRIBUTED, PidVisibility
from gputab.tui.widgets.header import header_text

SLEEP = "import time; time.sleep(60)"


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    return r.returncode == 0


needs_unshare = pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare(1) to make a PID namespace")


def _sleeper(tag: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SLEEP], env={**os.environ, "GPUTAB_TAG": tag})


def _gpu_with(*pids: int) -> Scenario:
    return Scenario(gpus=[GpuSpec(power_mw=300_000)], processes=[Proc(gpu=0, pid=p) for p in pids])


def _gputab(*args: str) -> list[str]:
    return [sys.executable, "-m", "gputab", *args]


@needs_unshare
def test_host_pids_a_container_cannot_see_are_unattributed_and_said_once(fake_nvml):
    host_job = _sleeper("host-job")
    try:
        fake_nvml.write(_gpu_with(host_job.pid))
        ns = ["unshare", "--pid", "--fork", "--mount-proc"]
        out = subprocess.run(
            ns + _gputab("snapshot", "--json", "--over", "0.2"),
            env=fake_nvml.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        (proc,) = doc["processes"]
        assert proc["pid"] == host_job.pid  # shown under its host PID
        assert (proc["tag"], proc["tag_source"]) == (UNATTRIBUTED, "hidden")
        assert not proc["tag"].startswith("untagged:")  # no user's untagged job
        (note,) = doc["host_notes"]
        assert str(host_job.pid) in note and "--pid=host" in note
        (job,) = doc["jobs"]
        assert job["tag"] == UNATTRIBUTED and job["burn_rate_usd_per_hour"] > 0  # still charged

        text = subprocess.run(
            ns + _gputab("snapshot", "--over", "0.2"), env=fake_nvml.env(), capture_output=True, text=True, timeout=60
        )
        assert text.returncode == 0, text.stderr
        assert text.stderr.count("cannot see") == 1 and "--pid=host" in text.stderr

        # On the host (same scenario, no namespace) the process is seen and tagged as usual.
        host = subprocess.run(
            _gputab("snapshot", "--json", "--over", "0"),
            env=fake_nvml.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        doc = json.loads(host.stdout)
        assert doc["processes"][0]["tag"] == "host-job" and doc["host_notes"] == []
    finally:
        host_job.kill()
        host_job.wait()


@needs_unshare
def test_record_says_so_in_its_start_message(fake_nvml):
    host_job = _sleeper("host-job")
    try:
        fake_nvml.write(_gpu_with(host_job.pid))
        rec = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", *_gputab("record", "--interval", "0.2")],
            env=fake_nvml.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)
        for child in psutil.Process(rec.pid).children():  # the recorder, PID 1 of its namespace
            child.send_signal(signal.SIGINT)
        _, err = rec.communicate(timeout=30)
        assert err.count("cannot see") == 1 and "--pid=host" in err, err
    finally:
        host_job.kill()
        host_job.wait()


def _host_pid_of(marker: str, timeout: float = 10.0) -> int:
    """The host PID of the process whose environment holds ``marker`` (root reads every environment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if marker.encode() in Path(f"/proc/{name}/environ").read_bytes().split(b"\0"):
                        return int(name)
                except OSError:
                    continue
        time.sleep(0.05)
    raise AssertionError(f"no process with {marker}")


@needs_unshare
def test_a_view_of_the_host_proc_attributes_the_containers_own_processes(fake_nvml, tmp_path):
    """NSpid in the host's /proc maps the container's processes back; the host's own stay unattributed."""
    host_job = _sleeper("host-job")
    inner_tag = f"inner-{uuid.uuid4().hex[:8]}"
    hp, go = tmp_path / "hostproc", tmp_path / "go"
    hp.mkdir()
    inner = (
        f"GPUTAB_TAG={inner_tag} {sys.executable} -c '{SLEEP}' & "
        f"while [ ! -e {go} ]; do sleep 0.05; done; "
        f"GPUTAB_HOST_PROC={hp} {sys.executable} -m gputab snapshot --json --over 0.2; kill \\$!"
    )
    outer = f'mount --bind /proc {hp} && exec unshare --pid --fork --mount-proc sh -c "{inner}"'
    box = subprocess.Popen(
        ["unshare", "--mount", "sh", "-c", outer],
        env=fake_nvml.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        inner_pid = _host_pid_of(f"GPUTAB_TAG={inner_tag}")
        fake_nvml.write(_gpu_with(inner_pid, host_job.pid))
        go.touch()
        out, err = box.communicate(timeout=60)
        assert box.returncode == 0, err
        doc = json.loads(out)
        procs = {p["pid"]: p for p in doc["processes"]}
        assert (procs[inner_pid]["tag"], procs[inner_pid]["tag_source"]) == (inner_tag, "env")
        assert (procs[host_job.pid]["tag"], procs[host_job.pid]["tag_source"]) == (UNATTRIBUTED, "hidden")
        (note,) = doc["host_notes"]
        assert f"host PIDs {host_job.pid}" in note and "1 found through GPUTAB_HOST_PROC" in note
    finally:
        box.kill()
        box.wait()
        host_job.kill()
        host_job.wait()


def _fake_proc(root: Path, ns: str, pids: list[int]) -> Path:
    (root / "self" / "ns").mkdir(parents=True, exist_ok=True)
    link = root / "self" / "ns" / "pid"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(ns)
    for p in pids:
        (root / str(p)).mkdir(exist_ok=True)
    return root


def test_in_the_host_namespace_a_pid_must_stay_missing_for_two_polls(tmp_path):
    """A process that just exited is not a container: only a PID missing twice in a row counts as hidden."""
    vis = PidVisibility(_fake_proc(tmp_path, INIT_PID_NS, [10]), host_proc=None)
    vis.observe([10, 20])
    assert not vis.hidden(20) and vis.note is None
    vis.observe([10, 20])
    assert vis.hidden(20) and not vis.hidden(10) and "20" in vis.note
    vis.observe([10])
    assert not vis.hidden(20) and vis.note is not None  # the note stays: it is said once, for the run


def test_in_a_child_namespace_a_missing_pid_is_hidden_at_once(tmp_path):
    vis = PidVisibility(_fake_proc(tmp_path, "pid:[4026532999]", [1]), host_proc=None)
    vis.observe([1, 4242])
    assert vis.hidden(4242) and not vis.hidden(1) and "--pid=host" in vis.note


def test_the_header_says_what_is_wrong():
    note = "NVML lists GPU processes this PID namespace cannot see (host PIDs 7): fix it"
    text = header_text(Frame(host="box", state="recording", host_notes=(note,))).plain
    first = text.splitlines()[0]
    assert "⚠ NVML lists GPU processes this PID namespace cannot see (host PIDs 7)" in first
    assert "⚠" not in header_text(Frame(host="box", state="recording")).plain


def test_gvisor_is_detected_and_said(tmp_path):
    from gputab.sampling.containers import sandboxed_kernel

    root = _fake_proc(tmp_path, INIT_PID_NS, [])
    (root / "version").write_text("Linux version 6.8.0-45-generic (buildd@lcy02) #45-Ubuntu SMP\n")
    assert sandboxed_kernel(root) is None and PidVisibility(root).sandbox_note is None
    (root / "version").write_text("Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016\n")
    assert sandboxed_kernel(root) == "gVisor"
    assert "gVisor" in PidVisibility(root).sandbox_note
