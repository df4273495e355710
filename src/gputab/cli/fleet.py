"""``gputab fleet``: every box Prometheus scrapes gputab from, on one screen or as JSON."""

from __future__ import annotations

import click

from gputab.cli.context import AppContext, fail, pass_ctx, print_json
from gputab.errors import GputabError


@click.command()
@click.option(
    "--prometheus",
    "url",
    metavar="URL",
    default=None,
    help="Base URL of the Prometheus that scrapes your recorders, e.g. http://127.0.0.1:9090 "
    "[config fleet.prometheus].",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one refresh as JSON (schema_version, hosts, jobs across hosts, "
    "totals, warnings; keys in docs/json.md) instead of opening the screen.",
)
@click.option(
    "--refresh",
    type=float,
    default=None,
    help="Seconds between refreshes of the screen [config fleet.refresh; default 10].",
)
@click.option(
    "--timeout", type=float, default=None, help="Seconds one query may take [config fleet.timeout; default 5]."
)
@click.option(
    "--stale-after",
    type=float,
    default=None,
    help="Seconds without a new tick before a host is shown as stale [config fleet.stale_after; default 60].",
)
@pass_ctx
def fleet(
    app: AppContext,
    url: str | None,
    as_json: bool,
    refresh: float | None,
    timeout: float | None,
    stale_after: float | None,
) -> None:
    """Many boxes in one screen: per host its GPUs, burn rate, spent today, idle $ and alerts; per job across hosts.

    Read-only: it asks Prometheus's HTTP API one fixed batch of 13 queries per refresh (12 instant, 1 range for
    the burn-rate sparklines), whatever the number of hosts. Run `gputab record --metrics-port PORT` on each box
    and have Prometheus scrape them (contrib/prometheus/prometheus.yml). Keys on the screen: Enter shows a host's
    jobs, Escape goes back, r refreshes now, q quits.
    """
    from gputab.fleet import PromClient, fetch_fleet

    cfg = app.config.fleet
    url = url or cfg.prometheus
    if url is None or not url.strip():
        raise GputabError(
            "no Prometheus to ask: pass --prometheus URL (e.g. http://127.0.0.1:9090) or set "
            '[fleet] prometheus = "URL" in the config file',
            exit_code=2,
        )
    refresh = cfg.refresh if refresh is None else refresh
    timeout = cfg.timeout if timeout is None else timeout
    stale_after = cfg.stale_after if stale_after is None else stale_after
    for name, value, low, high in (
        ("--refresh", refresh, 1.0, 3600.0),
        ("--timeout", timeout, 0.1, 120.0),
        ("--stale-after", stale_after, 1.0, 86400.0),
    ):
        if not low <= value <= high:
            fail(f"{name} must be between {low:g} and {high:g} seconds, got {value:g}", code=2)
    client = PromClient(url, timeout=timeout)
    if as_json:
        print_json(fetch_fleet(client, stale_after=stale_after).to_json())
        return
    from gputab.tui.fleet_screen import FleetApp

    FleetApp(client, refresh=refresh, stale_after=stale_after).run()


def register(cli: click.Group) -> None:
    cli.add_command(fleet)
