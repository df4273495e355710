"""The fleet view: many boxes in one screen, read from the Prometheus that already scrapes their recorders.

Read-only and bounded: one batch of queries per refresh (:data:`gputab.fleet.query.QUERIES_PER_REFRESH`), through
Prometheus's HTTP API with the standard library. Headless: ``gputab fleet --json`` and the fleet screen both use it.
"""

from gputab.fleet.client import PromClient, PrometheusError, QueryRefused
from gputab.fleet.model import AlertCount, FleetHost, FleetJob, FleetView, JobOnHost
from gputab.fleet.query import QUERIES_PER_REFRESH, fetch_fleet
from gputab.publish.document import SCHEMA_VERSION

__all__ = [
    "PromClient",
    "PrometheusError",
    "QueryRefused",
    "SCHEMA_VERSION",
    "AlertCount",
    "FleetHost",
    "FleetJob",
    "FleetView",
    "JobOnHost",
    "QUERIES_PER_REFRESH",
    "fetch_fleet",
]
