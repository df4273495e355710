"""Where gputab keeps its files. Env vars override each path, so tests point them at ``tmp_path``."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "gputab"


def data_dir() -> Path:
    """``GPUTAB_DATA_DIR`` or the platform's user data dir."""
    env = os.environ.get("GPUTAB_DATA_DIR")
    return Path(env) if env else Path(platformdirs.user_data_dir(APP))


def default_db(demo: bool = False) -> Path:
    """``GPUTAB_DB`` or ``<data dir>/gputab.db``; demo sessions live in their own ``demo.db``."""
    if demo:
        return data_dir() / "demo.db"
    env = os.environ.get("GPUTAB_DB")
    return Path(env) if env else data_dir() / "gputab.db"


def default_config() -> Path:
    """``GPUTAB_CONFIG`` or ``<user config dir>/config.toml``."""
    env = os.environ.get("GPUTAB_CONFIG")
    return Path(env) if env else Path(platformdirs.user_config_dir(APP)) / "config.toml"
