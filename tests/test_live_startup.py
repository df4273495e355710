"""The live view's start in a real pseudo-terminal: what it loads (and what it leaves for later), and that what
it leaves out is not missed when the user opens the other screens.

Each case runs ``gputab --demo`` in a pty of its own (a new session with the pty as controlling terminal, as a
terminal emulator starts it), waits for the first frame (the header's ``spent`` line), presses keys, and reads
what the process itself wrote at exit: its modules and whether OpenSSL was mapped.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from gputab.cli.live import NOT_NEEDED
from gputab.tui.driver import THREAD_NAME
from support import subprocess_env

# Runs the real CLI; at exit (after `q`) writes what was loaded. Not a mock: the same main() as `gputab`.
WRAPPER = """
import atexit, json, sys
out = sys.argv[1]
def dump():
    maps = open('/proc/self/maps').read()
    import gc
    json.dump({'modules': sorted(k for k, v in sys.modules.items() if v is not None), 'libcrypto': 'libcrypto' in maps, 'gc': gc.isenabled()}, open(out, 'w'))
atexit.register(dump)
if sys.argv[2:] == ['as-program']:
    sys.orig_argv = [sys.executable, '-m', 'gputab']  # gputab is the program (python -m gputab): start-up mode
sys.argv = ['gputab', '--demo', '--interval', '1']
from gputab.cli import main
main()
"""

LATER = (
    "prometheus_client",  # the exporter
    "gputab.tui.review",  # `s`: the sessions review
    "gputab.tui.spend_screen",  # `$`
    "gputab.tui.keys_screen",  # `?`
    "gputab.tui.details_screen",
    "gputab.live.attached_feed",  # only when a recorder is running
    "gputab.tui.gpus_screen",  # `2`
    "gputab.tui.processes_screen",  # `3`
    "gputab.tui.alerts_screen",  # `4`
    "gputab.tui.tag_screen",  # `t`
    "gputab.tui.commands",  # ctrl+p: gputab's commands in the palette
    "gputab.fleet",
    "urllib.request",  # with http.client and email: only to read a token server's /metrics
    "http.client",
    "email",
    "numpy",
    "pandas",
    "importlib.metadata",  # textual.__version__ reads it (30 ms): gputab.tui.textual_version reads the dist-info
)


class Pty:
    """``argv`` on a 120x40 pseudo-terminal; :meth:`read_until` collects what it draws."""

    def __init__(self, argv: list[str], env: dict) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = dict(env, TERM="xterm-256color")
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, preexec_fn=_controlling_tty, close_fds=True
        )
        os.close(slave)
        self.master = master
        self.out = b""

    def read_until(self, needle: bytes, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while needle not in self.out and time.monotonic() < end:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:
                    break
        return needle in self.out

    def press(self, keys: bytes, settle: float = 1.0) -> None:
        os.write(self.master, keys)
        self.read_until(b"\0never", timeout=settle)  # keep draining while the app reacts

    def wait(self, timeout: float = 30.0) -> int:
        end = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < end:
            self.read_until(b"\0never", timeout=0.2)
        return self.proc.wait(1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def _controlling_tty() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.fixture
def live(tmp_path):
    report = tmp_path / "loaded.json"
    pty = Pty([sys.executable, "-c", WRAPPER, str(report)], subprocess_env())
    try:
        assert pty.read_until(b"spent"), pty.out[-2000:]
        yield pty, report
    finally:
        pty.close()


def test_the_first_frame_loads_neither_other_screens_nor_openssl(live):
    pty, report = live
    pty.press(b"q", settle=0.0)
    assert pty.wait() == 0, pty.out[-2000:]
    loaded = json.loads(report.read_text())
    modules = set(loaded["modules"])
    assert "gputab.tui.app" in modules and "gputab.recording.recorder" in modules  # the report is of a live view
    early = sorted(m for m in modules if any(m == x or m.startswith(x + ".") for x in LATER))
    assert early == []
    assert not loaded["libcrypto"]
    assert not any(name in modules for name in NOT_NEEDED)


#: Not loaded by a live view on a database at the current schema (every run but a user's first): sqlite-utils (only
#: creating or migrating a database needs it) and what it brings.
AT_CURRENT_SCHEMA = ("sqlite_utils", "dateutil", "pluggy", "sqlite_fts4")


def test_a_live_view_on_an_existing_database_loads_no_sqlite_utils(tmp_path):
    from gputab.store import Store

    db = Path(os.environ["GPUTAB_DATA_DIR"]) / "demo.db"  # where `gputab --demo` records
    db.parent.mkdir(parents=True, exist_ok=True)
    Store.open(db).close()  # created and migrated, as by a first run
    report = tmp_path / "loaded.json"
    pty = Pty([sys.executable, "-c", WRAPPER, str(report)], subprocess_env())
    try:
        assert pty.read_until(b"spent"), pty.out[-2000:]
        pty.read_until(b"session 1", timeout=5)
        pty.press(b"q", settle=0.0)
        assert pty.wait() == 0, pty.out[-2000:]
    finally:
        pty.close()
    modules = set(json.loads(report.read_text())["modules"])
    assert "gputab.recording.recorder" in modules and "gputab.store.writes" in modules  # it recorded
    assert sorted(m for m in modules if m.split(".")[0] in AT_CURRENT_SCHEMA) == []
    with Store.open(db, create=False) as store:  # and what it recorded is there
        assert [s["id"] for s in store.sessions()] == [1]


@pytest.mark.slow
def test_the_screens_loaded_later_work_without_openssl(live):
    """Sessions (`s`), Spend (`$`) and the keys (`?`) open and close in the same process, and it quits cleanly."""
    pty, report = live
    pty.read_until(b"session 1", timeout=5)
    for keys in (b"s", b"\x1b", b"$", b"\x1b", b"?", b"\x1b"):
        pty.press(keys)
    pty.out = b""
    pty.press(b"s")
    assert b"Sessions" in pty.out or b"sessions" in pty.out, pty.out[-2000:]
    pty.press(b"\x1b")
    pty.press(b"q", settle=0.0)
    assert pty.wait() == 0, pty.out[-3000:]
    assert b"Traceback" not in pty.out and b"internal error" not in pty.out
    loaded = json.loads(report.read_text())
    assert "gputab.tui.review" in loaded["modules"] and "gputab.tui.spend_screen" in loaded["modules"]
    assert not loaded["libcrypto"]


def _input_thread_switches(pid: int) -> int | None:
    """Voluntary context switches (wake-ups) so far of the thread named ``textual-input`` in ``pid``."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == THREAD_NAME.decode():
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        return int(line.split()[1])
        except OSError:
            continue
    return None


