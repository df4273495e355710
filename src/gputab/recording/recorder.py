"""The recorder: poll -> attribute -> charge -> store, headless, for as long as it is left running.

``gputab record`` runs it alone; the TUI and the Prometheus exporter run it in-process and get every
:class:`Tick` through ``observers``. The store is written in batches (see :mod:`gputab.store.writes`): per
tick only lists grow, and every ``commit_interval`` one transaction writes them, so a crash loses at most
one commit interval and trouble with the database (locked, read-only, full) only delays the writes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from gputab import __version__
from gputab.alerts.record import Alert
from gputab.attribution import Attributor, ProcessInfo
from gputab.config.settings import Config
from gputab.cost.ledger import Ledger
from gputab.cost.pricing import PriceTable
from gputab.cost.waste import config_for
from gputab.progress.servers import TokenCounters, TokenSource
from gputab.progress.spool import ReportSpool, spool_for
from gputab.recording.budget_keeper import BudgetKeeper
from gputab.recording.read_faults import FaultBook
from gputab.recording.series_step import SeriesStep
from gputab.recording.session_clock import SessionClock
from gputab.recording.tick import Observer, Tick
from gputab.sampling.backend import Backend
from gputab.sampling.snapshot import Snapshot
from gputab.store import SessionMeta, SessionWriter, Store, StoreError, StoreWriteError, WriterLock
from gputab.store.database import damaged, damaged_error
from gputab.store.writes import WRITE_BUSY_MS

log = logging.getLogger("gputab.recording.recorder")

MAX_HELD_SERIES_ROWS = 500_000
"""During a long database outage, series points beyond this many are dropped oldest first (totals stay exact)."""


class Recorder:
    """The recording loop of one session.

    Args:
        backend: where snapshots come from (NVML or demo).
        store: the database; the recorder takes its writer lock in :meth:`start`.
        config: the whole config (recorder timing, prices, attribution).
        clock: monotonic clock used for the schedule and commit timing.
        observers: objects with ``on_tick(tick)``, called after every tick in the loop's thread.
        wall_clock: Unix time, for the session's start; later moments are the start + monotonic time
            (:mod:`gputab.recording.session_clock`), so a step of the wall clock moves none of them.
        spool: the report spool directory (default :func:`gputab.progress.spool.spool_for`: the demo has its own).
    """

    def __init__(
        self,
        backend: Backend,
        store: Store,
        config: Config,
        clock: Callable[[], float] = time.monotonic,
        observers: Iterable[Observer] = (),
        wall_clock: Callable[[], float] = time.time,
        spool: Path | None = None,
    ) -> None:
        self.backend = backend
        self.store = store
        self.config = config
        self.rc = config.recorder
        self.clock = clock
        self.wall_clock = wall_clock
        self.observers = list(observers)
        self.spool = spool if spool is not None else spool_for(backend, store.path)
        if spool is None and hasattr(backend, "attach_spool"):
            backend.attach_spool(self.spool)  # the demo reports its fine-tune's progress into its own spool
        self.attributor = Attributor(backend.inspector(), config.attribution)
        """Tags processes; the TUI sets manual tags through it (they are recorded in the store)."""
        self.reports = ReportSpool(self.spool, self.attributor, host=getattr(backend, "host", None))
        own_counters = getattr(backend, "token_counters", None)  # the demo's: its pids are made up, none is asked
        self.servers: TokenSource | None = (
            own_counters()
            if own_counters is not None
            else TokenCounters(servers=[(x.url, x.tag) for x in config.servers])
        )
        """Inference servers' token counters, prompt and generated apart."""
        """The report spool: baseline at start, bounded reads per tick, trust by file owner."""
        # A GPU whose readings take longer is (unobserved) for the tick; the others are charged (docs/speed-and-faults.md).
        backend.poll_deadline = self.rc.poll_deadline or 2.0 * self.rc.interval
        self.read_faults = FaultBook()
        """The failed GPU readings of the session, each kind said once (stderr, the live view) and counted."""
        self.prices = PriceTable.load(config.prices)
        self.ledger = Ledger(
            self.prices,
            interval=self.rc.interval,
            gap_factor=self.rc.gap_factor,
            waste=config_for(backend, config.waste),
            forecast_window=self.rc.forecast_window,
            forecast_min_span=self.rc.forecast_min_span,
        )
        self.writer: SessionWriter | None = None
        self.lock: WriterLock | None = None
        self.closed = False
        self.end_reason: str | None = None
        self._mutex = threading.RLock()
        self._series: SeriesStep | None = None
        self._procs: dict[tuple, tuple[str, str]] = {}
        self._job_users: dict[str, set[str]] = {}
        """Tag -> the users owning its processes, stored with the job (``gputab spend --by user``)."""
        self._last_commit = -math.inf
        self._trouble: StoreWriteError | None = None
        self._notes: list[str] = []
        self._observer_failed: set[int] = set()
        self._seq = 0
        self.started_wall: float | None = None
        self.session_clock: SessionClock | None = None
        """Session time (the start + monotonic time); notices steps of the wall clock."""
        self._last_snap: Snapshot | None = None
        self._last_tags: dict[int, str] | None = None
        """The last tick's pid -> tag (the servers' last reading at the session's end)."""
        self.budgets = BudgetKeeper(store, ())
        """The observers' budgets: config and database merged, re-read while recording, spend carried from the store."""

    # -- life cycle ----------------------------------------------------------------------------------------------
    @property
    def session_id(self) -> int | None:
        return self.writer.session_id if self.writer is not None else None

    def start(self) -> Tick:
        """Take the writer lock, poll the baseline, and open the session (or hold it until the database can).

        Raises:
            RecorderRunning: another recorder writes this database (through any path to it).
            StoreError: a database no retry can make work (not gputab's, malformed, a dangling symlink, an
                unsafe directory); passing faults (locked, read-only, full) only hold the figures.
        """
        self.started_wall = self.wall_clock()
        self.session_clock = SessionClock(self.started_wall)
        self.store.preflight()
        self.lock = self.store.writer_lock()
        self.lock.acquire(started_wall=self.started_wall)
        try:
            self.store.busy_ms = WRITE_BUSY_MS
            self.store.live_recorder_elsewhere()
            meta = SessionMeta(
                host=getattr(self.backend, "host", None) or socket.gethostname(),
                backend=getattr(self.backend, "name", "?"),
                pid=os.getpid(),
                gputab_version=__version__,
                started_wall=self.started_wall,
                interval=self.rc.interval,
                commit_interval=self.rc.commit_interval,
                series_interval=self.rc.series_interval,
                prices_json=_json(self.prices.to_json()),
            )
            self.budgets = BudgetKeeper(self.store, self.observers, self.backend)
            self.budgets.start(self.started_wall, self.clock())  # earlier sessions' spend: a restart resets nothing
            self.writer = SessionWriter(self.store, meta)
            self.reports.baseline()  # before anyone is told we record: earlier reports are not this session's
            with self._mutex:
                tick = self._tick(baseline=True)
                self._commit()
                cause = self._trouble.__cause__ if self._trouble is not None else None
                if cause is not None and damaged(cause):
                    raise damaged_error(self.store.path, cause)  # no retry mends a malformed file
        except BaseException:
            self.lock.release()
            raise
        if self.session_id is not None:
            self.lock.set_session(self.session_id)
        return tick

    def step(self) -> Tick:
        """One poll -> attribute -> charge; buffers the store writes and commits when one is due."""
        with self._mutex:
            if self.writer is None or self.closed:
                raise RuntimeError("Recorder.step() before start() or after close()")
            tick = self._tick()
            if self._commit_due():
                self._commit()
                tick = _with_state(tick, self)
            self.budgets.tick(tick.snapshot.wall, tick.snapshot.mono, self.session_id)
        self._notify(tick)
        return tick

    def run(self, stop: threading.Event) -> None:
        """Tick every ``interval`` on a monotonic grid until ``stop`` is set.

        A slow poll never stacks ticks: the next tick is the next grid point still in the future, so the
        schedule does not drift and ticks never overlap.
        """
        interval = self.rc.interval
        next_t = self.clock() + interval
        failures = 0
        while not stop.is_set():
            delay = next_t - self.clock()
            if delay > 0 and stop.wait(delay):
                break
            try:
                self.step()
                failures = 0
            except Exception as exc:  # a poll that fails must not end a months-long recording
                failures += 1
                if failures == 1:
                    log.warning("tick failed: %s (will keep trying)", exc, exc_info=True)
            now = self.clock()
            next_t += interval
            if next_t <= now:
                next_t += math.ceil((now - next_t) / interval + 1e-9) * interval

    def close(self, reason: str = "clean", detail: str | None = None) -> bool:
        """Write the last figures and end the session with ``reason``: ``clean``, ``signal`` (``detail``: its
        name) or ``error`` (an unexpected exception ended it; ``detail``: its one-line summary,
        :func:`gputab.errors.one_line`).

        Returns:
            True if everything reached the database; False if the last figures could not be written (said
            in the log) — what was committed before stays.
        """
        with self._mutex:
            if self.closed or self.writer is None:
                return True
            self.closed = True
            self.end_reason = reason
            if self.servers is not None and self._last_tags is not None:  # the last, partial step's tokens
                self._server_tokens(self._last_tags, self._session_wall(), last=True)
            if (
                self._series is not None
                and self._last_snap is not None
                and self._series.step_start < self._last_snap.mono
            ):
                self._series.emit(self._last_snap.mono, self.writer, self.ledger)
            end_wall = self._session_wall()
            self.reports.finish(self.ledger, self.writer, end_wall)
            self._set_totals()
            self.writer.end(reason, detail, end_wall)
            ok = False
            for attempt in range(5):
                try:
                    self._flush()
                    ok = True
                    break
                except StoreWriteError as exc:
                    self._trouble = exc
                    time.sleep(0.2 * (attempt + 1))
            if not ok:
                log.error("could not write the last %d ticks of the session: %s", self.writer.held_ticks, self._trouble)
            if self.lock is not None:
                self.lock.release()
            self.store.close()
            return ok

    def record_alert(self, alert: Alert) -> bool:
        """Store an alert raised or cleared (the ``sink`` of :class:`gputab.alerts.observer.AlertObserver`).

        It joins the tick's figures in the writer's buffers and reaches the database with the next commit (at the
        latest :meth:`close`), through the same crash-safe path: held in memory while the database is in trouble.
        Safe to call from any thread.

        Args:
            alert: a :class:`gputab.alerts.observer.Alert` (raised, cleared, or an enforcement record).

        Returns:
            True if buffered; False (and a warning in the log) before :meth:`start` or after :meth:`close`, when
            there is no session left to store it in.
        """
        with self._mutex:
            if self.writer is None or self.closed:
                log.warning("alert not stored (no session open): %s", getattr(alert, "message", alert))
                return False
            self.writer.add_alert(alert)
            return True

    # -- one tick --------------------------------------------------------------------------------------------------
    def _server_tokens(self, tags: Mapping[int, str], wall: float, last: bool = False) -> None:
        """Tokens the session's inference servers counted since the last series step (read in the background;
        ``last``: the session ends, so they are read once more now, and not asked again)."""
        assert self.servers is not None and self.writer is not None
        if last:
            self.servers.finish(tags)
        for tag, (prompt, generated) in self.servers.take().items():
            self.ledger.add_server_tokens(tag, prompt, generated)
            self.writer.add_progress(
                tag, 0, prompt + generated, wall, "server", f"prompt {prompt} generated {generated}"
            )
        if not last:
            self.servers.request(tags)

    def _tick(self, baseline: bool = False) -> Tick:
        snap = self._on_session_clock(self.backend.poll())
        self._last_snap = snap
        notices = self.read_faults.observe(snap)
        for line in notices:
            log.warning("%s", line)
        procs = self.attributor.attribute([p.pid for p in snap.processes])
        tags = {pid: info.tag for pid, info in procs.items()}
        self._last_tags = tags
        intervals = self.ledger.tick(snap, tags)
        assert self.writer is not None
        self.writer.held_ticks += 1
        if self._series is None:
            self._series = SeriesStep(start_mono=snap.mono, step_start=snap.mono)
        self._series.add(snap, intervals, tags)
        emit = snap.mono - self._series.step_start >= self.rc.series_interval - 1e-9
        if emit:
            self._series.emit(snap.mono, self.writer, self.ledger)
        self._see_processes(snap, procs, refresh=emit or baseline)
        self.reports.tick(procs, self.ledger, self.writer, snap.wall, self.clock())
        if self.servers is not None and (emit or baseline):
            self._server_tokens(tags, snap.wall)
        if self.writer.pending_rows > MAX_HELD_SERIES_ROWS:
            dropped = self.writer.drop_oldest_series(MAX_HELD_SERIES_ROWS // 2)
            log.warning("database unavailable for long: dropped the %d oldest series points (totals are kept)", dropped)
        self._seq += 1
        jobs = tuple(j.to_json() for j in self.ledger.jobs_by_cost())
        gpus = tuple(g.to_json() for _, g in sorted(self.ledger.gpus.items()))
        return _with_state(
            Tick(
                self.session_id,
                self._seq,
                snap,
                MappingProxyType(dict(procs)),
                tuple(intervals),
                jobs,
                gpus,
                self.ledger.total_cost_usd,
                self.ledger.burn_rate_usd_per_hour,
                "ok",
                rejected_reports=self.reports.rejected_by_reason(),
                read_faults=self.read_faults.counts(),
                fault_notices=notices,
            ),
            self,
        )

    def _on_session_clock(self, snap: Snapshot) -> Snapshot:
        """``snap`` with its wall time on the session's clock; a step of the wall clock is noticed here."""
        sc = self.session_clock
        if sc is None:
            return snap
        sc.observe(snap.mono, snap.wall)  # anchors the timeline on the first snapshot
        return replace(snap, wall=sc.wall_at(snap.mono))

    def _session_wall(self) -> float:
        """Now on the session's clock: the last tick's moment (the start before any)."""
        assert self.started_wall is not None
        if self.session_clock is None or self._last_snap is None:
            return self.started_wall
        return self.session_clock.wall_at(self._last_snap.mono)

    @property
    def duration_seconds(self) -> float:
        """Seconds recorded so far, by the monotonic clock (never negative, whatever the wall clock did)."""
        return 0.0 if self.started_wall is None else self._session_wall() - self.started_wall

    def _see_processes(self, snap: Snapshot, procs: Mapping[int, ProcessInfo], refresh: bool) -> None:
        assert self.writer is not None
        for p in snap.processes:
            info = procs.get(p.pid)
            if info is None:
                continue
            ct = info.create_time if info.create_time is not None else 0.0
            key = (p.pid, ct, p.gpu_index)
            before = self._procs.get(key)
            now = (info.tag, info.source)
            if before is None or before != now or refresh:
                if info.user:
                    self._job_users.setdefault(info.tag, set()).add(info.user)
                self.writer.see_process(
                    p.pid,
                    ct,
                    p.gpu_index,
                    info.user,
                    info.name,
                    info.cmdline,
                    info.tag,
                    info.source,
                    snap.wall,
                    new=before is None,
                )
                if info.source == "manual" and (before is None or before[0] != info.tag):
                    self.writer.add_tag_change(p.pid, ct, info.tag, snap.wall, "manual")
                self._procs[key] = now
        if len(self._procs) > 10_000:  # forget long-gone processes so months of churn stay bounded
            live = {(p.pid, p.gpu_index) for p in snap.processes}
            self._procs = {k: v for k, v in self._procs.items() if (k[0], k[2]) in live}

    # -- commits ---------------------------------------------------------------------------------------------------
    def _set_totals(self) -> None:
        assert self.writer is not None
        led = self.ledger
        gpus = []
        for g in led.gpus.values():
            p = g.price
            gpus.append(
                {
                    "index": g.index,
                    "uuid": g.uuid,
                    "name": g.name,
                    "model_key": p.model_key,
                    "mode": p.mode,
                    "rate_per_hour": p.rate_per_hour,
                    "charge_energy": int(p.charge_energy),
                    "price_per_kwh": p.price_per_kwh,
                    "pue": p.pue,
                    "price_source": p.source,
                    "price_date": p.date,
                    "unknown_price": int(p.unknown),
                    "energy_method": g.energy_method,
                    "cost_usd": g.cost_usd,
                    "idle_cost_usd": g.idle_cost_usd,
                    "unattributed_cost_usd": g.unattributed_cost_usd,
                    "unobserved_cost_usd": g.unobserved_cost_usd,
                    "energy_j": g.energy_j,
                    "mig": g.mig_json(),
                    "mig_slices": g.mig_slices,
                }
            )
        last_wall = self._last_snap.wall if self._last_snap is not None else None
        users = self._job_users
        jobs = [
            {**j.to_json(), "user": ",".join(sorted(users[j.tag])) if j.tag in users else None}
            for j in led.jobs.values()
        ]
        self.writer.set_totals(jobs, gpus, last_wall, led.ticks, led.total_cost_usd, led.total_energy_j)
        self.writer.set_read_faults(self.read_faults.rows())
        sc = self.session_clock
        self.writer.clock_step_seconds = sc.step_seconds if sc is not None and sc.stepped else None

    def _flush(self) -> None:
        """The writer's flush; a database that turned into something gputab will not write (swapped for another
        program's file, its directory opened to others) is trouble like any other: figures held, retried."""
        assert self.writer is not None
        try:
            self.writer.flush()
        except StoreError as exc:
            raise StoreWriteError("error", str(exc)) from exc

    def _commit_due(self) -> bool:
        """Whether this tick must commit: waiting for the next one would leave more than ``commit_interval``
        uncommitted.

        That keeps README's promise (a crash loses at most one commit interval, plus the moment a commit takes):
        with 1 s ticks and 2 s commits every second tick commits, where "the first tick at least 2 s after the last
        commit" slipped to every third whenever a tick came a hair early. A tenth of a tick absorbs jitter.
        """
        since = self.clock() - self._last_commit
        return since + self.rc.interval > self.rc.commit_interval + 0.1 * self.rc.interval

    def _commit(self) -> None:
        assert self.writer is not None
        self._last_commit = self.clock()
        self._set_totals()
        held = self.writer.held_ticks
        had_session = self.writer.session_id is not None
        try:
            self._flush()
        except StoreWriteError as exc:
            if self._trouble is None or self._trouble.kind != exc.kind:
                log.warning("%s; holding the figures in memory and retrying every %g s", exc, self.rc.commit_interval)
            self._trouble = exc
            return
        if self._trouble is not None:
            log.warning("database writable again: wrote %d held ticks", held)
            self._trouble = None
        if not had_session and self.lock is not None and self.writer.session_id is not None:
            self.lock.set_session(self.writer.session_id)

    @property
    def notes(self) -> tuple[str, ...]:
        """What is wrong with the recording right now (empty when all is well)."""
        if self._trouble is None or self.writer is None:
            return ()
        return (
            f"database {self._trouble.kind}: {self.writer.held_ticks} ticks held in memory, retrying "
            f"({self._trouble.detail})",
        )

    def _notify(self, tick: Tick) -> None:
        for obs in self.observers:
            try:
                obs.on_tick(tick)
            except Exception:
                if id(obs) not in self._observer_failed:
                    self._observer_failed.add(id(obs))
                    log.exception("observer %r failed (further failures of it are not logged)", obs)


def _with_state(tick: Tick, rec: Recorder) -> Tick:
    notes = rec.notes
    held = rec.writer.held_ticks if rec.writer is not None else 0
    state = "closed" if rec.closed else ("held" if notes else "ok")
    return replace(tick, session_id=rec.session_id, recording=state, notes=notes, held_ticks=held)


def _json(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
