"""One refresh of the fleet view: a fixed batch of Prometheus queries, read into a :class:`FleetView`.

The cost of a refresh is bounded and known: exactly ``len(QUERIES) + 1`` requests (12 instant queries, all
evaluated at the same instant, and one range query of the last hour for the burn-rate sparklines), whatever the
number of hosts, jobs or GPUs. Each is an aggregation ``by (host)`` or ``by (host, tag)``, so the answers grow with
hosts x jobs, not with GPUs or scrapes.

Which figures mean what:

- *last seen*: the newest ``gputab_last_tick_timestamp_seconds`` within ``LOOKBACK``. A host is stale when its last
  tick is older than ``stale_after`` seconds or its series ended (its recorder stopped, or Prometheus cannot reach
  it): it is shown with that time and its last totals, and no burn rate.
- *burn rate*, *utilization*, *alerts*: the series as they are now (a stopped recorder's series end, so it has none).
- *session cost*: the last value of the host's cost counter (what ``gputab show`` calls the session total).
- *spent today*, *idle today*: ``increase()`` since 00:00 UTC, which survives recorder restarts (counter resets).
  It counts what the counters grew while Prometheus watched them: the cost of a session before its first scrape
  (at most one scrape interval when Prometheus runs first) is not in it, and it may extrapolate by up to one.

A query Prometheus refuses becomes a warning and its figures are None (a partial view); Prometheus down, too slow or
not Prometheus at all fails the whole refresh with one clear line (:class:`PrometheusError`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping

from gputab.cost.buckets import IDLE, SPECIAL_TAGS
from gputab.fleet.client import PromClient, QueryRefused, Sample
from gputab.fleet.model import AlertCount, FleetHost, FleetJob, FleetView, JobOnHost

LOOKBACK = "1d"
"""How far back a host that stopped reporting is still listed (as stale)."""
DEFAULT_STALE_AFTER = 60.0
"""Seconds without a new tick before a host is shown as stale."""
HISTORY_SECONDS = 3600.0
HISTORY_STEP = 60.0
IDLE_TAG = IDLE
_NOT_JOBS = SPECIAL_TAGS
"""Buckets, not jobs: (idle) is shown per host as idle $; neither is a job across hosts."""

# name -> PromQL; ``{today}`` is the range since 00:00 UTC, ``{lookback}`` is LOOKBACK.
QUERIES: dict[str, str] = {
    "last_seen": "max by (host, instance) (last_over_time(gputab_last_tick_timestamp_seconds[{lookback}]))",
    "gpus": "count by (host, instance) (last_over_time(gputab_gpu_price_dollars_per_hour[{lookback}]))",
    "burn": "sum by (host, instance) (gputab_burn_rate_dollars_per_hour)",
    "session_cost": "sum by (host, instance) (last_over_time(gputab_cost_dollars_total[{lookback}]))",
    "spent_today": "sum by (host, instance) (increase(gputab_cost_dollars_total[{today}]))",
    "idle_today": 'sum by (host, instance) (increase(gputab_job_cost_dollars_total{{tag="' + IDLE + '"}}[{today}]))',
    "utilization": "avg by (host, instance) (gputab_gpu_utilization_ratio)",
    "alerts": "sum by (host, instance, kind, severity) (gputab_alerts_active) > 0",
    "job_burn": "sum by (host, instance, tag) (gputab_job_burn_rate_dollars_per_hour)",
    "job_today": "sum by (host, instance, tag) (increase(gputab_job_cost_dollars_total[{today}]))",
    # Paid while the job's GPUs did nothing, over every reason (docs/waste.md); none from a recorder before it.
    "job_waste_today": "sum by (host, instance, tag) (increase(gputab_job_waste_dollars_total[{today}]))",
    "job_utilization": "avg by (host, instance, tag) (gputab_job_utilization_ratio)",
}
HISTORY_QUERY = "sum by (host, instance) (gputab_burn_rate_dollars_per_hour)"
QUERIES_PER_REFRESH = len(QUERIES) + 1


def today_range(at: float) -> str:
    """The PromQL range from 00:00 UTC of ``at`` to ``at`` (at least one second)."""
    return f"{max(1, int(at % 86400))}s"


def fetch_fleet(
    client: PromClient, stale_after: float = DEFAULT_STALE_AFTER, clock: Callable[[], float] = time.time
) -> FleetView:
    """Run the batch and build the view.

    Raises:
        PrometheusError: Prometheus is down, too slow, or not Prometheus (nothing of this refresh is shown).
    """
    at = clock()
    warnings: list[str] = []
    answers: dict[str, list[Sample] | None] = {}
    for name, template in QUERIES.items():
        try:
            answers[name] = client.query(template.format(lookback=LOOKBACK, today=today_range(at)), at)
        except QueryRefused as exc:
            warnings.append(str(exc))
            answers[name] = None
    history: dict[str | tuple[str, str], tuple[tuple[float, float | None], ...]] = {}
    try:
        for series in client.query_range(HISTORY_QUERY, at - HISTORY_SECONDS, at, HISTORY_STEP):
            if "host" in series.labels:
                history[(series.labels["host"], series.labels.get("instance", ""))] = series.points
    except QueryRefused as exc:
        warnings.append(str(exc))
    return build_view(client.url, at, stale_after, answers, history, warnings)


def build_view(
    url: str,
    at: float,
    stale_after: float,
    answers: dict[str, list[Sample] | None],
    history: Mapping[str | tuple[str, str], tuple[tuple[float, float | None], ...]],
    warnings: list[str],
) -> FleetView:
    """The view from the answers of one batch (pure: the fault tests feed it odd answers directly).

    ``answers`` maps each name of :data:`QUERIES` to its samples, or None where Prometheus refused the query.
    Recorders are told apart by ``host`` and Prometheus's ``instance`` label: two recorders that report the same
    host name are two rows, ``name (instance)``, and a warning says so. ``history`` is keyed by ``(host,
    instance)`` (or by the host name alone).
    """
    unlabelled = 0
    samples = [s for found in answers.values() for s in found or ()]
    instances: dict[str, set[str]] = defaultdict(set)
    for labels in [s.labels for s in samples] + [
        {"host": k[0], "instance": k[1]} for k in history if isinstance(k, tuple)
    ]:
        if labels.get("host"):
            instances[labels["host"]].add(labels.get("instance", ""))
    shared = {host: sorted(found) for host, found in instances.items() if len(found) > 1}

    def name_of(labels: Mapping[str, str]) -> str:
        host = labels["host"]
        return f"{host} ({labels.get('instance') or '?'})" if host in shared else host

    def by_host(name: str) -> dict[str, float | None]:
        nonlocal unlabelled
        out: dict[str, float | None] = {}
        for s in answers.get(name) or ():
            if not s.labels.get("host"):
                unlabelled += 1
                continue
            out[name_of(s.labels)] = s.value
        return out

    def by_job(name: str) -> dict[tuple[str, str], float | None]:
        nonlocal unlabelled
        out: dict[tuple[str, str], float | None] = {}
        for s in answers.get(name) or ():
            if not s.labels.get("host") or "tag" not in s.labels:
                unlabelled += 1
                continue
            out[(name_of(s.labels), s.labels["tag"])] = s.value
        return out

    named_history = {
        (name_of({"host": k[0], "instance": k[1]}) if isinstance(k, tuple) else k): points
        for k, points in history.items()
    }
    for host, found in sorted(shared.items()):
        warnings.append(
            f"{len(found)} recorders report the host name {host}: told apart by their Prometheus instance "
            f"({', '.join(i or '?' for i in found)})"
        )

    last_seen, gpus, burn = by_host("last_seen"), by_host("gpus"), by_host("burn")
    session_cost, today, idle_today = by_host("session_cost"), by_host("spent_today"), by_host("idle_today")
    util = by_host("utilization")
    alerts: dict[str, list[AlertCount]] = defaultdict(list)
    for s in answers.get("alerts") or ():
        if not s.labels.get("host"):
            unlabelled += 1
        elif s.value is not None and s.value > 0:
            alerts[name_of(s.labels)].append(
                AlertCount(s.labels.get("kind", "?"), s.labels.get("severity", "?"), int(s.value))
            )
    job_burn, job_today, job_util = by_job("job_burn"), by_job("job_today"), by_job("job_utilization")
    job_waste = by_job("job_waste_today")

    names = set(last_seen) | set(gpus) | set(burn) | set(session_cost) | set(today) | {h for h, _ in job_burn}
    hosts = []
    for name in names:
        seen = last_seen.get(name)
        # Stale: its last tick is too old, or its recorder's series ended (Prometheus marks them stale on the first
        # failed scrape, so a stopped box shows at once, not after stale_after).
        # Where a query was refused, it proves nothing either way.
        stopped = answers.get("burn") is not None and name not in burn
        unseen = answers.get("last_seen") is not None and seen is None
        stale = stopped or unseen or (seen is not None and at - seen > stale_after)
        idle_burn = job_burn.get((name, IDLE_TAG))
        hosts.append(
            FleetHost(
                host=name,
                stale=stale,
                last_seen=seen,
                gpus=None if gpus.get(name) is None else int(gpus[name] or 0),
                burn_rate_usd_per_hour=None if stale else burn.get(name),
                session_cost_usd=session_cost.get(name),
                spent_today_usd=today.get(name),
                idle_today_usd=idle_today.get(name),
                idle_burn_rate_usd_per_hour=None if stale else idle_burn,
                utilization_fraction=None if stale else util.get(name),
                alerts=() if stale else tuple(sorted(alerts.get(name, []), key=lambda a: (a.severity, a.kind))),
                burn_history=named_history.get(name, ()),
            )
        )
    # Live hosts by burn rate, then the stale ones (by when they were last seen).
    hosts.sort(key=lambda h: (h.stale, -(h.burn_rate_usd_per_hour or 0.0), -(h.last_seen or 0.0), h.host))

    stale_hosts = {h.host for h in hosts if h.stale}
    per_tag: dict[str, list[JobOnHost]] = defaultdict(list)
    for host, tag in set(job_burn) | set(job_today) | set(job_util):
        if tag in _NOT_JOBS:
            continue
        live = host not in stale_hosts
        per_tag[tag].append(
            JobOnHost(
                tag=tag,
                host=host,
                burn_rate_usd_per_hour=job_burn.get((host, tag)) if live else None,
                spent_today_usd=job_today.get((host, tag)),
                avg_utilization=job_util.get((host, tag)),
                waste_today_usd=job_waste.get((host, tag)),
            )
        )
    jobs = [FleetJob(tag, tuple(sorted(rows, key=lambda j: j.host))) for tag, rows in per_tag.items()]
    jobs.sort(key=lambda j: (-(j.burn_rate_usd_per_hour or 0.0), -(j.spent_today_usd or 0.0), j.tag))

    if unlabelled:
        warnings.append(
            f"{unlabelled} series had no host label and were left out (a gputab older than the fleet "
            f"view, or a relabelling rule that drops `host`)"
        )
    if not hosts and not warnings:
        warnings.append(
            "Prometheus has no gputab series: run `gputab record --metrics-port PORT` on each box and "
            "add them to Prometheus's scrape config (contrib/prometheus/prometheus.yml)"
        )
    return FleetView(
        prometheus=url,
        at=at,
        stale_after=stale_after,
        queries=QUERIES_PER_REFRESH,
        hosts=tuple(hosts),
        jobs=tuple(jobs),
        warnings=tuple(warnings),
    )
