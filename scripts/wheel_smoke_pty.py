"""Drive an installed ``gputab`` through every view and screen in a pseudo-terminal; exit 1 at the first one missing.

    python scripts/wheel_smoke_pty.py GPUTAB [--trace]

GPUTAB is the ``gputab`` program to test (scripts/wheel-smoke.sh passes the one of a venv that holds the wheel
alone). A screen whose stylesheet (``.tcss``) or data file did not make it into the wheel crashes the first time
it is opened, so each step presses a key and waits for words only that screen draws; a crash, a traceback or a
wait that runs out fails the smoke and names the step. Only the standard library: the driver runs with any Python,
and nothing it imports can hide what the wheel lacks. The demo box needs no GPU; every gputab path points into a
temporary directory.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from dataclasses import dataclass
from pathlib import Path

ESC = "\x1b"
ENTER = "\r"
DOWN = "\x1b[B"
_CSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)")


@dataclass(frozen=True)
class Step:
    """Press ``keys``, then wait until the screen shows ``expect`` (plain text, escape sequences removed)."""

    keys: str
    expect: str
    what: str


#: The live view of the demo box: the four views, each screen they open, the sessions review and its screens.
LIVE_STEPS = [
    Step("", "spent", "the first frame (jobs view)"),
    Step("2", "GPUs: price", "GPUs view"),
    Step("3", "Processes ·", "processes view"),
    Step(ENTER, "escape: close", "a process's details"),
    Step(ESC, "Processes ·", "back to the processes view"),
    Step("t", "Charge to tag", "the tag dialog"),
    Step(ESC, "Processes ·", "back from the tag dialog"),
    Step("4", "Alerts: active", "alerts view"),
    Step("1", "Jobs by cost", "jobs view"),
    Step(ENTER, "processes now", "a job's details"),
    Step(ESC, "Jobs by cost", "back to the jobs view"),
    Step("s", "Sessions: ", "the sessions review"),
    Step("m", "1 marked", "a session marked"),
    Step(DOWN + "m", "2 marked", "a second session marked"),
    Step("c", "B - A: positive", "the compare screen"),
    Step(ESC, "Sessions: ", "back to the sessions"),
    Step(ENTER, "on demo-box ·", "a recorded session's screen"),
    Step("n", "Set samples and tokens of", "the samples dialog"),
    Step(ESC, "on demo-box ·", "back from the samples dialog"),
    Step(ESC, "Sessions: ", "back to the sessions"),
    Step(ESC, "Jobs by cost", "back to the live view"),
    Step("$", "Spend, ", "the spend screen"),
    Step(ESC, "Jobs by cost", "back from the spend screen"),
    Step("?", "(escape closes)", "the keys screen"),
    Step("?", "Jobs by cost", "back from the keys screen (? closes it too)"),
]

#: The fleet screen, asking a Prometheus that is not there (port 9 on loopback: discard, closed on any CI box).
FLEET_STEPS = [
    Step("", "cannot reach Prometheus", "the fleet screen"),
    Step("?", "(escape closes)", "the fleet's keys screen"),
    Step("?", "Fleet: ", "back to the fleet screen (? closes the keys)"),
]


def text_of(raw: bytes) -> str:
    """What a terminal would show of ``raw``, as far as words go: escape sequences dropped, bytes decoded."""
    return _CSI.sub(b"", raw).decode("utf-8", "replace")


class Pty:
    """``argv`` on a 120x40 pseudo-terminal, as a terminal emulator starts it (own session, controlling tty)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**env, "TERM": "xterm-256color"},
            start_new_session=True,
            preexec_fn=_controlling_tty,
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.raw = b""

    def read_until(self, needle: str, timeout: float) -> bool:
        """Read what the program draws until ``needle`` shows or ``timeout`` seconds pass; True if it showed."""
        end = time.monotonic() + timeout
        while needle not in text_of(self.raw):
            left = end - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([self.master], [], [], min(left, 0.1))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the program closed the terminal (it ended)
                    return needle in text_of(self.raw)
                if not chunk:
                    return needle in text_of(self.raw)
                self.raw += chunk
        return True

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait(self, timeout: float) -> int | None:
        """The exit status once the program ends (reading on so it never blocks on a full terminal), else None."""
        end = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < end:
            self.read_until("\0never", timeout=0.2)
        return self.proc.poll()

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.close(self.master)


def _controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def drive(argv: list[str], steps: list[Step], env: dict[str, str], timeout: float, trace: bool) -> str | None:
    """Run ``argv`` through ``steps`` and quit with ``q``; None when all went well, else what went wrong."""
    pty = Pty(argv, env)
    try:
        for step in steps:
            pty.raw = b""
            if step.keys:
                pty.press(step.keys)
            shown = pty.read_until(step.expect, timeout)
            if trace:
                print(f"--- {step.what}: {'ok' if shown else 'MISSING'}\n{text_of(pty.raw)[-3000:]}", flush=True)
            # Let the screen settle: a key pressed mid-transition may reach the old screen, and a key sent soon
            # after a lone escape is read with it as one alt+key (the terminal parser waits to tell them apart).
            time.sleep(1.0 if step.keys.endswith(ESC) else 0.3)
            if not shown:
                ended = pty.proc.poll()
                state = f"gputab ended with status {ended}" if ended is not None else "gputab still running"
                return f"{step.what}: {step.expect!r} never showed ({state}); last output:\n{text_of(pty.raw)[-3000:]}"
        pty.raw = b""
        pty.press("q")
        status = pty.wait(timeout)
        if status != 0:
            return f"q did not end gputab cleanly (status {status}); last output:\n{text_of(pty.raw)[-3000:]}"
        if "Traceback" in text_of(pty.raw):
            return f"a traceback at exit:\n{text_of(pty.raw)[-3000:]}"
        return None
    finally:
        pty.close()


def record_two_sessions(gputab: str, env: dict[str, str]) -> str | None:
    """Two short demo sessions in the database, so the review has something to mark and compare."""
    for _ in range(2):
        argv = [gputab, "--demo", "record", "--interval", "0.2"]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # "gputab: recording session N ...", once it polls (or nothing: it ended)
        if first:
            time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return "gputab --demo record did not stop on SIGTERM"
        if proc.returncode != 0:
            said = (first + err).decode(errors="replace")[-2000:]
            return f"gputab --demo record failed (status {proc.returncode}): {said}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("gputab", help="the gputab program to drive")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds each screen may take to show")
    parser.add_argument("--trace", action="store_true", help="print what each step showed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gputab-smoke-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUTAB_")}
        env.update(
            GPUTAB_DATA_DIR=f"{tmp}/data",
            GPUTAB_CONFIG=f"{tmp}/config.toml",
            GPUTAB_SPOOL=f"{tmp}/spool",
            HOME=tmp,
            PYTHONDONTWRITEBYTECODE="1",
        )
        Path(tmp, "data").mkdir()
        failure = record_two_sessions(args.gputab, env)
        if failure is None:
            live = [args.gputab, "--demo", "--interval", "0.5"]
            failure = drive(live, LIVE_STEPS, env, args.timeout, args.trace)
        if failure is None:
            fleet = [args.gputab, "fleet", "--prometheus", "http://127.0.0.1:9", "--timeout", "1"]
            failure = drive(fleet, FLEET_STEPS, env, args.timeout, args.trace)
    if failure is not None:
        print(f"wheel smoke: FAILED at {failure}", file=sys.stderr)
        return 1
    print(f"wheel smoke: every view and screen opened ({len(LIVE_STEPS) + len(FLEET_STEPS)} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
