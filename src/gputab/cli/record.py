"""``gputab record``: the headless recorder, until a signal stops it."""

from __future__ import annotations

import dataclasses
import logging
import signal
import socket
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from gputab.cli.context import AppContext, fail, pass_ctx
from gputab.cli.options import check_interval
from gputab.config.paths import default_db
from gputab.errors import one_line
from gputab.money import usd_per_hour

if TYPE_CHECKING:
    from gputab.recording.recorder import Recorder
    from gputab.recording.tick import Tick

#: Stopping signals and the end reason they give. SIGHUP means the terminal went away (an SSH session
#: dropped): the session is closed just as carefully, but the record says the user did not ask for it.
STOP_SIGNALS = {signal.SIGINT: "clean", signal.SIGTERM: "clean", signal.SIGHUP: "signal"}


class _StderrLog(logging.Handler):
    """The recorder's notes (database trouble, failed ticks) as ``gputab: ...`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"gputab: {record.getMessage()}", err=True)
        if record.exc_info and record.levelno >= logging.ERROR:
            import traceback

            click.echo("".join(traceback.format_exception(*record.exc_info)).rstrip(), err=True)


def _gpu_line(tick: Tick) -> str:
    parts = []
    for g in tick.gpus:
        model = g["model_key"] or f"{g['name']} (unknown model, default rate)"
        parts.append(f"{g['index']} {model} {usd_per_hour(g['rate_per_hour'])}")
    return f"{len(parts)} GPU{'s' if len(parts) != 1 else ''}: " + ", ".join(parts) if parts else "no GPUs"


@click.command()
@click.option(
    "--interval", type=float, default=None, help="Seconds between polls [config recorder.interval; default 1]."
)
@click.option("--demo", is_flag=True, help="Record the simulated demo box (same as `gputab --demo record`).")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics on this port [config metrics.port; default: off].",
)
@click.option(
    "--metrics-address",
    default=None,
    metavar="ADDRESS",
    help="Address for --metrics-port [config metrics.address; default 127.0.0.1: this machine only].",
)
@pass_ctx
def record(
    app: AppContext, interval: float | None, demo: bool, metrics_port: int | None, metrics_address: str | None
) -> None:
    """Record a session to the database with no UI, until Ctrl-C, SIGTERM or SIGHUP.

    Figures are committed every recorder.commit_interval seconds (default 2), so kill -9 loses at most that much;
    the next gputab command closes such a session as `crashed`. One recorder per database file, whatever the path.
    A database that is not gputab's, or cannot work at all, is refused at start (exit 1).
    """
    # Stop signals are caught from the first line: one that lands while the backend or the database is still
    # opening stops the recording as soon as it can, and never surfaces as a KeyboardInterrupt traceback.
    with _StopSignals() as stop:
        _command(app, interval, demo, metrics_port, metrics_address, stop)


class _StopSignals:
    """SIGINT, SIGTERM and SIGHUP set :attr:`event` (the first one is kept in :attr:`caught`) for the whole command.

    Once the session is closed, a further signal changes nothing: the exit status stays the clean one. When
    gputab is the process (not a test calling the command in-process), the handlers are not put back on exit,
    so a signal landing while the interpreter shuts down cannot turn a clean exit into death by signal.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.caught: list[signal.Signals] = []
        self._previous: dict = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.caught.append(signal.Signals(signum))
        self.event.set()

    @property
    def first(self) -> signal.Signals | None:
        return self.caught[0] if self.caught else None

    def __enter__(self) -> _StopSignals:
        self._previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        from gputab import startup

        for s, h in self._previous.items():
            signal.signal(s, signal.SIG_IGN if startup.AS_PROGRAM else h)


