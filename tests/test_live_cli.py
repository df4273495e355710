"""The live view and ``gputab review`` from the command line, before any screen opens (issue 11, items 10-12).

Real subprocesses throughout: ``--interval`` out of bounds, no terminal (``</dev/null >file``, or only one of the
two a terminal), no NVIDIA driver (the fake NVML failing ``nvmlInit``). The cases that need a real terminal run
gputab inside a tmux server of their own.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from fakenvml import Error, Scenario
from gputab.cli.options import MAX_INTERVAL, MIN_INTERVAL
from support import gputab_cmd, subprocess_env

ESC = "\x1b"
BAD_INTERVALS = ("-1", "0", "1e9", "0.01", "nan", "inf", "-inf", "86400.5")


def gputab(*args: str, stdin=subprocess.DEVNULL, env=None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*gputab_cmd(), *args],
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or subprocess_env(),
    )


def one_line_error(r: subprocess.CompletedProcess, code: int) -> str:
    """The single ``gputab: ...`` line on stderr of a refused command, nothing on stdout, no traceback."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and ESC not in r.stderr + r.stdout
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gputab: "), r.stderr
    return lines[0]


# -- item 10: one --interval check ------------------------------------------------------------------------------
@pytest.mark.parametrize("value", BAD_INTERVALS)
def test_live_and_record_refuse_the_same_intervals_with_the_same_line(value, tmp_path):
    db = tmp_path / "g.db"
    live = one_line_error(gputab("--demo", "--db", str(db), "--interval", value), 2)
    record = one_line_error(gputab("--demo", "--db", str(db), "record", "--interval", value), 2)
    assert live == record
    assert f"--interval must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds" in live
    assert not db.exists(), "nothing is recorded with a refused interval"


@pytest.mark.parametrize("value", (str(MIN_INTERVAL), "1", str(MAX_INTERVAL)))
def test_live_accepts_the_bounds(value, tmp_path):
    # Accepted: the next check (no terminal here) is the one that stops it.
    line = one_line_error(gputab("--demo", "--db", str(tmp_path / "g.db"), "--interval", value), 2)
    assert "needs a terminal" in line


def test_the_bounds_are_defined_once():
    from gputab.cli.options import check_interval
    from gputab.errors import GputabError

    assert check_interval(MIN_INTERVAL) == MIN_INTERVAL and check_interval(MAX_INTERVAL) == MAX_INTERVAL
    for bad in (MIN_INTERVAL / 2, MAX_INTERVAL * 2, float("nan"), float("inf"), -1.0, 0.0):
        with pytest.raises(GputabError) as err:
            check_interval(bad)
        assert err.value.exit_code == 2


# -- item 11: no terminal ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", (("--demo",), ("--demo", "--interval", "0.5"), ("review",), ("--demo", "review")))
def test_without_a_terminal_says_so_and_writes_nothing(args, tmp_path):
    db = tmp_path / "g.db"
    out = tmp_path / "out.txt"
    with out.open("w") as fh:
        r = subprocess.run(
            [*gputab_cmd(), "--db", str(db), *args],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=subprocess_env(),
        )
    assert r.returncode == 2, r.stderr
    assert out.read_bytes() == b"", "nothing (no escape codes) is written to the redirected output"
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr and ESC not in r.stderr, r.stderr
    line = lines[0]
    assert line.startswith("gputab: ") and "needs a terminal" in line and "stdin and stdout are not one" in line
    for hint in ("gputab record", "gputab show", "--json"):
        assert hint in line
    assert not db.exists(), "no database is created without a terminal"


def test_review_without_a_terminal_leaves_an_existing_database_alone(tmp_path):
    from gputab.tui.screenshots import record_demo_session

    db = tmp_path / "g.db"
    record_demo_session(db, 3)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}  # (g-spool: the demo's spool)
    line = one_line_error(gputab("--db", str(db), "review"), 2)
    assert "gputab review needs a terminal" in line
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


# -- a real terminal: tmux ----------------------------------------------------------------------------------------
class Tmux:
    """A tmux server of its own (a short socket path: the limit is 108 bytes) running one command at a time."""

    def __init__(self, env: dict) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gt-tmux-"))
        self.sock = self.dir / "s"
        self.env = env
        self.n = 0

    def tmux(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["tmux", "-S", str(self.sock), *args], capture_output=True, text=True, timeout=30, env=self.env
        )

    def start(self, shell: str) -> Path:
        """Run ``shell`` in a 120x40 terminal; returns the file its exit status will be written to."""
        self.n += 1
        rc = self.dir / f"rc{self.n}"
        cmd = f"{shell}; echo $? > {shlex.quote(str(rc))}; sleep 60"
        r = self.tmux("new-session", "-d", "-s", f"t{self.n}", "-x", "120", "-y", "40", "sh", "-c", cmd)
        assert r.returncode == 0, r.stderr
        return rc

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", f"t{self.n}").stdout

    def wait_for(self, predicate, timeout: float = 40.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.2)
        return False

    def exit_status(self, rc: Path, timeout: float = 40.0) -> int:
        assert self.wait_for(lambda: rc.exists() and rc.read_text().strip() != "", timeout), self.screen()
        return int(rc.read_text())

    def close(self) -> None:
        self.tmux("kill-server")
        shutil.rmtree(self.dir, ignore_errors=True)


