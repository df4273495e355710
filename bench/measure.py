"""How the bench measures a running program: CPU % of one core and RSS, in a pseudo-terminal or headless.

CPU is read from the kernel's accounting of the process tree (psutil ``cpu_times``: user + system of the process
and its live children) over a fixed window after a warm-up, so start-up cost is not counted as steady-state cost.
"""

from __future__ import annotations

import fcntl
import os
import signal
import statistics
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psutil


@dataclass
class Usage:
    cpu_pct: float
    """Percent of one core over the window."""
    rss_bytes: int
    """Resident set of the process tree at the end of the window."""
    cpu_s: float
    window_s: float
    first_frame_s: float | None = None
    """Seconds from the start of the program until ``marker`` was first written to the terminal (None: never,
    or no marker given)."""
    first_frame_cpu_s: float | None = None
    """CPU seconds the program (its process tree) had used by then: on a shared box, less sensitive to what
    else runs than the wall-clock time."""


def _tree(p: psutil.Process) -> list[psutil.Process]:
    try:
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [p]


def _cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for q in procs:
        try:
            t = q.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def _rss(procs: list[psutil.Process]) -> int:
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def sample_usage(pid: int, warmup: float, window: float) -> Usage:
    """CPU % and RSS of ``pid`` (and its children) over ``window`` seconds after ``warmup`` seconds."""
    p = psutil.Process(pid)
    time.sleep(warmup)
    procs = _tree(p)
    c0, t0 = _cpu_s(procs), time.monotonic()
    time.sleep(window)
    procs_end = _tree(p)
    # A child that exited mid-window took its CPU time with it; count only the processes present at both ends.
    common = [q for q in procs_end if q.pid in {x.pid for x in procs}]
    c1, t1 = _cpu_s(common), time.monotonic()
    if p.status() == psutil.STATUS_ZOMBIE or not p.is_running():
        raise RuntimeError(f"process {pid} exited during the measurement")
    return Usage(cpu_pct=100.0 * (c1 - c0) / (t1 - t0), rss_bytes=_rss(procs_end), cpu_s=c1 - c0, window_s=t1 - t0)


def _ctty_preexec():
    # A new session whose controlling terminal is the pty: curses and Textual behave as in a real terminal.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProgram:
    """Run ``argv`` on a 120x40 pseudo-terminal; a thread drains the output so the program never blocks on it."""

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str], cols: int = 120, rows: int = 40, marker: bytes | None = None
    ) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = dict(env)
        env.update(TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
        env.pop("NO_COLOR", None)
        self.proc = subprocess.Popen(
            list(argv), stdin=slave, stdout=slave, stderr=slave, env=env, preexec_fn=_ctty_preexec, close_fds=True
        )
        os.close(slave)
        self._master = master
        self.marker = marker
        self.first_seen: float | None = None
        """Seconds after the start until ``marker`` first appeared in the output."""
        self.first_cpu: float | None = None
        """CPU seconds of the program's process tree when ``marker`` first appeared."""
        self._started = time.monotonic()
        self.output_bytes = 0
        self.tail = b""
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output_bytes += len(chunk)
            if self.marker is not None and self.first_seen is None:
                # Look across the chunk boundary too: a marker can be split between two reads.
                if self.marker in self.tail[-len(self.marker) :] + chunk:
                    self.first_seen = time.monotonic() - self._started
                    try:
                        self.first_cpu = _cpu_s(_tree(psutil.Process(self.proc.pid)))
                    except psutil.Error:
                        pass
            self.tail = (self.tail + chunk)[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            os.close(self._master)
        except OSError:
            pass


def measure_pty(
    argv: Sequence[str], env: Mapping[str, str], warmup: float, window: float, marker: bytes | None = None
) -> Usage:
    """CPU and RSS in a 120x40 pty; with ``marker``, also how long until the first frame (the first time the
    program writes ``marker``, a text only its first full frame has)."""
    prog = PtyProgram(argv, env, marker=marker)
    try:
        usage = sample_usage(prog.proc.pid, warmup, window)
        if prog.output_bytes == 0:
            raise RuntimeError(f"{argv[0]} drew nothing on the terminal")
        usage.first_frame_s = prog.first_seen
        usage.first_frame_cpu_s = prog.first_cpu
        return usage
    except Exception as exc:
        raise RuntimeError(f"{' '.join(argv)}: {exc}; last output: {prog.tail[-600:]!r}") from None
    finally:
        prog.stop()


def measure_headless(
    argv: Sequence[str], env: Mapping[str, str], warmup: float, window: float, cwd: str | None = None
) -> Usage:
    proc = subprocess.Popen(list(argv), env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    try:
        return sample_usage(proc.pid, warmup, window)
    except Exception as exc:
        proc.kill()
        raise RuntimeError(f"{' '.join(argv)}: {exc}; stderr: {proc.stderr.read().decode()[-600:]}") from None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)
