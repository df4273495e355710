"""The fleet view end to end: a real Prometheus scraping three real demo recorders on loopback.

Three ``gputab --demo record --metrics-port`` processes, each its own host name (``GPUTAB_DEMO_HOST``), seed and
database, and a real Prometheus (Debian's binary) on a free loopback port scraping them every second. Then
``gputab fleet --json`` and the fleet screen must show all three hosts, each with figures that match its own
``gputab show --json`` within one scrape interval; once the recorders stop, all three are stale with their last
figures. Skips with the reason where the ``prometheus`` binary is missing.

``GPUTAB_FLEET_RECORD=PATH`` writes the live answers as a new recording for the fake Prometheus of the other tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from fleet_fake import record_answers
from test_prometheus_integration import GPUTAB, PROMETHEUS, free_port, http_get, servers, wait_for  # noqa: F401

HOSTS = ("gpu-box-a", "gpu-box-b", "gpu-box-c")
SCRAPE_INTERVAL = 1.0
POLL_INTERVAL = 0.5

pytestmark = [
    pytest.mark.skipif(
        PROMETHEUS is None, reason="the `prometheus` binary is not installed (apt-get install prometheus; CI does)"
    ),
    pytest.mark.slow,
]


def fleet_json(url: str, *args: str) -> dict:
    proc = subprocess.run(
        GPUTAB + ["fleet", "--prometheus", url, "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def show_json(db: Path) -> dict:
    proc = subprocess.run(
        GPUTAB + ["--db", str(db), "show", "last", "--json"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def fleet(tmp_path, servers, monkeypatch):  # noqa: F811 - the fixture imported above
    """Three recorders and a Prometheus scraping them; yields (prometheus URL, {host: (process, db)}, procs)."""
    procs: dict[str, tuple[subprocess.Popen, Path]] = {}
    recorders, targets = {}, []
    for seed, host in enumerate(HOSTS):
        port, db, log = free_port(), tmp_path / f"{host}.db", tmp_path / f"{host}.log"
        # The servers fixture starts children with this process's environment: each recorder gets its own.
        monkeypatch.setenv("GPUTAB_DEMO_HOST", host)
        monkeypatch.setenv("GPUTAB_SPOOL", str(tmp_path / f"spool-{host}"))
        monkeypatch.setenv("GPUTAB_DATA_DIR", str(tmp_path / f"data-{host}"))
        proc = servers(
            GPUTAB
            + [
                "--demo",
                "--seed",
                str(seed),
                "--db",
                str(db),
                "record",
                "--interval",
                str(POLL_INTERVAL),
                "--metrics-port",
                str(port),
            ],
            log,
        )
        procs[host] = (proc, log)
        recorders[host] = (proc, db)
        targets.append(f"'127.0.0.1:{port}'")
        wait_for(
            f"{host}'s /metrics",
            lambda p=port: "gputab_job_cost_dollars_total" in http_get(f"http://127.0.0.1:{p}/metrics"),
            30,
            procs,
        )
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_INTERVAL:g}s\n  scrape_timeout: {SCRAPE_INTERVAL:g}s\n"
        f"scrape_configs:\n  - job_name: gputab\n    static_configs:\n      - targets: [{', '.join(targets)}]\n"
    )
    log = tmp_path / "prometheus.log"
    prom = servers(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ],
        log,
    )
    procs["prometheus"] = (prom, log)
    url = f"http://127.0.0.1:{prom_port}"
    wait_for(
        "Prometheus to scrape all three hosts",
        lambda: (
            len(
                json.loads(http_get(f"{url}/api/v1/query?query=count+by+(host)(gputab_cost_dollars_total)"))["data"][
                    "result"
                ]
            )
            == 3
        ),
        60,
        procs,
    )
    time.sleep(3 * SCRAPE_INTERVAL)  # a few scrapes: increase() and the sparkline need two points
    monkeypatch.delenv("GPUTAB_DEMO_HOST")
    yield url, recorders, procs


async def test_three_recorders_in_one_fleet(fleet):
    url, recorders, procs = fleet
    live = fleet_json(url)
    assert live["warnings"] == []
    hosts = {h["host"]: h for h in live["hosts"]}
    assert set(hosts) == set(HOSTS)
    for host, (_, db) in recorders.items():
        h, stored = hosts[host], show_json(db)
        assert stored["session"]["host"] == host  # the exporter's host label is the session's host
        assert not h["stale"] and h["gpu_count"] == len(stored["gpus"]) == 5
        # The demo charges by rate only: the host's burn is the sum of its GPUs' rates.
        assert h["burn_rate_usd_per_hour"] == pytest.approx(sum(g["rate_usd_per_hour"] for g in stored["gpus"]))
        assert 0 < h["spent_today_usd"] <= h["session_cost_usd"] * 1.01
    lora = next(j for j in live["jobs"] if j["tag"] == "llama3-8b-lora")
    assert sorted(lora["hosts"]) == sorted(HOSTS) and len(lora["per_host"]) == 3
    # The dashboard's fleet row answers the same question: every host, every job once.
    dash = json.loads((Path(__file__).resolve().parent.parent / "contrib/grafana/gputab-dashboard.json").read_text())
    row = {p["title"]: p for p in dash["panels"] if p.get("gridPos", {}).get("y", 0) > 30}
    for title, label, names in (
        ("Cost by host (time range)", "host", set(HOSTS)),
        ("Idle $ by host (time range)", "host", set(HOSTS)),
        ("Jobs across hosts", "tag", {j["tag"] for j in live["jobs"]}),
    ):
        for target in row[title]["targets"]:
            expr = target["expr"].replace("$host", ".*").replace("$__range", "5m")
            answer = json.loads(http_get(f"{url}/api/v1/query?query={urllib.parse.quote(expr)}"))
            assert {r["metric"][label] for r in answer["data"]["result"]} == names, (title, expr)
    if os.environ.get("GPUTAB_FLEET_RECORD"):
        Path(os.environ["GPUTAB_FLEET_RECORD"]).write_text(
            json.dumps(record_answers(url, round(time.time(), 3)), indent=1, sort_keys=True) + "\n"
        )

    # The screen, on the same Prometheus.
    from gputab.fleet import PromClient
    from gputab.tui.fleet_screen import FleetApp, FleetJobsTable, HostsTable

    app = FleetApp(PromClient(url), refresh=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 30
        while app.refreshes < 1 and time.monotonic() < deadline:
            await pilot.pause(0.1)
        await pilot.pause()
        assert app.error is None
        table = app.screen.query_one(HostsTable)
        assert {table.get_row_at(i)[0].plain for i in range(table.row_count)} == set(HOSTS)
        assert "llama3-8b-lora" in {r.plain for r in app.screen.query_one(FleetJobsTable).get_column("tag")}

    # Stop the recorders the way a service manager would; each host's last figures must match its own store.
    for proc, _ in recorders.values():
        proc.send_signal(signal.SIGTERM)
    for host, (proc, _) in recorders.items():
        assert proc.wait(timeout=20) == 0, procs[host][1].read_text()
    time.sleep(2 * SCRAPE_INTERVAL)  # the failed scrapes end the series
    stopped = {h["host"]: h for h in fleet_json(url)["hosts"]}
    assert set(stopped) == set(HOSTS)
    for host, (_, db) in recorders.items():
        h, stored = stopped[host], show_json(db)
        assert h["stale"] and h["burn_rate_usd_per_hour"] is None and h["last_seen_at"]
        burn_per_s = sum(g["rate_usd_per_hour"] for g in stored["gpus"]) / 3600
        # The last scrape is at most one scrape interval (plus the tick it read) behind the store, never ahead.
        gap = stored["total"]["cost_usd"] - h["session_cost_usd"]
        assert -1e-9 <= gap <= burn_per_s * (SCRAPE_INTERVAL + POLL_INTERVAL + 0.25) + 1e-9, (host, gap)
