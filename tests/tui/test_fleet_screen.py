"""The fleet screen, driven with Pilot against a fake Prometheus (a real HTTP server serving recorded answers).

Snapshots at 80x24, 120x40 and 200x60: regenerate after an intended change with
``pytest tests/tui/test_fleet_screen.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

import asyncio
import copy
import time

import pytest
from rich.text import Text

from fleet_fake import FakePrometheus, load, normalise
from gputab.fleet import QUERIES_PER_REFRESH, PromClient
from gputab.fleet.query import LOOKBACK, QUERIES, today_range
from gputab.tui.fleet_screen import FleetApp, FleetJobsTable, FleetScreen, HostJobsTable, HostScreen, HostsTable

SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)], ids=["80x24", "120x40", "200x60"])


@pytest.fixture
def fake():
    with FakePrometheus(load()) as fp:
        yield fp


def make(fake: FakePrometheus, refresh: float = 3600.0, timeout: float = 5.0) -> FleetApp:
    return FleetApp(PromClient(fake.url, timeout=timeout), refresh=refresh, clock=lambda: fake.at)


async def settle(app: FleetApp, pilot, refreshes: int = 1, limit: float = 20.0) -> None:
    """Wait (bounded) until ``refreshes`` refreshes have finished and the screen shows them."""
    deadline = time.monotonic() + limit
    while app.refreshes < refreshes:
        assert time.monotonic() < deadline, f"only {app.refreshes} refreshes after {limit} s"
        await pilot.pause(0.05)
    await pilot.pause()


def cell(table, row: str, column: str) -> str:
    value = table.get_cell(row, column)
    assert isinstance(value, Text)
    return value.plain


def shows(shown: str, full: str) -> bool:
    """``full`` drawn as written, or cut to its column with an ellipsis (KeyedTable cuts cells in cells)."""
    return shown == full or (shown.endswith("…") and full.startswith(shown[:-1]))


async def test_hosts_jobs_and_the_stale_host(fake):
    app = make(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        hosts = screen.query_one(HostsTable)
        view = app.view
        assert hosts.row_count == len(view.hosts) == 3
        stale = next(h for h in view.hosts if h.stale)
        assert cell(hosts, stale.host, "seen").startswith("STALE ")
        assert cell(hosts, stale.host, "seen").endswith(time.strftime("%H:%M:%S", time.gmtime(stale.last_seen)))
        assert cell(hosts, stale.host, "burn") == "stale"
        live = next(h for h in view.hosts if not h.stale)
        assert cell(hosts, live.host, "burn") == f"${live.burn_rate_usd_per_hour:.2f}/h"
        jobs = screen.query_one(FleetJobsTable)
        assert jobs.row_count == len(view.jobs)
        lora = next(j for j in view.jobs if j.tag == "llama3-8b-lora")
        assert cell(jobs, "llama3-8b-lora", "n") == str(len(lora.hosts)) == "3"
        title = str(screen.query_one("#fleet-title").render())
        assert "3 hosts (1 stale)" in title
        assert f"{QUERIES_PER_REFRESH} queries" in str(screen.query_one("#fleet-status").render())


async def test_enter_drills_down_to_a_hosts_jobs_and_escape_comes_back(fake):
    app = make(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        hosts = app.screen.query_one(HostsTable)
        target = hosts.selected_key
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, HostScreen) and app.screen.host == target
        table = app.screen.query_one(HostJobsTable)
        expected = app.view.jobs_on(target)
        assert table.row_count == len(expected) > 0
        assert [table.get_row_at(i)[0].plain for i in range(table.row_count)] == [j.tag for j in expected]
        assert target in str(app.screen.query_one("#host-title").render())
        await pilot.press("r")  # a refresh reaches the drill-down too
        await settle(app, pilot, refreshes=2)
        assert table.row_count == len(expected)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)


async def test_refreshes_never_stack(fake):
    fake.delay = 0.05  # 12 requests: a refresh takes ~0.6 s
    app = make(fake, refresh=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(5):  # asking again while one runs does not start another
            await pilot.press("r")
            await pilot.pause(0.05)
        await settle(app, pilot, refreshes=3)
        await app.workers.wait_for_complete()
    assert fake.max_in_flight == 1
    # Each finished refresh made its 12 requests; none was started on top of another.
    assert len(fake.requests) <= (app.refreshes + 1) * QUERIES_PER_REFRESH
    assert len(fake.requests) >= app.refreshes * QUERIES_PER_REFRESH


async def test_prometheus_going_down_keeps_the_last_figures_and_says_so(fake):
    app = make(fake, refresh=0.2, timeout=0.5)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        # Each change waits for two more refreshes: the one running when it is made may still see the old answer.
        fake.raw, fake.raw_status = b"502 Bad Gateway", 502
        await settle(app, pilot, refreshes=app.refreshes + 2)
        status = str(app.screen.query_one("#fleet-status").render())
        assert "did not answer like Prometheus" in status and "retrying every 0.2 s" in status
        assert app.screen.query_one(HostsTable).row_count == 3  # the last good figures stay
        fake.delay = 1.0  # now slow: a timeout, still no crash
        fake.raw = None
        await settle(app, pilot, refreshes=app.refreshes + 2)
        assert "did not answer within 0.5 s" in str(app.screen.query_one("#fleet-status").render())
        fake.delay = 0.0
        await settle(app, pilot, refreshes=app.refreshes + 2)
        assert app.error is None
        assert "queries every" in str(app.screen.query_one("#fleet-status").render())


async def test_prometheus_down_from_the_start(fake):
    fake.close()
    app = make(fake, refresh=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot, refreshes=2)
        assert "cannot reach Prometheus" in str(app.screen.query_one("#fleet-status").render())
        assert "no figures yet" in str(app.screen.query_one("#fleet-title").render())
        assert app.screen.query_one(HostsTable).row_count == 0


async def test_outside_text_is_never_markup(fake):
    evil_host, evil_tag = "[bold red]box[/]", "[link=http://evil]x[/link][@click=app.quit]"
    recording = copy.deepcopy(fake.recording)
    for doc in recording["answers"].values():
        for item in doc["data"]["result"]:
            if item["metric"].get("host") == "gpu-box-a":
                item["metric"]["host"] = evil_host
            if item["metric"].get("tag") == "llama3-8b-lora":
                item["metric"]["tag"] = evil_tag
    fake.recording = recording
    app = make(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        hosts = app.screen.query_one(HostsTable)
        assert shows(cell(hosts, evil_host, "host"), evil_host)
        assert shows(cell(app.screen.query_one(FleetJobsTable), evil_tag, "tag"), evil_tag)
        hosts.move_cursor(row=hosts.get_row_index(evil_host))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, HostScreen)
        assert evil_host in str(app.screen.query_one("#host-title").render())
        assert shows(app.screen.query_one(HostJobsTable).get_row_at(0)[0].plain, evil_tag)
        assert app.is_running  # the [@click=app.quit] tag did nothing


async def test_alerts_show_per_host(fake):
    at = fake.at
    key = normalise(QUERIES["alerts"].format(lookback=LOOKBACK, today=today_range(at)))
    fake.replace[key] = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"host": "gpu-box-a", "kind": "idle_money", "severity": "warning"}, "value": [at, "2"]}
            ],
        },
    }
    app = make(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert cell(app.screen.query_one(HostsTable), "gpu-box-a", "alerts") == "2"
        assert "2 alerts" in str(app.screen.query_one("#fleet-title").render())


def _settled(fake):
    async def run_before(pilot) -> None:
        await settle(pilot.app, pilot)
        await asyncio.sleep(0)

    return run_before


@SIZES
def test_fleet_screen_snapshot(snap_compare, fake, size):
    assert snap_compare(make(fake), terminal_size=size, run_before=_settled(fake))


@SIZES
def test_host_screen_snapshot(snap_compare, fake, size):
    async def run_before(pilot) -> None:
        await settle(pilot.app, pilot)
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(make(fake), terminal_size=size, run_before=run_before)


def _expr(name: str, at: float) -> str:
    return normalise(QUERIES[name].format(lookback=LOOKBACK, today=today_range(at)))


async def test_the_jobs_waste_share_comes_from_the_exported_waste(fake):
    # The recording predates the waste counter: answer its query from today's cost, a quarter of it wasted
    # (one job: half), the way Prometheus would (a vector by host and tag).
    today = fake.recording["answers"][_expr("job_today", fake.at)]["data"]["result"]
    result = []
    for item in today:
        share = 0.5 if item["metric"]["tag"] == "llama3-8b-lora" else 0.25
        result.append({"metric": item["metric"], "value": [fake.at, str(float(item["value"][1]) * share)]})
    fake.replace[_expr("job_waste_today", fake.at)] = {
        "status": "success",
        "data": {"resultType": "vector", "result": result},
    }
    app = make(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        jobs = app.screen.query_one(FleetJobsTable)
        assert "waste" in [str(c.label) for c in jobs.columns.values()]
        tags = {item["metric"]["tag"] for item in today} - {"(idle)", "(unobserved)"}
        assert "llama3-8b-lora" in tags
        for tag in tags:
            assert cell(jobs, tag, "waste") == ("50%" if tag == "llama3-8b-lora" else "25%")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, HostScreen)
        host_jobs = app.screen.query_one(HostJobsTable)
        assert {cell(host_jobs, k.value, "waste") for k in host_jobs.rows} <= {"25%", "50%", "-"}


async def test_no_exported_waste_is_a_dash_not_zero(fake):
    app = make(fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        jobs = app.screen.query_one(FleetJobsTable)
        assert {cell(jobs, k.value, "waste") for k in jobs.rows} == {"-"}
        # At 80 columns every column, the hosts a job runs on included, fits without scrolling.
        assert sum(c.get_render_width(jobs) for c in jobs.columns.values()) <= 80


async def test_the_rows_under_the_tables_chart_each_hosts_burn_over_the_hour(fake):
    from gputab.tui.widgets.chart import Chart

    app = make(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        view = app.view
        spec = app.screen.query_one("#fleet-burn", Chart).spec
        assert [line.label for line in spec.lines] == [h.host for h in view.hosts]
        for host, line in zip(view.hosts, spec.lines):
            assert [v for _, v in host.burn_history] == [v if v == v else None for v in line.values]
            assert all(-3600 <= t <= 0 for t in line.times)
        assert spec.y_min == 0 and spec.y_max >= max(v or 0 for h in view.hosts for _, v in h.burn_history)
        assert app.screen.query_one("#fleet-burn", Chart).region.height >= 10  # the rows the tables leave
