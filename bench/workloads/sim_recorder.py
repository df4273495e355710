"""Drive gputab's Recorder with a simulated clock on the fake NVML's 8 GPUs: database bytes and memory over a day.

    sim_recorder.py HOURS DB      (in a subprocess whose LD_LIBRARY_PATH loads the fake NVML)

Each step is a real ``Recorder.step()``: a real NVML poll of the fake (8 GPUs, 8 real processes), attribution
of the real PIDs, the ledger, the series and a commit every ``commit_interval`` of *simulated* time to a real
SQLite file. Only time is simulated: the snapshot's clocks are re-stamped with the simulated clock (1 s per
step), so the schedule, series steps and commits happen as in ``HOURS`` hours at 1 Hz. The fake's energy counter
follows real time, so energy figures are not meaningful here (costs and sizes are).

Prints JSON on the last line: database bytes at the end, steps, RSS at the first and last step (and at each
simulated hour), CPU seconds per step.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import psutil

from gputab.config.settings import Config
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import FakeClock
from gputab.sampling.nvml import NvmlBackend
from gputab.store import Store


class SimulatedTime:
    """Wraps the NVML backend so each snapshot carries the simulated monotonic and wall time."""

    def __init__(self, backend: NvmlBackend, clock: FakeClock) -> None:
        self._backend = backend
        self._clock = clock
        self.name = backend.name

    def poll(self):
        snap = self._backend.poll()
        return dataclasses.replace(snap, mono=self._clock(), wall=self._clock.wall())

    def inspector(self):
        return self._backend.inspector()

    def close(self) -> None:
        self._backend.close()


def main() -> None:
    hours, db = float(sys.argv[1]), Path(sys.argv[2])
    steps = int(hours * 3600)
    me = psutil.Process()
    clock = FakeClock(start=1000.0, wall_start=1_767_225_600.0)
    backend = SimulatedTime(NvmlBackend(), clock)
    store = Store.open(db)
    rec = Recorder(backend, store, Config(), clock=clock, wall_clock=clock.wall, spool=Path(os.environ["GPUTAB_SPOOL"]))
    rec.start()
    clock.advance(1.0)
    rec.step()
    rss = [me.memory_info().rss]
    cpu0, t0 = time.process_time(), time.perf_counter()
    for k in range(2, steps + 1):
        clock.advance(1.0)
        rec.step()
        if k % 3600 == 0:
            rss.append(me.memory_info().rss)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - t0
    rss_end = me.memory_info().rss
    ok = rec.close()
    gpus = len(rec.ledger.gpus)
    print(
        json.dumps(
            {
                "steps": steps,
                "gpus": gpus,
                "bytes": os.path.getsize(db),
                "closed_ok": ok,
                "rss_start": rss[0],
                "rss_end": rss_end,
                "rss_hourly": rss,
                "cpu_s": cpu,
                "wall_s": wall,
                "session": rec.session_id,
            }
        )
    )


if __name__ == "__main__":
    main()
