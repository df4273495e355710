"""Where the frames come from: this app's own recording, a recorder it attached to, or memory only.

* :class:`RecordingFeed` - no recorder holds the database: this app records the session itself (a
  :class:`gputab.recorder.Recorder` stepped by the poll thread). Tags given in the UI are recorded in it.
* :class:`AttachedFeed` - ``gputab record`` is running: read its live session from the store, read-only, so the
  figures are the recorder's and nothing is recorded twice.
* :class:`MemoryFeed` - the database cannot be written: the ledger runs in memory and the header says why
  nothing is being recorded.

Every feed is used from the poll thread only (see :mod:`gputab.tui.poller`).
"""

from __future__ import annotations

import abc
import logging
import socket
import time
from typing import Callable, Mapping

from gputab.sampling.snapshot import Snapshot
from gputab.tui.frame import (ATTACHED, NOT_RECORDING, RECORDING, Frame, GpuView, JobView, ProcessView,
                              sort_jobs)

log = logging.getLogger(__name__)


class Feed(abc.ABC):
    """A source of frames for the app."""

    @abc.abstractmethod
    def poll(self) -> Frame:
        """One refresh: poll (or read) and return what to show."""

    def tag_process(self, pid: int, tag: str) -> str:
        """Charge process ``pid`` to ``tag`` from now on; returns a line for the user. Raises ValueError."""
        raise ValueError("tagging is not possible here")

    def tag_job(self, job: str, tag: str) -> str:
        """Charge every current process of ``job`` to ``tag`` from now on. Raises ValueError."""
        raise ValueError("tagging is not possible here")

    def close(self, reason: str) -> None:  # noqa: B027 - optional
        """End the session (or detach)."""


def host_name(backend) -> str:
    """The host the session is about: the demo's fixed name (stable screenshots) or this machine's."""
    if getattr(backend, "name", None) == "demo":
        from gputab.sampling.demo import DEMO_HOST

        return DEMO_HOST
    return socket.gethostname()


def gpu_views(snapshot: Snapshot, gpus: list[dict]) -> tuple[GpuView, ...]:
    """Hardware figures from the snapshot joined with price and money from the ledger's GPU dicts."""
    money = {g["index"]: g for g in gpus}
    out = []
    for s in snapshot.gpus:
        m = money.get(s.index, {})
        out.append(GpuView(
            index=s.index, uuid=s.uuid, name=s.name, model_key=m.get("model_key"), lost=s.lost,
            utilization_pct=s.utilization_pct, memory_used_bytes=s.memory_used_bytes,
            memory_total_bytes=s.memory_total_bytes, power_w=s.power_w, power_limit_w=s.power_limit_w,
            temperature_c=s.temperature_c, rate_per_hour=m.get("rate_per_hour"),
            unknown_price=bool(m.get("unknown_price")), energy_method=m.get("energy_method"),
            cost_usd=m.get("cost_usd"), burn_rate_usd_per_hour=m.get("burn_rate_usd_per_hour"),
        ))
    return tuple(out)


def process_views(snapshot: Snapshot, infos: Mapping[int, object]) -> tuple[ProcessView, ...]:
    """One row per process per GPU, with the attribution's tag and source (``ProcessInfo``)."""
    out = []
    for p in snapshot.processes:
        info = infos.get(p.pid)
        out.append(ProcessView(
            pid=p.pid, gpu_index=p.gpu_index, user=getattr(info, "user", None),
            command=getattr(info, "cmdline", "") or getattr(info, "name", "") or "?",
            used_memory_bytes=p.used_memory_bytes, sm_pct=p.sm_pct,
            tag=getattr(info, "tag", None), source=getattr(info, "source", "untagged"),
        ))
    return tuple(out)


