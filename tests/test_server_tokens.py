"""Tokens from inference servers' own counters (issue 29 item 2): fake vLLM, SGLang and llama.cpp servers on
127.0.0.1 serving their real metric names, with counters that start high, reset, and a server that hangs."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from gputab.config.settings import parse_config
from gputab.errors import ConfigError
from gputab.progress.servers import FAMILIES, TokenCounters, listening_ports, parse_tokens
from support import gputab_cmd

PAGES = {
    "vllm": (
        "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
        "# TYPE vllm:prompt_tokens_total counter\n"
        'vllm:prompt_tokens_total{{engine="0",model_name="meta-llama/Llama-3.1-8B"}} {p}\n'
        "# HELP vllm:generation_tokens_total Number of generation tokens processed.\n"
        "# TYPE vllm:generation_tokens_total counter\n"
        'vllm:generation_tokens_total{{engine="0",model_name="meta-llama/Llama-3.1-8B"}} {g}\n'
        'vllm:generation_tokens_total{{engine="1",model_name="meta-llama/Llama-3.1-8B"}} 0.0\n'
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{{engine="0",model_name="meta-llama/Llama-3.1-8B"}} 3.0\n'
    ),
    "sglang": (
        "# HELP sglang:prompt_tokens_total Number of prefill tokens processed.\n"
        "# TYPE sglang:prompt_tokens_total counter\n"
        'sglang:prompt_tokens_total{{model_name="qwen"}} {p}\n'
        "# HELP sglang:generation_tokens_total Number of generation tokens processed.\n"
        "# TYPE sglang:generation_tokens_total counter\n"
        'sglang:generation_tokens_total{{model_name="qwen"}} {g}\n'
    ),
    "llama.cpp": (
        "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
        "# TYPE llamacpp:prompt_tokens_total counter\n"
        "llamacpp:prompt_tokens_total {p}\n"
        "# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.\n"
        "# TYPE llamacpp:tokens_predicted_total counter\n"
        "llamacpp:tokens_predicted_total {g}\n"
    ),
}


class FakeServer:
    """A /metrics page on 127.0.0.1 whose counters the test sets; ``hang`` makes it never answer in time."""

    def __init__(self, kind: str, prompt: float, generated: float) -> None:
        self.kind, self.prompt, self.generated, self.hang = kind, prompt, generated, False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if outer.hang:
                    time.sleep(3)
                body = PAGES[outer.kind].format(p=outer.prompt, g=outer.generated).encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    made: list[FakeServer] = []

    def make(kind: str, prompt: float = 0.0, generated: float = 0.0) -> FakeServer:
        made.append(FakeServer(kind, prompt, generated))
        return made[-1]

    yield make
    for s in made:
        s.close()


@pytest.mark.parametrize("kind", sorted(PAGES))
def test_each_servers_page_gives_its_tokens_summed_over_labels(kind):
    assert parse_tokens(PAGES[kind].format(p=1234.0, g=567.0)) == (kind, 1234.0, 567.0)


def test_a_page_without_token_counters_is_not_a_server():
    assert parse_tokens("# TYPE up gauge\nup 1\nprocess_cpu_seconds_total 3.5\n") is None
    assert set(FAMILIES) >= {"vllm", "sglang", "llama.cpp", "tgi"}


def test_growth_while_recording_counts_never_the_counts_from_before(servers):
    vllm = servers("vllm", prompt=1e9, generated=5e8)  # a server that had worked for days
    counters = TokenCounters(ports=lambda pid: [vllm.port])
    counters.read_now({4242: "chat"})
    assert counters.take() == {}  # the first reading is the baseline
    vllm.prompt += 1000
    vllm.generated += 250
    counters.read_now({4242: "chat"})
    assert counters.take() == {"chat": (1000, 250)}
    assert counters.servers_seen == {f"http://127.0.0.1:{vllm.port}/metrics": "vllm"}


def test_a_restarted_server_counts_from_its_new_start_and_never_negative(servers):
    sg = servers("sglang", prompt=5000, generated=3000)
    counters = TokenCounters(ports=lambda pid: [sg.port])
    counters.read_now({1: "qa"})
    sg.prompt, sg.generated = 40, 10  # restarted: counters back near zero
    counters.read_now({1: "qa"})
    assert counters.take() == {"qa": (40, 10)}


def test_a_hanging_server_is_skipped_and_said_once(servers):
    ll = servers("llama.cpp", prompt=10, generated=10)
    said: list[str] = []
    counters = TokenCounters(ports=lambda pid: [ll.port], say=said.append)
    counters.read_now({7: "local"})
    ll.hang = True
    start = time.monotonic()
    counters.read_now({7: "local"})
    counters.read_now({7: "local"})  # left alone for a while: no second wait
    assert time.monotonic() - start < 2.0
    assert len(said) == 1 and "did not answer" in said[0]


def test_a_configured_server_needs_no_process(servers):
    vllm = servers("vllm", prompt=100, generated=100)
    counters = TokenCounters(servers=[(f"http://127.0.0.1:{vllm.port}/metrics", "container-llm")], ports=lambda p: [])
    counters.read_now({})
    vllm.generated += 7
    counters.read_now({})
    assert counters.take() == {"container-llm": (0, 7)}


def test_servers_config_asks_only_this_host():
    cfg = parse_config('[[servers]]\nurl = "http://127.0.0.1:8000/metrics"\ntag = "llm"\n')
    assert [(s.url, s.tag) for s in cfg.servers] == [("http://127.0.0.1:8000/metrics", "llm")]
    with pytest.raises(ConfigError, match="only this host"):
        parse_config('[[servers]]\nurl = "http://10.0.0.5:8000/metrics"\ntag = "llm"\n')
    with pytest.raises(ConfigError, match="http://"):
        parse_config('[[servers]]\nurl = "file:///etc/passwd"\ntag = "llm"\n')


def test_a_process_listening_ports_are_found():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket,time;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();"
            "print(s.getsockname()[1],flush=True);time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline())
        assert listening_ports(proc.pid) == [port]
    finally:
        proc.kill()
        proc.wait()


VLLM = r"""
import http.server, sys
state = {"p": 900000.0, "g": 400000.0}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        state["p"] += 100; state["g"] += 50
        body = ('# TYPE vllm:prompt_tokens_total counter\n'
                'vllm:prompt_tokens_total{model_name="m"} %s\n'
                '# TYPE vllm:generation_tokens_total counter\n'
                'vllm:generation_tokens_total{model_name="m"} %s\n' % (state["p"], state["g"])).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
        open(sys.argv[1], "a").write("%d %d\n" % (state["p"], state["g"]))
    def log_message(self, *a): pass
