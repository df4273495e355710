"""Deprecated name of :mod:`gputab.export` (CSV export); kept so old imports work. In GPU monitoring an
*exporter* serves Prometheus: that is :mod:`gputab.metrics`."""

from gputab.export import *  # noqa: F401,F403
from gputab.export import iso_utc, neutralise  # noqa: F401
