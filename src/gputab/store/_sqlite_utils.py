"""sqlite-utils, imported without numpy and pandas (the store imports it from here, only when it needs it).

sqlite-utils imports both when they are installed (any ML machine), only to map their scalar types to column
types; the store never writes either, and they cost every command 13 MiB (numpy) to 60 MiB (pandas) of memory
and 0.05-0.5 s of start-up. They are hidden only while sqlite-utils loads, and only when not imported already:
whoever imports them later gets them as usual.
"""

from __future__ import annotations

import sys

HIDDEN = ("numpy", "pandas")


def import_sqlite_utils() -> None:
    """Import sqlite-utils with :data:`HIDDEN` out of reach (``import numpy`` raises ImportError meanwhile)."""
    hidden = [name for name in HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


import_sqlite_utils()

from sqlite_utils import Database  # noqa: E402 - after the import above
from sqlite_utils.migrations import Migrations  # noqa: E402

__all__ = ["Database", "Migrations", "import_sqlite_utils"]
