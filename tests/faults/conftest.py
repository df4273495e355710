"""Fixtures of the fault suite; the helpers live in faultkit.py (import them from there)."""

from faultkit import fast_config, driver_factory, record_factory, db_path  # noqa: F401