@pytest.mark.slow
def test_the_input_thread_sleeps_until_a_key_and_escape_and_quit_still_work(live):
    """Textual's own input thread wakes ten times a second; the live view's wakes for keys only. A lone escape
    still arrives on its own (were it held until the next key, `q` after it would read as alt+q and not quit),
    and `q` ends the process at once (the exit wakes the thread)."""
    pty, _ = live
    before = _input_thread_switches(pty.proc.pid)
    assert before is not None, "no thread named textual-input: the live view's driver is not in use"
    pty.press(b"", settle=3.0)
    idle = _input_thread_switches(pty.proc.pid) - before
    assert idle <= 3, f"the input thread woke {idle} times in 3 s without a key"
    pty.press(b"?", settle=1.0)
    pty.press(b"\x1b", settle=1.0)  # closes the keys screen: a lone escape, delivered by the parser's timeout
    started = time.monotonic()
    pty.press(b"q", settle=0.0)
    assert pty.wait(timeout=10) == 0, pty.out[-2000:]
    assert time.monotonic() - started < 5


def test_garbage_collection_is_off_while_the_program_starts_and_on_after_the_first_paint(tmp_path):
    """As the program, gputab loads its modules with cyclic garbage collection off (3-4 % of the live view's start)
    and turns it back on once the first frame is painted: a live view that ran on without it would grow."""
    report = tmp_path / "loaded.json"
    pty = Pty([sys.executable, "-c", WRAPPER, str(report), "as-program"], subprocess_env())
    try:
        assert pty.read_until(b"spent"), pty.out[-2000:]
        pty.read_until(b"\0never", timeout=1.0)  # the first paint is done: a tick later, not a key's race
        pty.press(b"q", settle=0.0)
        assert pty.wait() == 0, pty.out[-2000:]
    finally:
        pty.close()
    assert json.loads(report.read_text())["gc"] is True


def test_garbage_collection_is_left_alone_when_gputab_is_not_the_program_and_back_on_for_a_command(tmp_path):
    code = (
        "import gc, sys\n"
        "print(gc.isenabled())\n"
        "sys.orig_argv = [sys.executable, '-m', 'gputab', 'prices']\n"
        "import gputab\n"  # a fresh interpreter: the first import installs the start-up mode
        "print(gc.isenabled())\n"
        "sys.argv = ['gputab', 'prices']\n"
        "import atexit\n"
        "atexit.register(lambda: print(gc.isenabled()))\n"
        "from gputab.cli import main\n"
        "main()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["True", "False"] and lines[-1] == "True"  # off while loading, on for the command
    library = subprocess.run(
        [sys.executable, "-c", "import gc, gputab; print(gc.isenabled())"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert library.stdout.strip() == "True"  # a training script importing gputab keeps its collector
