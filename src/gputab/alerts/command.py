"""The user's alert command: run once per raised alert with the alert as JSON on stdin, never waited for."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any


class AlertCommand:
    """Runs the user's alert command once per raised alert, the alert JSON on its stdin, without waiting for it.

    A child gets ``timeout`` seconds, then it is killed; at most ``max_running`` run at once (an alert storm must not
    fork-bomb the box), beyond that alerts are dropped and reported.

    Args:
        argv: the command and its arguments (no shell).
        timeout: seconds a run may take.
        max_running: children allowed at once.
        clock: monotonic clock.
    """

    def __init__(
        self,
        argv: Sequence[str],
        timeout: float = 10.0,
        max_running: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.argv = list(argv)
        self.timeout = timeout
        self.max_running = max_running
        self._clock = clock
        self._running: list[tuple[subprocess.Popen, float]] = []

    @property
    def running(self) -> int:
        return len(self._running)

    def run(self, payload: Mapping[str, Any]) -> str | None:
        """Start the command with ``payload`` as JSON on stdin. Returns a problem to report, or None."""
        problems = self.reap()
        if len(self._running) >= self.max_running:
            return "; ".join(problems + [f"alert command skipped: {len(self._running)} runs still going"])
        data = (json.dumps(dict(payload), default=str) + "\n").encode()
        try:
            proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True
            )
        except OSError as exc:
            return "; ".join(problems + [f"alert command {self.argv[0]!r} could not start: {exc.strerror or exc}"])
        try:
            # One alert is far below the pipe buffer, so this write does not wait for the child to read.
            assert proc.stdin is not None  # stdin=PIPE
            proc.stdin.write(data)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it exited without reading; its exit status says whether that was a failure
        self._running.append((proc, self._clock() + self.timeout))
        return "; ".join(problems) or None

    def reap(self) -> list[str]:
        """Collect finished runs and kill overdue ones; returns one line per failure."""
        now = self._clock()
        problems, still = [], []
        for proc, deadline in self._running:
            rc = proc.poll()
            if rc is None and now >= deadline:
                proc.kill()
                proc.wait()
                problems.append(f"alert command killed after {self.timeout:g}s")
            elif rc is None:
                still.append((proc, deadline))
            elif rc != 0:
                problems.append(f"alert command exited with status {rc}")
        self._running = still
        return problems

    def close(self, wait: float = 2.0) -> list[str]:
        """Give running children up to ``wait`` seconds, then kill them."""
        end = self._clock() + wait
        for proc, _ in self._running:
            try:
                proc.wait(timeout=max(0.0, end - self._clock()))
            except subprocess.TimeoutExpired:
                pass
        for i, (proc, _) in enumerate(self._running):
            self._running[i] = (proc, 0.0)  # overdue now: reap kills whatever is left
        return self.reap()
