"""Helpers for the spool tests: real reporting processes, as root or as another user (``nobody``).

Import as ``from spoolkit import ...``. Tests run as root; a "second user" is a subprocess that drops to
``nobody`` with ``os.setgid``/``os.setuid`` before it writes, so the file system records it as the owner.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from gputab.config.settings import Config
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DemoBackend, FakeClock
from gputab.store import Store

NOBODY = pwd.getpwnam("nobody")

_DROP = textwrap.dedent("""
    import os, sys, json, time, gputab, gputab.report
    if {uid} != os.getuid():
        os.setgroups([])
        os.setgid({gid})
        os.setuid({uid})
""")


def reporter(
    code: str, spool: Path, user: pwd.struct_passwd | None = None, env: dict | None = None, wait: bool = True, **kw
) -> subprocess.CompletedProcess | subprocess.Popen:
    """Run ``code`` (which may use ``gputab.report``) in a real process writing to ``spool``.

    Args:
        user: run as this user (switches in the child before ``code`` runs); None: as the test (root).
        wait: True runs to the end and returns the CompletedProcess; False returns the Popen.
    """
    uid, gid = (user.pw_uid, user.pw_gid) if user is not None else (os.getuid(), os.getgid())
    full = _DROP.format(uid=uid, gid=gid) + textwrap.dedent(code)
    environ = {**os.environ, "GPUTAB_SPOOL": str(spool), **(env or {})}
    if wait:
        r = subprocess.run(
            [sys.executable, "-c", full],
            env=environ,
            capture_output=True,
            text=True,
            timeout=kw.pop("timeout", 120),
            **kw,
        )
        assert r.returncode == 0, r.stderr
        return r
    return subprocess.Popen(
        [sys.executable, "-c", full],
        env=environ,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def report_once(spool: Path, user=None, **counts) -> None:
    """One process reports ``counts`` (``samples``, ``tokens``, ``tag``) and exits (its file stays)."""
    reporter(f"gputab.report(**{counts!r}); gputab.report.flush()", spool, user)


STEPPER = """
    # A long-running reporter: each line on stdin is `samples tag`; it reports, flushes and answers `ok`.
    print(os.getpid(), flush=True)
    for line in sys.stdin:
        n, tag = line.split()
        gputab.report(samples=int(n), tokens=2 * int(n), tag=None if tag == "-" else tag)
        gputab.report.flush()
        print("ok", flush=True)
"""


class Stepper:
    """A real training-like process that reports when told to (one file in the spool for its whole life)."""

    def __init__(self, spool: Path, user=None, env: dict | None = None) -> None:
        self.proc = reporter(STEPPER, spool, user, env=env, wait=False)
        self.pid = int(self.proc.stdout.readline())

    def report(self, samples: int, tag: str | None) -> None:
        self.proc.stdin.write(f"{samples} {tag or '-'}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok", self.proc.stderr.read()

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(name="shared_spool")
def shared_spool_fixture(monkeypatch):
    """A spool as in production (mode 1777) that another user can reach: not under root's 0700 tmp_path."""
    top = Path(tempfile.mkdtemp(prefix="gputab-spool-test-", dir="/tmp"))
    os.chmod(top, 0o755)
    spool = top / "spool"
    spool.mkdir()
    os.chmod(spool, 0o1777)
    monkeypatch.setenv("GPUTAB_SPOOL", str(spool))
    yield spool
    shutil.rmtree(top, ignore_errors=True)


def demo_recorder(db: Path, spool: Path | None = None, backend=None) -> Recorder:
    """A recorder of the demo box on a fake clock (``rec.fake_clock``), reading ``spool``."""
    clock = FakeClock()
    backend = backend or DemoBackend(clock=clock, wall_clock=clock.wall)
    rec = Recorder(backend, Store(db), Config(), clock=clock, wall_clock=clock.wall, spool=spool)
    rec.fake_clock = clock
    return rec


def steps(rec: Recorder, n: int = 2) -> None:
    """``n`` one-second ticks (each second the spool is read)."""
    for _ in range(n):
        rec.fake_clock.advance(1.0)
        rec.step()


def job(db: Path, sid: int, tag: str) -> dict | None:
    with Store.open(db, readonly=True) as store:
        return next((j for j in store.jobs(sid) if j["tag"] == tag), None)
