"""``gputab run``: the tag reaches the command, exit codes and signals pass through."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gputab.cli import run as run_mod
from gputab.errors import GputabError


# Local copies of conftest's helpers: `from conftest import` is ambiguous once a subfolder has its own conftest.
def gputab_cmd() -> list[str]:
    return [sys.executable, "-m", "gputab"]


def subprocess_env() -> dict[str, str]:
    return dict(os.environ)


# A child that records each SIGTERM/SIGINT it gets in a file, says it is ready, and exits 7 after the first one
# (or after a short grace period for a second one, so duplicates would be counted).
TRAP = """
import os, signal, sys, time
out = sys.argv[1]
got = []
def on(sig, _f):
    got.append(sig)
    with open(out, "a") as f:
        f.write(f"{signal.Signals(sig).name} tag={os.environ.get('GPUTAB_TAG')}\\n")
signal.signal(signal.SIGTERM, on)
signal.signal(signal.SIGINT, on)
open(out + ".ready", "w").close()
end = time.monotonic() + 20
while time.monotonic() < end and not got:
    time.sleep(0.02)
time.sleep(0.5)
sys.exit(7 if got else 1)
"""


def wait_for(path: Path, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.02)


def _read_all(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def gputab_run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*gputab_cmd(), "run", *args], capture_output=True, text=True, timeout=60, env=subprocess_env(), **kwargs
    )


def test_tag_reaches_command_and_exit_code_passes_through():
    r = gputab_run(
        "--tag", "x", "--", sys.executable, "-c", 'import os,sys; print(os.environ["GPUTAB_TAG"]); sys.exit(3)'
    )
    assert r.stdout == "x\n"
    assert r.returncode == 3


def test_only_the_tag_is_added_to_the_environment():
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    r = gputab_run("-t", "env-check", sys.executable, "-c", code)
    child_env = json.loads(r.stdout)
    assert child_env.pop("GPUTAB_TAG") == "env-check"
    assert child_env == {k: v for k, v in subprocess_env().items() if k != "GPUTAB_TAG"}


def test_options_after_the_command_belong_to_the_command():
    r = gputab_run("--tag", "x", sys.executable, "-c", "import sys; print(sys.argv[1:])", "--tag", "--help")
    assert r.returncode == 0 and r.stdout.strip() == "['--tag', '--help']"


def test_killed_by_signal_exits_128_plus_signal():
    r = gputab_run("--tag", "x", "--", sys.executable, "-c", "import os; os.kill(os.getpid(), 9)")
    assert r.returncode == 128 + 9


def test_bad_tag_is_refused_with_reason():
    r = gputab_run("--tag", "(idle)", "--", "true")
    assert r.returncode == 2
    assert "reserved" in r.stderr
    r = gputab_run("--tag", "a\nb", "--", "true")
    assert r.returncode == 2 and "U+000A" in r.stderr


def test_missing_command():
    r = gputab_run("--tag", "x", "--", "gputab-no-such-command-xyz")
    assert r.returncode == 127
    assert "command not found: gputab-no-such-command-xyz" in r.stderr
    assert "Traceback" not in r.stderr


def test_command_is_required():
    r = gputab_run("--tag", "x")
    assert r.returncode == 2 and "COMMAND" in r.stderr


def test_help():
    r = subprocess.run([*gputab_cmd(), "run", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "GPUTAB_TAG" in r.stdout and "--tag NAME" in r.stdout and "SIGTERM" in r.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_sent_to_gputab_reaches_the_command(tmp_path, sig):
    out = tmp_path / "signals.txt"
    p = subprocess.Popen(
        [*gputab_cmd(), "run", "--tag", "sig", "--", sys.executable, "-c", TRAP, str(out)], env=subprocess_env()
    )
    try:
        wait_for(Path(str(out) + ".ready"))
        p.send_signal(sig)  # to gputab only, as `kill`, Slurm or systemd would
        assert p.wait(timeout=20) == 7
    finally:
        p.kill()
    assert out.read_text() == f"{sig.name} tag=sig\n"


# Takes SIGINTs with sigwaitinfo (which dequeues each one at once, so a second one is seen, not merged) and
# writes down who sent each: the kernel (the terminal) or a process.
SIGWAIT = """
import os, signal, sys, time
out = sys.argv[1]
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
open(out + ".ready", "w").close()
seen = []
deadline = time.monotonic() + 20
quiet_until = None  # after a SIGINT, wait one more second for a duplicate
while time.monotonic() < (quiet_until or deadline):
    info = signal.sigtimedwait({signal.SIGINT}, 0.05)
    if info is not None:
        seen.append("kernel" if info.si_code == 0x80 else "process")
        quiet_until = time.monotonic() + 1.0
with open(out, "w") as f:
    f.write(" ".join(seen))
sys.exit(7)
"""


def test_terminal_ctrl_c_reaches_the_command_once(tmp_path):
    """Ctrl-C goes from the terminal to the whole foreground group; gputab must not deliver it a second time."""
    out = tmp_path / "signals.txt"
    argv = [*gputab_cmd(), "run", "--tag", "tty", "--", sys.executable, "-c", SIGWAIT, str(out)]
    env = subprocess_env()
    pid, master = pty.fork()
    if pid == 0:  # the child: a session leader on a new terminal, like a shell's foreground job
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)  # never go on running pytest in the forked child
    try:
        try:
            wait_for(Path(str(out) + ".ready"), timeout=30)
        except AssertionError:
            os.set_blocking(master, False)
            raise AssertionError(f"command never started; terminal said: {_read_all(master)!r}") from None
        os.write(master, b"\x03")
        _, status = os.waitpid(pid, 0)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(master)
    assert out.read_text() == "kernel"
    assert os.waitstatus_to_exitcode(status) == 7


def test_watch_hook_runs_while_the_command_runs(tmp_path):
    seen: list[int] = []

    def watch(pid: int) -> None:
        seen.append(pid)
        if len(seen) == 2:  # what a budget check would do: stop the job
            os.kill(pid, signal.SIGTERM)

    code = run_mod.run_command([sys.executable, "-c", "import time; time.sleep(30)"], "w", watch=watch, tick=0.1)
    assert code == 128 + signal.SIGTERM
    assert len(seen) == 2 and len(set(seen)) == 1


def test_run_command_missing_raises_gputab_error():
    with pytest.raises(GputabError) as exc:
        run_mod.run_command(["gputab-no-such-command-xyz"], "x")
    assert exc.value.exit_code == 127


def test_portable_fallback_forwards_signals(tmp_path, monkeypatch):
    """The handler-based path (non-Linux) forwards too: exercise it here by turning the precise path off."""
    monkeypatch.setattr(run_mod, "_PRECISE", False)
    out = tmp_path / "signals.txt"

    def send_when_ready() -> None:
        wait_for(Path(str(out) + ".ready"))
        os.kill(os.getpid(), signal.SIGTERM)  # to this process, whose handler passes it on

    before = signal.getsignal(signal.SIGTERM)
    t = threading.Thread(target=send_when_ready)
    t.start()
    code = run_mod.run_command([sys.executable, "-c", TRAP, str(out)], "fallback", tick=0.1)
    t.join()
    assert code == 7
    assert out.read_text() == "SIGTERM tag=fallback\n"
    assert signal.getsignal(signal.SIGTERM) is before  # gputab's handlers are gone again
