"""Textual's major version, for the few places that rely on its internals (the table's cell caches, the driver).

``textual.__version__`` asks ``importlib.metadata`` on every read, and importing that (it brings ``email``,
``zipfile`` and friends) and scanning every installed distribution cost the live view about 30 ms of its start.
The installed ``textual-X.Y.Z.dist-info`` beside the package says the same for the price of one directory listing.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path


@cache
def textual_major() -> int:
    """The major version of the Textual that is imported."""
    import textual

    site = Path(textual.__file__).resolve().parent.parent
    try:
        names = os.listdir(site)
    except OSError:
        names = []
    for name in names:
        # Distribution names are normalised with underscores, so textual_plotext-... never matches.
        if name.startswith("textual-") and name.endswith(".dist-info"):
            return int(name.removeprefix("textual-").split(".")[0])
    return int(textual.__version__.split(".")[0])  # an unusual install (editable, zipped): ask importlib.metadata
