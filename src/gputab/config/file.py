"""Reading the config file: a regular file, within a size limit, UTF-8, refused in one clear line otherwise.

Checked from ``stat`` before opening and from ``fstat`` after, so a FIFO, a device or a swapped path can neither
hang gputab nor be read as a config.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from gputab.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20
"""A config file larger than this is refused (a real one is a few kB)."""


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def read_config_text(p: Path) -> str | None:
    """The text of the config file at ``p``, or None when nothing exists there; ConfigError for anything else."""

    def refuse(why: str) -> ConfigError:
        return ConfigError(f"cannot read config file {p}: {why}; point --config / GPUTAB_CONFIG at a TOML file")

    try:
        # Checked before opening: opening some devices has effects of its own.
        kind = _not_regular(os.stat(p).st_mode)
    except FileNotFoundError:
        if os.path.lexists(p):
            raise refuse(f"it is a symlink to {os.readlink(p)!r}, which does not exist") from None
        return None
    except OSError as exc:
        raise refuse(_os_reason(exc)) from None
    if kind is not None:
        raise refuse(f"it is {kind}, not a file")
    try:
        # O_NONBLOCK: should the path have been swapped for a FIFO since, open does not wait for a writer.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise refuse(_os_reason(exc)) from None
    try:
        st = os.fstat(fd)
        kind = _not_regular(st.st_mode)
        if kind is not None:
            raise refuse(f"it is {kind}, not a file")
        if st.st_size > MAX_CONFIG_BYTES:
            raise refuse(f"it is {st.st_size:,} bytes, over the {MAX_CONFIG_BYTES:,}-byte limit of a config file")
        chunks, size = [], 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_CONFIG_BYTES:
            raise refuse(f"it is over the {MAX_CONFIG_BYTES:,}-byte limit of a config file")
        data = b"".join(chunks)
    except OSError as exc:
        raise refuse(_os_reason(exc)) from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(f"it is not UTF-8 text (byte {exc.start})") from None


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "it is a symlink loop"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)
