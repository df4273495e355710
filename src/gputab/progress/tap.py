"""Pass a command's stdout or stderr through gputab unchanged while reading it.

A :class:`Tap` stands between the command and one of gputab's own output descriptors. Where that descriptor is a
terminal, the command gets a pseudo-terminal of the same size with output post-processing off, so the command
still sees a terminal (colours, ``\\r`` redraws) and the terminal gets the very bytes it wrote. Where it is not a
terminal, the command gets a pipe: a command that had no terminal still has none. A thread copies every chunk to
the real descriptor first, then hands it to the reader; a reader that fails never stops the copy.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import termios
import threading
from collections.abc import Callable

CHUNK = 65536


class Tap:
    """One tapped descriptor. ``child_fd`` goes to the command (as its fd ``target``); call :meth:`started` once
    the command runs, :meth:`wait` after it ends.

    Args:
        target: gputab's descriptor the command would have written to (1 or 2).
        reader: gets each chunk after it was written on.
    """

    def __init__(self, target: int, reader: Callable[[bytes], None]) -> None:
        self.target = target
        self.reader = reader
        self.is_tty = os.isatty(target)
        if self.is_tty:
            self.read_fd, self.child_fd = os.openpty()
            attrs = termios.tcgetattr(self.child_fd)
            attrs[1] &= ~termios.OPOST  # no \n -> \r\n here: the real terminal does its own
            termios.tcsetattr(self.child_fd, termios.TCSANOW, attrs)
            self.copy_size()
        else:
            self.read_fd, self.child_fd = os.pipe()
        self._thread = threading.Thread(target=self._pump, name=f"gputab-tap-{target}", daemon=True)
        self.failed: BaseException | None = None

    def copy_size(self) -> None:
        """Give the pseudo-terminal the real terminal's rows and columns (at start and on SIGWINCH)."""
        if not self.is_tty:
            return
        try:
            size = fcntl.ioctl(self.target, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
            fcntl.ioctl(self.child_fd, termios.TIOCSWINSZ, size)
        except OSError:
            pass

    def started(self) -> None:
        """The command holds ``child_fd`` now: start copying. (The pseudo-terminal's side stays open here, so
        that its size can follow the real terminal's; reading stops when the command's side reports EOF.)"""
        if not self.is_tty:
            os.close(self.child_fd)
        self._thread.start()

    def wait(self, timeout: float = 2.0) -> None:
        """After the command ended: copy what is left (up to ``timeout`` s if its children still write)."""
        if self.is_tty:
            # Nothing holds the pseudo-terminal's other side any more but us and the command's children.
            os.close(self.child_fd)
        self._thread.join(timeout)

    def _pump(self) -> None:
        try:
            while True:
                try:
                    data = os.read(self.read_fd, CHUNK)
                except OSError as exc:
                    if exc.errno == errno.EINTR:
                        continue
                    if exc.errno == errno.EIO:  # a pseudo-terminal whose other side closed
                        break
                    raise
                if not data:
                    break
                _write_all(self.target, data)
                if self.failed is None:
                    try:
                        self.reader(data)
                    except Exception as exc:  # reading progress must never stop the output
                        self.failed = exc
        finally:
            try:
                os.close(self.read_fd)
            except OSError:
                pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                import select

                select.select([], [fd], [], 1.0)
                continue
            return  # the terminal went away: keep draining so the command never blocks
        view = view[n:]
