"""The session database (SQLite; sqlite-utils to migrate it). Nothing outside this package touches SQLite.

- :mod:`~gputab.store.schema`: append-only migrations.
- :mod:`~gputab.store.connection`: the connection: sqlite3, sqlite-utils loaded only where needed.
- :mod:`~gputab.store.lock`: one writer per database (``flock``), and who it is.
- :mod:`~gputab.store.database`: :class:`Store`: opening, permissions, WAL, orphan sessions.
- :mod:`~gputab.store.writes`: :class:`SessionWriter`: the recorder's buffered, batched writes.
- :mod:`~gputab.store.queries`: reading sessions, jobs, GPUs and series back; counts entered later.
"""

from gputab.store.database import NotGputabDatabase, Store, UntrustedDirectory, lock_path_for
from gputab.store.lock import RecorderRunning, WriterInfo, WriterLock, utc_iso
from gputab.store.queries import NoDatabase, NoSuchSession, StoreError
from gputab.store.schema import SchemaTooNew
from gputab.store.writes import SessionMeta, SessionWriter, StoreWriteError

__all__ = [
    "NoDatabase",
    "NoSuchSession",
    "NotGputabDatabase",
    "RecorderRunning",
    "SchemaTooNew",
    "SessionMeta",
    "SessionWriter",
    "Store",
    "StoreError",
    "StoreWriteError",
    "UntrustedDirectory",
    "WriterInfo",
    "WriterLock",
    "lock_path_for",
    "utc_iso",
]
