"""What the demo's jobs report: samples, tokens and progress, written to the spool as a real job's reports are.

The demo box's training jobs count samples and its serving job counts tokens, and each reporting process writes
its own spool file in the format of :mod:`gputab.report` (cumulative counts per tag, rewritten atomically). The
recorder reads them through the same path as a real job's reports (baseline, trust by file owner, growth), so
``$/1k samples`` and ``$/1M tokens`` show within the demo's first minute.

The counts are pure functions of the simulated time and the seed (:func:`counts_at`), so the demo stays
deterministic: the same seed at the same simulated second reports the same counts.
"""

from __future__ import annotations

import math
import os
import random
import time
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


REPORTERS = (
    DemoReporter(31001, LORA_TAG, samples_per_s=24.0, stalls=True, progress=True),  # rank 0 of the fine-tune
    DemoReporter(32010, "eval-mmlu", samples_per_s=6.5),  # the input-bound eval
    DemoReporter(36100, "mistral-7b-serve", tokens_per_s=1450.0, wave=0.25),  # the inference server
)


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
        self.names = {r.pid: new_file_name(r.pid) for r in REPORTERS}
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
            for r in REPORTERS:
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