httpd = http.server.HTTPServer(("127.0.0.1", 0), H)
print(httpd.server_address[1], flush=True)
httpd.serve_forever()
"""


def _scrape_tokens(url: str, tag: str) -> dict[str, float]:
    """``gputab_job_tokens_total`` of ``tag`` on the recorder's /metrics, by ``kind``."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    return {
        s.labels["kind"]: s.value
        for f in text_string_to_metric_families(text)
        if f.name == "gputab_job_tokens"
        for s in f.samples
        if s.name == "gputab_job_tokens_total" and s.labels["tag"] == tag
    }


@pytest.mark.slow
def test_a_gpu_process_serving_vllm_counters_gets_its_tokens_in_the_session(tmp_path, fake_nvml):
    """Started with a tag and nothing else: the recorder finds its port, counts the growth while recording,
    prompt and generated apart and together, in the database, show, the CSV, spend and /metrics; a report of the
    same job adds to the total as kind="reported"."""
    import csv
    import sqlite3

    from fakenvml import GIB, GpuSpec, Proc, Scenario
    from test_recorder_process import Rec

    served = tmp_path / "served.txt"
    server = subprocess.Popen(
        [sys.executable, "-c", VLLM, str(served)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "GPUTAB_TAG": "vllm-serve"},
    )
    try:
        int(server.stdout.readline())
        gpu = GpuSpec(name="NVIDIA H100 80GB HBM3", uuid="GPU-aaaa", util=70, mem_used=20 * GIB, power_mw=300_000)
        fake_nvml.write(Scenario(gpus=[gpu], processes=[Proc(0, server.pid, used_bytes=20 * GIB)]))
        env = fake_nvml.env()
        config = tmp_path / "config.toml"
        with socket.socket() as probe:  # a free port for the recorder's /metrics
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config.write_text(
            f"[recorder]\ninterval = 0.2\ncommit_interval = 0.4\nseries_interval = 0.5\n[metrics]\nport = {port}\n"
        )
        env["GPUTAB_CONFIG"] = str(config)
        rec = Rec(env=env)
        metrics_url = rec.wait_for(r"serving Prometheus metrics at (\S+)").group(1)
        rec.wait_for(r"recording session \d+")
        # The server's owner reports tokens of its own for the same job (no kind: what gputab.report() says).
        report = "import gputab; gputab.report(tokens=1234, tag='vllm-serve'); gputab.report.flush()"
        subprocess.run([sys.executable, "-c", report], env=env, check=True, timeout=60)
        deadline = time.monotonic() + 30
        kinds: dict[str, float] = {}
        while time.monotonic() < deadline:
            kinds = _scrape_tokens(metrics_url, "vllm-serve")
            if len(served.read_text().splitlines()) >= 4 and kinds.get("reported") and kinds.get("prompt"):
                break
            time.sleep(0.2)
        # Live: each kind on its own series; the server's prompt and generated grow 100 : 50 per reading.
        assert kinds["reported"] == 1234
        assert kinds["prompt"] == 2 * kinds["generated"] > 0
        time.sleep(1.0)
        rec.stop()
        assert rec.proc.returncode == 0, "".join(rec.err)
        show = subprocess.run([*gputab_cmd(), "show", "last", "--json"], capture_output=True, env=env, timeout=60)
        job = {j["tag"]: j for j in json.loads(show.stdout)["jobs"]}["vllm-serve"]
        readings = [tuple(map(int, line.split())) for line in served.read_text().splitlines()]
        base_p, base_g = readings[0]
        prompt, generated = job["prompt_tokens"], job["generated_tokens"]
        # Every reading after the first (the baseline) adds 100 prompt and 50 generated tokens; the last one may
        # have come after the last step. The job's counts are the counters' growth up to one of the readings.
        assert prompt > 0 and (base_p + prompt, base_g + generated) in readings[1:]
        assert prompt < 900000  # never the counts from before the session
        assert job["tokens"] == prompt + generated + 1234  # the report counts in the total, with no kind
        assert job["cost_per_1m_tokens_usd"] == pytest.approx(job["cost_usd"] / job["tokens"] * 1e6, rel=1e-9)

        db = sqlite3.connect(env["GPUTAB_DB"])
        stored = db.execute(
            "SELECT prompt_tokens, generated_tokens, tokens FROM jobs WHERE tag = 'vllm-serve'"
        ).fetchall()
        db.close()
        assert stored == [(prompt, generated, job["tokens"])]

        out = tmp_path / "jobs.csv"
        subprocess.run([*gputab_cmd(), "export", "--all", "-o", str(out)], env=env, check=True, timeout=60)
        row = next(r for r in csv.DictReader(out.open()) if r["tag"] == "vllm-serve")
        assert (row["prompt_tokens"], row["generated_tokens"]) == (str(prompt), str(generated))
        assert row["tokens"] == str(job["tokens"])

        spent = subprocess.run([*gputab_cmd(), "spend", "--json"], capture_output=True, env=env, timeout=60)
        srow = {r["tag"]: r for r in json.loads(spent.stdout)["rows"]}["vllm-serve"]
        assert (srow["prompt_tokens"], srow["generated_tokens"], srow["tokens"]) == (
            prompt,
            generated,
            job["tokens"],
        )
    finally:
        server.kill()
        server.wait()


