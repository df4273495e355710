"""The feed of the session a running ``gputab record`` writes: this app only reads it (see :mod:`gputab.live.feed`)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from gputab.live.alert_log import AlertLog
from gputab.live.backfill import Backfill, stored_burn_rate
from gputab.live.feed import Feed, gpu_views, host_name, process_view, simulated
from gputab.live.frame import ATTACHED, NOT_RECORDING, Frame, GpuView, JobView, ProcessView, sort_jobs
from gputab.sampling.snapshot import Snapshot

if TYPE_CHECKING:
    from gputab.app_context import AppContext
    from gputab.budgets.model import BudgetBook
    from gputab.config.settings import Config
    from gputab.live.frame import BudgetView
    from gputab.sampling.backend import Backend
    from gputab.store import Store


class AttachedFeed(Feed):
    """A read-only viewer of the session a running ``gputab record`` writes (docs/design-notes.md, "Attached").

    Money, tags, alerts and budgets are the recorder's, as of its last commit; hardware figures and the process list
    come from this app's own poll, which writes nothing. Without a poll (``backend`` None, or a poll fails) the GPU
    figures are the recorder's last series step, and the notes say so. Never records, never tags.

    The charts' history: the recorder's stored series of the current window come with the first frame, the older
    part when the window widens (:class:`gputab.live.backfill.Backfill`); each GPU's ``now $/h`` is its stored
    price at the power polled here. When the recorder stops, the frames say so and :meth:`record_here` hands the
    app a feed that records on the same database (``start_recording``, set by :func:`gputab.live.start.open_feed`).

    Args:
        store: the database opened read-only.
        backend: the sampling backend, polled for the hardware figures; None when it could not be opened.
        config: for attributing the processes the recorder has not committed yet (same rules as the recorder).
        wall_clock: Unix time, for the elapsed time.
        why_no_poll: why ``backend`` is None (for the notes).
    """

    def __init__(
        self,
        store: Store,
        backend: Backend | None,
        config: Config,
        wall_clock: Callable[[], float] | None = None,
        why_no_poll: str = "",
    ) -> None:
        from gputab.attribution import Attributor
        from gputab.budgets.model import from_config

        self.store = store
        self.budgets = from_config(config)
        """The config's budgets (the recorder reads the same file; the database's come with each commit)."""
        self.backend = backend
        self.attributor = Attributor(backend.inspector(), config.attribution) if backend is not None else None
        self.host = host_name(backend)
        self._wall = wall_clock or time.time
        self.session_id: int | None = None
        self.alert_log = AlertLog()
        self._why_no_poll = why_no_poll
        self._read_key: tuple | None = None  # (session, last commit) the process list and alerts were read at
        self._procs: dict[tuple[int, int], dict] = {}
        self._samples: dict[int, dict] = {}
        self._book: BudgetBook | None = None  # the recorder's budget book, rebuilt from the store
        self._book_key: tuple | None = None
        self._book_trouble = ""
        self.backfill = Backfill()
        self.start_recording: Callable[[Backend], Feed] | None = None
        """Builds the feed that records here with this feed's backend (raises ``RecorderRunning`` when another
        recorder took the database first); None: recording here is not offered."""

    def want_history(self, seconds: float | None) -> None:
        self.backfill.want(seconds)

    def poll(self) -> Frame:
        from datetime import datetime

        snap, why = None, self._why_no_poll
        if self.backend is not None:
            try:
                snap = self.backend.poll()
            except Exception as exc:  # noqa: BLE001 - the recorder's figures are still worth showing
                why = f"{type(exc).__name__}: {exc}"
        writer = self.store.writer_info()
        if writer is not None:
            state, note = ATTACHED, f"recorder pid {writer.pid} on {writer.host or '?'}"
            if writer.session_id is not None:
                self.session_id = writer.session_id
        started = None
        jobs: list[dict] = []
        gpus: list[dict] = []
        total = 0.0
        budgets: tuple[BudgetView, ...] = ()
        block = None
        session: dict = {}
        if self.session_id is not None:
            session = self.store.session(self.session_id)
            started = datetime.fromisoformat(session["start"].replace("Z", "+00:00")).timestamp()
            jobs = self.store.jobs(self.session_id)
            gpus = self.store.gpus(self.session_id)
            total = session["cost_usd"]
            self._read_commit(self.session_id, session["last_commit"], need_samples=snap is None)
            budgets = self._budget_views(session, jobs)
            block = self.backfill.block(self.store, session, gpus, self._wall() - started, started)
        can_record = writer is None and self.backend is not None and self.start_recording is not None
        ended = ""
        if writer is None:
            state = NOT_RECORDING
            note, ended = self._stopped_note(session, can_record)
        host_notes = tuple(snap.host_notes) if snap is not None else ()
        notes = host_notes + tuple(snap.errors) if snap is not None else ()
        if self._book_trouble:
            notes += (self._book_trouble,)
        if ended:
            notes += (ended,)
        if snap is None:
            gpu_rows = stored_gpu_views(gpus, self._samples)
            notes += (f"GPU figures from the recorder's last series step: cannot poll the GPUs here ({why})",)
        else:
            power = {g.index: None if g.lost else g.power_w for g in snap.gpus}
            gpu_rows = gpu_views(snap, [with_burn_rate(g, power.get(g["index"])) for g in gpus])
        self.hand_over_alerts()
        return Frame(
            host=self.host,
            state=state,
            state_note=note,
            session_id=self.session_id,
            started_wall=started,
            elapsed_s=(self._wall() - started) if started is not None else None,
            total_cost_usd=total,
            burn_rate_usd_per_hour=sum(j.get("burn_rate_usd_per_hour") or 0.0 for j in jobs),
            gpus=gpu_rows,
            jobs=sort_jobs(JobView.from_json(j) for j in jobs),
            processes=self._process_views(snap),
            notes=notes,
            host_notes=host_notes,
            can_tag=False,
            **self.alert_fields(),
            real_pids=self.backend is not None and not simulated(self.backend),
            budgets=budgets,
            stored_series=block,
            can_record=can_record,
        )

    def _stopped_note(self, session: dict, can_record: bool) -> tuple[str, str]:
        """Once no recorder holds the database: the header's few words (what ``r`` does now) and the notes' line
        (how the session ended, with its detail: an exception's summary can be long)."""
        what = "r records here" if can_record else "restart gputab to record"
        if not session:
            return f"no recorder; {what}", ""
        reason = session.get("end_reason")
        if reason in (None, "recording"):
            return f"recorder gone; {what}", f"the recorder of session {session['id']} is gone without closing it"
        detail = f": {session['end_detail']}" if session.get("end_detail") else ""
        return f"recorder stopped; {what}", f"the recorder ended session {session['id']} ({reason}{detail})"

    def record_here(self) -> Feed:
        """The recorder has stopped: record on the same database from now on, with this feed's backend (a new
        session). This feed is closed without its backend, which the new feed owns. Raises ValueError."""
        if self.store.writer_info() is not None:
            raise ValueError("a recorder holds the database again: this view stays attached to it")
        if self.backend is None or self.start_recording is None:
            raise ValueError(f"cannot record here: {self._why_no_poll or 'no GPU backend'}")
        from gputab.store import RecorderRunning, StoreError

        try:
            feed = self.start_recording(self.backend)
        except RecorderRunning as exc:
            raise ValueError(f"another recorder started first: {exc}") from None
        except StoreError as exc:
            raise ValueError(f"cannot record here: {exc}") from None
        feed.on_alerts = self.on_alerts
        self.backend = None  # the recording feed owns it now
        self.store.close()
        return feed

    def _budget_views(self, session: dict, jobs: list[dict]) -> tuple[BudgetView, ...]:
        """The budgets holding the session's jobs, from a book rebuilt when a commit lands or a period begins."""
        from gputab.budgets.model import from_caps
        from gputab.live.frame import budget_views
        from gputab.recording.budget_keeper import stored_book
        from gputab.sampling.demo import DEMO_BUDGETS
        from gputab.store import StoreError

        wall = self._wall()
        periods = frozenset(self._book.periods(wall)) if self._book is not None else None
        if (self._read_key, periods) != self._book_key:
            demo = from_caps(DEMO_BUDGETS, origin="demo") if session.get("backend") == "demo" else ()
            try:
                self._book = stored_book(self.store, self.budgets, wall, self.session_id, defaults=demo)
                self._book_trouble = ""
            except (StoreError, sqlite3.Error) as exc:
                self._book = None
                self._book_trouble = f"budgets not shown: cannot read them from the database ({exc})"
            periods = frozenset(self._book.periods(wall)) if self._book is not None else None
            self._book_key = (self._read_key, periods)
        return budget_views(self._book, wall, jobs) if self._book is not None else ()

    def _read_commit(self, session_id: int, commit: str | None, need_samples: bool) -> None:
        """Re-read what changes only with a commit (processes, alerts) when a new one has landed."""
        key = (session_id, commit)
        if key == self._read_key and not (need_samples and not self._samples):
            return
        if self._read_key is not None and self._read_key[0] != session_id:
            self.alert_log = AlertLog()  # the recorder was restarted: a new session, new alerts
        self._read_key = key
        self._procs = {(p["pid"], p["gpu_index"]): p for p in self.store.live_processes(session_id)}
        self.alert_log.sync_rows(self.store.alerts(session_id))
        if need_samples:
            self._samples = {g["index"]: g for g in self.store.latest_gpu_samples(session_id)}

    def _process_views(self, snap: Snapshot | None) -> tuple[ProcessView, ...]:
        """The processes running now, each with the recorder's tag; the recorder's list when we cannot poll."""
        if snap is None:
            return tuple(
                ProcessView(
                    pid=p["pid"],
                    gpu_index=p["gpu_index"],
                    user=p["user"],
                    command=p["cmdline"] or p["name"] or "?",
                    used_memory_bytes=None,
                    sm_pct=None,
                    tag=p["tag"],
                    source=p["source"],
                )
                for p in self._procs.values()
            )
        stored = self._procs
        # A process that started since the recorder's last commit is not in the store yet: tag it by the same
        # rules until the next commit brings the recorder's answer (manual tags included).
        missing = [p.pid for p in snap.processes if (p.pid, p.gpu_index) not in stored]
        infos = self.attributor.attribute(missing) if missing and self.attributor is not None else {}
        out = []
        for p in snap.processes:
            rec = stored.get((p.pid, p.gpu_index))
            if rec is None:
                out.append(process_view(p, infos.get(p.pid)))
            else:
                out.append(
                    ProcessView(
                        pid=p.pid,
                        gpu_index=p.gpu_index,
                        user=rec["user"],
                        command=rec["cmdline"] or rec["name"] or "?",
                        used_memory_bytes=p.used_memory_bytes,
                        sm_pct=p.sm_pct,
                        tag=rec["tag"],
                        source=rec["source"],
                        gpu_instance_id=p.gpu_instance_id,
                        compute_instance_id=p.compute_instance_id,
                    )
                )
        return tuple(out)

    def close(self, reason: str, detail: str | None = None) -> None:
        try:
            self.store.close()
        finally:
            if self.backend is not None:
                self.backend.close()


def with_burn_rate(gpu: dict, power_w: float | None) -> dict:
    """A stored GPU (``session_gpus``) with its ``burn_rate_usd_per_hour`` now, at ``power_w``."""
    return {**gpu, "burn_rate_usd_per_hour": stored_burn_rate(gpu, power_w)}


def stored_gpu_views(gpus: list[dict], samples: Mapping[int, dict]) -> tuple[GpuView, ...]:
    """GPU views from the store alone: identity and money from ``session_gpus``, hardware from the last step.

    The store has no VRAM total or power limit, so those (and the bars drawn against them) read n/a.
    """
    out = []
    for g in gpus:
        s = samples.get(g["index"], {})
        util = s.get("utilization")
        out.append(
            GpuView(
                index=g["index"],
                uuid=g.get("uuid") or "",
                name=g.get("name") or "?",
                model_key=g.get("model_key"),
                utilization_pct=util * 100.0 if util is not None else None,
                memory_used_bytes=s.get("memory_used_bytes"),
                power_w=s.get("power_w"),
                temperature_c=s.get("temperature_c"),
                rate_per_hour=g.get("rate_per_hour"),
                unknown_price=bool(g.get("unknown_price")),
                energy_method=g.get("energy_method"),
                cost_usd=g.get("cost_usd"),
                burn_rate_usd_per_hour=stored_burn_rate(g, s.get("power_w")),
            )
        )
    return tuple(out)


def attach_without_backend(
    ctx: AppContext, config: Config, wall_clock: Callable[[], float] | None, why: str
) -> AttachedFeed | None:
    """An :class:`AttachedFeed` with no backend when a recorder is running; None otherwise."""
    from gputab.store import Store, StoreError

    try:
        store = Store.open(ctx.database, readonly=True)
    except (StoreError, OSError):
        return None
    if store.writer_info() is None:
        store.close()
        return None
    return AttachedFeed(store, None, config, wall_clock=wall_clock, why_no_poll=why)
