"""Where the frames come from: this app's own recording, a recorder it attached to, or memory only.

* :class:`RecordingFeed` - no recorder holds the database: this app records the session itself (a
  :class:`gputab.recording.recorder.Recorder` stepped by the poll thread). Tags given in the UI are recorded in it.
* :class:`~gputab.live.attached_feed.AttachedFeed` - ``gputab record`` is running: read its live session from the
  store, read-only, so the figures are the recorder's and nothing is recorded twice.
* :class:`MemoryFeed` - the database cannot be written: the ledger runs in memory and the header says why
  nothing is being recorded.

Every feed is used from the poll thread only (see :mod:`gputab.live.poller`).
"""

from __future__ import annotations

import abc
import logging
import socket
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from gputab.live.alert_log import AlertLog
from gputab.live.frame import (
    NOT_RECORDING,
    RECORDING,
    AlertView,
    Frame,
    GpuView,
    JobView,
    ProcessView,
    budget_views,
    sort_jobs,
)
from gputab.sampling.backend import Backend
from gputab.sampling.snapshot import ProcessSample, Snapshot

if TYPE_CHECKING:
    from gputab.alerts.observer import AlertObserver
    from gputab.alerts.record import Alert
    from gputab.attribution import Attributor, ProcessInfo
    from gputab.config.settings import Config
    from gputab.cost.ledger import GpuInterval
    from gputab.recording.recorder import Recorder
    from gputab.recording.tick import Tick

AlertListener = Callable[[tuple[AlertView, ...], tuple[AlertView, ...]], None]
""":attr:`Feed.on_alerts`: called with (raised, cleared) in the poll thread."""

log = logging.getLogger(__name__)


class Feed(abc.ABC):
    """A source of frames for the app."""

    on_alerts: AlertListener | None = None
    """Set by the app: gets the alerts each poll raised and cleared (called in the poll thread)."""
    alert_log: AlertLog

    def hand_over_alerts(self) -> None:
        """Give this poll's raises and clears to :attr:`on_alerts` (the pending lists are emptied either way)."""
        raised, cleared = self.alert_log.take_changes()
        if (raised or cleared) and self.on_alerts is not None:
            self.on_alerts(raised, cleared)

    def alert_fields(self) -> dict[str, Any]:
        """The frame's alert fields, from :attr:`alert_log`."""
        log = self.alert_log
        return {"alerts": log.views, "active_alerts": log.active_count, "critical_alerts": log.critical_count}

    @abc.abstractmethod
    def poll(self) -> Frame:
        """One refresh: poll (or read) and return what to show."""

    def tag_process(self, pid: int, tag: str) -> str:
        """Charge process ``pid`` to ``tag`` from now on; returns a line for the user. Raises ValueError."""
        raise ValueError("tagging is not possible here")

    def tagger(self) -> Attributor | None:
        """The attributor that takes the user's tags, or None where tagging is not possible."""
        return None

    def tag_job(self, job: str, tag: str) -> str:
        """Charge every current process of ``job`` to ``tag`` from now on. Raises ValueError."""
        attributor = self.tagger()
        if attributor is None:
            raise ValueError("tagging is not possible here")
        changed = attributor.retag(job, tag)
        if not changed:
            raise ValueError(f"job {job} has no running process to tag")
        return f"{len(changed)} process(es) of {job} are charged to {tag} from now on"

    def want_history(self, seconds: float | None) -> None:  # noqa: B027 - optional
        """The charts now show a window of ``seconds`` (None: the whole session). A feed whose history the app did
        not watch (attached) sends the stored points it lacks with the next frames (:attr:`Frame.stored_series`)."""

    def record_here(self) -> Feed:
        """A feed that records the session here from now on, taking this one's place (its backend included).
        Raises ValueError where that is not possible (see :attr:`Frame.can_record`)."""
        raise ValueError("this view cannot start recording")

    def close(self, reason: str, detail: str | None = None) -> None:  # noqa: B027 - optional
        """End the session (or detach). ``reason``: ``quit``/``clean``, a signal's name (``sighup``), or
        ``error`` with the exception's one-line summary as ``detail``."""


def simulated(backend: Backend | None) -> bool:
    """True for the demo box, whose pids are made up (the processes view never signals them)."""
    return getattr(backend, "name", None) == "demo"


def host_name(backend: Backend | None) -> str:
    """The host the session is about: the demo's fixed name (stable screenshots) or this machine's."""
    if getattr(backend, "name", None) == "demo":
        from gputab.sampling.demo import DEMO_HOST

        return DEMO_HOST
    return socket.gethostname()


