"""A fake Prometheus for the fleet tests: a real ``http.server`` on 127.0.0.1 serving recorded API answers.

The answers in ``tests/data/fleet/*.json`` were recorded from a real Prometheus 2.42 scraping three demo recorders
(:func:`record_answers` wrote them; ``tests/test_fleet_prometheus.py`` can record them again). Queries are matched
on their text with the ``[Ns]`` "since midnight" range normalised, so a test can evaluate them at any time, and
with ``instance`` taken out of the ``by (...)`` groupings: the recordings were made before the fleet view grouped by
``(host, instance)``, and their answers (one recorder per host name, no ``instance`` label) are what Prometheus gives
those queries for such a fleet.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "fleet"
EMPTY = {"status": "success", "data": {"resultType": "vector", "result": []}}


def normalise(expr: str) -> str:
    return re.sub(r"\[\d+s\]", "[today]", expr).replace("by (host, instance", "by (host")


def load(name: str = "three_hosts") -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def record_answers(base: str, at: float) -> dict:
    """Ask a real Prometheus the fleet batch at ``at`` and keep its raw answers (for a new recording)."""
    from gputab.fleet.query import HISTORY_QUERY, HISTORY_SECONDS, HISTORY_STEP, LOOKBACK, QUERIES, today_range

    def get(endpoint: str, params: dict) -> Any:
        with urllib.request.urlopen(f"{base}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}", timeout=10) as r:
            return json.loads(r.read())

    answers = {}
    for template in QUERIES.values():
        expr = template.format(lookback=LOOKBACK, today=today_range(at))
        answers[normalise(expr)] = get("query", {"query": expr, "time": f"{at:.3f}"})
    history = get(
        "query_range", {"query": HISTORY_QUERY, "start": at - HISTORY_SECONDS, "end": at, "step": HISTORY_STEP}
    )
    return {"at": at, "answers": answers, "range": history}


class FakePrometheus:
    """Serves ``recording`` (see :func:`load`) on ``http://127.0.0.1:PORT``; tests change its behaviour live.

    Attributes:
        delay: seconds to wait before each answer (a slow Prometheus).
        raw: when set, every answer is this body with ``raw_status`` (something that is not Prometheus).
        errors: normalised query -> (HTTP status, errorType, error) to refuse that one query.
        replace: normalised query -> answer document to serve instead of the recorded one.
        requests: the paths asked, in order.
        authorizations: the ``Authorization`` header of each request (None without).
        max_in_flight: the most requests it ever answered at once (1 when refreshes never overlap).
    """

    def __init__(self, recording: dict | None = None) -> None:
        self.recording = recording or {"at": time.time(), "answers": {}, "range": None}
        self.delay = 0.0
        self.raw: bytes | None = None
        self.raw_status = 200
        self.errors: dict[str, tuple[int, str, str]] = {}
        self.replace: dict[str, Any] = {}
        self.requests: list[str] = []
        self.authorizations: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with fake._lock:
                    fake.requests.append(self.path)
                    fake.authorizations.append(self.headers.get("Authorization"))
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if fake.delay:
                        time.sleep(fake.delay)
                    status, body = fake.answer(self.path)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (a timeout test)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def at(self) -> float:
        return float(self.recording["at"])

    def answer(self, path: str) -> tuple[int, bytes]:
        if self.raw is not None:
            return self.raw_status, self.raw
        parts = urllib.parse.urlsplit(path)
        params = dict(urllib.parse.parse_qsl(parts.query))
        key = normalise(params.get("query", ""))
        if key in self.errors:
            status, kind, error = self.errors[key]
            return status, json.dumps({"status": "error", "errorType": kind, "error": error}).encode()
        if key in self.replace:
            return 200, json.dumps(self.replace[key]).encode()
        if parts.path.endswith("/query_range"):
            doc = self.recording.get("range") or {"status": "success", "data": {"resultType": "matrix", "result": []}}
        elif parts.path.endswith("/query"):
            doc = self.recording["answers"].get(key, EMPTY)
        else:
            return 404, b"404 page not found\n"
        return 200, json.dumps(doc).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> FakePrometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
