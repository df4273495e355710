"""A real Prometheus scrapes a real recorder on the demo box; what it stored matches what gputab stored.

Needs the ``prometheus`` binary (Debian's ``prometheus`` package; ``.ci/run`` installs it). Everything listens on
127.0.0.1 only, every wait is bounded, and both servers are killed in teardown whatever happens.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

# Not imported from conftest: tests/faults has a conftest of its own, and which one `import conftest` finds depends
# on collection order.
ROOT = Path(__file__).resolve().parent.parent
GPUTAB = [sys.executable, "-m", "gputab"]
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
SCRAPE_INTERVAL = 1.0
POLL_INTERVAL = 0.5
DEMO_JOBS = ("llama3-8b-lora", "eval-mmlu", "(idle)")

needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="the `prometheus` binary is not installed (apt-get install prometheus; CI does)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def wait_for(what: str, check, timeout: float, procs: dict[str, tuple[subprocess.Popen, Path]]):
    """Call ``check`` until it returns something truthy; fail with the servers' logs when time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        for name, (proc, log) in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode} while waiting for {what}:\n{log.read_text()}")
        try:
            result = check()
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n}:\n{log.read_text()[-3000:]}" for n, (_, log) in procs.items())
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}\n{logs}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def servers(tmp_path):
    """Start-and-forget helper: every process started through it is stopped in teardown."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str], log: Path) -> subprocess.Popen:
        out = open(log, "wb")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path)
        out.close()
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        stop(proc)


def start_prometheus(servers, tmp_path: Path, port: int, targets: list[int], procs: dict, scrape: float = 1.0) -> None:
    """A real Prometheus on loopback ``port`` scraping ``targets`` (loopback ports) every ``scrape`` seconds;
    added to ``procs`` as ``prometheus`` (its log for :func:`wait_for`)."""
    config = tmp_path / "prometheus.yml"
    listed = ", ".join(f"'127.0.0.1:{t}'" for t in targets)
    config.write_text(
        f"global:\n  scrape_interval: {scrape:g}s\n  scrape_timeout: {scrape:g}s\n"
        f"scrape_configs:\n  - job_name: gputab\n    static_configs:\n      - targets: [{listed}]\n"
    )
    log = tmp_path / "prometheus.log"
    argv = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}"]
    proc = servers([*argv, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], log)
    procs["prometheus"] = (proc, log)


class PromAPI:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"

    def query(self, expr: str) -> list[dict]:
        body = json.loads(http_get(f"{self.base}/query?" + urllib.parse.urlencode({"query": expr})))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def by_tag(self, expr: str) -> dict[str, float]:
        return {r["metric"]["tag"]: float(r["value"][1]) for r in self.query(expr)}


@needs_prometheus
@pytest.mark.slow
def test_prometheus_scrapes_the_recorder_and_agrees_with_the_store(tmp_path, servers):
    metrics_port, prom_port = free_port(), free_port()
    rec_log = tmp_path / "recorder.log"
    recorder = servers(
        GPUTAB + ["--demo", "record", "--interval", str(POLL_INTERVAL), "--metrics-port", str(metrics_port)], rec_log
    )
    procs = {"gputab record": (recorder, rec_log)}
    wait_for(
        "the recorder's /metrics",
        lambda: "gputab_job_cost_dollars_total" in http_get(f"http://127.0.0.1:{metrics_port}/metrics"),
        30,
        procs,
    )

    start_prometheus(servers, tmp_path, prom_port, [metrics_port], procs, SCRAPE_INTERVAL)
    api = PromAPI(prom_port)
    wait_for(
        "Prometheus to have the demo jobs",
        lambda: set(DEMO_JOBS) <= set(api.by_tag("gputab_job_cost_dollars_total")),
        60,
        procs,
    )

    # The dashboard's queries parse and run against the real thing (its variables set to "all").
    dash = json.loads((ROOT / "contrib/grafana/gputab-dashboard.json").read_text())
    waste_row = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = (
                target["expr"]
                .replace("$host", ".*")
                .replace("$tag", ".*")
                .replace("$__range", "5m")
                .replace("$__rate_interval", "1m")
            )
            api.query(expr)  # asserts status == success
            if panel["id"] in (19, 20, 24):  # waste by reason; the cost of each MIG instance of the demo's GPU 4
                waste_row.append((panel["title"], expr))
            if panel["id"] == 23:  # MIG instances: the demo's GPU 4 has three, each priced
                assert len(api.query(expr)) == 3, expr
    assert float(api.query("sum(gputab_burn_rate_dollars_per_hour)")[0]["value"][1]) > 0

    # A couple more scrapes, then stop the recorder the way a service manager would.
    time.sleep(2 * SCRAPE_INTERVAL)
    for title, expr in waste_row:  # the demo wastes money from its first ticks: increase() has two scrapes now
        assert api.query(expr), (title, expr)
    recorder.send_signal(signal.SIGTERM)
    assert recorder.wait(timeout=20) == 0, rec_log.read_text()
    time.sleep(SCRAPE_INTERVAL)  # let the failed scrape mark the series stale: last_over_time skips that

    scraped = api.by_tag("last_over_time(gputab_job_cost_dollars_total[5m])")
    (info,) = api.query("last_over_time(gputab_session_info[5m])")
    shown = subprocess.run(GPUTAB + ["--demo", "show", "last", "--json"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    stored = json.loads(shown.stdout)
    assert str(stored["session"]["id"]) == info["metric"]["session_id"]
    jobs = {j["tag"]: j for j in stored["jobs"]}
    for tag in DEMO_JOBS:
        burn_per_s = jobs[tag]["burn_rate_usd_per_hour"] / 3600.0
        # The store has the last tick; the last scrape can be up to one scrape interval (plus the tick it read)
        # older. It can never be ahead of the store: that would be money counted twice.
        window = SCRAPE_INTERVAL + POLL_INTERVAL + 0.25
        assert scraped[tag] > 0
        assert -1e-9 <= jobs[tag]["cost_usd"] - scraped[tag] <= burn_per_s * window + 1e-9, (
            tag,
            jobs[tag],
            scraped[tag],
        )
    assert info["metric"]["host"] == stored["session"]["host"] == "demo-box"  # the host the session shows


@pytest.mark.skipif(PROMTOOL is None, reason="`promtool` is not installed (it comes with Debian's prometheus)")
def test_contrib_scrape_config_passes_promtool():
    out = subprocess.run(
        [PROMTOOL, "check", "config", str(ROOT / "contrib/prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
