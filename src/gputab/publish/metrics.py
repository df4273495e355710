"""Prometheus exposition: the latest tick as ``/metrics``, for many boxes on one Grafana dashboard.

Names follow the Prometheus conventions (base units in the name, ``_total`` on counters). Every series has a
``host`` label, the host name the session shows (``gputab show``, the live view), so a fleet view and a dashboard
name a box the way gputab does; GPU series add dcgm-exporter's GPU labels (``gpu``, ``UUID``, ``modelName``) so
both exporters' panels join, MIG instance series its MIG labels too (:mod:`gputab.publish.mig_metrics`), and job series
add ``tag``. Money is per session: counters restart at 0 with a new recording, which ``increase()`` and ``rate()``
read as a counter reset, as they should.

Label values are bounded, because a time-series database pays for every distinct one: untagged processes
(``untagged:<user>/<name>``) share the tag ``untagged``, and after ``max_tags`` distinct tags the rest are folded
into ``other``. Which tags get a series is decided once per tag and never changes, so every series, ``other``
included, only ever grows between resets.

The collector reads a reference to the latest tick; the recorder's thread swaps it, the HTTP server's thread reads
it, and nothing else is shared but the tag table (under a lock).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gputab.alerts.observer import BUDGET_EXCEEDED, CRITICAL, KINDS, WARNING, Alert
from gputab.cost.buckets import ALL_REASONS
from gputab.cost.shares import all_idle
from gputab.publish.metric_labels import (
    _TOKEN_SUMS,
    DEFAULT_MAX_TAGS,
    GPU_LABELS,
    HOST_LABEL,
    JOB_LABELS,
    OTHER,
    TOKEN_KINDS,
    UNTAGGED,
    TagLabels,
    token_kinds,
)
from gputab.publish.mig_metrics import mig_families
from gputab.sampling.snapshot import THROTTLE_REASONS

F = TypeVar("F", GaugeMetricFamily, CounterMetricFamily)


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


class TickCollector(Collector):
    """A custom collector built from the latest tick (a ``gputab.recording.recorder.Tick`` or anything shaped like it).

    Args:
        hostname: value of the ``host`` label.
        max_tags: see :class:`TagLabels`.
        alerts: returns the active alerts (``AlertObserver.active``), for ``gputab_alerts_active``.
    """

    def __init__(
        self, hostname: str, max_tags: int = DEFAULT_MAX_TAGS, alerts: Callable[[], Iterable[Alert]] | None = None
    ) -> None:
        self.hostname = hostname
        self.tags = TagLabels(max_tags)
        self.alerts = alerts
        self.tick: Any = None

    def update(self, tick: Any) -> None:
        """Make ``tick`` the one served (a reference swap: safe against a concurrent scrape)."""
        self.tick = tick

    def collect(self) -> Iterator[Metric]:
        tick = self.tick
        if tick is None:
            return
        families = [
            *self._host(tick),
            *self._gpus(tick),
            *mig_families(tick, self.hostname),
            *self._jobs(tick),
            *self._waste(tick),
            *self._forecast(tick),
        ]
        # An empty family (no job reported tokens) would be a HELP/TYPE header with nothing under it.
        yield from (f for f in families if f.samples)
        # After the jobs: they are what decides how many tags were folded.
        yield _one(
            GaugeMetricFamily,
            "gputab_tags_folded",
            'Distinct tags folded into tag="other" by the series cap.',
            [self.hostname],
            self.tags.folded,
        )

    # -- families -------------------------------------------------------------------------------------------
    def _host(self, tick: Any) -> Iterator[Metric]:
        h = [self.hostname]
        info = GaugeMetricFamily(
            "gputab_session_info",
            "The recording session this exporter serves (value 1).",
            labels=["session_id", HOST_LABEL],
        )
        info.add_metric([str(tick.session_id), self.hostname], 1.0)
        yield info
        yield _one(
            GaugeMetricFamily,
            "gputab_last_tick_timestamp_seconds",
            "Wall time of the latest poll (Unix seconds); stale when far behind time().",
            h,
            tick.snapshot.wall,
        )
        yield _one(
            CounterMetricFamily,
            "gputab_cost_dollars_total",
            "Money all GPUs of this host cost in this session.",
            h,
            tick.total_cost_usd,
        )
        yield _one(
            GaugeMetricFamily,
            "gputab_burn_rate_dollars_per_hour",
            "What this host's GPUs cost per hour right now.",
            h,
            tick.burn_rate_usd_per_hour,
        )
        active = GaugeMetricFamily(
            "gputab_alerts_active", "Alerts now active, by kind.", labels=["kind", "severity", HOST_LABEL]
        )
        counts = dict.fromkeys(KINDS, 0)
        for alert in self.alerts() if self.alerts else ():
            if alert.kind in counts:
                counts[alert.kind] += 1
        for kind, n in counts.items():
            # One series per kind, 0 included, so a dashboard shows "no alerts" rather than "no data".
            active.add_metric([kind, CRITICAL if kind == BUDGET_EXCEEDED else WARNING, self.hostname], n)
        yield active
        rejected = CounterMetricFamily(
            "gputab_rejected_reports_total",
            "Samples/tokens reports from the spool that this session ignored, by reason.",
            labels=["reason", "hostname"],
        )
        for reason, n in getattr(tick, "rejected_reports", ()):
            rejected.add_metric([reason, self.hostname], n)
        yield rejected

    def _gpus(self, tick: Any) -> Iterator[Metric]:
        def fam(kind: Callable[..., F], name: str, doc: str, labels: Iterable[str] = GPU_LABELS) -> F:
            return kind(name, doc, labels=list(labels))

        util = fam(
            GaugeMetricFamily, "gputab_gpu_utilization_ratio", "Fraction of the last sample period a kernel ran (0-1)."
        )
        mem_used = fam(GaugeMetricFamily, "gputab_gpu_memory_used_bytes", "GPU memory in use.")
        mem_total = fam(GaugeMetricFamily, "gputab_gpu_memory_total_bytes", "GPU memory size.")
        power = fam(GaugeMetricFamily, "gputab_gpu_power_watts", "Power draw.")
        temp = fam(GaugeMetricFamily, "gputab_gpu_temperature_celsius", "GPU temperature.")
        lost = fam(
            GaugeMetricFamily,
            "gputab_gpu_lost",
            "1 when the GPU stopped answering (its time is charged to (unobserved)); a GPU whose reading failed "
            "while it still answers is counted in gputab_gpu_read_errors_total instead.",
        )
        idle = fam(GaugeMetricFamily, "gputab_gpu_idle", "1 when no process held the GPU over the last interval.")
        energy = fam(CounterMetricFamily, "gputab_gpu_energy_joules_total", "Energy drawn in this session.")
        cost = fam(CounterMetricFamily, "gputab_gpu_cost_dollars_total", "Money the GPU cost in this session.")
        burn = fam(
            GaugeMetricFamily,
            "gputab_gpu_burn_rate_dollars_per_hour",
            "What the GPU costs per hour now (rate, plus energy where energy is charged).",
        )
        price = fam(
            GaugeMetricFamily,
            "gputab_gpu_price_dollars_per_hour",
            "The GPU's price per hour, "
            'unknown_price="true" when its model is not in the price table (the default rate applies).',
            GPU_LABELS + ("model_key", "unknown_price"),
        )
        samples = {g.index: g for g in tick.snapshot.gpus}
        idle_now = {iv.gpu_index: all_idle(iv.shares) for iv in tick.intervals}
        rows = {g["index"]: g for g in tick.gpus}
        for index in sorted(set(samples) | set(rows)):
            s, row = samples.get(index), rows.get(index, {})
            uuid = (s.uuid if s else None) or row.get("uuid") or ""
            name = (s.name if s else None) or row.get("name") or ""
            labels = [str(index), uuid, name, self.hostname]
            if s is not None:
                lost.add_metric(labels, 1.0 if s.lost and getattr(s, "unobserved", None) is None else 0.0)
                if not s.lost:
                    for family, value in (
                        (util, None if s.utilization_pct is None else s.utilization_pct / 100),
                        (mem_used, s.memory_used_bytes),
                        (mem_total, s.memory_total_bytes),
                        (power, s.power_w),
                        (temp, s.temperature_c),
                    ):
                        if value is not None:  # not available is no sample, never a fake 0
                            family.add_metric(labels, float(value))
            if index in idle_now:
                idle.add_metric(labels, 1.0 if idle_now[index] else 0.0)
            if row:
                energy.add_metric(labels, float(row.get("energy_j") or 0.0))
                cost.add_metric(labels, float(row.get("cost_usd") or 0.0))
                if row.get("burn_rate_usd_per_hour") is not None:
                    burn.add_metric(labels, float(row["burn_rate_usd_per_hour"]))
                if row.get("rate_per_hour") is not None:
                    unknown = row.get("unknown_price", row.get("unknown"))
                    price.add_metric(
                        labels + [str(row.get("model_key") or ""), "true" if unknown else "false"],
                        float(row["rate_per_hour"]),
                    )
        yield from (util, mem_used, mem_total, power, temp, lost, idle, energy, cost, burn, price)
        yield self._read_errors(tick)

    def _read_errors(self, tick: Any) -> Metric:
        """Failed GPU readings this session, per GPU, call and error (each made its GPU's interval unobserved).
        Labels stay bounded: calls and NVML error names are fixed lists."""
        family = CounterMetricFamily(
            "gputab_gpu_read_errors_total",
            "GPU readings that failed in this session (an NVML error other than NOT_SUPPORTED on the process "
            'list, utilization or memory, a lost GPU, or error="no_answer": no answer within the poll\'s '
            "deadline); each put the GPU's interval in (unobserved).",
            labels=["gpu", "call", "error", HOST_LABEL],
        )
        for gpu, call, error, count in getattr(tick, "read_faults", ()):
            family.add_metric([str(gpu), call, error, self.hostname], float(count))
        return family

    def _jobs(self, tick: Any) -> Iterator[Metric]:
        sums: dict[str, dict[str, float]] = {}
        for job in tick.jobs:
            label = self.tags.label(job["tag"])
            acc = sums.setdefault(
                label,
                {
                    "cost": 0.0,
                    "gpu_h": 0.0,
                    "eff_h": 0.0,
                    "kwh": 0.0,
                    "burn": 0.0,
                    "util_w": 0.0,
                    "util_h": 0.0,
                    "peak": 0.0,
                    "samples": 0.0,
                    "has_samples": 0.0,
                    **_TOKEN_SUMS,
                },
            )
            acc["cost"] += float(job.get("cost_usd") or 0.0)
            acc["gpu_h"] += float(job.get("gpu_hours") or 0.0)
            acc["eff_h"] += float(job.get("effective_gpu_hours") or 0.0)
            acc["kwh"] += float(job.get("energy_kwh") or 0.0)
            acc["burn"] += float(job.get("burn_rate_usd_per_hour") or 0.0)
            if job.get("avg_utilization") is not None:
                # Folded tags: an average weighted by GPU-hours, as the ledger weights intervals.
                weight = float(job.get("gpu_hours") or 0.0)
                acc["util_w"] += weight * float(job["avg_utilization"])
                acc["util_h"] += weight
            acc["peak"] = max(acc["peak"], float(job.get("peak_vram_bytes") or 0.0))
            if job.get("samples") is not None:
                acc["samples"] += float(job["samples"])
                acc["has_samples"] = 1.0
            for kind, count in token_kinds(job).items():
                acc[kind] += count
                acc["has_" + kind] = 1.0

        def fam(kind: Callable[..., F], name: str, doc: str) -> F:
            return kind(name, doc, labels=list(JOB_LABELS))

        cost = fam(
            CounterMetricFamily,
            "gputab_job_cost_dollars_total",
            'Money charged to the job in this session; tag="(idle)" is money spent on GPUs nobody used, '
            'tag="(unattributed)" on GPUs that worked with no process listed.',
        )
        gpu_h = fam(CounterMetricFamily, "gputab_job_gpu_hours_total", "GPU-hours the job held (share x time).")
        eff_h = fam(CounterMetricFamily, "gputab_job_effective_gpu_hours_total", "GPU-hours x utilization.")
        energy = fam(CounterMetricFamily, "gputab_job_energy_joules_total", "The job's share of GPU energy.")
        burn = fam(GaugeMetricFamily, "gputab_job_burn_rate_dollars_per_hour", "What the job costs per hour now.")
        util = fam(
            GaugeMetricFamily,
            "gputab_job_utilization_ratio",
            "Average GPU utilization of the job in this session (effective / GPU-hours).",
        )
        peak = fam(GaugeMetricFamily, "gputab_job_memory_peak_bytes", "Peak GPU memory of the job's processes.")
        samples = fam(CounterMetricFamily, "gputab_job_samples_total", "Samples the job reported.")
        tokens = CounterMetricFamily(
            "gputab_job_tokens_total",
            'The job\'s tokens by kind: kind="prompt" and "generated" as its inference servers counted them, '
            'kind="reported" what it reported (gputab.report, a callback); sum without(kind) is all its tokens.',
            labels=[*JOB_LABELS, "kind"],
        )
        for label in sorted(sums):
            acc, labels = sums[label], [label, self.hostname]
            cost.add_metric(labels, acc["cost"])
            gpu_h.add_metric(labels, acc["gpu_h"])
            eff_h.add_metric(labels, acc["eff_h"])
            energy.add_metric(labels, acc["kwh"] * 3.6e6)
            burn.add_metric(labels, acc["burn"])
            if acc["util_h"] > 0:
                util.add_metric(labels, acc["util_w"] / acc["util_h"])
            peak.add_metric(labels, acc["peak"])
            if acc["has_samples"]:
                samples.add_metric(labels, acc["samples"])
            for kind in TOKEN_KINDS:
                if acc["has_" + kind]:
                    tokens.add_metric([*labels, kind], acc[kind])
        yield from (cost, gpu_h, eff_h, energy, burn, util, peak, samples, tokens)

    def _forecast(self, tick: Any) -> Iterator[Metric]:
        """Each job's forecast (docs/forecast.md), for jobs with a label of their own: a forecast of ``other`` or
        ``untagged`` (several jobs folded together) would mean nothing, so those get none."""
        labels = list(JOB_LABELS)
        fams = {
            key: GaugeMetricFamily(name, doc, labels=labels)
            for key, name, doc in (
                ("progress_fraction", "gputab_job_progress_ratio", "How far along the job says it is (0-1)."),
                ("eta_seconds", "gputab_job_eta_seconds", "Seconds until the job completes at its recent rate."),
                (
                    "projected_cost_usd",
                    "gputab_job_projected_cost_dollars",
                    "What the job will have cost at completion (spent + burn rate x ETA).",
                ),
                (
                    "projected_cost_low_usd",
                    "gputab_job_projected_cost_low_dollars",
                    "Low end of the projection (the faster of the window's rates).",
                ),
                (
                    "projected_cost_high_usd",
                    "gputab_job_projected_cost_high_dollars",
                    "High end of the projection (the slower of the window's rates).",
                ),
            )
        }
        seen: set[str] = set()
        for job in tick.jobs:
            label = self.tags.label(job["tag"])
            if label != job["tag"] or label in (UNTAGGED, OTHER) or label in seen:
                continue
            seen.add(label)
            for key, f in fams.items():
                v = _num(job.get(key))
                if v is not None:
                    f.add_metric([label, self.hostname], v)
        yield from fams.values()

    def _waste(self, tick: Any) -> Iterator[Metric]:
        """Where each job's dollars went (docs/waste.md): busy, wasted by reason, tensor-active, throttled.
        Labels stay bounded: tags as in every job family, reasons from fixed lists."""
        busy: dict[str, float] = {}
        unmeasured: dict[str, float] = {}
        waste: dict[tuple[str, str], float] = {}
        tensor: dict[str, float] = {}
        throttled: dict[tuple[str, str], float] = {}
        for job in tick.jobs:
            if job.get("waste_usd") is None:
                continue
            label = self.tags.label(job["tag"])
            busy[label] = busy.get(label, 0.0) + float(job.get("busy_usd") or 0.0)
            unmeasured[label] = unmeasured.get(label, 0.0) + float(job.get("unmeasured_usd") or 0.0)
            for reason, usd in (job.get("waste_by_reason") or {}).items():
                key = (label, reason if reason in ALL_REASONS else OTHER)
                waste[key] = waste.get(key, 0.0) + float(usd)
            if job.get("tensor_active_usd") is not None:
                tensor[label] = tensor.get(label, 0.0) + float(job["tensor_active_usd"])
            for reason, usd in (job.get("throttled_usd") or {}).items():
                key = (label, reason if reason in THROTTLE_REASONS else OTHER)
                throttled[key] = throttled.get(key, 0.0) + float(usd)
        labels = list(JOB_LABELS)
        busy_f = CounterMetricFamily(
            "gputab_job_busy_dollars_total",
            "The job's dollars of effective GPU time (cost x utilization).",
            labels=labels,
        )
        waste_f = CounterMetricFamily(
            "gputab_job_waste_dollars_total",
            "The job's dollars paid while its GPUs did nothing, by likely reason; busy + waste + unmeasured = cost.",
            labels=[*labels, "reason"],
        )
        unmeasured_f = CounterMetricFamily(
            "gputab_job_unmeasured_dollars_total",
            "The job's dollars while its GPUs reported no utilization (MIG without GPM): neither busy nor waste.",
            labels=labels,
        )
        tensor_f = CounterMetricFamily(
            "gputab_job_tensor_active_dollars_total",
            "The job's dollars x tensor-core activity (NVML GPM, Hopper and newer).",
            labels=labels,
        )
        throttled_f = CounterMetricFamily(
            "gputab_job_throttled_dollars_total",
            "The job's dollars while its GPUs' clocks were held down, by reason.",
            labels=[*labels, "reason"],
        )
        for label, usd in sorted(busy.items()):
            busy_f.add_metric([label, self.hostname], usd)
        for (label, reason), usd in sorted(waste.items()):
            waste_f.add_metric([label, self.hostname, reason], usd)
        for label, usd in sorted(unmeasured.items()):
            unmeasured_f.add_metric([label, self.hostname], usd)
        for label, usd in sorted(tensor.items()):
            tensor_f.add_metric([label, self.hostname], usd)
        for (label, reason), usd in sorted(throttled.items()):
            throttled_f.add_metric([label, self.hostname, reason], usd)
        yield from (busy_f, waste_f, unmeasured_f, tensor_f, throttled_f)


def _one(kind: Callable[..., F], name: str, doc: str, labels: list[str], value: float) -> F:
    family = kind(name, doc, labels=[HOST_LABEL])
    family.add_metric(labels, float(value))
    return family


class MetricsObserver:
    """Serves the latest tick on ``http://ADDRESS:PORT/metrics`` from a daemon thread.

    The server is bound when the observer is made, so a port in use fails before recording starts. It has its
    own registry: no process-wide default metrics, nothing left behind for other observers or tests.

    Args:
        port: TCP port; 0 picks a free one (see :attr:`port`).
        address: address to bind; loopback unless the user says otherwise.
        hostname: ``host`` label (default: this machine's name until :meth:`set_host` names the session's host).
        max_tags: distinct tags with their own series before folding into ``other``.
        alerts: returns the active alerts, for ``gputab_alerts_active``.

    Raises:
        OSError: the address cannot be bound (port in use, no such address).
    """

    def __init__(
        self,
        port: int,
        address: str = "127.0.0.1",
        hostname: str | None = None,
        max_tags: int = DEFAULT_MAX_TAGS,
        alerts: Callable[[], Iterable[Alert]] | None = None,
    ) -> None:
        self.collector = TickCollector(hostname or socket.gethostname(), max_tags, alerts)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self._server, self._thread = start_http_server(port, addr=address, registry=self.registry)
        self.address = address

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def set_host(self, host: str) -> None:
        """Label every series with ``host``: the recording session's host, which is what gputab shows (the demo
        box's name on the demo, this machine's otherwise). Call it before the first tick."""
        self.collector.hostname = host

    def on_tick(self, tick: Any) -> None:
        self.collector.update(tick)

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsObserver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
