"""Tokens from inference servers' own Prometheus counters: vLLM, SGLang, llama.cpp's server, Hugging Face TGI.

For every GPU process, the TCP ports it listens on are looked up (its own sockets); a port that serves Prometheus
text at ``/metrics`` with a known token family is read once per series step, in a thread of its own so a slow
server never holds a tick. Only loopback is asked, with a short timeout, never following a redirect. A job's tokens
are its counters' growth while the session records: the first reading is the baseline, a counter that goes down
(a restarted server) counts from its new start, and a delta is never negative. Labels (``model_name``...) are
summed. See docs/no-code.md.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import urllib.request

log = logging.getLogger(__name__)

FAMILIES: dict[str, tuple[str, str]] = {
    "vllm": ("vllm:prompt_tokens_total", "vllm:generation_tokens_total"),
    "sglang": ("sglang:prompt_tokens_total", "sglang:generation_tokens_total"),
    "llama.cpp": ("llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total"),
    "tgi": ("tgi_request_input_length_sum", "tgi_request_generated_tokens_sum"),
}
"""Server -> (prompt tokens, generated tokens) series, as each server documents them (vLLM 0.6+, SGLang 0.4+,
llama.cpp's server with ``--metrics``, TGI 2+: the sums of its input-length and generated-tokens histograms)."""
_WANTED = {name: (server, i) for server, names in FAMILIES.items() for i, name in enumerate(names)}
"""Series name -> (server, 0 for prompt tokens / 1 for generated), built once."""
TIMEOUT = 0.5
"""Seconds a server has to answer."""
MAX_BODY = 4 << 20
"""Bytes of a /metrics page read at most."""
PORTS_EVERY = 30.0
"""Seconds between two looks at a process's listening ports."""
RETRY_AFTER = 60.0
"""Seconds an endpoint that failed is left alone."""
FINISH_WAIT = 1.0
"""Seconds the session's end waits for a background reading still running, before its last reading."""
MAX_PORTS = 8
"""Ports asked per process at most."""


def parse_tokens(text: str) -> tuple[str, float, float] | None:
    """``(server, prompt, generated)`` from a /metrics page, summed over labels; None without a known family."""
    wanted = _WANTED
    sums: dict[str, list[float]] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name_end = min((i for i in (line.find("{"), line.find(" ")) if i >= 0), default=-1)
        if name_end <= 0:
            continue
        hit = wanted.get(line[:name_end])
        if hit is None:
            continue
        parts = line.rsplit("}", 1)[-1].split() if "{" in line[: name_end + 1] else line[name_end:].split()
        try:
            value = float(parts[0])
        except (ValueError, IndexError):
            continue
        if not math.isfinite(value) or value < 0:
            continue
        sums.setdefault(hit[0], [0.0, 0.0])[hit[1]] += value
    if not sums:
        return None
    server = next(iter(sums))
    prompt, generated = sums[server]
    return server, prompt, generated


@functools.cache
def _opener() -> urllib.request.OpenerDirector:
    """No redirects, no proxies. Built on first use: ``urllib.request`` brings ``http.client`` and ``email``
    (about 1 MiB and 20 ms), which a recorder or live view that finds no server never needs."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None  # a redirect is an answer we do not follow

    return urllib.request.build_opener(NoRedirect, urllib.request.ProxyHandler({}))


def fetch_metrics(url: str, timeout: float = TIMEOUT) -> str:
    """The body of ``url`` (at most :data:`MAX_BODY` bytes); raises OSError on any trouble."""
    import urllib.error

    try:
        with _opener().open(url, timeout=timeout) as resp:
            if resp.status != 200:
                raise OSError(f"HTTP {resp.status}")
            return resp.read(MAX_BODY).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        raise OSError(str(getattr(exc, "reason", exc))) from None


def listening_ports(pid: int) -> list[int]:
    """TCP ports ``pid`` listens on at a loopback or any-address (psutil; [] where it cannot be read)."""
    import psutil

    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return []
    ports = []
    for c in conns:
        if c.status != psutil.CONN_LISTEN or not c.laddr:
            continue
        if c.laddr.ip in ("0.0.0.0", "::", "127.0.0.1", "::1") or c.laddr.ip.startswith("127."):
            ports.append(c.laddr.port)
    return sorted(set(ports))[:MAX_PORTS]


@dataclass
class _Endpoint:
    url: str
    tag: str
    last: tuple[float, float] | None = None
    server: str = ""
    failed_until: float = 0.0


class TokenSource(Protocol):
    """What the recorder reads tokens from: :class:`TokenCounters`, or the demo's stand-in."""

    def request(self, tags: Mapping[int, str]) -> None:
        """Read the counters of the servers the tagged processes run (pid -> tag)."""

    def take(self) -> dict[str, tuple[int, int]]:
        """Tag -> (prompt, generated) tokens counted since the last take."""

    def finish(self, tags: Mapping[int, str]) -> None:
        """The session's last reading, before its last :meth:`take`: the tokens of its last, partial step."""


@dataclass
class TokenCounters:
    """The token counters of the session's servers. Call :meth:`request` once per series step with the tags of
    the GPU processes, and :meth:`take` for the tokens counted since the last take.

    Args:
        servers: ``[[servers]]`` entries of the config: ``(url, tag)`` of servers discovery cannot see.
        ports: finds a process's listening ports (tests pass their own).
        fetch: reads a /metrics page (tests pass their own).
        say: told once per endpoint that fails.
    """

    servers: Iterable[tuple[str, str]] = ()
    ports: Callable[[int], list[int]] = listening_ports
    fetch: Callable[[str], str] = fetch_metrics
    say: Callable[[str], None] = log.warning
    clock: Callable[[], float] = time.monotonic
    _endpoints: dict[str, _Endpoint] = field(default_factory=dict)
    _ports_at: dict[int, tuple[float, list[int]]] = field(default_factory=dict)
    _pending: dict[str, list[int]] = field(default_factory=dict)
    _said: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _busy: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        for url, tag in self.servers:
            self._endpoints[url] = _Endpoint(url, tag)

    def request(self, tags: Mapping[int, str]) -> None:
        """Read every endpoint in the background (skipped while the last reading still runs)."""
        if self._busy.is_set():
            return
        self._busy.set()
        threading.Thread(target=self._read_all, args=(dict(tags),), name="gputab-servers", daemon=True).start()

    def read_now(self, tags: Mapping[int, str]) -> None:
        """Read every endpoint in this thread (the session's last step, and tests)."""
        self._busy.set()
        self._read_all(dict(tags))

    def finish(self, tags: Mapping[int, str], wait: float = FINISH_WAIT) -> None:
        """The session's last reading, in this thread: after a background reading still running (waited for up to
        ``wait`` s; if it is still running then, its figures are the last), every endpoint read once more."""
        end = time.monotonic() + wait
        while self._busy.is_set():
            if time.monotonic() >= end:
                return
            time.sleep(0.01)
        self.read_now(tags)

    def take(self) -> dict[str, tuple[int, int]]:
        """Tag -> (prompt, generated) tokens counted since the last take."""
        with self._lock:
            out = {tag: (p, g) for tag, (p, g) in self._pending.items() if p or g}
            self._pending.clear()
        return out

    @property
    def servers_seen(self) -> dict[str, str]:
        """URL -> server name, for each endpoint that answered with token counters."""
        return {e.url: e.server for e in self._endpoints.values() if e.server}

    def _read_all(self, tags: dict[int, str]) -> None:
        try:
            now = self.clock()
            for pid, tag in tags.items():
                for port in self._ports_of(pid, now):
                    url = f"http://127.0.0.1:{port}/metrics"
                    e = self._endpoints.get(url)
                    if e is None or e.tag != tag:
                        self._endpoints[url] = _Endpoint(url, tag)
            for e in list(self._endpoints.values()):
                if e.failed_until <= now:
                    self._read(e, now)
        finally:
            self._busy.clear()

    def _ports_of(self, pid: int, now: float) -> list[int]:
        seen = self._ports_at.get(pid)
        if seen is None or now - seen[0] >= PORTS_EVERY:
            seen = self._ports_at[pid] = (now, self.ports(pid))
        return seen[1]

    def _read(self, e: _Endpoint, now: float) -> None:
        try:
            parsed = parse_tokens(self.fetch(e.url))
        except OSError as exc:
            e.failed_until = now + RETRY_AFTER
            if e.server and e.url not in self._said:  # a server that had answered: say it once
                self._said.add(e.url)
                self.say(f"inference server {e.url} ({e.server}) did not answer: {exc}; its tokens wait")
            return
        if parsed is None:
            e.failed_until = now + RETRY_AFTER * 10  # not an inference server: look again much later
            return
        server, prompt, generated = parsed
        e.server = server
        if e.last is not None:
            dp = prompt - e.last[0] if prompt >= e.last[0] else prompt  # went down: a restart, counted anew
            dg = generated - e.last[1] if generated >= e.last[1] else generated
            with self._lock:
                acc = self._pending.setdefault(e.tag, [0, 0])
                acc[0] += int(round(dp))
                acc[1] += int(round(dg))
        e.last = (prompt, generated)