class MemoryFeed(Feed):
    """Ledger and attribution in memory: the live view still works, nothing is written.

    Args:
        backend: the sampling backend (closed with the feed).
        config: the gputab config (prices, attribution).
        interval: poll interval (the ledger's gap rule).
        why: shown in the header ("cannot write /path: read-only file system").
        wall_clock: wall clock for the session start shown in the header.
    """

    def __init__(self, backend, config, interval: float, why: str,
                 wall_clock: Callable[[], float] | None = None) -> None:
        from gputab.attribution import Attributor
        from gputab.ledger import Ledger
        from gputab.pricing import PriceTable

        self.backend = backend
        self.attributor = Attributor(backend.inspector(), config.attribution)
        self.ledger = Ledger(PriceTable.load(config.prices), interval=interval,
                             gap_factor=config.recorder.gap_factor)
        self.why = why
        self.host = host_name(backend)
        self._wall = wall_clock or time.time
        self._start_mono: float | None = None
        self._start_wall: float | None = None
        self._infos: dict = {}

    def poll(self) -> Frame:
        snap = self.backend.poll()
        if self._start_mono is None:
            self._start_mono, self._start_wall = snap.mono, self._wall()
        self._infos = self.attributor.attribute(p.pid for p in snap.processes)
        self.ledger.tick(snap, {pid: i.tag for pid, i in self._infos.items()})
        return Frame(
            host=self.host, state=NOT_RECORDING, state_note=self.why, session_id=None,
            started_wall=self._start_wall, elapsed_s=snap.mono - self._start_mono,
            total_cost_usd=self.ledger.total_cost_usd, burn_rate_usd_per_hour=self.ledger.burn_rate_usd_per_hour,
            gpus=gpu_views(snap, [g.to_json() for g in self.ledger.gpus.values()]),
            jobs=sort_jobs(JobView.from_json(j.to_json()) for j in self.ledger.jobs.values()),
            processes=process_views(snap, self._infos), notes=snap.errors,
        )

    def tag_process(self, pid: int, tag: str) -> str:
        changed = self.attributor.set_manual(pid, tag)
        return f"process {pid} is charged to {tag} from now on (not recorded: {self.why})" if changed else \
            f"process {pid} already has tag {tag}"

    def tag_job(self, job: str, tag: str) -> str:
        changed = self.attributor.retag(job, tag)
        if not changed:
            raise ValueError(f"job {job} has no running process to tag")
        return f"{len(changed)} process(es) of {job} are charged to {tag} from now on"

    def close(self, reason: str) -> None:
        self.backend.close()


class RecordingFeed(Feed):
    """This app records the session: each poll is one :meth:`Recorder.step`.

    Args:
        recorder: a started :class:`gputab.recorder.Recorder` (its first tick is ``first``).
        first: the baseline tick ``start()`` returned.
    """

    def __init__(self, recorder, first) -> None:
        self.recorder = recorder
        self.host = host_name(recorder.backend)
        self._start_mono = first.snapshot.mono

    def poll(self) -> Frame:
        # Every poll is a fresh tick; the baseline of start() charged nothing and is not worth showing.
        return self.frame(self.recorder.step())

    def frame(self, tick) -> Frame:
        """The frame of one recorder tick."""
        state, note = RECORDING, ""
        if tick.recording == "held":
            note = f"held in memory: {tick.held_ticks} ticks"
        elif tick.recording == "closed":
            state, note = NOT_RECORDING, "session closed"
        return Frame(
            host=self.host, state=state, state_note=note, session_id=tick.session_id,
            started_wall=self.recorder.started_wall, elapsed_s=tick.snapshot.mono - self._start_mono,
            total_cost_usd=tick.total_cost_usd, burn_rate_usd_per_hour=tick.burn_rate_usd_per_hour,
            gpus=gpu_views(tick.snapshot, list(tick.gpus)),
            jobs=sort_jobs(JobView.from_json(j) for j in tick.jobs),
            processes=process_views(tick.snapshot, tick.processes),
            notes=tuple(tick.notes) + tuple(tick.snapshot.errors),
        )

    def tag_process(self, pid: int, tag: str) -> str:
        # The recorder writes a manual tag into the session (tag_changes) at its next tick.
        changed = self.recorder.attributor.set_manual(pid, tag)
        if not changed:
            return f"process {pid} already has tag {tag}"
        return f"process {pid} is charged to {tag} from now on (recorded in session {self.recorder.session_id})"

    def tag_job(self, job: str, tag: str) -> str:
        changed = self.recorder.attributor.retag(job, tag)
        if not changed:
            raise ValueError(f"job {job} has no running process to tag")
        return f"{len(changed)} process(es) of {job} are charged to {tag} from now on"

    def close(self, reason: str) -> None:
        try:
            # The store's vocabulary: a user quitting is a clean end; a hang-up or kill is a signal.
            if reason in ("quit", "clean"):
                self.recorder.close("clean")
            else:
                self.recorder.close("signal", reason.upper())
        finally:
            self.recorder.backend.close()


