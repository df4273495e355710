"""What the demo's jobs report: samples, tokens and progress, written to the spool as a real job's reports are.

The demo box's training jobs count samples, and each reporting process writes its own spool file in the format of
:mod:`gputab.report` (cumulative counts per tag, rewritten atomically). The recorder reads them through the same
path as a real job's reports (baseline, trust by file owner, growth). Its serving job counts tokens the way an
inference server does, in counters of prompt and generated tokens that the recorder reads once per series step
(:class:`DemoTokenCounters`, the demo's stand-in for :class:`gputab.progress.servers.TokenCounters`). So
``$/1k samples``, ``$/1M tokens`` and prompt / generated tokens show within the demo's first minute.

The counts are pure functions of the simulated time and the seed (:func:`counts_at`), so the demo stays
deterministic: the same seed at the same simulated second reports the same counts.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gputab.sampling.demo_box import STALL_AT, STALL_FOR, STALL_PERIOD

LORA_TAG = "llama3-8b-lora"
LORA_PROGRESS_START = 0.12
"""The LoRA fine-tune is this far along when the demo starts ..."""
LORA_SECONDS = 8000.0
"""... and needs this many simulated seconds for the whole run (a forecast of about 2 h to go)."""
STALL_SPEED = 0.4
"""The LoRA job's speed during its all-reduce stall, as a fraction of its steady speed."""
SERVE_WAVE_SECONDS = 90.0
"""The serving job's request rate rises and falls over this period."""


@dataclass(frozen=True)
class DemoReporter:
    """One reporting process of the demo box: its pid, its job, and how fast it counts."""

    pid: int
    tag: str
    samples_per_s: float = 0.0
    tokens_per_s: float = 0.0
    stalls: bool = False
    """Slowed by the LoRA job's all-reduce stall (:data:`STALL_SPEED` during it)."""
    wave: float = 0.0
    """Amplitude of the request wave, as a fraction of ``tokens_per_s``."""
    progress: bool = False
    """Also reports the job's progress fraction (the forecast reads it)."""
    prompt_share: float | None = None
    """An inference server: its tokens are counters of prompt (this share) and generated tokens that the recorder
    reads (:class:`DemoTokenCounters`), not spool reports."""


REPORTERS = (
    DemoReporter(31001, LORA_TAG, samples_per_s=24.0, stalls=True, progress=True),  # rank 0 of the fine-tune
    DemoReporter(32010, "eval-mmlu", samples_per_s=6.5),  # the input-bound eval
    DemoReporter(36100, "mistral-7b-serve", tokens_per_s=1450.0, wave=0.25, prompt_share=0.7),  # the server
)


SPOOL_REPORTERS = tuple(r for r in REPORTERS if r.prompt_share is None)
"""The demo's processes that report through the spool (the inference server is read instead)."""


def _rate_jitter(seed: int, pid: int) -> float:
    """A deterministic factor near 1 per (seed, reporter): the seed changes the figures, not the story."""
    return 1.0 + 0.05 * (random.Random(f"{seed}:rate:{pid}").random() * 2 - 1)


def _stalled_seconds(t: float) -> float:
    """Simulated seconds in [0, t] that the LoRA job spent in its all-reduce stall."""
    periods, rest = divmod(max(t, 0.0), STALL_PERIOD)
    return periods * STALL_FOR + min(max(rest - STALL_AT, 0.0), STALL_FOR)


def _work_seconds(r: DemoReporter, t: float) -> float:
    """Seconds at full speed that ``r`` has worked by simulated time ``t``."""
    t = max(t, 0.0)
    if r.stalls:
        return t - (1.0 - STALL_SPEED) * _stalled_seconds(t)
    if r.wave:
        # the integral of 1 + wave * sin(2 pi s / P) from 0 to t
        w = 2 * math.pi / SERVE_WAVE_SECONDS
        return t + r.wave * (1 - math.cos(w * t)) / w
    return t


def counts_at(r: DemoReporter, t: float, seed: int) -> tuple[int, int]:
    """The cumulative ``(samples, tokens)`` reporter ``r`` has counted at simulated time ``t`` (never decreasing)."""
    work = _work_seconds(r, t) * _rate_jitter(seed, r.pid)
    return math.floor(r.samples_per_s * work), math.floor(r.tokens_per_s * work)


