"""The database the live app records to or reads from (the review and spend screens open it)."""

from __future__ import annotations

from pathlib import Path


def review_db_path(app: object) -> Path | None:
    """The database the live app records to or reads from, found through its feed (None: nothing is stored)."""
    path = getattr(app, "db_path", None)
    if path is not None:
        return Path(path)
    feed = getattr(getattr(app, "poller", None), "feed", None)
    recorder = getattr(feed, "recorder", None)
    store = getattr(recorder, "store", None) or getattr(feed, "store", None)
    return Path(store.path) if store is not None else None