class AttachedFeed(Feed):
    """A viewer of the session a running ``gputab record`` writes: money from the store, read-only.

    Costs, burn rates and job figures are the recorder's (as of its last commit, every ``commit_interval``).
    The hardware figures and the process list come from this app's own poll of the GPUs, which writes nothing,
    so the bars and sparklines stay live between commits.

    Args:
        store: the database opened read-only.
        backend: the sampling backend, polled for the hardware figures.
        config: for attributing the processes shown (same rules as the recorder).
        wall_clock: Unix time, for the elapsed time.
    """

    def __init__(self, store, backend, config, wall_clock: Callable[[], float] | None = None) -> None:
        from gputab.attribution import Attributor

        self.store = store
        self.backend = backend
        self.attributor = Attributor(backend.inspector(), config.attribution)
        self.host = host_name(backend)
        self._wall = wall_clock or time.time
        self.session_id: int | None = None

    def poll(self) -> Frame:
        from datetime import datetime

        snap = self.backend.poll()
        infos = self.attributor.attribute(p.pid for p in snap.processes)
        writer = self.store.writer_info()
        if writer is None:
            state, note = NOT_RECORDING, "the recorder stopped; restart gputab to record"
        else:
            state, note = ATTACHED, f"recorder pid {writer.pid} on {writer.host or '?'}"
            if writer.session_id is not None:
                self.session_id = writer.session_id
        started = None
        jobs: list[dict] = []
        gpus: list[dict] = []
        total = 0.0
        if self.session_id is not None:
            session = self.store.session(self.session_id)
            started = datetime.fromisoformat(session["start"].replace("Z", "+00:00")).timestamp()
            jobs = self.store.jobs(self.session_id)
            gpus = self.store.gpus(self.session_id)
            total = session["cost_usd"]
        return Frame(
            host=self.host, state=state, state_note=note, session_id=self.session_id, started_wall=started,
            elapsed_s=(self._wall() - started) if started is not None else None, total_cost_usd=total,
            burn_rate_usd_per_hour=sum(j.get("burn_rate_usd_per_hour") or 0.0 for j in jobs),
            gpus=gpu_views(snap, gpus), jobs=sort_jobs(JobView.from_json(j) for j in jobs),
            processes=process_views(snap, infos), notes=snap.errors, can_tag=False,
        )

    def close(self, reason: str) -> None:
        try:
            self.store.close()
        finally:
            self.backend.close()


def open_feed(ctx, *, clock: Callable[[], float] | None = None, wall_clock: Callable[[], float] | None = None,
              interval: float = 1.0) -> Feed:
    """Record when no recorder holds the database, attach when one does, memory only when it cannot be written.

    Args:
        ctx: the CLI context (``demo``, ``seed``, ``db_path``, ``config``).
        clock: monotonic clock for the backend and recorder (a ``FakeClock`` in tests).
        wall_clock: Unix time (``FakeClock.wall`` in tests).
        interval: the poll interval; it replaces the config's recorder interval for this session.
    """
    import dataclasses

    from gputab.recorder import Recorder
    from gputab.store import RecorderRunning, Store, StoreError

    config = ctx.config
    config = dataclasses.replace(config, recorder=dataclasses.replace(config.recorder, interval=interval))
    kwargs = {}
    if ctx.demo and clock is not None:
        kwargs = {"clock": clock, "wall_clock": wall_clock}
    backend = ctx.open_backend(**kwargs)
    try:
        try:
            store = Store.open(ctx.db_path)
        except (StoreError, OSError) as exc:
            # The live view is still worth having when the database cannot be written; the header says why.
            why = str(exc) if isinstance(exc, StoreError) else f"cannot write {ctx.db_path}: {exc.strerror or exc}"
            return MemoryFeed(backend, config, interval, why, wall_clock=wall_clock)
        if store.writer_info() is None:
            recorder = Recorder(backend, store, config, clock=clock or time.monotonic,
                                wall_clock=wall_clock or time.time)
            try:
                return RecordingFeed(recorder, recorder.start())
            except RecorderRunning:
                pass  # a recorder started between the check and our lock: attach to it instead
        store.close()
        return AttachedFeed(Store.open(ctx.db_path, readonly=True), backend, config, wall_clock=wall_clock)
    except BaseException:
        backend.close()
        raise