def test_prompt_and_generated_apart_and_together_in_the_ledger_and_metrics():
    """Server tokens count by kind and in the total; a report adds to the total with no kind; one $/1M over all;
    /metrics has one series per kind, whose sum without(kind) is the job's tokens."""
    from gputab.cost.ledger import Ledger
    from gputab.publish.metrics import TickCollector
    from gputab.sampling.snapshot import ProcessSample
    from test_metrics import make_tick
    from test_waste import gpu, table, tick

    led = Ledger(table(8.0), interval=60)
    procs = [ProcessSample(pid=10, gpu_index=0, used_memory_bytes=1), ProcessSample(pid=11, gpu_index=0)]
    tags = {10: "chat", 11: "train"}
    for k in range(61):  # an hour at $8/h, shared equally by the two jobs
        tick(led, k * 60.0, [gpu(util=50)], procs, tags)
    led.add_server_tokens("chat", 3000, 1000)
    led.add_server_tokens("chat", 500, 0)
    led.add_progress("chat", tokens=250)  # gputab.report(tokens=250) from the same job
    led.add_progress("train", tokens=4000)  # a job with reports only
    chat, train = led.jobs["chat"].to_json(), led.jobs["train"].to_json()
    assert (chat["prompt_tokens"], chat["generated_tokens"], chat["tokens"]) == (3500, 1000, 4750)
    assert chat["cost_per_1m_tokens_usd"] == pytest.approx(chat["cost_usd"] / 4750 * 1e6, rel=1e-12)
    assert chat["cost_usd"] > 0
    assert (train["prompt_tokens"], train["generated_tokens"], train["tokens"]) == (None, None, 4000)
    assert not any(k.startswith("cost_per_1m_") and k != "cost_per_1m_tokens_usd" for k in chat)  # no split $

    collector = TickCollector("box")
    collector.update(make_tick([chat, train]))
    (family,) = [f for f in collector.collect() if f.name == "gputab_job_tokens"]
    series = {(s.labels["tag"], s.labels["kind"]): s.value for s in family.samples}
    assert series == {
        ("chat", "prompt"): 3500,
        ("chat", "generated"): 1000,
        ("chat", "reported"): 250,
        ("train", "reported"): 4000,
    }
    assert sum(v for (tag, _), v in series.items() if tag == "chat") == chat["tokens"]


