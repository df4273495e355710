"""Planted symlinks at ``--db``, its lock and ``export -o`` (issue 24, finding 5), with a real second user.

Where ``fs.protected_symlinks`` is 0 (or the link is not in a sticky directory), root follows another user's
symlink; gputab must not, whatever the sysctl says: it refuses a symlink owned by another user who is not root, and
one in a directory another user can write, in one line, exit non-zero, and writes nothing through it. The second
user is ``nobody``: it plants the link itself (a child process that switched to it), or owns it (``lchown``) where
it cannot reach the directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gputab.config.settings import Config
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DemoBackend, FakeClock
from gputab.store import Store
from support import gputab_cmd

ROOT = os.geteuid() == 0
pytestmark = pytest.mark.skipif(not ROOT, reason="a second user (nobody) needs root to act as it")


def nobody() -> pwd.struct_passwd:
    return pwd.getpwnam("nobody")


@pytest.fixture
def box() -> Iterator[Path]:
    """A directory tree other users can traverse (tmp_path's parents are 0700): a private directory with a
    root-owned empty file in it (the victim), a sticky world-writable ``shared`` one, a root-owned 0755 ``plain``."""
    base = Path(tempfile.mkdtemp(prefix="gputab-links-"))
    try:
        os.chmod(base, 0o755)
        private = base / "private"
        private.mkdir(mode=0o700)
        victim = private / "victim"
        victim.write_bytes(b"")
        shared = base / "shared"
        shared.mkdir()
        os.chmod(shared, 0o1777)
        plain = base / "plain"
        plain.mkdir()
        os.chmod(plain, 0o755)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def plant_as_nobody(target: Path, link: Path) -> None:
    """``nobody`` makes the symlink ``link`` -> ``target`` itself (it can write ``link``'s directory)."""
    who = nobody()
    code = "import os, sys; os.setgroups([]); os.setgid(%d); os.setuid(%d); os.symlink(sys.argv[1], sys.argv[2])"
    subprocess.run(["python3", "-c", code % (who.pw_gid, who.pw_uid), str(target), str(link)], check=True, timeout=30)
    assert link.lstat().st_uid == who.pw_uid


def gputab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*gputab_cmd(), *args], capture_output=True, text=True, timeout=60)


def one_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gputab: "), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def untouched(box: Path) -> None:
    private = box / "private"
    assert sorted(p.name for p in private.iterdir()) == ["victim"], list(private.iterdir())  # no lock, no -wal
    assert (private / "victim").read_bytes() == b""


def test_record_refuses_a_db_link_nobody_planted_in_a_sticky_directory(box):
    """The issue's probe: root, `--db /shared/sticky/g.db` -> nobody's link -> a root file in a 0700 directory."""
    link = box / "shared" / "g.db"
    plant_as_nobody(box / "private" / "victim", link)
    r = gputab("--db", str(link), "--demo", "record")
    one_line(r, "symlink owned by uid", str(nobody().pw_uid))
    assert "recording session" not in r.stdout
    untouched(box)


def test_record_refuses_another_users_link_outside_sticky_directories(box):
    """Not sticky, so the kernel's protection never applies: gputab's own rule must."""
    link = box / "plain" / "g.db"
    os.symlink(box / "private" / "victim", link)
    os.lchown(link, nobody().pw_uid, nobody().pw_gid)
    one_line(gputab("--db", str(link), "--demo", "record"), "symlink owned by uid")
    untouched(box)


def test_record_refuses_even_roots_link_in_a_directory_others_can_write(box):
    link = box / "shared" / "g.db"
    os.symlink(box / "private" / "victim", link)  # root's own, but nobody could replace it with theirs
    one_line(gputab("--db", str(link), "--demo", "record"), "other users can write")
    untouched(box)


def test_a_planted_directory_link_on_the_way_is_refused_too(box):
    link = box / "shared" / "data"
    plant_as_nobody(box / "private", link)
    one_line(gputab("--db", str(link / "g.db"), "--demo", "record"), "symlink owned by uid")
    untouched(box)


def test_commands_that_write_the_database_refuse_it(box):
    link = box / "shared" / "g.db"
    plant_as_nobody(box / "private" / "victim", link)
    one_line(gputab("--db", str(link), "budget", "set", "x", "10"), "symlink")
    untouched(box)


def test_export_refuses_an_output_link_nobody_planted(box, tmp_path):
    db = tmp_path / "g.db"
    clock = FakeClock()
    rec = Recorder(
        DemoBackend(seed=0, clock=clock, wall_clock=clock.wall),
        Store.open(db),
        Config(),
        clock=clock,
        wall_clock=clock.wall,
    )
    rec.start()
    for _ in range(5):
        clock.advance(1.0)
        rec.step()
    assert rec.close()
    link = box / "plain" / "costs.csv"
    os.symlink(box / "private" / "victim", link)
    os.lchown(link, nobody().pw_uid, nobody().pw_gid)
    out = gputab("--db", str(db), "export", "--csv", "--all", "-o", str(link))
    one_line(out, "symlink owned by uid")
    assert out.returncode == 2
    untouched(box)


def test_your_own_link_in_a_private_directory_still_works(tmp_path):
    real = tmp_path / "real.db"
    link = tmp_path / "link.db"
    link.symlink_to(real)
    assert gputab("--db", str(real), "budget", "set", "x", "10").returncode == 0
    r = gputab("--db", str(link), "budget", "set", "y", "20")
    assert r.returncode == 0, r.stderr
    assert real.exists() and link.is_symlink()
