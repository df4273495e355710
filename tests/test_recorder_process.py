"""``gputab record`` as a real subprocess: signals, kill -9, one writer, and a database that fails under it."""

from __future__ import annotations

import json
import os
import re
import resource
import selectors
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from gputab.store import Store
from support import gputab_cmd

INTERVAL = 0.2
COMMIT = 0.4


@pytest.fixture
def config(tmp_path):
    """A config with a short commit interval (GPUTAB_CONFIG points here for every subprocess)."""
    path = Path(os.environ["GPUTAB_CONFIG"])
    path.write_text(f"[recorder]\ninterval = {INTERVAL}\ncommit_interval = {COMMIT}\nseries_interval = 1.0\n")
    return path


class Rec:
    """A running ``gputab record`` whose output lines are read as they come."""

    def __init__(self, *args: str, env: dict | None = None, preexec_fn=None) -> None:
        self.proc = subprocess.Popen(
            [*gputab_cmd(), *args, "record"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=preexec_fn,
        )
        self.out: list[str] = []
        self.err: list[str] = []

    def wait_for(self, pattern: str, timeout: float = 20.0, stream: str = "out") -> re.Match:
        """Read lines until one (of stdout or stderr) matches ``pattern``."""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ, self.out)
        sel.register(self.proc.stderr, selectors.EVENT_READ, self.err)
        deadline = time.monotonic() + timeout
        target = self.out if stream == "out" else self.err
        try:
            for line in list(target):
                if m := re.search(pattern, line):
                    return m
            while time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.2):
                    line = key.fileobj.readline()
                    if not line:
                        continue
                    key.data.append(line)
                    if key.data is target and (m := re.search(pattern, line)):
                        return m
                if self.proc.poll() is not None and not sel.select(timeout=0):
                    break
        finally:
            sel.close()
        raise AssertionError(f"no line matching {pattern!r}; stdout={self.out} stderr={self.err}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> str:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        self.out += out.splitlines(keepends=True)
        self.err += err.splitlines(keepends=True)
        return "".join(self.out)


def cli_json(*args: str, env: dict | None = None):
    r = subprocess.run([*gputab_cmd(), *args, "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    return doc["sessions"] if "sessions" in doc else doc  # sessions --json lists them under "sessions"


def _check_session(show: dict) -> None:
    """Jobs plus (idle) and (unobserved) add up to the session total."""
    total = show["total"]["cost_usd"]
    assert total > 0
    assert sum(j["cost_usd"] for j in show["jobs"]) == pytest.approx(total, rel=1e-9)


def test_sigterm_closes_clean_with_the_ledger_totals(config):
    rec = Rec("--demo")
    sid = int(rec.wait_for(r"recording session (\d+)").group(1))
    time.sleep(2.0)
    out = rec.stop(signal.SIGTERM)
    assert rec.proc.returncode == 0, rec.err
    m = re.search(r"session (\d+) closed \(clean, SIGTERM\) after [\d.]+ s, (\d+) ticks, total \$([\d.]+)", out)
    assert m, out
    show = cli_json("--demo", "show", "last")
    assert show["session"]["id"] == sid == int(m.group(1))
    assert show["session"]["end_reason"] == "clean"
    assert show["session"]["ticks"] == int(m.group(2)) >= 5
    assert show["total"]["cost_usd"] == pytest.approx(float(m.group(3)), abs=1e-6)
    _check_session(show)
    tags = {j["tag"] for j in show["jobs"]}
    assert {"llama3-8b-lora", "eval-mmlu", "(idle)"} <= tags
    assert all(j["cost_usd"] > 0 for j in show["jobs"] if j["tag"] in ("llama3-8b-lora", "eval-mmlu"))


def test_sighup_closes_the_session_with_reason_signal(config):
    rec = Rec("--demo")
    rec.wait_for(r"recording session")
    time.sleep(1.0)
    out = rec.stop(signal.SIGHUP)
    assert rec.proc.returncode == 0 and "closed (signal, SIGHUP)" in out
    (s,) = cli_json("--demo", "sessions")
    assert s["end_reason"] == "signal" and s["end_detail"] == "SIGHUP"
    assert s["ticks"] >= 3 and s["cost_usd"] > 0


def test_kill_9_leaves_a_crashed_session_that_lost_at_most_one_commit(config):
    rec = Rec("--demo")
    rec.wait_for(r"recording session")
    time.sleep(1.5)
    # A viewer's reading while it runs: a committed figure must never be lost afterwards.
    seen = cli_json("--demo", "show", "last")
    assert seen["session"]["end_reason"] == "recording"
    time.sleep(1.5)
    killed_at = time.time()
    rec.proc.send_signal(signal.SIGKILL)
    rec.proc.wait(timeout=10)
    (s,) = cli_json("--demo", "sessions")  # any command that opens the database closes the orphan
    assert s["end_reason"] == "crashed"
    # The last committed tick, exactly (the public times are whole seconds): what the crash kept.
    from gputab.config.paths import default_db

    conn = sqlite3.connect(f"file:{default_db(True)}?mode=ro", uri=True)
    try:
        (last_wall,) = conn.execute("SELECT last_wall FROM sessions WHERE id = ?", [s["id"]]).fetchone()
    finally:
        conn.close()
    lost = killed_at - last_wall
    assert lost <= COMMIT + INTERVAL + 1.0, f"lost {lost:.2f} s"
    show = cli_json("--demo", "show", str(s["id"]))
    assert show["total"]["cost_usd"] >= seen["total"]["cost_usd"] > 0
    for job in seen["jobs"]:
        after = next(j for j in show["jobs"] if j["tag"] == job["tag"])
        assert after["cost_usd"] >= job["cost_usd"]
    _check_session(show)


def _committed_ticks() -> int:
    from gputab.config.paths import default_db

    conn = sqlite3.connect(f"file:{default_db(True)}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT ticks FROM sessions ORDER BY id DESC LIMIT 1").fetchone()[0]
    finally:
        conn.close()


def test_readers_mid_run_never_stop_the_recorders_commits(config):
    """A reader (here `sessions`, in another process) must not take itself for the last connection: a recorder that
    had lost its locks (a file of the database opened and closed by gputab itself) had its log deleted under it."""
    rec = Rec("--demo")
    rec.wait_for(r"recording session")
    time.sleep(1.0)
    for _ in range(2):
        cli_json("--demo", "sessions")
        before = _committed_ticks()
        time.sleep(1.2)  # three commit intervals
        assert _committed_ticks() > before
    rec.stop()
    assert rec.proc.returncode == 0


def test_a_second_recorder_is_refused_naming_the_first(config):
    first = Rec("--demo")
    first.wait_for(r"recording session (\d+)")
    second = subprocess.run([*gputab_cmd(), "--demo", "record"], capture_output=True, text=True, timeout=30)
    assert second.returncode == 1
    assert f"pid {first.proc.pid} on " in second.stderr and "since 20" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    first.stop()
    assert first.proc.returncode == 0
    assert len(cli_json("--demo", "sessions")) == 1


def _limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return apply


def test_full_disk_keeps_the_loop_alive_and_loses_nothing(config, tmp_path):
    db = tmp_path / "full" / "gputab.db"
    Store.open(db).close()
    # Room for the session row but soon not for the WAL: writes then fail with EFBIG, like a full disk.
    rec = Rec("--demo", "--db", str(db), preexec_fn=_limit_file_size(40_000))
    rec.wait_for(r"recording")
    rec.wait_for(r"database (full|error)", stream="err", timeout=30)
    assert rec.proc.poll() is None, "the loop stopped"
    time.sleep(1.0)
    resource.prlimit(rec.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    rec.wait_for(r"database writable again: wrote (\d+) held ticks", stream="err", timeout=30)
    out = rec.stop()
    assert rec.proc.returncode == 0, "".join(rec.err)
    ticks = int(re.search(r"(\d+) ticks", out.splitlines()[-1]).group(1))
    (s,) = cli_json("--db", str(db), "sessions")
    assert s["end_reason"] == "clean" and s["ticks"] == ticks
    assert "".join(rec.err).count("database full") + "".join(rec.err).count("database error") == 1  # said once


def test_locked_database_holds_figures_until_released(config, tmp_path):
    db = tmp_path / "gputab.db"
    rec = Rec("--demo", "--db", str(db))
    rec.wait_for(r"recording session")
    import sqlite3

    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        rec.wait_for(r"database locked", stream="err", timeout=20)
        time.sleep(1.0)
        assert rec.proc.poll() is None
    finally:
        other.execute("ROLLBACK")
        other.close()
    rec.wait_for(r"database writable again", stream="err", timeout=20)
    out = rec.stop()
    ticks = int(re.search(r"(\d+) ticks", out.splitlines()[-1]).group(1))
    (s,) = cli_json("--db", str(db), "sessions")
    assert s["end_reason"] == "clean" and s["ticks"] == ticks


def test_read_only_database_keeps_the_loop_alive_until_writable(config, tmp_path):
    """Read-only for the recorder: chmod for a normal user; for root (whom chmod does not stop), a tmpfs
    remounted read-only."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    root = os.geteuid() == 0
    if root:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mnt)], capture_output=True, text=True
        )
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs to make a read-only database as root: {r.stderr.strip()}")
    db = mnt / "gputab.db"
    try:
        Store.open(db).close()  # an existing database, with its lock file
        assert (mnt / "gputab.db.lock").exists()
        if root:
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        else:
            os.chmod(db, 0o400)
            os.chmod(mnt, 0o500)
        rec = Rec("--demo", "--db", str(db))
        rec.wait_for(r"recording a new session \(not written yet\)", timeout=60)
        # Said at the first commit the file refuses; on a loaded box (2 cores shared) that has taken over 20 s.
        rec.wait_for(r"database read-only", stream="err", timeout=60)
        time.sleep(1.0)
        assert rec.proc.poll() is None
        if root:
            subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        else:
            os.chmod(mnt, 0o700)
            os.chmod(db, 0o600)
        rec.wait_for(r"database writable again: wrote (\d+) held ticks", stream="err", timeout=20)
        out = rec.stop()
        assert rec.proc.returncode == 0, "".join(rec.err)
        ticks = int(re.search(r"(\d+) ticks", out.splitlines()[-1]).group(1))
        (s,) = cli_json("--db", str(db), "sessions")
        assert s["end_reason"] == "clean" and s["ticks"] == ticks >= 3
    finally:
        if root:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_records_the_fake_nvml_driver(config, fake_nvml):
    from fakenvml import GIB, GpuSpec, Proc, Scenario

    child = subprocess.Popen(["sleep", "60"], env={**os.environ, "GPUTAB_TAG": "nvml-job"})
    try:
        fake_nvml.write(
            Scenario(
                gpus=[
                    GpuSpec(
                        name="NVIDIA H100 80GB HBM3", uuid="GPU-aaaa", util=80, mem_used=10 * GIB, power_mw=400_000
                    ),
                    GpuSpec(name="NVIDIA A100-SXM4-80GB", uuid="GPU-bbbb"),
                ],
                processes=[Proc(0, child.pid, used_bytes=10 * GIB)],
            )
        )
        rec = Rec(env=fake_nvml.env())
        rec.wait_for(r"recording session \d+ .*2 GPUs: 0 H100-SXM")
        time.sleep(2.0)
        out = rec.stop()
        assert rec.proc.returncode == 0, "".join(rec.err)
        total = float(re.search(r"total \$([\d.]+)", out).group(1))
        show = cli_json("show", "last", env=fake_nvml.env())
        assert show["session"]["backend"] == "nvml" and show["session"]["end_reason"] == "clean"
        assert show["total"]["cost_usd"] == pytest.approx(total, abs=1e-6)
        jobs = {j["tag"]: j for j in show["jobs"]}
        assert jobs["nvml-job"]["cost_usd"] > 0 and jobs["(idle)"]["cost_usd"] > 0
        assert [g["uuid"] for g in show["gpus"]] == ["GPU-aaaa", "GPU-bbbb"]
        _check_session(show)
    finally:
        child.kill()
        child.wait()
