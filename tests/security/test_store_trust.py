"""The database and its side files on a shared box (issue 11, items 2-5), against real files and processes.

- a lock file planted by someone else (a symlink, a FIFO, a hard link, another user's file) is refused and never
  written to or truncated; a database directory other users can write in is refused for recording;
- every path to one database file (symlink, ``x/../``, hard link) finds the one recorder already writing it;
- another program's SQLite file (or not SQLite at all) is refused byte for byte untouched, an earlier gputab's
  database is adopted, and read-only commands never create or migrate anything;
- a database that cannot work at all (malformed, a dangling symlink, a directory, a FIFO) stops ``record`` with
  one line before it announces anything.

Tests about another user run as root and drop to ``nobody`` in a child process; elsewhere they are skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sqlite_utils import Database

from gputab.store.database import NotGputabDatabase, inspect_database
from gputab.store.schema import APPLICATION_ID, migrate
from support import gputab_cmd

FAST = "[recorder]\ninterval = 0.2\ncommit_interval = 0.4\nseries_interval = 1.0\n"
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="acting as a second user (nobody) needs root to switch users")


@pytest.fixture(autouse=True)
def fast_config():
    Path(os.environ["GPUTAB_CONFIG"]).write_text(FAST)


def gputab(*args, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*gputab_cmd(), *map(str, args)], capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}
    )


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str, codes=(1,)) -> str:
    assert r.returncode in codes, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gputab: "), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert "recording" not in r.stdout, r.stdout
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(d: Path) -> dict[str, str]:
    """Every entry of ``d`` with its kind and content hash (links by target), to prove nothing changed."""
    out = {}
    for p in sorted(d.iterdir()):
        if p.is_symlink():
            out[p.name] = "-> " + os.readlink(p)
        elif p.is_file():
            out[p.name] = digest(p)
        else:
            out[p.name] = stat.filemode(p.lstat().st_mode)
    return out


class Recording:
    """``gputab --db DB --demo record`` running; its output lines are collected as they come."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [*gputab_cmd(), "--db", str(db), "--demo", "record"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=lambda s=stream, k=sink: [k.append(ln) for ln in s], daemon=True).start()

    def wait_recording(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.out:
                if m := re.search(r"recording session (\d+)", line):
                    return int(m.group(1))
            assert self.proc.poll() is None, (self.out, self.err)
            time.sleep(0.05)
        raise AssertionError(f"not recording after {timeout} s: {self.out} {self.err}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def recordings():
    made: list[Recording] = []

    def start(db: Path) -> Recording:
        made.append(Recording(db))
        return made[-1]

    yield start
    for r in made:
        r.kill()


def sessions_of(db: Path) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT id, end_reason, pid FROM sessions ORDER BY id").fetchall()
    finally:
        conn.close()


def make_gputab_db(db: Path) -> None:
    """A database with one clean session, as a recorder leaves it."""
    db.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.Popen(
        [*gputab_cmd(), "--db", str(db), "--demo", "record"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = r.stdout.readline()
    assert "recording session" in line, (line, r.stderr.read() if r.poll() is not None else "")
    r.send_signal(signal.SIGTERM)
    r.communicate(timeout=30)
    assert r.returncode == 0


# -- 2: lock files and directories that someone else controls ----------------------------------------------------


def test_a_planted_lock_symlink_is_refused_and_its_target_untouched(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = tmp_path / "someones-file"
    victim.write_text("precious data\n")
    (shared / "g.db.lock").symlink_to(victim)
    r = gputab("--db", shared / "g.db", "--demo", "record", timeout=30)
    assert_one_line_error(r, "g.db.lock", "symbolic link")
    assert victim.read_text() == "precious data\n"
    assert sorted(p.name for p in shared.iterdir()) == ["g.db.lock"], "nothing was recorded beside the link"


def test_readers_neither_follow_nor_truncate_a_planted_lock_symlink(tmp_path):
    db = tmp_path / "d" / "g.db"
    make_gputab_db(db)
    victim = tmp_path / "someones-file"
    victim.write_text('{"pid": 1, "session_id": 1}')
    (tmp_path / "d" / "g.db.lock").unlink()
    (tmp_path / "d" / "g.db.lock").symlink_to(victim)
    for args in (("sessions", "--json"), ("show", "last", "--json")):
        r = gputab("--db", db, *args)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert '"recording"' not in r.stdout, "a planted lock file must not make a session look live"
    assert victim.read_text() == '{"pid": 1, "session_id": 1}'


@pytest.mark.parametrize("kind", ["fifo", "hardlink", "directory"])
def test_a_lock_that_is_not_a_plain_file_of_ours_is_refused(tmp_path, kind):
    d = tmp_path / "d"
    d.mkdir()
    lock = d / "g.db.lock"
    other = tmp_path / "other-file"
    other.write_text("keep me")
    if kind == "fifo":
        os.mkfifo(lock)
    elif kind == "hardlink":
        os.link(other, lock)
    else:
        lock.mkdir()
    r = gputab("--db", d / "g.db", "--demo", "record", timeout=30)  # a FIFO must not hang the open
    assert_one_line_error(r, "g.db.lock")
    assert other.read_text() == "keep me"


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o757])
def test_recording_into_a_directory_others_can_write_is_refused(tmp_path, mode):
    d = tmp_path / "open"
    d.mkdir()
    d.chmod(mode)
    r = gputab("--db", d / "g.db", "--demo", "record", timeout=30)
    assert_one_line_error(r, str(d), "writable by other users", "chmod")
    assert list(d.iterdir()) == [], "refused before creating anything"


def test_a_sticky_shared_directory_is_fine_to_record_in(tmp_path, recordings):
    d = tmp_path / "sticky"
    d.mkdir()
    d.chmod(0o1777)
    rec = recordings(d / "g.db")
    rec.wait_recording()
    assert rec.stop() == 0
    assert [s[1] for s in sessions_of(d / "g.db")] == ["clean"]
    assert stat.S_IMODE((d / "g.db").stat().st_mode) == 0o600


def test_readers_of_a_database_in_an_open_directory_write_nothing_there(tmp_path):
    d = tmp_path / "open"
    db = d / "g.db"
    make_gputab_db(db)
    (d / "g.db.lock").unlink()
    d.chmod(0o777)
    before = listing(d)
    r = gputab("--db", db, "sessions", "--json")
    assert r.returncode == 0 and '"clean"' in r.stdout, r.stderr
    assert listing(d) == before, "no lock file, no WAL, no change in a directory others can write"


def test_entering_samples_into_a_database_in_an_open_directory_is_refused(tmp_path):
    d = tmp_path / "open"
    db = d / "g.db"
    make_gputab_db(db)
    d.chmod(0o777)
    before = listing(d)
    r = gputab("--db", db, "samples", "eval-mmlu", "--add", "5")
    assert_one_line_error(r, "will not write to", "writable by other users")
    assert listing(d) == before
    d.chmod(0o700)
    r = gputab("--db", db, "samples", "eval-mmlu", "--add", "5")
    # The demo session may already hold a report of this job (how many depends on how long it recorded).
    assert r.returncode == 0 and "samples (+5)" in r.stdout, r.stderr


def _as(user: str):
    pw = pwd.getpwnam(user)

    def drop() -> None:
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)

    return drop


@pytest.fixture
def shared_tmp():
    """A sticky, world-writable directory directly under /tmp (reachable by nobody), like /tmp itself."""
    d = Path(tempfile.mkdtemp(prefix="gputab-shared-", dir="/tmp"))
    d.chmod(0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@needs_root
@pytest.mark.parametrize("planted", ["symlink", "file"])
def test_another_users_planted_lock_is_refused_by_roots_recorder(shared_tmp, tmp_path, planted):
    victim = tmp_path / "roots-file"
    victim.write_text("root's data\n")
    lock = shared_tmp / "g.db.lock"
    plant = (
        f"import os; os.symlink({str(victim)!r}, {str(lock)!r})"
        if planted == "symlink"
        else f"open({str(lock)!r}, 'w').write('{{\"pid\": 1}}')"
    )
    subprocess.run(["python3", "-c", plant], check=True, preexec_fn=_as("nobody"))
    assert lock.lstat().st_uid == pwd.getpwnam("nobody").pw_uid
    before = listing(shared_tmp)
    r = gputab("--db", shared_tmp / "g.db", "--demo", "record", timeout=30)
    assert_one_line_error(r, "g.db.lock")
    assert victim.read_text() == "root's data\n"
    assert listing(shared_tmp) == before, "the planted file was neither written, truncated nor removed"


@needs_root
def test_a_directory_owned_by_another_user_is_refused_for_recording(tmp_path):
    d = tmp_path / "theirs"
    d.mkdir()
    os.chown(d, pwd.getpwnam("nobody").pw_uid, -1)
    d.chmod(0o755)
    r = gputab("--db", d / "g.db", "--demo", "record", timeout=30)
    assert_one_line_error(r, "belongs to uid")
    assert list(d.iterdir()) == []


@needs_root
def test_another_users_database_is_read_but_never_written_by_root(tmp_path):
    db = tmp_path / "d" / "theirs.db"
    make_gputab_db(db)
    (tmp_path / "d" / "theirs.db.lock").unlink()
    os.chown(db, pwd.getpwnam("nobody").pw_uid, -1)
    before = listing(db.parent)
    r = gputab("--db", db, "--demo", "record", timeout=30)
    assert_one_line_error(r, "belongs to uid", "as its owner")
    r = gputab("--db", db, "samples", "eval-mmlu", "--add", "3")
    assert_one_line_error(r, "will not write to")
    r = gputab("--db", db, "sessions", "--json")
    assert r.returncode == 0 and '"clean"' in r.stdout, r.stderr
    assert {k: v for k, v in listing(db.parent).items() if not k.endswith(("-wal", "-shm"))} == before


# -- 3: one recorder per database file, whatever the path -----------------------------------------------------


@pytest.mark.parametrize("alias", ["symlink", "dotdot", "hardlink"])
def test_a_second_recorder_through_another_path_is_refused(tmp_path, recordings, alias):
    d = tmp_path / "data"
    db = d / "r.db"
    first = recordings(db)
    sid = first.wait_recording()
    if alias == "symlink":
        other = tmp_path / "alias.db"
        other.symlink_to(db)
    elif alias == "dotdot":
        (d / "x").mkdir()
        other = Path(f"{d}/x/../r.db")
    else:
        other = tmp_path / "hard.db"
        os.link(db, other)
    r = gputab("--db", other, "--demo", "record", timeout=30)
    assert_one_line_error(r, f"pid {first.proc.pid}", "another gputab recorder")
    # A reader through the alias must not take the live session for a crashed one either.
    shown = gputab("--db", other, "sessions", "--json")
    assert shown.returncode == 0 and '"crashed"' not in shown.stdout, shown.stdout + shown.stderr
    assert first.proc.poll() is None, "the first recorder kept running"
    time.sleep(0.5)
    assert first.stop() == 0, first.err
    assert sessions_of(db) == [(sid, "clean", first.proc.pid)], "one session, closed clean, never 'crashed'"


# -- 4: only gputab's own databases -----------------------------------------------------------------------------


def _other_programs_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('x[/y]'), ('hello');"
    )
    conn.close()


def _marked_db(path: Path) -> None:  # another program's mark, no tables yet
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("DROP TABLE t")
    conn.close()


def _versioned_db(path: Path) -> None:  # no tables, but another program's schema version
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()


@pytest.mark.parametrize(
    "make",
    [_other_programs_db, _marked_db, _versioned_db, lambda p: p.write_text("id,name\n1,not a database at all\n" * 50)],
    ids=["tables", "application-id", "user-version", "text"],
)
def test_another_programs_file_is_refused_and_left_byte_for_byte(tmp_path, make):
    d = tmp_path / "d"
    d.mkdir()
    other = d / "other.sqlite"
    make(other)
    before = listing(d)
    for args in (
        ("sessions",),
        ("sessions", "--json"),
        ("show", "last"),
        ("export", "--csv"),
        ("--demo", "record"),
        ("samples", "t", "--add", "5"),
    ):
        r = gputab("--db", other, *args, timeout=30)
        assert_one_line_error(r, "other.sqlite", "gputab", codes=(1, 2))
        assert listing(d) == before, f"{args} changed the directory"
    from gputab.tui.review.data import load_rows

    with pytest.raises(NotGputabDatabase):
        load_rows(other)
    assert listing(d) == before


@pytest.mark.parametrize("empty", ["zero-bytes", "sqlite-without-tables"])
def test_an_empty_file_becomes_a_gputab_database(tmp_path, recordings, empty):
    db = tmp_path / "new.db"
    if empty == "zero-bytes":
        db.touch(mode=0o600)
    else:
        sqlite3.connect(db).execute("VACUUM").connection.close()
        assert db.stat().st_size > 0
    rec = recordings(db)
    rec.wait_recording()
    assert rec.stop() == 0
    assert [s[1] for s in sessions_of(db)] == ["clean"]
    assert inspect_database(db) == "ours"


def test_review_refuses_another_programs_file_in_one_line_before_drawing(tmp_path):
    other = tmp_path / "other.sqlite"
    _other_programs_db(other)
    before = listing(tmp_path)
    master, slave = os.openpty()  # a real terminal, so only the database can stop it
    proc = subprocess.Popen(
        [*gputab_cmd(), "--db", str(other), "review"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        rc = proc.wait(10)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = b"".join(chunks).decode(errors="replace")
    assert rc == 1, out
    assert out.strip().startswith("gputab: ") and "another program's SQLite database" in out, out
    assert "Traceback" not in out and "\x1b[" not in out, "refused before the screen was drawn"
    assert listing(tmp_path) == before


@pytest.mark.slow
def test_a_database_swapped_for_another_programs_file_mid_run_is_never_written(tmp_path, recordings):
    """A full disk makes the recorder drop its connection; meanwhile the file is replaced by another program's.
    When it reconnects, the recorder holds its figures instead of writing into the stranger's file."""
    import resource

    d = tmp_path / "d"
    db = d / "g.db"
    rec = recordings(db)
    rec.wait_recording()
    resource.prlimit(rec.proc.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))  # every write fails
    deadline = time.monotonic() + 20
    while not any("database" in ln for ln in rec.err) and time.monotonic() < deadline:
        time.sleep(0.05)
    other = tmp_path / "other.sqlite"
    _other_programs_db(other)
    for side in ("g.db-wal", "g.db-shm"):
        (d / side).unlink(missing_ok=True)
    os.replace(other, db)
    before = digest(db)
    resource.prlimit(rec.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    deadline = time.monotonic() + 20
    while not any("another program's SQLite database" in ln for ln in rec.err) and time.monotonic() < deadline:
        time.sleep(0.05)
    said = next(ln for ln in rec.err if "another program's SQLite database" in ln)
    assert "holding the figures in memory" in said, rec.err  # database trouble, not a failing tick
    time.sleep(1.0)  # several commit intervals, each refused
    assert rec.proc.poll() is None, "the recorder holds its figures and keeps going"
    assert rec.stop() == 1
    assert any("could not write the last" in ln for ln in rec.err), rec.err
    assert any("the last figures could not be written" in ln for ln in rec.err), rec.err
    assert digest(db) == before
    assert "Traceback" not in "".join(rec.err)


def test_an_earlier_gputabs_database_is_read_as_it_is_then_adopted_by_the_recorder(tmp_path):
    db = tmp_path / "old.db"
    old = Database(db)
    migrate(old, db, stop_before="m004_identity")  # what gputab made before databases were marked
    old["sessions"].insert(
        {
            "host": "old",
            "started_at": "2026-01-01T00:00:00Z",
            "started_wall": 1.0e9,
            "ended_at": "2026-01-01T01:00:00Z",
            "ended_wall": 1.0e9 + 3600,
            "end_reason": "clean",
            "total_cost_usd": 4.76,
            "ticks": 3600,
        }
    )
    old.close()
    assert inspect_database(db) == "ours"
    before = listing(tmp_path)
    r = gputab("--db", db, "sessions", "--json")
    assert r.returncode == 0 and '"host": "old"' in r.stdout, r.stderr
    assert listing(tmp_path) == before, "a reader neither migrated nor switched the journal mode"
    Path(os.environ["GPUTAB_CONFIG"]).write_text(FAST)
    make_gputab_db(db)  # the recorder adopts it: marked, migrated, the old session kept
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert "m004_identity" in {r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations")}
    assert [r[0] for r in conn.execute("SELECT host FROM sessions ORDER BY id")][0] == "old"
    conn.close()


@pytest.mark.parametrize("args", [("sessions",), ("sessions", "--json"), ("show", "last"), ("export", "--csv")])
@pytest.mark.parametrize("state", ["missing", "empty-file", "missing-dir"])
def test_read_only_commands_never_create_a_database(tmp_path, args, state):
    db = tmp_path / ("newdir" if state == "missing-dir" else ".") / "g.db"
    if state == "empty-file":
        db.touch()
    before = listing(tmp_path)
    r = gputab("--db", db, *args)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode in (0, 1), r.stderr
    said = (r.stdout + r.stderr).strip()
    if said.startswith("{"):  # --json: an empty list of sessions in the one vocabulary
        assert json.loads(said)["sessions"] == [], said
    else:
        assert "no sessions" in said.lower() or said == "", said
        assert len(said.splitlines()) == 1
    assert listing(tmp_path) == before


# -- 5: a database that cannot work is an error at start, not a recorder holding forever -------------------------


def _malformed(p: Path) -> None:
    p.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))


def _truncated_gputab(p: Path) -> None:
    make_gputab_db(p)
    data = p.read_bytes()
    p.write_bytes(data[:100] + b"\xff" * (len(data) - 100))  # header kept, every page after it destroyed


@pytest.mark.parametrize(
    "make,needle",
    [
        (_malformed, "not a usable SQLite database"),
        (_truncated_gputab, "not a usable SQLite database"),
        (lambda p: p.symlink_to(p.parent / "gone" / "nothing.db"), "symbolic link"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: os.mkfifo(p), "not a regular file"),
    ],
    ids=["malformed", "destroyed-pages", "dangling-symlink", "directory", "fifo"],
)
def test_record_on_a_database_that_cannot_work_is_one_line_exit_1(tmp_path, make, needle):
    d = tmp_path / "d"
    d.mkdir()
    db = d / "demo.db"  # the demo's database in GPUTAB_DATA_DIR
    make(db)

    def files() -> dict[str, str]:
        return {k: v for k, v in listing(d).items() if not k.endswith((".lock", "-wal", "-shm"))}

    before = files()
    t0 = time.monotonic()
    r = gputab("--demo", "record", timeout=30, GPUTAB_DATA_DIR=str(d))  # --db itself refuses a directory
    assert_one_line_error(r, needle)
    assert time.monotonic() - t0 < 20
    # The file is left as it was (SQLite may have made an empty -wal beside a damaged gputab database).
    assert files() == before
