"""What one refresh of the screen shows: a frozen view model built from a recorder tick or from the store.

Widgets read only these records, so the same panels serve a session this app records and one it attaches to,
and tests can build frames by hand. ``None`` means "not available" all the way to the screen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from gputab.sampling.snapshot import MigSample

if TYPE_CHECKING:
    from gputab.alerts.observer import AlertObserver
    from gputab.budgets.model import BudgetBook
    from gputab.live.series_block import SeriesBlock

RECORDING = "recording"
ATTACHED = "attached"
NOT_RECORDING = "not recording"


@dataclass(frozen=True, slots=True)
class GpuView:
    """One GPU: the hardware figures of the latest sample and what it costs."""

    index: int
    uuid: str
    name: str
    model_key: str | None = None
    lost: bool = False
    unobserved: str | None = None
    """Why the GPU could not be read this tick though it is there (``GpuSample.unobserved``); None otherwise."""
    utilization_pct: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    temperature_c: float | None = None
    rate_per_hour: float | None = None
    unknown_price: bool = False
    energy_method: str | None = None
    cost_usd: float | None = None
    burn_rate_usd_per_hour: float | None = None
    mig: tuple[MigSample, ...] = ()
    """Its MIG instances (empty when MIG is off); each is priced at ``rate_per_hour`` x slices / ``mig_slices``."""
    mig_slices: int | None = None

    @property
    def memory_fraction(self) -> float | None:
        """Used / total VRAM, or None when either is not reported."""
        if self.memory_used_bytes is None or not self.memory_total_bytes:
            return None
        return self.memory_used_bytes / self.memory_total_bytes


@dataclass(frozen=True, slots=True)
class JobView:
    """One job (tag) of the session, as the ledger totals it."""

    tag: str
    cost_usd: float
    burn_rate_usd_per_hour: float
    gpu_hours: float
    effective_gpu_hours: float
    avg_utilization: float | None
    vram_bytes: int | None
    gpus: tuple[int, ...] = ()
    mig_instances: tuple[str, ...] = ()
    """The MIG instances it runs on now (``4:3g.40gb``), shown in place of those GPUs' indices."""
    samples: int | None = None
    cost_per_1k_samples_usd: float | None = None
    tokens: int | None = None
    cost_per_1m_tokens_usd: float | None = None
    prompt_tokens: int | None = None
    generated_tokens: int | None = None
    """Of ``tokens``, what its inference servers counted by kind (None: no server counted any)."""
    unknown_price: bool = False
    special: bool = False
    """``(idle)``, ``(unattributed)`` and ``(unobserved)``: buckets, not jobs; they sort last and cannot be tagged."""
    waste_usd: float | None = None
    unmeasured_usd: float | None = None
    """Dollars whose utilization was not reported: neither busy nor waste (waste % is over the rest)."""
    waste_pct: float | None = None
    waste_top_reason: str | None = None
    waste_evidence: str | None = None
    forecast_state: str | None = None
    """``running``, ``unknown``, ``stalled``, ``done``; None when the job reports no progress (docs/forecast.md)."""
    eta_seconds: float | None = None
    projected_cost_usd: float | None = None
    busy_usd: float | None = None
    waste_by_reason: tuple[tuple[str, float], ...] = ()
    """Wasted dollars by reason, most first (they sum to ``waste_usd``)."""
    energy_kwh: float | None = None
    peak_vram_bytes: int | None = None
    cost_per_effective_gpu_hour_usd: float | None = None
    progress_fraction: float | None = None

    @classmethod
    def from_json(cls, d: dict) -> JobView:
        """From a ``JobTotals.to_json()`` dict (the project-wide job keys)."""
        tag = d["tag"]
        samples = d.get("samples")
        per_1k = d.get("cost_per_1k_samples_usd")
        if per_1k is None and samples and d.get("cost_usd") is not None:
            per_1k = d["cost_usd"] / samples * 1000
        tokens = d.get("tokens")
        per_1m = d.get("cost_per_1m_tokens_usd")
        if per_1m is None and tokens and d.get("cost_usd") is not None:
            per_1m = d["cost_usd"] / tokens * 1e6
        return cls(
            tag=tag,
            cost_usd=d.get("cost_usd") or 0.0,
            burn_rate_usd_per_hour=d.get("burn_rate_usd_per_hour") or 0.0,
            gpu_hours=d.get("gpu_hours") or 0.0,
            effective_gpu_hours=d.get("effective_gpu_hours") or 0.0,
            avg_utilization=d.get("avg_utilization"),
            vram_bytes=d.get("vram_bytes"),
            gpus=tuple(d.get("gpus") or ()),
            mig_instances=tuple(d.get("mig_instances") or ()),
            samples=samples,
            cost_per_1k_samples_usd=per_1k,
            tokens=tokens,
            cost_per_1m_tokens_usd=per_1m,
            prompt_tokens=d.get("prompt_tokens"),
            generated_tokens=d.get("generated_tokens"),
            unknown_price=bool(d.get("unknown_price")),
            special=tag.startswith("(") and tag.endswith(")"),
            waste_usd=d.get("waste_usd"),
            waste_pct=d.get("waste_pct"),
            unmeasured_usd=d.get("unmeasured_usd"),
            waste_top_reason=d.get("waste_top_reason"),
            waste_evidence=d.get("waste_evidence"),
            forecast_state=d.get("forecast_state") if d.get("progress_fraction") is not None else None,
            eta_seconds=d.get("eta_seconds"),
            projected_cost_usd=d.get("projected_cost_usd"),
            busy_usd=d.get("busy_usd"),
            waste_by_reason=tuple((str(k), float(v)) for k, v in (d.get("waste_by_reason") or {}).items()),
            energy_kwh=d.get("energy_kwh"),
            peak_vram_bytes=d.get("peak_vram_bytes"),
            cost_per_effective_gpu_hour_usd=d.get("cost_per_effective_gpu_hour_usd"),
            progress_fraction=d.get("progress_fraction"),
        )


