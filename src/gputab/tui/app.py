"""The gputab live app: the App, its factory (for the CLI and the tests) and ``run_app``.

The poll runs in one thread (:mod:`gputab.live.poller`) that owns the feed: it records the session itself, or
attaches to a running recorder read-only (:mod:`gputab.live.feed`). The app asks for a poll, the thread posts a
:class:`FrameReady` back, the visible view updates its widgets in place, and only then is the next poll
scheduled (``set_timer``), so a slow poll never stacks up behind another.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import App, ScreenStackError
from textual.binding import Binding
from textual.screen import ModalScreen

from gputab import startup
from gputab.errors import one_line
from gputab.live.feed import Feed
from gputab.live.frame import Frame
from gputab.live.history import WINDOWS, History
from gputab.live.poller import Poller
from gputab.live.start import open_feed
from gputab.tui.jobs_screen import JobsScreen
from gputab.tui.literal import LiteralNotifications, fit
from gputab.tui.live_screen import LiveScreen
from gputab.tui.messages import AlertsChanged, FrameReady, PollFailed

if TYPE_CHECKING:
    from textual.command import Provider
    from textual.screen import Screen
    from textual.timer import Timer

    from gputab.app_context import AppContext
    from gputab.live.frame import AlertView
    from gputab.sampling.backend import Backend
    from gputab.tui.live_app import LiveApp

VIEWS = ("jobs", "gpus", "processes", "alerts")
VIEWS_GROUP = Binding.Group("Views", compact=True)
ALERT_SEVERITY = {"warning": "warning", "critical": "error"}
"""Alert severity -> notification severity."""
FIRST_FRAME_WAIT = 0.2
"""Seconds :meth:`GputabApp.poll_before_start` may wait for the first poll before the screen starts."""
FEED_OPEN_WAIT = 1.0
"""Seconds more it may wait while the poll thread is still opening the feed (usually 0.1-0.3 s of the start)."""
MAX_ALERT_TOASTS = 3
"""Raised alerts notified one by one per poll; beyond that one line says how many more (a storm is one toast)."""


# The views other than the jobs view, and the command palette's provider, are imported when first opened: the
# first frame shows the jobs view only (tests/test_live_startup.py checks they stay unloaded until then).
def _gpus_screen() -> Screen[Any]:
    from gputab.tui.gpus_screen import GpusScreen

    return GpusScreen()


def _processes_screen() -> Screen[Any]:
    from gputab.tui.processes_screen import ProcessesScreen

    return ProcessesScreen()


def _alerts_screen() -> Screen[Any]:
    from gputab.tui.alerts_screen import AlertsScreen

    return AlertsScreen()


def _gputab_commands() -> type[Provider]:
    from gputab.tui.commands import GputabCommands

    return GputabCommands


class GputabApp(LiteralNotifications, App):
    """Live costs of every GPU and job on this host.

    Args:
        open_feed: builds the feed (called in the poll thread).
        interval: seconds between the end of one poll and the start of the next.
        start_polling: False for tests that drive polls by hand with :meth:`poll_now` (no timers).
        readonly: turn process actions (signals) off.
    """

    TITLE = "gputab"
    MODES = {"jobs": JobsScreen, "gpus": _gpus_screen, "processes": _processes_screen, "alerts": _alerts_screen}
    DEFAULT_MODE = "jobs"
    BINDINGS = [
        # One footer entry for the four views ("1234 Views") leaves room at 80 columns for every other key.
        Binding("1", "view('jobs')", "Jobs", group=VIEWS_GROUP),
        Binding("2", "view('gpus')", "GPUs", group=VIEWS_GROUP),
        Binding("3", "view('processes')", "Procs", group=VIEWS_GROUP),
        Binding("4", "view('alerts')", "Alerts", group=VIEWS_GROUP),
        Binding("5,6,7,8,9", "no_view", show=False),
        Binding("t", "tag", "Tag"),
        Binding("s", "sessions", "Sessions"),
        Binding("dollar_sign", "spend", "Spend"),
        Binding("r", "record_or_poll", "Poll now / record here", show=False),
        Binding("question_mark", "keys", "Keys"),
        Binding("q", "quit", "Quit"),
    ]
    COMMANDS = App.COMMANDS | {_gputab_commands}
    """ctrl+p: gputab's own commands with their keys (tui/commands.py), then Textual's (themes, quit)."""
    # ctrl+p: Textual's command palette, for its themes (a light one among them); listed under `?`, not in the
    # footer, which keeps its room for gputab's keys at 80 columns. NO_COLOR is honoured by Textual itself.
    ENABLE_COMMAND_PALETTE = True
    toast_scale = 1.0
    """Multiplies how long alert toasts stay up (snapshot tests lengthen it, so a slow run still shows them)."""

    def __init__(
        self,
        open_feed: Callable[[], Feed],
        *,
        interval: float = 1.0,
        start_polling: bool = True,
        readonly: bool = False,
    ) -> None:
        super().__init__()
        self.readonly = readonly
        """``--readonly``: no process actions (signals) from this app."""
        self.interval = interval
        self.start_polling = start_polling
        self.poller: Poller[Feed] = Poller(open_feed)
        self.frame: Frame | None = None
        self.history = History()
        self._chart_window = 0
        self.close_reason = "quit"
        self.close_detail: str | None = None
        """With ``close_reason`` ``error``: the one-line summary of the exception that ended the app."""
        self.frames_shown = 0
        self._timer: Timer | None = None
        self._first_poll: Future | None = None
        self._closing = False
        self.handle_signals = False
        """True in a real terminal (``run_app``): SIGHUP/SIGTERM close the session. Tests leave them alone."""

    @property
    def chart_window(self) -> int:
        """Index into :data:`gputab.live.history.WINDOWS`: the charts' time window (``w`` cycles it)."""
        return self._chart_window

    @chart_window.setter
    def chart_window(self, index: int) -> None:
        self._chart_window = index
        seconds = WINDOWS[index % len(WINDOWS)][0]
        # An attached feed reads the stored points the wider window needs; they come with the next frame.
        self.poller.submit(lambda feed: feed.want_history(seconds))
        self.action_refresh()

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def on_mount(self) -> None:
        if self.handle_signals:
            self.install_signal_handlers()
        self.call_after_refresh(startup.started)  # garbage collection back on after the first paint
        if not self.poller.started:  # run_app starts it before the screen (a quicker first frame)
            self.run_worker(self.poller.run, thread=True, name="poll", group="poll", exit_on_error=False)
        # Queued before any poll, so no alert a poll raises can miss the listener.
        self.poller.submit(self._listen_for_alerts)
        if self.start_polling:
            first, self._first_poll = self._first_poll, None
            if first is None:
                self._request_poll()
            elif self.frame is not None:
                self._schedule_next(0.0)
            else:
                first.add_done_callback(self._frame_done(time.monotonic()))

    def poll_before_start(self, wait: float = FIRST_FRAME_WAIT, opening: float = FEED_OPEN_WAIT) -> None:
        """Ask for the first poll now and wait up to ``wait`` seconds for it (``wait + opening`` while the poll
        thread still opens the feed), so that the first paint has the figures: "starting…" paints meanwhile only
        took the interpreter (one thread runs Python at a time) from the thread opening the feed. A slower poll
        is shown when it comes."""
        self._first_poll = self.poller.submit(lambda feed: feed.poll())
        if not self.poller.started:
            return  # no poll thread yet: nothing would answer
        timeout = wait if self.poller.feed is not None else wait + opening
        try:
            self.show(self._first_poll.result(timeout=timeout))  # no screen yet: the views draw it when they mount
        except Exception:  # noqa: BLE001 - slow or failed: on_mount hands it on as any poll
            pass

    def install_signal_handlers(self) -> None:
        """Close the session cleanly on SIGHUP (the SSH connection dropped) and SIGTERM, like the recorder."""
        loop = asyncio.get_running_loop()
        for sig, reason in ((signal.SIGHUP, "sighup"), (signal.SIGTERM, "sigterm")):
            loop.add_signal_handler(sig, self._exit_on_signal, reason)

    def _exit_on_signal(self, reason: str) -> None:
        self.close_reason = reason
        self.exit()

    def _handle_exception(self, error: Exception) -> None:
        # An exception that ends the app ends its session as `error`, with the exception's summary, never `clean`.
        self.record_error(error)
        super()._handle_exception(error)

    def record_error(self, error: BaseException) -> None:
        """The session this app records ends as ``error`` with ``error``'s one-line summary (the first error
        counts: one raised while closing does not replace it)."""
        if self.close_reason != "error":
            self.close_reason, self.close_detail = "error", one_line(error)

    def on_unmount(self) -> None:
        self.close_feed()

    def close_feed(self) -> None:
        """Stop polling and close the session (after the poll in flight, if any). Idempotent."""
        self._closing = True
        if self._timer is not None:
            self._timer.stop()
        reason, detail = self.close_reason, self.close_detail
        self.poller.stop(close=lambda feed: feed.close(reason, detail))

    # -- polling ------------------------------------------------------------------------------------------------
    def _request_poll(self) -> None:
        self._timer = None
        if self._closing:
            return
        self.poller.submit(lambda feed: feed.poll()).add_done_callback(self._frame_done(time.monotonic()))

    def _frame_done(self, started: float) -> Callable[[Future], None]:
        """The callback of a poll's future: posts its frame (or why it failed) to the app."""

        def done(fut: Future) -> None:  # runs in the poll thread; post_message is thread-safe
            exc = fut.exception()
            if exc is not None:
                self.post_message(PollFailed(f"{type(exc).__name__}: {exc}"))
            else:
                self.post_message(FrameReady(fut.result(), time.monotonic() - started))

        return done

    def _schedule_next(self, took: float) -> None:
        if self.start_polling and not self._closing and self._timer is None:
            # Keep the cadence near the interval without ever overlapping: the wait starts after the poll ended.
            self._timer = self.set_timer(max(0.05, self.interval - took), self._request_poll)

    @on(FrameReady)
    def _frame_ready(self, message: FrameReady) -> None:
        self.show(message.frame)
        self._schedule_next(message.took)

    def _listen_for_alerts(self, feed: Feed) -> None:
        """Runs in the poll thread: the feed posts each poll's raised and cleared alerts to the app."""

        def post(raised: tuple[AlertView, ...], cleared: tuple[AlertView, ...]) -> None:
            self.post_message(AlertsChanged(raised, cleared))

        feed.on_alerts = post

    @on(AlertsChanged)
    def _alerts_changed(self, message: AlertsChanged) -> None:
        raised = message.raised
        for alert in raised[:MAX_ALERT_TOASTS]:
            self.notify(
                alert.message,
                title=f"{alert.severity}: {alert.kind.replace('_', ' ')}",
                severity=ALERT_SEVERITY.get(alert.severity, "warning"),
                timeout=(10 if alert.severity == "critical" else 6) * self.toast_scale,
            )
        if len(raised) > MAX_ALERT_TOASTS:
            self.notify(
                f"{len(raised) - MAX_ALERT_TOASTS} more alerts raised: press 4 to see them all",
                severity="warning",
                timeout=6 * self.toast_scale,
            )

    @on(PollFailed)
    def _poll_failed(self, message: PollFailed) -> None:
        self.notify(message.error, title="poll failed", severity="error", timeout=4)
        self._schedule_next(0.0)

    async def feed_ready(self) -> Feed:
        """Wait until the poll thread has opened the feed (the session's baseline is taken then)."""
        return await asyncio.wrap_future(self.poller.submit(lambda feed: feed))

    async def poll_now(self) -> Frame:
        """Poll once and show the result (tests and the screenshot script drive the app with this)."""
        frame = await asyncio.wrap_future(self.poller.submit(lambda feed: feed.poll()))
        self.show(frame)
        return frame

    def show(self, frame: Frame) -> None:
        """Make ``frame`` the current one and refresh the visible view."""
        self.frame = frame
        if frame.stored_series is not None:
            self.history.backfill(frame.stored_series)  # an attached view's points from before it watched
        self.history.add(frame)
        self.frames_shown += 1
        for notice in frame.notices:  # a kind of failed GPU reading, said once per session
            self.notify(notice, title="GPU reading failed", severity="warning", timeout=12)
        try:
            screen = self.screen
        except ScreenStackError:
            return  # the app is closing: its screens are gone before the last poll's frame arrives
        if isinstance(screen, LiveScreen):
            screen.refresh_frame(frame, self.history)
        else:
            # A dialog is on top: refresh the view underneath so it is current when the dialog closes.
            for s in reversed(self.screen_stack):
                if isinstance(s, LiveScreen):
                    s.refresh_frame(frame, self.history)
                    break

    # -- actions ------------------------------------------------------------------------------------------------
    LIVE_ONLY = frozenset({"view", "tag", "sessions", "refresh", "record_or_poll"})
    """Actions of the live views only: over the review, the Spend screen or a dialog they are off (and out of the
    footer, which then fits 80 columns with the screen's own keys, `?` and q)."""

    def binding_applies(self, action: str, screen: Screen[Any]) -> bool:
        """Whether the app's ``action`` (its name) is on while ``screen`` is on top (read by ``?`` too); a screen
        turns app actions that make no sense over it off with ``OFF_ACTIONS`` (the Spend screen: ``spend``)."""
        if action in getattr(screen, "OFF_ACTIONS", ()):
            return False
        return action not in self.LIVE_ONLY or isinstance(screen, LiveScreen)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Under a dialog (keys, tag, details) the screen it covers decides: its footer stays as it was.
        screen = next((s for s in reversed(self.screen_stack) if not isinstance(s, ModalScreen)), self.screen)
        return self.binding_applies(action, screen)

    def action_view(self, name: str) -> None:
        if name in VIEWS and self.current_mode != name:
            self.switch_mode(name)

    def action_no_view(self) -> None:
        """Keys 5-9: there is no such view; say so briefly instead of doing nothing."""
        self.notify("no such view: 1 Jobs, 2 GPUs, 3 Procs, 4 Alerts", timeout=2)

    def action_refresh(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._request_poll()

    def action_record_or_poll(self) -> None:
        """``r``: record here when the recorder this view was attached to has stopped; else poll now."""
        if self.frame is None or not self.frame.can_record:
            self.action_refresh()
            return

        def done(fut: Future) -> None:  # runs in the poll thread
            exc = fut.exception()
            if exc is not None:
                self.call_from_thread(self.notify, str(exc), title="not recording", severity="error")
            else:
                self.call_from_thread(self.notify, "recording here: a new session", title="recording")

        self.poller.replace_feed(lambda feed: feed.record_here()).add_done_callback(done)
        self.action_refresh()

    def action_sessions(self) -> None:
        """Open the review of recorded sessions (this one included, as of its last commit)."""
        from gputab.tui.review import open_review

        open_review(self)

    def action_spend(self) -> None:
        """Open the Spend screen: cost per day and per job across the recorded sessions."""
        from gputab.tui.spend_screen import open_spend

        open_spend(self)

    def action_keys(self) -> None:
        """Show the keys of the current view, grouped (``?`` again or escape closes)."""
        from gputab.tui.keys_screen import KeysScreen

        if not isinstance(self.screen, KeysScreen):
            self.push_screen(KeysScreen(self.screen))

    def action_tag(self) -> None:
        """Tag the selected process (processes view) or every process of the selected job (jobs view)."""
        from gputab.tui.processes_screen import ProcessesScreen
        from gputab.tui.tag_screen import TagScreen

        frame, screen = self.frame, self.screen
        if frame is None:
            return
        if not frame.can_tag:
            self.notify(
                "attached read-only to another recorder: tag in that session (`gputab run --tag`)", severity="warning"
            )
            return
        if isinstance(screen, ProcessesScreen):
            proc = screen.selected_process()
            if proc is None:
                self.notify("no process selected", severity="warning")
                return
            target = f"process {proc.pid} on GPU {proc.gpu_index} ({proc.user or '?'}: {fit(proc.command, 60)})"
            self.push_screen(TagScreen(target, proc.tag), lambda tag: self._apply_tag(tag, pid=proc.pid))
        elif isinstance(screen, JobsScreen):
            job = screen.selected_job()
            if job is None or job.startswith("("):
                self.notify("select a job (not a bucket such as (idle)) to tag its processes", severity="warning")
                return
            self.push_screen(TagScreen(f"every process of job {job}", job), lambda tag: self._apply_tag(tag, job=job))
        else:
            self.notify("tag from the jobs (1) or processes (3) view", severity="information")

    def _apply_tag(self, tag: str | None, pid: int | None = None, job: str | None = None) -> None:
        if not tag:
            return

        def run(feed: Feed) -> str:
            if pid is not None:
                return feed.tag_process(pid, tag)
            assert job is not None  # one of the two is always given
            return feed.tag_job(job, tag)

        def done(fut: Future[str]) -> None:
            exc = fut.exception()
            if exc is not None:
                self.call_from_thread(self.notify, str(exc), title="not tagged", severity="error")
            else:
                self.call_from_thread(self.notify, fut.result(), title="tagged")

        self.poller.submit(run).add_done_callback(done)
        self.action_refresh()


if TYPE_CHECKING:

    def _as_live_app(app: GputabApp) -> LiveApp:
        """Never called: mypy checks here that GputabApp has everything its live screens read."""
        return app


def create_app(
    ctx: AppContext,
    *,
    clock: Callable[[], float] | None = None,
    wall_clock: Callable[[], float] | None = None,
    interval: float = 1.0,
    start_polling: bool = True,
    backend: Backend | None = None,
    readonly: bool = False,
) -> GputabApp:
    """Build the app for a CLI context (demo or NVML, database, config).

    Args:
        ctx: the CLI's :class:`gputab.cli.context.AppContext`.
        clock: monotonic clock for the backend and the recorder (tests pass a ``FakeClock``).
        wall_clock: wall clock (Unix seconds), e.g. ``FakeClock.wall``.
        interval: seconds between polls.
        start_polling: False to drive polls by hand (``await app.poll_now()``).
        backend: a backend already opened (the CLI probes it before the screen opens); the feed owns it from
            then on. None: the feed opens one.
        readonly: ``--readonly``: no process actions.
    """
    return GputabApp(
        lambda: open_feed(ctx, clock=clock, wall_clock=wall_clock, interval=interval, backend=backend),
        interval=interval,
        start_polling=start_polling,
        readonly=readonly,
    )


def run_app(
    ctx: AppContext,
    interval: float | None = None,
    backend: Backend | None = None,
    readonly: bool = False,
    poller: Poller[Feed] | None = None,
) -> None:
    """Run the live app in this terminal until the user quits or the terminal goes away.

    Args:
        ctx: the CLI context.
        interval: seconds between polls (checked by the CLI); None: the config's ``recorder.interval``.
        backend: the backend the CLI opened to check it works, handed to the feed.
        readonly: ``--readonly``: no process actions.
        poller: the poll thread the CLI started on the feed before importing this module
            (:func:`gputab.live.start.start_feed`); None: started here, before the screen.
    """
    interval = interval if interval is not None else ctx.config.recorder.interval
    app = create_app(ctx, interval=interval, backend=backend, readonly=readonly)
    if poller is not None:
        app.poller = poller
    app.handle_signals = True
    from gputab.tui.driver import driver_class

    app.driver_class = driver_class() or app.driver_class  # an input thread that sleeps until a key comes
    app.poller.start()
    app.poll_before_start()
    try:
        app.run()
    except BaseException as exc:
        if not isinstance(exc, KeyboardInterrupt | SystemExit):
            app.record_error(exc)
        raise
    finally:
        app.close_feed()  # on_unmount already did; this covers an app that failed before mounting
        if backend is not None and app.poller.feed is None:
            backend.close()  # the feed never took it over