def test_a_database_from_before_token_kinds_reads_with_no_kinds(tmp_path):
    """Sessions recorded before m014 keep their tokens; prompt and generated are null, and /metrics' kind would
    say reported; after the migration the new columns are NULL for them."""
    import sqlite3

    from sqlite_utils import Database

    from gputab.publish.metrics import token_kinds
    from gputab.store import Store
    from gputab.store.schema import migrate

    db_path = tmp_path / "old.db"
    db = Database(db_path)
    migrate(db, db_path, stop_before="m014_token_kinds")
    now = time.time()
    db.execute(
        "INSERT INTO sessions (id, host, backend, started_wall, last_wall, ended_wall, end_reason, interval, ticks, "
        "total_cost_usd) VALUES (1, 'old', 'nvml', ?, ?, ?, 'clean', 1, 60, 2.0)",
        [now - 3600, now - 3540, now - 3540],
    )
    db.execute(
        "INSERT INTO jobs (session_id, tag, cost_usd, gpu_hours, tokens, cost_per_1m_tokens_usd, extra_json) "
        "VALUES (1, 'old-llm', 2.0, 1.0, 5000, 400.0, '{}')"
    )
    db.conn.commit()
    db.close()
    with Store.open(db_path, readonly=True) as store:  # a reader never migrates
        (job,) = [j for j in store.jobs(1) if j["tag"] == "old-llm"]
    assert (job["tokens"], job["prompt_tokens"], job["generated_tokens"]) == (5000, None, None)
    assert token_kinds(job) == {"reported": 5000.0}
    env = {**os.environ, "GPUTAB_DB": str(db_path)}
    spent = subprocess.run([*gputab_cmd(), "spend", "--json"], capture_output=True, env=env, timeout=60, check=True)
    (row,) = [r for r in json.loads(spent.stdout)["rows"] if r["tag"] == "old-llm"]
    assert (row["tokens"], row["prompt_tokens"], row["generated_tokens"]) == (5000, None, None)
    Store.open(db_path).close()  # a writer migrates: the columns are there, NULL for the old session
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT prompt_tokens, generated_tokens FROM jobs").fetchall() == [(None, None)]
    con.close()
    show = subprocess.run([*gputab_cmd(), "show", "1", "--json"], capture_output=True, env=env, timeout=60, check=True)
    (job,) = [j for j in json.loads(show.stdout)["jobs"] if j["tag"] == "old-llm"]
    assert (job["tokens"], job["prompt_tokens"], job["generated_tokens"]) == (5000, None, None)
    text = subprocess.run([*gputab_cmd(), "show", "1"], capture_output=True, env=env, timeout=60, check=True).stdout
    line = next(ln for ln in text.decode().splitlines() if ln.startswith("old-llm") and "5,000" in ln)
    assert line.split()[1:5] == ["5,000", "-", "-", "5,000"]  # tokens, prompt, generated, reported