@dataclass(frozen=True, slots=True)
class ProcessView:
    """One process on one GPU and the tag it is charged to."""

    pid: int
    gpu_index: int
    user: str | None
    command: str
    """Already redacted by attribution (secrets in arguments never reach the screen)."""
    used_memory_bytes: int | None
    sm_pct: float | None
    tag: str | None
    source: str
    """How the tag was found: env, inherited, key, rule, container, manual, untagged, gone."""
    gpu_instance_id: int | None = None
    """The MIG instance it runs on (with ``compute_instance_id``); None off MIG or when not known."""
    compute_instance_id: int | None = None

    @property
    def key(self) -> str:
        """Row key: a process can hold several GPUs, one row each."""
        return f"{self.pid}@{self.gpu_index}"


@dataclass(frozen=True, slots=True)
class AlertView:
    """One alert of the session: raised (``ended_at`` None) or cleared."""

    key: str
    """Row key, stable from raise to clear (the store's row id when attached)."""
    kind: str
    severity: str
    """``warning`` or ``critical``."""
    subject: str
    """The tag, ``gpu N`` or ``host``."""
    message: str
    started_at: float
    ended_at: float | None = None

    @property
    def active(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True, slots=True)
class BudgetView:
    """A budget that holds a job of this session, and where that job stands against it in its period."""

    tag: str
    """The job."""
    glob: str
    """The budget's tag glob (``sweep-*``), or the tag itself."""
    cap_usd: float
    period: str
    """``day``, ``week``, ``month`` or ``total``."""
    spent_usd: float
    """What the job spent in this period, earlier sessions of the database included."""
    seconds_to_cap: float | None
    """At the burn rate now; 0 once over the cap; None when not burning."""
    projected_over_usd: float | None
    """By how much its forecast passes the cap at completion (negative: under); None without a forecast."""
    stops: bool
    """The recorder stops the job at its cap (SIGINT, then SIGTERM)."""

    @property
    def spent_pct(self) -> float:
        return 100.0 * self.spent_usd / self.cap_usd


