"""What the fleet view shows: frozen records of hosts and jobs across hosts, and their JSON.

Built by :func:`gputab.fleet.query.fetch_fleet` from one batch of Prometheus queries; read by ``gputab fleet
--json`` and the fleet screen. A figure Prometheus did not have is None (shown as ``-``), never a fake 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gputab.publish.document import document, iso_utc

"""Version of the ``gputab fleet --json`` document; bumped when a key changes meaning or goes away."""


@dataclass(frozen=True)
class AlertCount:
    """How many alerts of one kind a host has active now."""

    kind: str
    severity: str
    count: int


@dataclass(frozen=True)
class FleetHost:
    """One host Prometheus scrapes gputab from, as of the refresh.

    A host is stale when its recorder's last tick is older than the stale limit (it stopped, or Prometheus stopped
    reaching it): it keeps its last figures and its last time, and has no burn rate (nothing says it burns now).
    """

    host: str
    stale: bool
    last_seen: float | None
    """Wall time (Unix seconds) of the host's latest tick that Prometheus holds."""
    gpus: int | None = None
    burn_rate_usd_per_hour: float | None = None
    session_cost_usd: float | None = None
    """What the host's current (or last) recording session cost so far."""
    spent_today_usd: float | None = None
    """Cost since 00:00 UTC, from Prometheus's ``increase()`` (which extrapolates by up to one scrape interval)."""
    idle_today_usd: float | None = None
    """Of which ``(idle)``: GPUs that cost money while no process held them."""
    idle_burn_rate_usd_per_hour: float | None = None
    utilization_fraction: float | None = None
    """Mean GPU utilization of the host's GPUs now (0-1)."""
    alerts: tuple[AlertCount, ...] = ()
    burn_history: tuple[tuple[float, float | None], ...] = ()
    """``(unix_time, $/h)`` points of the last hour, for the sparkline."""

    @property
    def alerts_active(self) -> int:
        return sum(a.count for a in self.alerts)

    def to_json(self) -> dict:
        return {
            "host": self.host,
            "stale": self.stale,
            "last_seen": iso_utc(self.last_seen),
            "gpus": self.gpus,
            "burn_rate_usd_per_hour": self.burn_rate_usd_per_hour,
            "session_cost_usd": self.session_cost_usd,
            "spent_today_usd": self.spent_today_usd,
            "idle_today_usd": self.idle_today_usd,
            "idle_burn_rate_usd_per_hour": self.idle_burn_rate_usd_per_hour,
            "utilization_fraction": self.utilization_fraction,
            "alerts_active": self.alerts_active,
            "alert_counts": [{"kind": a.kind, "severity": a.severity, "count": a.count} for a in self.alerts],
            "burn_rate_history": [
                {"sampled_at": iso_utc(t), "burn_rate_usd_per_hour": v} for t, v in self.burn_history
            ],
        }


@dataclass(frozen=True)
class JobOnHost:
    """One job's figures on one host."""

    tag: str
    host: str
    burn_rate_usd_per_hour: float | None = None
    spent_today_usd: float | None = None
    avg_utilization: float | None = None
    waste_today_usd: float | None = None
    """Of spent_today_usd, what was paid while its GPUs did nothing (None: the recorder exports no waste)."""

    def to_json(self) -> dict:
        return {
            "host": self.host,
            "burn_rate_usd_per_hour": self.burn_rate_usd_per_hour,
            "spent_today_usd": self.spent_today_usd,
            "waste_today_usd": self.waste_today_usd,
            "avg_utilization": self.avg_utilization,
        }


@dataclass(frozen=True)
class FleetJob:
    """A job (tag) across hosts: one row, whatever the number of boxes it runs on."""

    tag: str
    per_host: tuple[JobOnHost, ...]

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(j.host for j in self.per_host)

    @property
    def burn_rate_usd_per_hour(self) -> float | None:
        return _sum(j.burn_rate_usd_per_hour for j in self.per_host)

    @property
    def spent_today_usd(self) -> float | None:
        return _sum(j.spent_today_usd for j in self.per_host)

    @property
    def waste_today_usd(self) -> float | None:
        return _sum(j.waste_today_usd for j in self.per_host)

    @property
    def avg_utilization(self) -> float | None:
        """Mean of the hosts' averages, weighted by what each host spent on the job today."""
        pairs = [(j.avg_utilization, j.spent_today_usd or 0.0) for j in self.per_host if j.avg_utilization is not None]
        if not pairs:
            return None
        weight = sum(w for _, w in pairs)
        if weight <= 0:
            return sum(u for u, _ in pairs) / len(pairs)
        return sum(u * w for u, w in pairs) / weight

    def to_json(self) -> dict:
        return {
            "tag": self.tag,
            "hosts": list(self.hosts),
            "burn_rate_usd_per_hour": self.burn_rate_usd_per_hour,
            "spent_today_usd": self.spent_today_usd,
            "waste_today_usd": self.waste_today_usd,
            "avg_utilization": self.avg_utilization,
            "per_host": [j.to_json() for j in self.per_host],
        }


@dataclass(frozen=True)
class FleetView:
    """One refresh: every host and every job across hosts, with what could not be read.

    ``warnings`` lists the parts of the answer that were missing or odd (a query Prometheus refused, series
    without a host label): the rest of the view is still right.
    """

    prometheus: str
    at: float
    """Unix time the queries were evaluated at."""
    stale_after: float
    queries: int
    """Requests this refresh made (the same number every refresh: see ``gputab.fleet.query.QUERIES``)."""
    hosts: tuple[FleetHost, ...] = ()
    jobs: tuple[FleetJob, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def host(self, name: str) -> FleetHost | None:
        return next((h for h in self.hosts if h.host == name), None)

    def jobs_on(self, host: str) -> tuple[JobOnHost, ...]:
        """The jobs of one host (the drill-down), costliest burn first."""
        rows = [j for job in self.jobs for j in job.per_host if j.host == host]
        return tuple(
            sorted(rows, key=lambda j: (-(j.burn_rate_usd_per_hour or 0.0), -(j.spent_today_usd or 0.0), j.tag))
        )

    def totals(self) -> dict:
        live = [h for h in self.hosts if not h.stale]
        return {
            "hosts": len(self.hosts),
            "hosts_stale": len(self.hosts) - len(live),
            "gpus": sum(h.gpus or 0 for h in live),
            "burn_rate_usd_per_hour": sum(h.burn_rate_usd_per_hour or 0.0 for h in live),
            "spent_today_usd": sum(h.spent_today_usd or 0.0 for h in self.hosts),
            "idle_today_usd": sum(h.idle_today_usd or 0.0 for h in self.hosts),
            "alerts_active": sum(h.alerts_active for h in live),
        }

    def to_json(self) -> dict:
        """``gputab fleet --json``: the public vocabulary (:mod:`gputab.publish.vocabulary`), ``schema_version`` first."""
        return document(
            {
                "prometheus": self.prometheus,
                "queried_at": iso_utc(self.at),
                "stale_after_seconds": self.stale_after,
                "queries_per_refresh": self.queries,
                "totals": self.totals(),
                "hosts": [h.to_json() for h in self.hosts],
                "jobs": [j.to_json() for j in self.jobs],
                "warnings": list(self.warnings),
            }
        )


def _sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None
