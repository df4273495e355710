"""The fleet's Prometheus client and its one batch per refresh, against a fake Prometheus serving recorded answers.

The recording (tests/data/fleet/three_hosts.json) is three demo recorders (1 s polls) scraped every 5 s by a real
Prometheus 2.42 for about 11 minutes; gpu-box-b ran with a 2-minute idle alert, and gpu-box-c was stopped 95 s before
the recording: its series ended, so it must show as stale with its last tick's time.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from fleet_fake import FakePrometheus, load, normalise
from gputab.fleet import QUERIES_PER_REFRESH, SCHEMA_VERSION, PromClient, fetch_fleet
from gputab.fleet.query import HISTORY_QUERY, LOOKBACK, QUERIES, today_range


@pytest.fixture
def recording():
    return load()


@pytest.fixture
def fake(recording):
    with FakePrometheus(recording) as fp:
        yield fp


def recorded(recording, name: str) -> dict:
    """What the recording says for one query of the batch: {labels tuple: float}."""
    expr = normalise(QUERIES[name].format(lookback=LOOKBACK, today=today_range(recording["at"])))
    out = {}
    for item in recording["answers"][expr]["data"]["result"]:
        key = (item["metric"].get("host"), item["metric"].get("tag"))
        out[key] = float(item["value"][1])
    return out


def recorded_alerts(recording) -> dict[str, set]:
    expr = normalise(QUERIES["alerts"].format(lookback=LOOKBACK, today=today_range(recording["at"])))
    out: dict[str, set] = {}
    for item in recording["answers"][expr]["data"]["result"]:
        out.setdefault(item["metric"]["host"], set()).add((item["metric"]["kind"], int(float(item["value"][1]))))
    return out


def test_one_refresh_is_one_fixed_batch_of_queries(fake):
    client = PromClient(fake.url)
    fetch_fleet(client, clock=lambda: fake.at)
    assert client.requests == len(fake.requests) == QUERIES_PER_REFRESH == 13
    fetch_fleet(client, clock=lambda: fake.at + 10)
    assert len(fake.requests) == 2 * QUERIES_PER_REFRESH  # the same cost every refresh
    paths = [p.split("?")[0] for p in fake.requests[:QUERIES_PER_REFRESH]]
    assert paths.count("/api/v1/query") == 12 and paths.count("/api/v1/query_range") == 1


def test_hosts_and_their_figures_come_from_the_answers(fake, recording):
    view = fetch_fleet(PromClient(fake.url), clock=lambda: fake.at)
    assert view.warnings == ()
    burn, today = recorded(recording, "burn"), recorded(recording, "spent_today")
    idle, seen = recorded(recording, "idle_today"), recorded(recording, "last_seen")
    gpus, cost = recorded(recording, "gpus"), recorded(recording, "session_cost")
    assert {h.host for h in view.hosts} == {h for h, _ in seen} == {"gpu-box-a", "gpu-box-b", "gpu-box-c"}
    for h in view.hosts:
        assert h.spent_today_usd == today[(h.host, None)] > 0
        assert h.idle_today_usd == idle[(h.host, None)] > 0
        assert h.last_seen == seen[(h.host, None)]
        assert h.gpus == gpus[(h.host, None)] == 4
        assert h.session_cost_usd == cost[(h.host, None)] > 0
        # increase() extrapolates past the last scrape (to the evaluation time, or half an interval for a series
        # that ended): at most a scrape interval (5 s here) of the host's burn beyond the counter's last value.
        burn_then = max(v for _, v in h.burn_history if v is not None)
        assert h.spent_today_usd <= h.session_cost_usd + burn_then * 5 / 3600
        if (h.host, None) in burn:
            assert not h.stale and h.burn_rate_usd_per_hour == burn[(h.host, None)]
            assert len(h.burn_history) >= 1
    alerts = recorded_alerts(recording)
    assert alerts  # the recording has one (gpu-box-b's idle GPU)
    for h in view.hosts:
        assert {(a.kind, a.count) for a in h.alerts} == alerts.get(h.host, set())
    # Live hosts first, by burn rate; then the stale one.
    assert [h.stale for h in view.hosts] == [False, False, True]


def test_a_host_whose_series_ended_is_stale_with_its_last_time(fake):
    view = fetch_fleet(PromClient(fake.url), clock=lambda: fake.at)
    (stale,) = [h for h in view.hosts if h.stale]
    assert stale.host == "gpu-box-c"
    assert stale.burn_rate_usd_per_hour is None and stale.utilization_fraction is None  # nothing says it burns now
    assert stale.spent_today_usd is not None and stale.last_seen is not None and stale.last_seen < fake.at
    doc = stale.to_json()
    assert doc["stale"] is True and doc["last_seen"].endswith("Z")
    assert view.totals()["hosts_stale"] == 1
    assert view.totals()["burn_rate_usd_per_hour"] == pytest.approx(
        sum(h.burn_rate_usd_per_hour for h in view.hosts if not h.stale)
    )


def test_every_host_goes_stale_when_its_last_tick_is_too_old(fake):
    view = fetch_fleet(PromClient(fake.url), stale_after=60, clock=lambda: fake.at + 61)
    assert all(h.stale for h in view.hosts)
    view = fetch_fleet(PromClient(fake.url), stale_after=3600, clock=lambda: fake.at + 61)
    assert sum(h.stale for h in view.hosts) == 1  # only the one whose series ended


def test_a_job_spread_over_hosts_is_one_row_with_its_hosts(fake, recording):
    view = fetch_fleet(PromClient(fake.url), clock=lambda: fake.at)
    burn, today = recorded(recording, "job_burn"), recorded(recording, "job_today")
    tags = [j.tag for j in view.jobs]
    assert len(tags) == len(set(tags))
    assert "(idle)" not in tags and "(unobserved)" not in tags  # buckets are per host (idle $), not jobs
    lora = next(j for j in view.jobs if j.tag == "llama3-8b-lora")
    assert lora.hosts == ("gpu-box-a", "gpu-box-b", "gpu-box-c")
    live = [h for h in ("gpu-box-a", "gpu-box-b") if (h, "llama3-8b-lora") in burn]
    assert lora.burn_rate_usd_per_hour == pytest.approx(sum(burn[(h, "llama3-8b-lora")] for h in live))
    assert lora.spent_today_usd == pytest.approx(sum(today[(h, "llama3-8b-lora")] for h in lora.hosts))
    # The drill-down: one host's jobs, with that host's figures only.
    on_a = {j.tag: j for j in view.jobs_on("gpu-box-a")}
    assert on_a["llama3-8b-lora"].burn_rate_usd_per_hour == burn[("gpu-box-a", "llama3-8b-lora")]
    assert all(j.host == "gpu-box-a" for j in on_a.values())


def test_json_speaks_the_project_vocabulary(fake):
    doc = fetch_fleet(PromClient(fake.url), clock=lambda: fake.at).to_json()
    assert doc["schema_version"] == SCHEMA_VERSION and doc["queries_per_refresh"] == QUERIES_PER_REFRESH
    iso = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
    assert iso.fullmatch(doc["queried_at"])

    def keys(obj, path=""):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield path + k, k, v
                yield from keys(v, path + k + ".")
        elif isinstance(obj, list):
            for v in obj:
                yield from keys(v, path)

    money = [(p, v) for p, k, v in keys(doc) if "usd" in k]
    assert money and all(p.endswith(("_usd", "_usd_per_hour")) for p, _ in money)
    for p, k, v in keys(doc):
        if k.endswith("_at") and v is not None:
            assert iso.fullmatch(v), (p, v)
    json.dumps(doc)  # plain JSON, no NaN objects


def test_history_is_one_range_query(fake):
    client = PromClient(fake.url)
    (series,) = [
        s for s in client.query_range(HISTORY_QUERY, fake.at - 3600, fake.at, 60) if s.labels["host"] == "gpu-box-a"
    ]
    assert series.points and all(isinstance(t, float) for t, _ in series.points)


def test_the_fleet_package_is_headless():
    code = "import sys, gputab.fleet; print(','.join(k for k in sys.modules if k.startswith('textual')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_two_recorders_with_one_host_name_are_told_apart_by_instance():
    """`gputab fleet` merged them (`1 hosts · 10 GPUs`); now each is a row, named by its instance, and it is said."""
    from gputab.fleet.client import Sample
    from gputab.fleet.query import build_view

    at = 1_767_225_600.0
    a, b = {"host": "demo-box", "instance": "10.0.0.1:9400"}, {"host": "demo-box", "instance": "10.0.0.2:9400"}
    other = {"host": "gpu-box-c", "instance": "10.0.0.3:9400"}
    answers = {
        "last_seen": [Sample(a, at - 1), Sample(b, at - 2), Sample(other, at - 1)],
        "gpus": [Sample(a, 5.0), Sample(b, 5.0), Sample(other, 8.0)],
        "burn": [Sample(a, 12.0), Sample(b, 11.0), Sample(other, 30.0)],
        "job_burn": [Sample({**a, "tag": "t"}, 4.0), Sample({**b, "tag": "t"}, 3.0)],
    }
    history = {("demo-box", "10.0.0.1:9400"): ((at, 12.0),), ("demo-box", "10.0.0.2:9400"): ((at, 11.0),)}
    view = build_view("http://127.0.0.1:9090", at, 30.0, answers, history, [])
    hosts = {h.host: h for h in view.hosts}
    assert set(hosts) == {"demo-box (10.0.0.1:9400)", "demo-box (10.0.0.2:9400)", "gpu-box-c"}
    assert sum(h.gpus or 0 for h in view.hosts) == 18
    assert hosts["demo-box (10.0.0.2:9400)"].burn_history == ((at, 11.0),)
    (job,) = view.jobs
    assert set(job.hosts) == {"demo-box (10.0.0.1:9400)", "demo-box (10.0.0.2:9400)"}
    assert any("2 recorders report the host name demo-box" in w for w in view.warnings)
