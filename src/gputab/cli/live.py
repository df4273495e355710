"""``gputab`` with no command: the live view, and the checks made before any screen opens."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from gputab.cli.context import AppContext, fail
from gputab.cli.options import check_interval
from gputab.errors import BackendError

if TYPE_CHECKING:
    from gputab.sampling.backend import Backend

NOT_NEEDED = ("ssl", "_ssl", "_hashlib")
"""OpenSSL, kept out of the live view's process: asyncio (under Textual) imports ``ssl``, and sqlite-utils
``hashlib`` (through ``secrets``), only to have them at hand, which maps libcrypto (3.4 MiB resident, 5 MiB of the
live view's RSS in all). The live view opens no TLS connection and hashes nothing: without them asyncio has no TLS
and ``hashlib`` uses Python's own md5/sha code. Commands that talk HTTPS (``gputab fleet``) are other processes; a
module that imports ``ssl`` unconditionally (prometheus_client's exposition, which only ``gputab record`` loads)
cannot be loaded by the live view (tests/test_live_startup.py checks the live view loads none of them)."""

NO_TERMINAL_HINT = (
    "record headless with `gputab record`, and read sessions with `gputab sessions`, `gputab show` "
    "(add --json for scripts)"
)


def require_terminal(what: str) -> None:
    """Refuse (exit 2) unless stdin and stdout are both a terminal: a full-screen app writing escape codes into a
    file or a pipe, and waiting for keys from /dev/null, helps nobody. Checked before anything is opened."""
    missing = [name for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout)) if not _is_tty(stream)]
    if missing:
        fail(
            f"{what} needs a terminal ({' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not one); "
            f"{NO_TERMINAL_HINT}",
            code=2,
        )


def _is_tty(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def probe_backend(app: AppContext) -> Backend | None:
    """Open the GPU backend before the screen opens, so a machine without a driver gets the one-line error
    ``gputab snapshot`` gives (exit 1, naming ``--demo``) instead of a screen of failed polls.

    Returns the opened backend (the live view takes it over), or None when it cannot be opened but a recorder is
    running on the database: the view then attaches to that recorder's session without polling, as before.
    """
    try:
        # Before the screen opens: a slow driver start is said on the terminal, once a second, until it is up.
        return app.open_backend(on_wait=lambda msg: print(f"gputab: {msg}", file=sys.stderr, flush=True))
    except BackendError:
        if _recorder_running(app):
            return None
        raise


def _recorder_running(app: AppContext) -> bool:
    from gputab.store import Store, StoreError

    if app.db_path is None:
        return False
    try:
        store = Store.open(app.db_path, readonly=True)
    except (StoreError, OSError):
        return False
    try:
        return store.writer_info() is not None
    finally:
        store.close()


def keep_out(names: tuple[str, ...]) -> None:
    """Make ``import name`` raise ImportError in this process for each of ``names`` not imported yet (the modules
    that import them optionally then go without)."""
    for name in names:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def run_live(app: AppContext, interval: float | None = None, readonly: bool = False) -> None:
    """Check the options, the terminal and the backend, then open the Textual app (imported here so headless
    commands never load textual). ``readonly``: no process actions (signals) from the app."""
    if interval is not None:
        check_interval(interval)
    require_terminal("the live view")
    keep_out(NOT_NEEDED)
    backend = probe_backend(app)
    # The poll thread opens the database and the session (and polls the baseline) while Textual is imported:
    # the feed modules do not import textual, and the first frame is ready sooner.
    from gputab.live.start import start_feed

    interval = interval if interval is not None else app.config.recorder.interval
    poller = start_feed(app, interval=interval, backend=backend)
    try:
        from gputab.tui.app import run_app
    except BaseException:
        poller.stop(close=lambda feed: feed.close("quit"))
        raise
    run_app(app, interval=interval, backend=backend, readonly=readonly, poller=poller)
