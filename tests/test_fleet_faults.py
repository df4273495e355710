"""Faults of the fleet view: Prometheus down, slow, not Prometheus; a stale host; partial and odd answers.

Each ends in a clear message (or a warning beside what still worked), never a traceback: checked through the
library and through the real ``gputab fleet --json`` command in a subprocess.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time

import pytest

from fleet_fake import FakePrometheus, load, normalise
from gputab.fleet import PromClient, PrometheusError, QueryRefused, fetch_fleet
from gputab.fleet.query import LOOKBACK, QUERIES, today_range

GPUTAB = [sys.executable, "-m", "gputab"]


def expr(name: str, at: float) -> str:
    return normalise(QUERIES[name].format(lookback=LOOKBACK, today=today_range(at)))


@pytest.fixture
def fake():
    with FakePrometheus(load()) as fp:
        yield fp


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed when the block ends: nothing listens there


def fleet_json(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        GPUTAB + ["fleet", "--json", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def one_clear_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0 and proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gputab: "), proc.stderr
    return lines[0]


# -- Prometheus down ---------------------------------------------------------------------------------------------
def test_prometheus_down_is_one_line_and_the_refresh_stops_at_once():
    client = PromClient(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(PrometheusError, match=r"cannot reach Prometheus at http://127\.0\.0\.1:\d+: .*running"):
        fetch_fleet(client)
    assert client.requests == 1  # not 12 failures in a row


def test_cli_prometheus_down():
    line = one_clear_line(fleet_json("--prometheus", f"http://127.0.0.1:{closed_port()}"))
    assert "cannot reach Prometheus" in line and "--prometheus" in line


# -- Prometheus slow ---------------------------------------------------------------------------------------------
def test_prometheus_slow_times_out_once_within_the_timeout(fake):
    fake.delay = 2.0
    client = PromClient(fake.url, timeout=0.3)
    start = time.monotonic()
    with pytest.raises(PrometheusError, match=r"did not answer within 0\.3 s.*--timeout"):
        fetch_fleet(client)
    assert time.monotonic() - start < 1.5 and client.requests == 1


def test_cli_prometheus_slow(fake):
    fake.delay = 3.0
    line = one_clear_line(fleet_json("--prometheus", fake.url, "--timeout", "0.5"))
    assert "did not answer within 0.5 s" in line


# -- not Prometheus, bad URLs, no URL ----------------------------------------------------------------------------
def test_something_that_is_not_prometheus(fake):
    fake.raw, fake.raw_status = b"<html>Grafana</html>", 200
    with pytest.raises(PrometheusError, match="did not answer like Prometheus's HTTP API"):
        fetch_fleet(PromClient(fake.url))
    fake.raw, fake.raw_status = b"404 page not found", 404
    with pytest.raises(PrometheusError, match=r"HTTP 404"):
        fetch_fleet(PromClient(fake.url))


@pytest.mark.parametrize(
    "url", ["127.0.0.1:9090", "ftp://prom:9090", "http://", "http://prom:99999", "http://prom:9090/?x=1"]
)
def test_bad_urls_are_refused_before_any_request(url):
    with pytest.raises(PrometheusError) as err:
        PromClient(url)
    assert err.value.exit_code == 2 and "--prometheus" in str(err.value)


def test_credentials_in_the_url_are_sent_and_never_shown(fake):
    port = fake.url.rsplit(":", 1)[1]
    client = PromClient(f"http://fleet:s3cr%3At@127.0.0.1:{port}/")
    assert client.url == fake.url and "s3cr" not in client.url
    view = fetch_fleet(client, clock=lambda: fake.at)
    assert view.hosts and view.prometheus == fake.url
    assert set(fake.authorizations) == {"Basic " + base64.b64encode(b"fleet:s3cr:t").decode()}
    fake.raw, fake.raw_status = b"Unauthorized", 401
    with pytest.raises(PrometheusError, match=r"refused access \(HTTP 401\)") as err:
        fetch_fleet(client)
    assert "s3cr" not in str(err.value)
    with pytest.raises(PrometheusError) as err:
        PromClient("ftp://fleet:s3cret@prom:9090")
    assert "s3cret" not in str(err.value) and "***@prom" in str(err.value)


def test_cli_without_a_prometheus_says_how_to_name_one(tmp_path):
    proc = fleet_json()
    assert proc.returncode == 2
    assert "--prometheus URL" in one_clear_line(proc) and "[fleet] prometheus" in proc.stderr


def test_cli_reads_the_url_from_the_config(tmp_path, fake):
    config = tmp_path / "config.toml"
    config.write_text(f'[fleet]\nprometheus = "{fake.url}"\nstale_after = 3600\n')
    proc = subprocess.run(
        GPUTAB + ["--config", str(config), "fleet", "--json"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["prometheus"] == fake.url and doc["stale_after_seconds"] == 3600
    assert {h["host"] for h in doc["hosts"]} == {"gpu-box-a", "gpu-box-b", "gpu-box-c"}


def test_cli_refuses_a_bad_fleet_config(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[fleet]\nrefresh = 0\n")
    proc = subprocess.run(
        GPUTAB + ["--config", str(config), "fleet", "--json"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2 and "fleet.refresh" in one_clear_line(proc)


# -- a host that stopped reporting --------------------------------------------------------------------------------
def test_a_host_that_stopped_reporting_is_stale_in_json(fake):
    proc = fleet_json("--prometheus", fake.url, "--stale-after", "60")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    # The recording is older than 60 s now: every host stopped reporting, each keeps its last time and figures.
    assert doc["hosts"] and all(
        h["stale"] and h["last_seen_at"] and h["burn_rate_usd_per_hour"] is None for h in doc["hosts"]
    )
    assert all(h["spent_today_usd"] is not None for h in doc["hosts"])
    assert doc["totals"]["stale_host_count"] == len(doc["hosts"])


# -- partial and odd answers ---------------------------------------------------------------------------------------
def test_one_refused_query_is_a_warning_and_the_rest_still_shows(fake):
    fake.errors[expr("spent_today", fake.at)] = (422, "execution", "query processing would load too many samples")
    view = fetch_fleet(PromClient(fake.url), clock=lambda: fake.at)
    assert len(view.hosts) == 3 and all(h.spent_today_usd is None for h in view.hosts)
    assert all(h.session_cost_usd is not None for h in view.hosts)
    (warning,) = view.warnings
    assert "too many samples" in warning and "increase(gputab_cost_dollars_total" in warning


def test_a_refused_burn_query_does_not_make_hosts_stale(fake):
    fake.errors[expr("burn", fake.at)] = (503, "timeout", "query timed out in expression evaluation")
    view = fetch_fleet(PromClient(fake.url), stale_after=3600, clock=lambda: fake.at)
    # Nothing says a host stopped now: only the age of its last tick counts (gpu-box-c's is 95 s).
    assert sum(h.stale for h in view.hosts) == 0
    view = fetch_fleet(PromClient(fake.url), stale_after=60, clock=lambda: fake.at)
    assert [h.host for h in view.hosts if h.stale] == ["gpu-box-c"]
    assert all(h.burn_rate_usd_per_hour is None for h in view.hosts) and "timed out" in view.warnings[0]


def test_a_refused_last_seen_query_does_not_make_hosts_stale(fake):
    fake.errors[expr("last_seen", fake.at)] = (503, "timeout", "query timed out")
    view = fetch_fleet(PromClient(fake.url), clock=lambda: fake.at)
    # gpu-box-c's series ended, so it is still stale; the others still report a burn rate.
    assert [h.host for h in view.hosts if h.stale] == ["gpu-box-c"]
    assert all(h.last_seen is None for h in view.hosts) and "timed out" in view.warnings[0]


def test_odd_values_are_not_numbers_not_crashes(fake):
    at = fake.at
    fake.replace[expr("burn", at)] = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"host": "gpu-box-a"}, "value": [at, "NaN"]},
                {"metric": {"host": "gpu-box-b"}, "value": [at, "+Inf"]},
                {"metric": {"host": "gpu-box-c"}, "value": [at, "twelve"]},
                {"metric": {"instance": "x:1"}, "value": [at, "3"]},
            ],
        },
    }
    fake.replace[expr("gpus", at)] = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    fake.replace[expr("alerts", at)] = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {"host": "gpu-box-a"}, "value": "oops"}]},
    }
    view = fetch_fleet(PromClient(fake.url), clock=lambda: at)
    assert {h.host for h in view.hosts} == {"gpu-box-a", "gpu-box-b", "gpu-box-c"}
    assert all(h.burn_rate_usd_per_hour is None and h.gpus is None for h in view.hosts)
    text = " | ".join(view.warnings)
    assert "expected a vector" in text and "malformed" in text and "1 series had no host label" in text
    json.dumps(view.to_json(), allow_nan=False)


def test_an_error_status_and_a_body_without_data(fake):
    fake.replace[expr("job_burn", fake.at)] = {"status": "success"}
    fake.errors[expr("job_today", fake.at)] = (400, "bad_data", "parse error")
    view = fetch_fleet(PromClient(fake.url), clock=lambda: fake.at)
    assert len(view.warnings) == 2 and view.hosts
    assert all(j.burn_rate_usd_per_hour is None and j.spent_today_usd is None for j in view.jobs)


def test_an_empty_prometheus_says_what_to_set_up(fake):
    fake.recording = {"at": fake.at, "answers": {}, "range": None}
    view = fetch_fleet(PromClient(fake.url), clock=lambda: fake.at)
    assert view.hosts == () and "gputab record --metrics-port" in view.warnings[0]


def test_query_refused_is_raised_for_a_single_bad_answer(fake):
    fake.errors[normalise("up")] = (400, "bad_data", "1:1: parse error")
    with pytest.raises(QueryRefused, match="parse error"):
        PromClient(fake.url).query("up", fake.at)
