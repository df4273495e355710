"""Fixtures of the fault suite; the helpers live in faultkit.py (import them from there)."""

from faultkit import db_path, driver_factory, fast_config, record_factory  # noqa: F401