def gpu_views(snapshot: Snapshot, gpus: list[dict[str, Any]]) -> tuple[GpuView, ...]:
    """Hardware figures from the snapshot joined with price and money from the ledger's GPU dicts."""
    money = {g["index"]: g for g in gpus}
    out = []
    for s in snapshot.gpus:
        m = money.get(s.index, {})
        out.append(
            GpuView(
                index=s.index,
                uuid=s.uuid,
                name=s.name,
                model_key=m.get("model_key"),
                lost=s.lost,
                unobserved=s.unobserved,
                utilization_pct=s.utilization_pct,
                memory_used_bytes=s.memory_used_bytes,
                memory_total_bytes=s.memory_total_bytes,
                power_w=s.power_w,
                power_limit_w=s.power_limit_w,
                temperature_c=s.temperature_c,
                rate_per_hour=m.get("rate_per_hour"),
                unknown_price=bool(m.get("unknown_price")),
                energy_method=m.get("energy_method"),
                cost_usd=m.get("cost_usd"),
                burn_rate_usd_per_hour=m.get("burn_rate_usd_per_hour"),
                mig=s.mig or (),
                mig_slices=s.mig_slices,
            )
        )
    return tuple(out)


def process_view(p: ProcessSample, info: object) -> ProcessView:
    """One process on one GPU (a snapshot's ``GpuProcess``) with the attribution's ``ProcessInfo`` (or None)."""
    return ProcessView(
        pid=p.pid,
        gpu_index=p.gpu_index,
        user=getattr(info, "user", None),
        command=getattr(info, "cmdline", "") or getattr(info, "name", "") or "?",
        used_memory_bytes=p.used_memory_bytes,
        sm_pct=p.sm_pct,
        tag=getattr(info, "tag", None),
        source=getattr(info, "source", "untagged"),
        gpu_instance_id=getattr(p, "gpu_instance_id", None),
        compute_instance_id=getattr(p, "compute_instance_id", None),
    )


def process_views(snapshot: Snapshot, infos: Mapping[int, object]) -> tuple[ProcessView, ...]:
    """One row per process per GPU, with the attribution's tag and source (``ProcessInfo``)."""
    return tuple(process_view(p, infos.get(p.pid)) for p in snapshot.processes)


class MemoryFeed(Feed):
    """Ledger and attribution in memory: the live view still works, nothing is written.

    Args:
        backend: the sampling backend (closed with the feed).
        config: the gputab config (prices, attribution).
        interval: poll interval (the ledger's gap rule).
        why: shown in the header ("cannot write /path: read-only file system").
        wall_clock: wall clock for the session start shown in the header.
    """

    def __init__(
        self, backend: Backend, config: Config, interval: float, why: str, wall_clock: Callable[[], float] | None = None
    ) -> None:
        from gputab.alerts.observer import AlertObserver
        from gputab.attribution import Attributor
        from gputab.cost.ledger import Ledger
        from gputab.cost.pricing import PriceTable

        self.backend = backend
        self.attributor = Attributor(backend.inspector(), config.attribution)
        self.ledger = Ledger(PriceTable.load(config.prices), interval=interval, gap_factor=config.recorder.gap_factor)
        self.why = why
        self.host = host_name(backend)
        self._wall = wall_clock or time.time
        self._start_mono: float | None = None
        self._start_wall: float | None = None
        self._seq = 0
        self._infos: dict[int, ProcessInfo] = {}
        self.alert_log = AlertLog()
        # Same rules as a recording, shown but not stored (there is nowhere to store them).
        self.alerts = AlertObserver.from_config(config, sink=self.alert_log.add, backend=backend)

    def poll(self) -> Frame:
        snap = self.backend.poll()
        if self._start_mono is None:
            self._start_mono, self._start_wall = snap.mono, self._wall()
        self._infos = self.attributor.attribute(p.pid for p in snap.processes)
        intervals = self.ledger.tick(snap, {pid: i.tag for pid, i in self._infos.items()})
        jobs = [j.to_json() for j in self.ledger.jobs.values()]
        if intervals:  # the first tick is the ledger's baseline: nothing to judge yet
            self.alerts.on_tick(self._tick(snap, intervals, jobs))
        self.hand_over_alerts()
        return Frame(
            host=self.host,
            state=NOT_RECORDING,
            state_note=self.why,
            session_id=None,
            started_wall=self._start_wall,
            elapsed_s=snap.mono - self._start_mono,
            total_cost_usd=self.ledger.total_cost_usd,
            burn_rate_usd_per_hour=self.ledger.burn_rate_usd_per_hour,
            gpus=gpu_views(snap, [g.to_json() for g in self.ledger.gpus.values()]),
            jobs=sort_jobs(JobView.from_json(j) for j in jobs),
            processes=process_views(snap, self._infos),
            notes=snap.errors,
            **self.alert_fields(),
            real_pids=not simulated(self.backend),
            budgets=budget_views(self.alerts, snap.wall, jobs),
        )

    def _tick(self, snap: Snapshot, intervals: list[GpuInterval], jobs: list[dict[str, Any]]) -> Tick:
        """This poll as the recorder's observers get a tick; ``held``: the figures live in memory only."""
        from gputab.recording.tick import Tick

        self._seq += 1
        return Tick(
            session_id=None,
            seq=self._seq,
            snapshot=snap,
            processes=MappingProxyType(dict(self._infos)),
            intervals=tuple(intervals),
            jobs=tuple(jobs),
            gpus=tuple(g.to_json() for _, g in sorted(self.ledger.gpus.items())),
            total_cost_usd=self.ledger.total_cost_usd,
            burn_rate_usd_per_hour=self.ledger.burn_rate_usd_per_hour,
            recording="held",
        )

    def tagger(self) -> Attributor:
        return self.attributor

    def tag_process(self, pid: int, tag: str) -> str:
        changed = self.attributor.set_manual(pid, tag)
        return (
            f"process {pid} is charged to {tag} from now on (not recorded: {self.why})"
            if changed
            else f"process {pid} already has tag {tag}"
        )

    def close(self, reason: str, detail: str | None = None) -> None:
        try:
            self.alerts.close()
        finally:
            self.backend.close()


