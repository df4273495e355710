"""The first moments of the ``gputab`` process, before a command takes over its signals.

Between the interpreter handing over and ``main`` catching KeyboardInterrupt, gputab imports click and its
command modules; a Ctrl-C landing then printed a KeyboardInterrupt traceback from the middle of an import. So the
package's first lines, when gputab is the program (``gputab ...`` or ``python -m gputab ...``), make SIGINT and
SIGTERM exit quietly with 128 + the signal's number, until :func:`done` hands them back (``main`` turns
KeyboardInterrupt into exit 130; ``record`` sets its own handlers). Only the builtin ``_signal`` module is used:
``signal`` imports ``enum``, which takes long enough to be a window of its own.

A training script that imports gputab for :func:`gputab.report` is not the program: its signals stay its own.
"""

from __future__ import annotations

import gc
import os
import sys
from types import FrameType

_signal = __import__("_signal")  # the builtin behind `signal` (it has no stub; `signal` itself imports enum)

AS_PROGRAM: bool = False
"""True when this process is the ``gputab`` command (console script or ``python -m gputab``)."""


def _quiet_exit(signum: int, frame: FrameType | None) -> None:
    # Not SystemExit: an import that catches BaseException would swallow it, and the process would go on as if
    # never signalled. Nothing has been printed or opened yet, so there is nothing to flush or close.
    os._exit(128 + signum)


def _is_program(argv: list[str]) -> bool:
    """``[python, /path/to/gputab, ...]`` or ``[python, -m, gputab, ...]`` (options to python before either)."""
    args = argv[1:]
    while args and args[0].startswith("-") and args[0] != "-m":
        args = args[1:]
    if args[:2] == ["-m", "gputab"]:
        return True
    return bool(args) and os.path.basename(args[0]) == "gputab"


def install() -> None:
    """Catch SIGINT and SIGTERM quietly while the command line loads, if gputab is the program."""
    global AS_PROGRAM
    AS_PROGRAM = _is_program(list(getattr(sys, "orig_argv", [])))
    if AS_PROGRAM:
        for s in (_signal.SIGINT, _signal.SIGTERM):
            _signal.signal(s, _quiet_exit)
        # No cyclic garbage collection while the modules load (the live view: about 130 young collections that
        # find next to nothing, 3-4 % of its start); :func:`started` turns it back on.
        gc.disable()


def started() -> None:
    """The program's start-up is over (a command began, or the live view painted its first frame): cyclic garbage
    collection on again. Idempotent; a no-op when gputab is not the program (it never turned collection off)."""
    if AS_PROGRAM:
        gc.enable()


def done() -> None:
    """Give SIGINT (KeyboardInterrupt) and SIGTERM (the default) back, now that ``main`` handles them.

    Called inside ``main``'s net. The swap runs with both signals blocked: blocking first runs any handler already
    tripped (``pthread_sigmask`` checks for them before it returns), so a signal that arrived before the swap ends
    the quiet way; one that arrives during it stays pending and, once unblocked, meets the new handler (SIGINT:
    KeyboardInterrupt, caught by ``main`` as exit 130; SIGTERM: the default end). None is lost in between.
    """
    if AS_PROGRAM:
        stops = {_signal.SIGINT, _signal.SIGTERM}
        _signal.pthread_sigmask(_signal.SIG_BLOCK, stops)
        try:
            _signal.signal(_signal.SIGINT, _signal.default_int_handler)
            _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
        finally:
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, stops)