def _command(
    app: AppContext,
    interval: float | None,
    demo: bool,
    metrics_port: int | None,
    metrics_address: str | None,
    stop: _StopSignals,
) -> None:
    from gputab.recording.recorder import Recorder
    from gputab.store import Store

    if demo and not app.demo:
        app.demo = True
        parent = click.get_current_context().parent
        if parent is not None and parent.params.get("db") is None:
            app.db_path = default_db(demo=True)
    config = app.config
    if interval is not None:
        config = dataclasses.replace(
            config, recorder=dataclasses.replace(config.recorder, interval=check_interval(interval))
        )
    handler = _StderrLog(level=logging.WARNING)
    logger = logging.getLogger("gputab.recording.recorder")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    from gputab.alerts.observer import AlertObserver

    # Alerts print as `gputab: HH:MM:SS ALERT [...]` lines and are stored with the session; the sink is set once
    # the recorder exists (it is built inside the backend's context, after the observers it is given).
    alerts = AlertObserver.from_config(config, stream=sys.stdout)
    observers: list[Any] = [alerts]  # the recorder calls on_tick/close on each, whatever its class
    port = metrics_port if metrics_port is not None else config.metrics.port
    address = metrics_address or config.metrics.address
    try:
        if port is not None:
            from gputab.publish.metrics import MetricsObserver

            try:
                observers.append(MetricsObserver(port, address, alerts=lambda: alerts.active))
            except OSError as exc:
                fail(f"cannot serve metrics on {address}:{port}: {exc}; pick another --metrics-port")
            click.echo(f"gputab: serving Prometheus metrics at {observers[-1].url}")
        with app.open_backend(on_wait=lambda msg: click.echo(f"gputab: {msg}", err=True)) as backend:
            alerts.adapt_to(backend)  # the demo box compresses time (DemoBackend.alerts_config)
            rec = Recorder(backend, Store(app.database), config, observers=observers)
            # The exporter labels series with the host the session is recorded under (the demo box's name).
            host = getattr(backend, "host", None) or socket.gethostname()
            for obs in observers[1:]:
                obs.set_host(host)
            alerts.sink = rec.record_alert
            _record(rec, app, stop)
    finally:
        for obs in observers:
            obs.close()
        logger.removeHandler(handler)


def _record(rec: Recorder, app: AppContext, stop: _StopSignals) -> None:
    early = stop.first
    if early is not None:
        click.echo(f"gputab: stopped by {early.name} before recording started; nothing recorded")
        return
    tick = rec.start()
    where = f"session {rec.session_id}" if rec.session_id is not None else "a new session (not written yet)"
    click.echo(
        f"gputab: recording {where} to {app.db_path} every {rec.rc.interval:g} s, "
        f"committing every {rec.rc.commit_interval:g} s ({_gpu_line(tick)}); stop with Ctrl-C"
    )
    for note in tick.snapshot.host_notes + tick.notes:
        click.echo(f"gputab: {note}", err=True)
    sys.stdout.flush()
    failed: list[BaseException] = []

    def loop_body() -> None:
        try:
            rec.run(stop.event)
        except BaseException as exc:  # noqa: BLE001 - ends the session as `error`, below
            failed.append(exc)

    loop = threading.Thread(target=loop_body, name="gputab-recorder", daemon=True)
    loop.start()
    # The main thread only waits, so signal handlers run promptly; the loop runs in its own thread.
    try:
        while loop.is_alive():
            loop.join(0.5)
    except BaseException as exc:
        stop.event.set()
        failed.append(exc)
    if failed:
        # An exception ended the recording: the session says so, with the exception's summary, never `clean`.
        detail = one_line(failed[0])
        rec.close("error", detail)
        click.echo(f"gputab: session {rec.session_id} closed (error: {detail})", err=True)
        raise failed[0]
    sig = stop.first
    reason = STOP_SIGNALS.get(sig, "clean") if sig is not None else "clean"
    ok = rec.close(reason, sig.name if sig is not None else None)
    led = rec.ledger
    duration = rec.duration_seconds
    how = f"{reason}, {sig.name}" if sig is not None else reason
    click.echo(
        f"gputab: session {rec.session_id} closed ({how}) after {duration:.1f} s, {led.ticks} ticks, "
        f"total ${led.total_cost_usd:.6f}"
    )
    if not ok:
        fail(f"the last figures could not be written to {app.db_path} (see above); what was committed before is kept")


def register(cli: click.Group) -> None:
    cli.add_command(record)
