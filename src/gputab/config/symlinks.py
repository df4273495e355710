"""Which symlinks gputab follows to a file it creates or writes: the rule of a shared box, whatever the kernel's.

``fs.protected_symlinks`` (Linux) stops a process from following another user's symlink in a sticky
world-writable directory such as /tmp; where it is 0, or the link is not in a sticky directory, root follows it,
and a link another user planted at ``--db`` or ``export -o`` would steer gputab's writes into a file of the
attacker's choosing (issue 24: a root-owned empty file inside a 0700 directory became a SQLite database, and a lock
file appeared beside it). So before gputab creates or writes a file it walks the path itself, and refuses a
symlink anywhere along it that

- belongs to another user who is not root, or
- lies in a directory another user can write (group or world writable, sticky or not, or owned by another user
  who is not root), since that user could put a link of their own in its place.

A link of yours or root's in a directory only you (or root) can write is followed, as before.
"""

from __future__ import annotations

import os
import stat
from collections import deque

MAX_LINKS = 40
"""As the kernel's own limit on the symlinks of one path."""


def _others_can_write(directory: str, me: int) -> str | None:
    """Why users other than ``me`` and root can write in ``directory``, or None."""
    try:
        st = os.stat(directory)
    except OSError:
        return None
    if st.st_uid not in (me, 0):
        return f"which belongs to uid {st.st_uid}"
    if st.st_mode & 0o022:
        return f"which other users can write (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def link_problem(path: str | os.PathLike[str]) -> str | None:
    """Why gputab must not follow the symlinks of ``path`` to write there, or None when it may.

    Every component is looked at (``lstat``), the links' targets too; a component that does not exist yet ends
    the walk (gputab creates what is missing itself, without following links).

    Returns:
        A clause such as ``"/tmp/g.db is a symlink owned by uid 1001 (not you or root)"``.
    """
    me = os.geteuid()
    given = os.path.abspath(os.path.expanduser(os.fspath(path)))
    parts = deque(given.split(os.sep))
    current = os.sep
    links = 0
    while parts:
        name = parts.popleft()
        if name in ("", "."):
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        here = os.path.join(current, name)
        try:
            st = os.lstat(here)
        except OSError:
            return None  # missing (created later without following links) or unreadable (the open will say)
        if not stat.S_ISLNK(st.st_mode):
            current = here
            continue
        links += 1
        if links > MAX_LINKS:
            return f"{given} has too many levels of symlinks"
        if st.st_uid not in (me, 0):
            return f"{here} is a symlink owned by uid {st.st_uid} (not you or root)"
        why = _others_can_write(current, me)
        if why is not None:
            return f"{here} is a symlink in {current}, {why}"
        try:
            target = os.readlink(here)
        except OSError:
            return None
        if target.startswith(os.sep):
            current = os.sep
        parts.extendleft(reversed(target.split(os.sep)))
    return None