def _tmux(env: dict):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: the real-terminal cases need it (.ci/run installs it)")
    t = Tmux(env)
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def tmux():
    yield from _tmux(subprocess_env())


def _gputab_sh(*args: str) -> str:
    return " ".join(shlex.quote(a) for a in (*gputab_cmd(), *args))


def test_in_a_terminal_the_live_view_opens_and_quits(tmux, tmp_path):
    """The control for the refusals: with a terminal on both sides the check lets the app start."""
    db = tmp_path / "g.db"
    rc = tmux.start(_gputab_sh("--demo", "--db", str(db)))
    assert tmux.wait_for(lambda: "Jobs by cost" in tmux.screen()), tmux.screen()
    tmux.tmux("send-keys", "-t", f"t{tmux.n}", "q")
    assert tmux.exit_status(rc) == 0
    assert db.exists()


@pytest.mark.parametrize(("redirect", "missing"), ((">{out}", "stdout is not one"), ("</dev/null", "stdin is not one")))
def test_one_side_not_a_terminal_is_enough_to_refuse(tmux, tmp_path, redirect, missing):
    db, out, err = tmp_path / "g.db", tmp_path / "out", tmp_path / "err"
    rc = tmux.start(
        f"{_gputab_sh('--demo', '--db', str(db))} {redirect.format(out=shlex.quote(str(out)))} "
        f"2>{shlex.quote(str(err))}"
    )
    assert tmux.exit_status(rc) == 2
    line = err.read_text().strip()
    assert "needs a terminal" in line and missing in line and "\n" not in line
    assert not out.exists() or out.read_bytes() == b""
    assert not db.exists()


# -- item 12: no driver -----------------------------------------------------------------------------------------
@pytest.fixture
def no_driver(fake_nvml):
    """The fake NVML, loaded in place of the driver's library, failing to start as without a kernel module."""
    fake_nvml.write(
        Scenario(errors=[Error("nvmlInitWithFlags", "DRIVER_NOT_LOADED"), Error("nvmlInit_v2", "DRIVER_NOT_LOADED")])
    )
    return fake_nvml.env()


@pytest.fixture
def tmux_no_driver(no_driver):
    yield from _tmux(no_driver)


def test_no_driver_is_the_snapshot_error_before_the_screen_opens(tmux_no_driver, no_driver, tmp_path):
    snapshot = one_line_error(gputab("snapshot", env=no_driver), 1)
    assert "--demo" in snapshot
    db, err = tmp_path / "g.db", tmp_path / "err"
    started = time.monotonic()
    rc = tmux_no_driver.start(f"{_gputab_sh('--db', str(db))} 2>{shlex.quote(str(err))}")
    assert tmux_no_driver.exit_status(rc) == 1
    took = time.monotonic() - started
    assert err.read_text().splitlines() == [snapshot]
    assert "Jobs by cost" not in tmux_no_driver.screen() and "poll failed" not in tmux_no_driver.screen()
    assert not db.exists()
    assert took < 30


def test_no_driver_still_attaches_to_a_running_recorder(tmux_no_driver, no_driver, tmp_path):
    """Someone who cannot poll the GPUs can still watch a recorder's session: the probe lets that case through."""
    db = tmp_path / "g.db"
    rec = subprocess.Popen(
        [*gputab_cmd(), "--demo", "--db", str(db), "record", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        assert "recording" in rec.stdout.readline()
        rc = tmux_no_driver.start(_gputab_sh("--db", str(db)))
        assert tmux_no_driver.wait_for(lambda: "attached" in tmux_no_driver.screen()), tmux_no_driver.screen()
        tmux_no_driver.tmux("send-keys", "-t", f"t{tmux_no_driver.n}", "q")
        assert tmux_no_driver.exit_status(rc) == 0
    finally:
        rec.terminate()
        rec.communicate(timeout=30)
    assert rec.returncode == 0


def test_help_still_works_without_a_terminal():
    r = gputab("--help")
    assert r.returncode == 0 and "--interval" in r.stdout and ESC not in r.stdout