def server_counts_at(r: DemoReporter, t: float, seed: int) -> tuple[int, int]:
    """The ``(prompt, generated)`` tokens server ``r`` has counted at simulated time ``t`` (never decreasing)."""
    tokens = counts_at(r, t, seed)[1]
    prompt = math.floor(tokens * (r.prompt_share or 0.0))
    return prompt, tokens - prompt


class DemoTokenCounters:
    """The demo's inference server's token counters, read as the recorder reads a real server's: the growth since
    the first reading, prompt and generated apart (the interface of :class:`gputab.progress.servers.TokenCounters`).
    Nothing is asked over the network: the demo's pids are made up, and a reading takes no time, so :meth:`take`
    reads the counters at once (a real server's reading ends in the background, before the next step).

    Args:
        seed: the demo's seed.
        clock: the simulated time of the demo box's last poll.
    """

    def __init__(self, seed: int, clock: Callable[[], float]) -> None:
        self.seed = seed
        self.clock = clock
        self._servers = {r.pid: r for r in REPORTERS if r.prompt_share is not None}
        self._tags: dict[int, str] = {}
        self._last: dict[int, tuple[int, int]] = {}

    def request(self, tags: Mapping[int, str]) -> None:
        """Follow each demo server whose process holds a tag now; its first reading is the baseline."""
        self._tags = {pid: tag for pid, tag in tags.items() if pid in self._servers}
        for pid in self._tags:
            if pid not in self._last:
                self._last[pid] = server_counts_at(self._servers[pid], self.clock(), self.seed)

    def finish(self, tags: Mapping[int, str]) -> None:
        """Nothing to wait for: :meth:`take` reads the counters as of the last poll."""

    def take(self) -> dict[str, tuple[int, int]]:
        """Tag -> (prompt, generated) tokens counted since the last take."""
        out: dict[str, tuple[int, int]] = {}
        for pid, tag in self._tags.items():
            now, last = server_counts_at(self._servers[pid], self.clock(), self.seed), self._last[pid]
            self._last[pid] = now
            p, g = out.get(tag, (0, 0))
            out[tag] = (p + now[0] - last[0], g + now[1] - last[1])
        return {tag: pg for tag, pg in out.items() if pg[0] or pg[1]}


def lora_progress(t: float) -> float:
    """The fine-tune's progress fraction at simulated time ``t``."""
    return min(1.0, LORA_PROGRESS_START + max(t, 0.0) / LORA_SECONDS)


class DemoSpoolWriter:
    """Writes the demo's reports into its own spool directory, one file per reporting process.

    Args:
        directory: the demo's spool (never the real one: see :func:`gputab.progress.spool.spool_for`).
        host: the simulated box's host name, written in each report.
        seed: the demo's seed.
    """

    def __init__(self, directory: Path, host: str, seed: int) -> None:
        from gputab.report import new_file_name

        self.directory = Path(directory)
        self.host = host
        self.seed = seed
        self.names = {r.pid: new_file_name(r.pid) for r in SPOOL_REPORTERS}
        self.started: float | None = None
        """Real time of the first write: the reports begin then, after the recorder took its baseline."""
        self.broken = False

    def write(self, t: float) -> None:
        """Write every reporter's counts at simulated time ``t``. An unwritable spool costs the figures, never
        the demo: it is given up silently."""
        from gputab.report import FORMAT, write_spool_file

        if self.broken:
            return
        now = time.time()
        if self.started is None:
            self.started = now
        try:
            if not self.directory.is_dir():
                os.makedirs(self.directory, mode=0o700, exist_ok=True)  # only the demo writes here
            for r in SPOOL_REPORTERS:
                samples, tokens = counts_at(r, t, self.seed)
                doc: dict = {
                    "v": FORMAT,
                    "host": self.host,
                    "pid": r.pid,
                    "uid": os.getuid(),
                    "started": self.started,
                    "updated": now,
                    "counts": {r.tag: [samples, tokens]},
                }
                if r.progress:
                    doc["progress"] = {r.tag: lora_progress(t)}
                write_spool_file(self.directory, self.names[r.pid], doc)
        except OSError:
            self.broken = True