def budget_views(
    source: AlertObserver | BudgetBook | None, wall: float, jobs: Iterable[Mapping[str, Any]]
) -> tuple[BudgetView, ...]:
    """The budgets that hold a job of this session (``jobs``: ``JobTotals.to_json()`` dicts), from the alert
    observer's book (the recorder's budget keeper keeps it current) or a ``BudgetBook`` itself (the attached view's,
    rebuilt from the store); empty without either or without a budget."""
    book = cast("BudgetBook | None", getattr(source, "budget_book", source))
    if book is None or not book.budgets:
        return ()
    from gputab.budgets.model import budget_statuses

    by_tag = {str(j["tag"]): j for j in jobs if not str(j["tag"]).startswith("(")}
    return tuple(
        BudgetView(
            s.tag,
            s.budget.tag,
            s.budget.cap_usd,
            s.budget.period,
            s.spent_usd,
            s.seconds_to_cap,
            s.projected_over_usd,
            s.budget.stop,
        )  # fmt: skip
        for s in budget_statuses(book, wall, by_tag)
        if s.tag in by_tag
    )


@dataclass(frozen=True, slots=True)
class Frame:
    """Everything one screen refresh shows."""

    host: str
    state: str
    """``recording``, ``attached`` or ``not recording``."""
    state_note: str = ""
    """Why not recording, or whose recorder this app is attached to."""
    session_id: int | None = None
    started_wall: float | None = None
    elapsed_s: float | None = None
    total_cost_usd: float = 0.0
    burn_rate_usd_per_hour: float = 0.0
    gpus: tuple[GpuView, ...] = ()
    jobs: tuple[JobView, ...] = ()
    processes: tuple[ProcessView, ...] = ()
    notes: tuple[str, ...] = ()
    host_notes: tuple[str, ...] = ()
    """Standing facts about the host (``Snapshot.host_notes``): the header says the first, the notes its fix."""
    can_tag: bool = True
    """False when attached read-only: tags are then given in the recorder's session, not here."""
    alerts: tuple[AlertView, ...] = ()
    """Active alerts (newest first), then those cleared this session (newest first, the last few hundred).

    The feed hands the same tuple object back while nothing changed, so a view can skip an unchanged list.
    """
    active_alerts: int = 0
    critical_alerts: int = 0
    """How many of the active alerts are critical (the header's colour)."""
    real_pids: bool = True
    """False on the demo box: its processes are simulated and their pids are nobody's (never signalled)."""
    budgets: tuple[BudgetView, ...] = ()
    """The budgets holding this session's jobs (attached: as the recorder keeps them, read from its database)."""
    notices: tuple[str, ...] = ()
    """Said once, as a notification: a kind of failed GPU reading seen for the first time this session."""
    stored_series: SeriesBlock | None = None
    """Attached: chart points the recorder stored before this frame that the app's history lacks (the current
    window's, read when it attaches or the window widens); the app adds them before the frame's own."""
    can_record: bool = False
    """Attached to a recorder that has stopped: this app can record the session itself from now on (``r``)."""


def sort_jobs(jobs: Iterable[JobView]) -> tuple[JobView, ...]:
    """Most expensive first; the ``(idle)``/``(unobserved)`` buckets after the real jobs."""
    return tuple(sorted(jobs, key=lambda j: (j.special, -j.cost_usd, j.tag)))


def process_counts(processes: tuple[ProcessView, ...]) -> dict[str, int]:
    """How many processes each job holds now (a pid on several GPUs counts once): untagged processes of one user
    and command on several GPUs are one job (DDP workers look like this), and the count says they are several."""
    pids: dict[str, set[int]] = {}
    for p in processes:
        if p.tag is not None:
            pids.setdefault(p.tag, set()).add(p.pid)
    return {tag: len(found) for tag, found in pids.items()}
