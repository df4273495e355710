"""Issue 11, item 8: what `gputab export --csv -o TARGET` does with every kind of target (README, "Exporting to
CSV"): a new or regular file is replaced atomically, a symlink of ours is written through, anything else is refused
in one line and left exactly as it was. All through the real CLI in subprocesses, on real files and device nodes.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from support import record_demo_session

GPUTAB = [sys.executable, "-m", "gputab"]
NOBODY = 65534


@pytest.fixture
def db(tmp_path) -> Path:
    """One short demo session, recorded by the real recorder on a fake clock."""
    path = tmp_path / "g.db"
    record_demo_session(path, ticks=5)
    return path


def export(db: Path, target, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GPUTAB, "--db", str(db), "export", "--csv", "-o", str(target)],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


def refused(proc: subprocess.CompletedProcess, code: int, *words: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr and "wrote" not in proc.stderr, proc.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert proc.stdout == ""
    return lines[0]


def is_csv(path: Path) -> bool:
    return path.read_text().startswith('"session_id","host","started_at"')


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_a_new_file_is_written_and_no_temp_file_is_left(db, tmp_path):
    out = tmp_path / "out" / "costs.csv"
    out.parent.mkdir()
    proc = export(db, out)
    assert proc.returncode == 0, proc.stderr
    assert is_csv(out) and f"to {out}" in proc.stderr and leftovers(out.parent) == []


def test_an_existing_file_is_replaced_by_rename_and_keeps_its_mode(db, tmp_path):
    out = tmp_path / "costs.csv"
    out.write_text("old\n")
    out.chmod(0o640)
    inode = out.stat().st_ino
    proc = export(db, out)
    assert proc.returncode == 0, proc.stderr
    assert is_csv(out) and out.stat().st_ino != inode  # a new inode: renamed into place, never written in place
    assert stat.S_IMODE(out.stat().st_mode) == 0o640 and leftovers(tmp_path) == []


@pytest.fixture
def full_disk(tmp_path):
    """A tiny tmpfs of our own, filled to the last block: the write of the export fails with ENOSPC."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("needs root and tmpfs to make a full file system")
    try:
        (mnt / "costs.csv").write_text("the previous export\n")
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"x" * 512):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(db, full_disk):
    out = full_disk / "costs.csv"
    line = refused(export(db, out), 1, str(out), "nothing was changed")
    assert "No space left" in line
    assert out.read_text() == "the previous export\n" and leftovers(full_disk) == []


def test_a_symlink_of_ours_is_written_through_and_stays_a_link(db, tmp_path):
    real = tmp_path / "reports" / "costs.csv"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "latest.csv"
    link.symlink_to(real)
    proc = export(db, link)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert is_csv(real) and str(real) in proc.stderr
    dangling = tmp_path / "new.csv"
    dangling.symlink_to(tmp_path / "reports" / "fresh.csv")
    assert export(db, dangling).returncode == 0 and is_csv(tmp_path / "reports" / "fresh.csv")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a symlink to another user")
def test_a_symlink_another_user_planted_is_refused(db, tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    link = tmp_path / "shared-out.csv"
    link.symlink_to(victim)
    os.lchown(link, NOBODY, NOBODY)
    refused(export(db, link), 2, str(link), f"uid {NOBODY}")
    assert victim.read_text() == "keep me\n" and link.is_symlink()


def fifo(tmp_path: Path) -> Path:
    p = tmp_path / "pipe.csv"
    os.mkfifo(p)
    return p


def sock(tmp_path: Path) -> Path:
    p = tmp_path / "sock.csv"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    s.close()
    return p


def directory(tmp_path: Path) -> Path:
    p = tmp_path / "dir.csv"
    p.mkdir()
    return p


def device(major: int, minor: int):
    def make(tmp_path: Path) -> Path:
        # A private node of the same device (1,7 is /dev/full): a broken gputab replaces this one, never the
        # system's /dev/full (which today's main did, as root).
        p = tmp_path / f"dev-{major}-{minor}"
        os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        return p

    return make


@pytest.mark.parametrize(
    "make, kind",
    [
        (fifo, "FIFO"),
        (sock, "socket"),
        (directory, "directory"),
        pytest.param(device(1, 7), "character device", id="full"),
        pytest.param(device(1, 3), "character device", id="null"),
    ],
)
def test_special_files_are_refused_and_left_as_they_are(db, tmp_path, make, kind):
    if make.__name__ == "make" and os.geteuid() != 0:
        pytest.skip("needs root to create a device node")
    target = make(tmp_path)
    before = os.lstat(target)
    refused(export(db, target), 2, str(target), kind)
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode, after.st_rdev) == (before.st_ino, before.st_mode, before.st_rdev)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "target, code, words",
    [
        ("nodir/x.csv", 2, "does not exist"),
        ("afile/x.csv", 2, "not a directory"),
        ("/proc/x.csv", 1, "cannot create a file in /proc"),
    ],
)
def test_impossible_paths_are_one_line(db, tmp_path, target, code, words):
    (tmp_path / "afile").write_text("")
    refused(export(db, target, cwd=tmp_path), code, words)
