"""The terminal driver of the live view: Textual's Linux driver, with an input thread that sleeps until a key comes.

Textual's input thread wakes ten times a second (``select`` with a 0.1 s timeout) to see whether the app is
exiting and whether a lone escape key has waited long enough to be a key of its own. An idle live view spent
about 1 ms a second there, a tenth of all its CPU. This one waits for input with no timeout unless the key
parser is waiting on a partial sequence (then until the parser's own deadline), and exiting wakes it through a
pipe. The rest is Textual's code, unchanged.

Used only on the Textual it was checked against (:data:`CHECKED_MAJOR`) and when ``TEXTUAL_DRIVER`` does not name
another driver; elsewhere :func:`driver_class` answers None and Textual picks its own.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import sys
from codecs import getincrementaldecoder
from threading import Event
from typing import Any

from textual._loop import loop_last
from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver

from gputab.tui.textual_version import textual_major

CHECKED_MAJOR = 8
"""The Textual major version whose ``LinuxDriver.run_input_thread`` this copies (checked on 8.2)."""

THREAD_NAME = b"textual-input"
"""The input thread's name in the kernel (``/proc/PID/task/TID/comm``): tests and ``top -H`` find it by this."""


class _WakingEvent(Event):
    """The driver's ``exit_event``: setting it also wakes the input thread out of its ``select``."""

    def __init__(self, wake_fd: int) -> None:
        super().__init__()
        self._wake_fd = wake_fd

    def set(self) -> None:
        super().set()
        try:
            os.write(self._wake_fd, b"x")
        except OSError:  # the pipe is full (already woken) or closed (the driver is gone)
            pass


class QuietLinuxDriver(LinuxDriver):
    """:class:`LinuxDriver` whose input thread blocks until there is input, a key times out, or the app exits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self.exit_event = _WakingEvent(self._wake_write)

    def run_input_thread(self) -> None:
        """Wait for input and dispatch events (Textual's loop, with the timeout the parser needs, if any)."""
        _name_this_thread(THREAD_NAME)
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        selector.register(self._wake_read, selectors.EVENT_READ)
        fileno = self.fileno
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode

        def process(events: list[tuple[selectors.SelectorKey, int]], final: bool = False) -> None:
            for last, (key, mask) in loop_last(events):
                if key.fd == self._wake_read:
                    _drain(self._wake_read)
                    continue
                if mask & selectors.EVENT_READ:
                    data = decode(os.read(fileno, 1024 * 4), final=final and last)
                    if not data:
                        break  # stdin is a pipe that closed
                    for event in parser.feed(data):
                        self.process_message(event)
            for event in parser.tick():
                self.process_message(event)

        try:
            while not self.exit_event.is_set():
                process(selector.select(_timeout(parser)))
            selector.unregister(self.fileno)
            process(selector.select(0.1), final=True)
        finally:
            selector.close()

    def close(self) -> None:
        super().close()
        for fd in (self._wake_read, self._wake_write):
            try:
                os.close(fd)
            except OSError:
                pass


def _timeout(parser: XTermParser) -> float | None:
    """None (wait for input) unless the parser holds a partial sequence: then until its deadline."""
    deadline = getattr(parser, "_timeout_time", None)
    if deadline is None:
        return None
    return max(0.0, deadline - get_time())


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 64):
            pass
    except (BlockingIOError, OSError):
        pass


def _name_this_thread(name: bytes) -> None:
    """Set the calling thread's kernel name (``prctl(PR_SET_NAME)``); nothing where that is not available."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def driver_class() -> type[Driver] | None:
    """The driver for a live view in a real terminal: :class:`QuietLinuxDriver` on a checked Linux Textual, else
    None (Textual's choice)."""
    if not sys.platform.startswith("linux") or os.environ.get("TEXTUAL_DRIVER"):
        return None
    if textual_major() != CHECKED_MAJOR:
        return None
    if not hasattr(LinuxDriver, "run_input_thread") or not hasattr(XTermParser(False), "_timeout_time"):
        return None
    return QuietLinuxDriver
