"""The fleet screen (``gputab fleet``): every host Prometheus scrapes gputab from, and every job across them.

One thread worker per refresh asks Prometheus its fixed batch of queries; the next refresh is scheduled only when
the last one finished (``set_timer`` after it), so a slow Prometheus never stacks refreshes. A failed refresh keeps
the last good figures on screen under a one-line error, and retries on the same timer. Host names, tags, users and
alert kinds come from other machines: they reach the screen as Rich ``Text``, never as markup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from gputab.fleet import QUERIES_PER_REFRESH, FleetHost, FleetJob, FleetView, PromClient, fetch_fleet
from gputab.fleet.model import JobOnHost
from gputab.tui import format as fmt
from gputab.tui.keys_screen import KeysAction
from gputab.tui.widgets.chart import Chart, ChartSpec, Line, nice_ceiling, palette
from gputab.tui.widgets.table import KeyedTable

DASH = "-"


def _money(usd: float | None) -> str:
    return DASH if usd is None else fmt.money(usd)


def _rate(usd_per_hour: float | None) -> str:
    return DASH if usd_per_hour is None else fmt.rate(usd_per_hour)


def _pct(fraction: float | None) -> str:
    return DASH if fraction is None else fmt.pct(fraction, fraction=True)


def waste_share(waste_usd: float | None, spent_usd: float | None) -> str:
    """The share of today's spend paid while the job's GPUs did nothing (``-``: not exported or nothing spent)."""
    if waste_usd is None or not spent_usd or spent_usd <= 0:
        return DASH
    return fmt.pct(min(1.0, max(0.0, waste_usd / spent_usd)), fraction=True)


def clock_time(wall: float | None) -> str:
    """``HH:MM:SS`` UTC of a Unix time (the date too when it is not today's)."""
    if wall is None:
        return "never"
    return datetime.fromtimestamp(wall, UTC).strftime("%H:%M:%S")


def seen_cell(host: FleetHost, now: float) -> Text:
    """How fresh a host is: ``3s ago``, or ``STALE 05:36:46`` (its last tick, UTC) in the warning colour."""
    if host.stale:
        return Text(f"STALE {clock_time(host.last_seen)}", style="bold yellow")
    age = max(0, int(now - (host.last_seen or now)))
    return Text(f"{age}s ago" if age < 120 else f"{age // 60}m ago")


def host_cells(host: FleetHost, now: float, top_burn: float) -> tuple:
    alerts = Text(str(host.alerts_active), style="bold red") if host.alerts_active else Text("0", style="dim")
    burn = Text("stale", style="yellow") if host.stale else Text(_rate(host.burn_rate_usd_per_hour))
    return (
        Text(host.host, style="dim" if host.stale else "bold"),
        DASH if host.gpus is None else str(host.gpus),
        burn,
        _money(host.spent_today_usd),
        _money(host.idle_today_usd),
        alerts,
        seen_cell(host, now),
        _pct(host.utilization_fraction),
        fmt.sparkline([v for _, v in host.burn_history], 12, top_burn),
    )


def job_cells(job: FleetJob, width: int) -> tuple:
    hosts = ", ".join(job.hosts)
    return (
        Text(job.tag),
        str(len(job.hosts)),
        _rate(job.burn_rate_usd_per_hour),
        _money(job.spent_today_usd),
        waste_share(job.waste_today_usd, job.spent_today_usd),
        _pct(job.avg_utilization),
        Text(hosts if len(hosts) <= width else hosts[: width - 1] + "…"),
    )


class HostsTable(KeyedTable):
    """One row per host: live hosts by burn rate, then the stale ones. Enter shows a host's jobs."""

    COLUMNS = (
        ("host", "host", 14),
        ("gpus", "GPUs", 4),
        ("burn", "burn", 9),
        ("today", "today", 9),
        ("idle", "idle $", 8),
        ("alerts", "alerts", 6),
        ("seen", "last seen", 14),
        ("util", "util", 4),
        ("spark", "burn, 1 h", 12),
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fixed_columns=1, **kwargs)

    def columns_for(self, width: int) -> list[tuple[str, str, int]]:
        # At 80 columns the figures that answer "who burns money now" fit; util and the sparkline need 120.
        return list(self.COLUMNS if width >= 110 else self.COLUMNS[:7])


class FleetJobsTable(KeyedTable):
    """One row per job (tag) across hosts, with the hosts it runs on."""

    COLUMNS = (
        ("tag", "job (tag)", 22),
        ("n", "hosts", 5),
        ("burn", "burn", 9),
        ("today", "today", 9),
        ("waste", "waste", 5),
        ("util", "util", 4),
        ("hosts", "on", 60),
    )
    """``waste``: the share of today's spend paid while the job's GPUs did nothing (the exporter's
    ``gputab_job_waste_dollars_total`` over ``gputab_job_cost_dollars_total``, both since 00:00 UTC)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fixed_columns=1, **kwargs)

    def columns_for(self, width: int) -> list[tuple[str, str, int]]:
        # Under 100 columns the tag gives up 6 cells, so the hosts a job runs on keep some room at 80.
        cols = [(k, label, 16 if k == "tag" and width < 100 else w) for k, label, w in self.COLUMNS[:-1]]
        key, label, _ = self.COLUMNS[-1]
        return [*cols, (key, label, self._rest(width, cols))]

    @staticmethod
    def _rest(width: int, cols: list[tuple[str, str, int]]) -> int:
        return max(12, width - sum(w + 2 for _, _, w in cols) - 4)

    @property
    def hosts_width(self) -> int:
        width = self.size.width
        return self._rest(width, self.columns_for(width)[:-1])


class HostJobsTable(KeyedTable):
    """The jobs of one host (the drill-down)."""

    COLUMNS = (
        ("tag", "job (tag)", 30),
        ("burn", "burn", 9),
        ("today", "today", 9),
        ("waste", "waste", 5),
        ("util", "util", 4),
    )


def ago(seconds: float) -> str:
    """A time axis label relative to the refresh: ``-60m``, ``-30m``, ``now``."""
    return "now" if seconds >= -1 else f"-{round(-seconds / 60)}m"


def burn_spec(hosts: tuple[FleetHost, ...] | list[FleetHost], at: float) -> ChartSpec:
    """Each host's burn rate over the last hour (the range query the sparklines use), from $0/h."""
    from gputab.fleet.query import HISTORY_SECONDS

    lines = []
    for host, color in zip(hosts, palette(len(hosts))):
        points = [(t - at, v if v is not None else float("nan")) for t, v in host.burn_history]
        lines.append(Line(host.host, [t for t, _ in points], [v for _, v in points], color))
    top = nice_ceiling(max((v for line in lines for v in line.values if v == v), default=0.0))
    return ChartSpec(
        "burn $/h by host, last hour",
        tuple(lines),
        top,
        -HISTORY_SECONDS,
        0.0,
        y_fmt=lambda v: fmt.rate(v).removesuffix("/h"),
        t_fmt=ago,
    )


def host_title(host: FleetHost, view: FleetView) -> Text:
    text = Text(host.host, style="bold")
    seen = f"last seen {clock_time(host.last_seen)} UTC"
    if host.stale:
        text.append(f"  STALE: no new tick since {clock_time(host.last_seen)} UTC", style="bold yellow")
    else:
        text.append(
            f"  {host.gpus if host.gpus is not None else '?'} GPUs · {_rate(host.burn_rate_usd_per_hour)} · {seen}"
        )
    text.append(
        f"\ntoday {_money(host.spent_today_usd)} · idle today {_money(host.idle_today_usd)} · "
        f"idle now {_rate(host.idle_burn_rate_usd_per_hour)}"
        f" · this session {_money(host.session_cost_usd)}"
    )
    if host.alerts:
        text.append("\nalerts: ", style="bold red")
        text.append(", ".join(f"{a.kind} x{a.count} ({a.severity})" for a in host.alerts))
    return text


class _FleetPage(Screen):
    """What the fleet's screens share: the style sheet and the status line the app writes to."""

    CSS_PATH = "fleet_screen.tcss"

    def show_status(self, status: Text) -> None:
        for widget in self.query("#fleet-status").results(Static):
            widget.update(status)


class HostScreen(_FleetPage):
    """One host's jobs, updated with every refresh; Escape goes back to the fleet."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "app.refresh_now", "Refresh"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host

    def compose(self) -> ComposeResult:
        yield Static("", id="host-title")
        yield HostJobsTable(id="host-jobs")
        yield Static("", id="host-empty")
        yield Chart(id="host-burn", classes="fleet-chart")
        yield Static("", id="fleet-status")
        yield Footer(show_command_palette=False)  # ctrl+p is under `?`: the footer keeps its room

    def on_mount(self) -> None:
        app = self.app
        if isinstance(app, FleetApp):
            if app.view is not None:
                self.show_view(app.view)
            self.show_status(app.status_text())
        self.query_one(HostJobsTable).focus()

    def show_view(self, view: FleetView) -> None:
        host = view.host(self.host)
        title = self.query_one("#host-title", Static)
        if host is None:
            title.update(Text.assemble((self.host, "bold"), "  is no longer listed by Prometheus"))
            rows: tuple[JobOnHost, ...] = ()
        else:
            title.update(host_title(host, view))
            rows = view.jobs_on(self.host)
        self.query_one(HostJobsTable).sync(
            [
                (
                    j.tag,
                    (
                        Text(j.tag),
                        _rate(j.burn_rate_usd_per_hour),
                        _money(j.spent_today_usd),
                        waste_share(j.waste_today_usd, j.spent_today_usd),
                        _pct(j.avg_utilization),
                    ),
                )
                for j in rows
            ]
        )
        self.query_one("#host-burn", Chart).plot(burn_spec([host] if host is not None else [], view.at))
        empty = self.query_one("#host-empty", Static)
        empty.display = not rows
        empty.update("No jobs on this host today.")


class FleetScreen(_FleetPage):
    """Hosts on top, jobs across hosts below; totals in the title line, Prometheus's state in the status line."""

    BINDINGS = [Binding("r", "app.refresh_now", "Refresh"), Binding("q", "app.quit", "Quit")]

    def compose(self) -> ComposeResult:
        yield Static("Fleet: asking Prometheus…", id="fleet-title")
        yield Static("Hosts (Enter: the host's jobs)", classes="fleet-label")
        yield HostsTable(id="fleet-hosts")
        yield Static("Jobs across hosts", classes="fleet-label")
        yield FleetJobsTable(id="fleet-jobs")
        yield Chart(id="fleet-burn", classes="fleet-chart")
        yield Static("", id="fleet-status")
        yield Footer(show_command_palette=False)  # ctrl+p is under `?`: the footer keeps its room

    def on_mount(self) -> None:
        self.query_one(HostsTable).focus()

    def show_view(self, view: FleetView, now: float) -> None:
        t = view.totals()
        title = Text.assemble(
            ("Fleet", "bold"),
            f"  {t['hosts']} hosts",
            (f" ({t['hosts_stale']} stale)", "yellow") if t["hosts_stale"] else "",
            f" · {t['gpus']} GPUs · {fmt.rate(t['burn_rate_usd_per_hour'])}"
            f" · today {fmt.money(t['spent_today_usd'])} · idle today {fmt.money(t['idle_today_usd'])} · ",
            (f"{t['alerts_active']} alert{'s' if t['alerts_active'] != 1 else ''}", "bold red")
            if t["alerts_active"]
            else "no alerts",
        )
        self.query_one("#fleet-title", Static).update(title)
        top = max((v or 0.0 for h in view.hosts for _, v in h.burn_history), default=0.0)
        self.query_one(HostsTable).sync([(h.host, host_cells(h, now, top)) for h in view.hosts])
        jobs = self.query_one(FleetJobsTable)
        jobs.sync([(j.tag, job_cells(j, jobs.hosts_width)) for j in view.jobs])
        # The rows the tables leave: every host's burn rate over the hour (stale ones end where they stopped).
        self.query_one("#fleet-burn", Chart).plot(burn_spec(view.hosts, view.at))

    @on(HostsTable.RowSelected, "#fleet-hosts")
    def open_host(self, event: HostsTable.RowSelected) -> None:
        """Enter on a host: its jobs."""
        if event.row_key.value is not None:
            self.app.push_screen(HostScreen(event.row_key.value))


class FleetApp(KeysAction, App):
    """``gputab fleet``: refreshes the fleet from Prometheus every ``refresh`` seconds, never two at once.

    Args:
        client: the Prometheus to ask.
        refresh: seconds from the end of one refresh to the start of the next.
        stale_after: see :func:`gputab.fleet.fetch_fleet`.
        clock: wall clock (tests pass the time of a recording).
    """

    TITLE = "gputab fleet"
    BINDINGS = [KeysAction.KEYS_BINDING, Binding("ctrl+c", "quit", "Quit", show=False)]
    KEYS_GROUP = "Fleet"
    """The group of the app's own keys under ``?``."""

    def __init__(
        self,
        client: PromClient,
        refresh: float = 10.0,
        stale_after: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.client = client
        self.refresh_seconds = refresh
        self.stale_after = stale_after
        self.clock = clock
        self.view: FleetView | None = None
        self.error: str | None = None
        self.refreshes = 0
        self._worker: Worker | None = None
        self._timer: Timer | None = None

    def on_mount(self) -> None:
        self.sub_title = self.client.url
        self.push_screen(FleetScreen())
        self.action_refresh_now()

    def action_refresh_now(self) -> None:
        """Start a refresh unless one is running (then it is the refresh)."""
        if self._worker is not None and self._worker.state in (WorkerState.PENDING, WorkerState.RUNNING):
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._show_status(busy=True)
        self._worker = self.run_worker(self._fetch, thread=True, group="fleet-refresh", exit_on_error=False)

    def _fetch(self) -> FleetView | str:
        # In the worker thread. Every failure is a message for the status line: the screen never dies of it.
        try:
            return fetch_fleet(self.client, stale_after=self.stale_after, clock=self.clock)
        except Exception as exc:  # noqa: BLE001 - PrometheusError is the expected one; anything else is shown too
            return str(exc) or type(exc).__name__

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._worker or event.state not in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            return
        result = event.worker.result if event.state == WorkerState.SUCCESS else None
        self.refreshes += 1
        if isinstance(result, FleetView):
            self.view, self.error = result, None
            for screen in self.screen_stack:
                if isinstance(screen, FleetScreen):
                    screen.show_view(result, self.clock())
                elif isinstance(screen, HostScreen):
                    screen.show_view(result)
        else:
            self.error = result if isinstance(result, str) else f"refresh failed: {event.worker.error}"
            if self.view is None:
                for screen in self.screen_stack:
                    if isinstance(screen, FleetScreen):
                        screen.query_one("#fleet-title", Static).update("Fleet: no figures yet (see below)")
        self._show_status()
        # The next refresh starts a full interval after this one ended: slow answers never stack up.
        self._timer = self.set_timer(self.refresh_seconds, self.action_refresh_now)

    def status_text(self, busy: bool = False) -> Text:
        """The status line: when the figures are from, what a refresh costs, and what went wrong."""
        text = Text()
        if self.error:
            text.append(self.error, style="bold red")
            text.append(
                f"  (retrying every {self.refresh_seconds:g} s"
                + (f"; figures from {clock_time(self.view.at)} UTC)" if self.view else ")")
            )
            return text
        if self.view is not None:
            text.append(
                f"Prometheus at {clock_time(self.view.at)} UTC · {QUERIES_PER_REFRESH} queries every "
                f"{self.refresh_seconds:g} s"
            )
            for warning in self.view.warnings[:2]:
                text.append(f"\n{warning}", style="yellow")
        elif busy:
            text.append("asking Prometheus…")
        return text

    def _show_status(self, busy: bool = False) -> None:
        status = self.status_text(busy)
        for screen in self.screen_stack:
            if isinstance(screen, _FleetPage):
                screen.show_status(status)