class RecordingFeed(Feed):
    """This app records the session: each poll is one :meth:`Recorder.step`.

    Alerts: ``alerts`` is one of the recorder's observers, as in ``gputab record`` (same ``[alerts]`` and
    ``[budgets]``); each raise and clear is stored with the session (:meth:`Recorder.record_alert`) and then
    handed to the UI.

    Args:
        recorder: a started :class:`gputab.recording.recorder.Recorder` (its first tick is ``first``).
        first: the baseline tick ``start()`` returned.
        alerts: the :class:`gputab.alerts.observer.AlertObserver` among the recorder's observers, or None; its sink is set
            here.
    """

    def __init__(self, recorder: Recorder, first: Tick, alerts: AlertObserver | None = None) -> None:
        self.recorder = recorder
        self.host = host_name(recorder.backend)
        self._start_mono = first.snapshot.mono
        self.alert_log = AlertLog()
        self.alerts = alerts
        if alerts is not None:
            alerts.sink = self._on_alert

    def _on_alert(self, alert: Alert) -> None:
        # Stored first: the session's record must not depend on the UI.
        self.recorder.record_alert(alert)
        self.alert_log.add(alert)

    def poll(self) -> Frame:
        # Every poll is a fresh tick; the baseline of start() charged nothing and is not worth showing.
        frame = self.frame(self.recorder.step())
        self.hand_over_alerts()
        return frame

    def frame(self, tick: Tick) -> Frame:
        """The frame of one recorder tick."""
        state, note = RECORDING, ""
        if tick.recording == "held":
            note = f"held in memory: {tick.held_ticks} ticks"
        elif tick.recording == "closed":
            state, note = NOT_RECORDING, "session closed"
        return Frame(
            host=self.host,
            state=state,
            state_note=note,
            session_id=tick.session_id,
            started_wall=self.recorder.started_wall,
            elapsed_s=tick.snapshot.mono - self._start_mono,
            total_cost_usd=tick.total_cost_usd,
            burn_rate_usd_per_hour=tick.burn_rate_usd_per_hour,
            gpus=gpu_views(tick.snapshot, list(tick.gpus)),
            jobs=sort_jobs(JobView.from_json(j) for j in tick.jobs),
            processes=process_views(tick.snapshot, tick.processes),
            notes=tuple(tick.snapshot.host_notes) + tuple(tick.notes) + tuple(tick.snapshot.errors),
            host_notes=tick.snapshot.host_notes,
            **self.alert_fields(),
            real_pids=not simulated(self.recorder.backend),
            budgets=budget_views(self.alerts, tick.snapshot.wall, tick.jobs),
            notices=tick.fault_notices,
        )

    def tag_process(self, pid: int, tag: str) -> str:
        # The recorder writes a manual tag into the session (tag_changes) at its next tick.
        changed = self.recorder.attributor.set_manual(pid, tag)
        if not changed:
            return f"process {pid} already has tag {tag}"
        return f"process {pid} is charged to {tag} from now on (recorded in session {self.recorder.session_id})"

    def tagger(self) -> Attributor:
        return self.recorder.attributor

    def record_here(self) -> Feed:
        raise ValueError(f"this app records session {self.recorder.session_id} already")

    def close(self, reason: str, detail: str | None = None) -> None:
        try:
            # The store's vocabulary: a user quitting is a clean end; a hang-up or kill is a signal; an exception
            # that ended the app is an error, with its summary.
            if reason in ("quit", "clean"):
                self.recorder.close("clean")
            elif reason == "error":
                self.recorder.close("error", detail)
            else:
                self.recorder.close("signal", reason.upper())
        finally:
            try:
                if self.alerts is not None:
                    self.alerts.close()  # alert commands still running get a moment, then are killed
            finally:
                self.recorder.backend.close()
