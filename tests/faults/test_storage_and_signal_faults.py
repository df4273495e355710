"""Faults around the process and its database, on ``gputab record`` itself: disk full, a lock held by another
program, a read-only database, a corrupted config, SIGSTOP/SIGCONT.

The contract in every case: the recorder keeps running, says on stderr what is wrong, holds its figures in
memory while it cannot write, writes them all once it can, and what it committed before is never lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from faultkit import committed, wait_until

from fakenvml import GpuSpec, Scenario

CLOSED = "closed ("


def two_idle_gpus(fake_nvml) -> None:
    fake_nvml.write(Scenario(gpus=[GpuSpec(util=0, power_mw=80_000) for _ in range(2)]))


def final_ticks(rec) -> int:
    """The tick count the recorder printed when it closed the session."""
    line = next(ln for ln in rec.out_lines + rec.lines if CLOSED in ln)
    return int(line.split(" ticks")[0].rsplit(" ", 1)[1])


def wait_committed(db: Path, ticks: int, timeout: float = 15.0) -> dict:
    return wait_until(
        lambda: (c := committed(db)) is not None and c["ticks"] >= ticks and c, timeout, f"{ticks} committed ticks"
    )


def assert_clean_end(rec, db: Path) -> dict:
    assert rec.stop() == 0, rec.stderr
    assert "Traceback" not in rec.stderr, rec.stderr
    c = committed(db)
    assert c["end_reason"] == "clean"
    assert c["ticks"] == final_ticks(rec), "every tick the recorder counted reached the database"
    return c


def _ignore_sigxfsz() -> None:
    # Past RLIMIT_FSIZE the kernel sends SIGXFSZ (default: kill); ignored, write() fails with EFBIG instead,
    # which SQLite reports as a full disk. An ignored disposition survives exec.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_disk_full_mid_session_holds_then_writes(fake_nvml, record_factory, db_path):
    """The file size limit stands in for a full disk (no privileges needed): every write to the DB fails."""
    two_idle_gpus(fake_nvml)
    rec = record_factory(fake_nvml.env(), preexec_fn=_ignore_sigxfsz)
    before = wait_committed(db_path, 3)
    p = psutil.Process(rec.proc.pid)
    _, hard = p.rlimit(resource.RLIMIT_FSIZE)
    p.rlimit(resource.RLIMIT_FSIZE, (1, hard))  # no file of the recorder may grow past one byte: disk full
    rec.wait_stderr("database full")
    assert rec.alive()
    stuck = committed(db_path)["ticks"]
    time.sleep(0.8)  # several commit intervals, all failing
    assert rec.alive()
    assert committed(db_path)["ticks"] == stuck, "nothing is half-written while the disk is full"
    assert stuck >= before["ticks"], "what was committed before the disk filled is still there"
    p.rlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space freed
    rec.wait_stderr("writable again")
    wait_committed(db_path, stuck + 3)
    assert_clean_end(rec, db_path)


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB tmpfs (a really full file system), where mount is permitted (root); skipped elsewhere."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({r.stderr.decode().strip() or 'not root'}); "
            f"the RLIMIT_FSIZE test covers disk full"
        )
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_on_a_real_full_filesystem(fake_nvml, record_factory, tiny_fs):
    two_idle_gpus(fake_nvml)
    db = tiny_fs / "gputab.db"
    rec = record_factory(fake_nvml.env(GPUTAB_DB=str(db)))
    wait_committed(db, 3)
    filler = tiny_fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # fill the file system to the last block
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)
    rec.wait_stderr("database full", timeout=20)
    assert rec.alive()
    filler.unlink()
    rec.wait_stderr("writable again", timeout=20)
    assert_clean_end(rec, db)


def test_database_locked_by_another_program(fake_nvml, record_factory, db_path):
    two_idle_gpus(fake_nvml)
    rec = record_factory(fake_nvml.env())
    wait_committed(db_path, 3)
    other = sqlite3.connect(db_path, isolation_level=None, timeout=10)
    other.execute("BEGIN EXCLUSIVE")  # e.g. a sqlite3 shell or a backup tool holding a write transaction
    try:
        rec.wait_stderr("database locked")
        held_at = committed(db_path)["ticks"]
        time.sleep(0.6)
        assert rec.alive()
    finally:
        other.execute("COMMIT")
        other.close()
    rec.wait_stderr("writable again")
    wait_committed(db_path, held_at + 3)
    assert_clean_end(rec, db_path)


def _modes_bind_me(tmp_path) -> bool:
    """True when file modes stop this process (not root, or root without CAP_DAC_OVERRIDE)."""
    probe = tmp_path / "mode-probe"
    probe.write_text("x")
    probe.chmod(0o444)
    try:
        with open(probe, "a"):
            return False
    except PermissionError:
        return True
    finally:
        probe.chmod(0o644)
        probe.unlink()


def test_database_locked_before_the_recorder_starts(fake_nvml, record_factory, db_path):
    """A backup holding the database when the recorder starts: it starts anyway and writes once it can."""
    two_idle_gpus(fake_nvml)
    first = record_factory(fake_nvml.env())
    wait_committed(db_path, 2)
    assert first.stop() == 0
    before = committed(db_path)
    other = sqlite3.connect(db_path, isolation_level=None, timeout=10)
    other.execute("BEGIN EXCLUSIVE")
    try:
        rec = record_factory(fake_nvml.env())
        rec.wait_stderr("database locked", timeout=15)
        time.sleep(0.5)
        assert rec.alive(), rec.stderr
    finally:
        other.execute("COMMIT")
        other.close()
    rec.wait_stderr("writable again", timeout=15)
    c = assert_clean_end(rec, db_path)
    assert c["id"] == before["id"] + 1


@pytest.fixture
def ro_switch(tmp_path):
    """(dir, make_ro, make_rw) for the database directory: chmod where file modes apply; as root (who ignores
    them) a tmpfs remounted read-only; skipped when neither is possible."""
    d = tmp_path / "rodb"
    d.mkdir()
    if _modes_bind_me(tmp_path):

        def ro():
            for f in d.iterdir():
                f.chmod(0o444)
            d.chmod(0o555)

        def rw():
            d.chmod(0o755)
            for f in d.iterdir():
                f.chmod(0o644)

        yield d, ro, rw
        rw()
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("root without permission to mount: file modes cannot make a file read-only for root")

    def ro():
        subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)

    def rw():
        subprocess.run(["mount", "-o", "remount,rw", str(d)], check=True)

    yield d, ro, rw
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_read_only_database(fake_nvml, record_factory, ro_switch):
    d, make_ro, make_rw = ro_switch
    db = d / "gputab.db"
    two_idle_gpus(fake_nvml)
    # A database someone made read-only (restored from a backup, another user's, a file system remounted
    # read-only after disk errors). A running recorder cannot be switched: its open descriptors keep write
    # access under chmod, and a remount is refused while files are open for writing. So the recorder starts on
    # the read-only database and is given write access later, which is also what a user would do.
    first = record_factory(fake_nvml.env(GPUTAB_DB=str(db)))
    wait_committed(db, 2)
    assert first.stop() == 0
    before = committed(db)
    make_ro()
    rec = record_factory(fake_nvml.env(GPUTAB_DB=str(db)))
    line = rec.wait_stderr("read-only")
    assert "held" in line or "holding" in line, line
    time.sleep(0.6)
    assert rec.alive(), rec.stderr
    make_rw()
    rec.wait_stderr("writable again", timeout=15)
    c = assert_clean_end(rec, db)
    assert c["id"] == before["id"] + 1, "the held session is written as a new session once possible"
    conn = sqlite3.connect(db)
    kept = conn.execute("SELECT ticks, end_reason FROM sessions WHERE id = ?", (before["id"],)).fetchone()
    conn.close()
    assert kept == (before["ticks"], "clean"), "the earlier session is untouched"


CORRUPT_CONFIGS = {
    "invalid TOML": b"[recorder\ninterval = 1\n",
    "binary garbage": bytes(range(256)) * 4,
    "wrong type": b"[recorder]\ninterval = 'fast'\n",
    "truncated write": b'[prices]\nmode = "own',
    "not UTF-8": b'[prices]\nmode = "\xff\xfe"\n',
}


@pytest.mark.parametrize("name", list(CORRUPT_CONFIGS))
def test_corrupted_config_refused_with_where_and_no_damage(fake_nvml, tmp_path, db_path, name, record_factory):
    two_idle_gpus(fake_nvml)
    cfg = tmp_path / "config.toml"
    first = record_factory(fake_nvml.env())
    wait_committed(db_path, 2)
    # Corrupting the file under a running recorder changes nothing: it read its config at start.
    good = cfg.read_bytes()
    cfg.write_bytes(CORRUPT_CONFIGS[name])
    time.sleep(0.3)
    assert first.alive()
    assert_clean_end(first, db_path)
    digest = hashlib.sha256(db_path.read_bytes()).hexdigest()

    r = subprocess.run(
        [sys.executable, "-m", "gputab", "record"], env=fake_nvml.env(), capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert str(cfg) in r.stderr, r.stderr
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == digest, "a refused start writes nothing"
    cfg.write_bytes(good)


def test_sigstop_sigcont_gap_goes_to_unobserved(fake_nvml, record_factory, db_path):
    two_idle_gpus(fake_nvml)
    rec = record_factory(fake_nvml.env())
    wait_committed(db_path, 3)
    os.kill(rec.proc.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    time.sleep(1.5)
    os.kill(rec.proc.pid, signal.SIGCONT)
    stopped = time.monotonic() - t0
    at = committed(db_path)["ticks"]
    wait_committed(db_path, at + 3)
    assert_clean_end(rec, db_path)
    r = subprocess.run(
        [sys.executable, "-m", "gputab", "show", "last", "--json"],
        env=fake_nvml.env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jobs = {j["tag"]: j for j in doc["jobs"]}
    assert "(unobserved)" in jobs, list(jobs)
    rate = sum(g["rate_usd_per_hour"] for g in doc["gpus"]) / 3600  # $/s for both GPUs
    # The gap minus the one interval charged as usual (0.1 s), give or take a tick of scheduling.
    expected = rate * (stopped - 0.1)
    assert jobs["(unobserved)"]["cost_usd"] == pytest.approx(expected, rel=0.25), (jobs["(unobserved)"], expected)
    assert sum(j["cost_usd"] for j in doc["jobs"]) == pytest.approx(doc["total"]["cost_usd"], rel=1e-9)