def test_tokens_entered_by_hand_add_to_the_servers_and_never_go_below_them(tmp_path):
    """`gputab samples --add-tokens` adds tokens with no kind; `--set-tokens` may not set fewer than the servers'."""
    import sqlite3

    from gputab.store import Store

    db_path = tmp_path / "g.db"
    Store.open(db_path).close()
    con = sqlite3.connect(db_path)
    con.execute(
        "INSERT INTO sessions (id, host, backend, started_wall, last_wall, ended_wall, end_reason, interval, ticks, "
        "total_cost_usd) VALUES (1, 'box', 'nvml', 1e9, 1e9 + 60, 1e9 + 60, 'clean', 1, 60, 1.0)"
    )
    con.execute(
        "INSERT INTO jobs (session_id, tag, cost_usd, tokens, prompt_tokens, generated_tokens, extra_json) "
        "VALUES (1, 'llm', 1.0, 400, 300, 100, '{}')"
    )
    con.commit()
    con.close()
    env = {**os.environ, "GPUTAB_DB": str(db_path)}

    def samples(*args: str) -> subprocess.CompletedProcess:
        cmd = [*gputab_cmd(), "samples", "llm", "--session", "1", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)

    refused = samples("--set-tokens", "399")
    assert refused.returncode == 2 and "fewer than the 400 prompt and generated tokens" in refused.stderr
    added = samples("--add-tokens", "50", "--json")
    assert added.returncode == 0, added.stderr
    job = json.loads(added.stdout)
    assert (job["tokens"], job["prompt_tokens"], job["generated_tokens"]) == (450, 300, 100)
    assert job["cost_per_1m_tokens_usd"] == pytest.approx(1.0 / 450 * 1e6)
    show = subprocess.run([*gputab_cmd(), "show", "1"], capture_output=True, text=True, env=env, timeout=60)
    line = next(ln for ln in show.stdout.splitlines() if ln.startswith("llm ") and "450" in ln)
    assert line.split()[1:5] == ["450", "300", "100", "50"]  # tokens, prompt, generated, reported


def test_the_last_partial_steps_tokens_are_counted_when_the_session_ends(servers, tmp_path):
    """Tokens served after the last series step (10 s) and before a clean stop are read once more at the end."""
    from spoolkit import demo_recorder, job, steps

    vllm = servers("vllm", prompt=1e6, generated=2e5)
    db = tmp_path / "g.db"
    rec = demo_recorder(db, tmp_path / "spool")
    url = f"http://127.0.0.1:{vllm.port}/metrics"
    rec.servers = counters = TokenCounters(servers=[(url, "container-llm")], ports=lambda pid: [])
    rec.start()  # the baseline reading, in the background
    deadline = time.monotonic() + 10
    while not counters.servers_seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counters.servers_seen == {url: "vllm"}
    steps(rec, 3)  # well inside the first series step: nothing asked since the baseline
    vllm.prompt += 300
    vllm.generated += 40
    assert rec.close()
    got = job(db, rec.session_id, "container-llm")
    assert got is not None
    assert (got["prompt_tokens"], got["generated_tokens"], got["tokens"]) == (300, 40, 340)
