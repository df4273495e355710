"""A small, read-only client of Prometheus's HTTP API: instant queries and ranges, nothing else.

Standard library only (``urllib``): the fleet view must start on a box where only gputab is installed. Every
request has a timeout; every failure becomes a :class:`PrometheusError` with one line that says what went wrong
and what to do, or, for one query Prometheus refused while the others worked, a :class:`QueryRefused` the caller
can turn into a warning (a partial answer) instead of an error.
"""

from __future__ import annotations

import base64
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from gputab.errors import GputabError

DEFAULT_TIMEOUT = 5.0
"""Seconds one request may take before Prometheus counts as too slow."""
_MAX_BODY = 32 * 1024 * 1024
"""An answer larger than this is refused rather than read into memory (a fleet of thousands of GPUs is ~1 MB)."""


class PrometheusError(GputabError):
    """Prometheus cannot be asked at all right now (down, slow, not Prometheus, bad URL): the refresh fails."""


class QueryRefused(GputabError):
    """Prometheus answered, but refused or failed this one query: the others still count (a partial answer)."""


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector: its labels and its value (None for NaN, infinities or no number)."""

    labels: dict[str, str]
    value: float | None


@dataclass(frozen=True)
class Series:
    """One series of a range answer: its labels and its ``(unix_time, value)`` points."""

    labels: dict[str, str]
    points: tuple[tuple[float, float | None], ...]


def redact(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``: messages and ``--json`` never show a password."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1***@", url)


def check_url(url: str) -> tuple[str, str | None]:
    """The API base URL of ``url`` (``http(s)://[user:password@]host[:port][/prefix]``) without its credentials, and
    the ``Authorization`` header they make (None without); a PrometheusError says what is wrong with a bad URL."""
    text = (url or "").strip()
    shown = redact(text)
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PrometheusError(
            f"--prometheus must be an http:// or https:// URL such as http://127.0.0.1:9090, got {shown!r}", exit_code=2
        )
    if parts.query or parts.fragment:
        raise PrometheusError(
            f"--prometheus must be Prometheus's base URL without ?query or #fragment, got {shown!r}", exit_code=2
        )
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise PrometheusError(f"--prometheus has an invalid port: {shown!r}", exit_code=2) from None
    auth = None
    if parts.username is not None:
        # Basic auth, as Prometheus's own web.yml and most reverse proxies in front of it take it.
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    return urllib.parse.urlunsplit(parts).rstrip("/"), auth


def number(text: Any) -> float | None:
    """A Prometheus sample value (a string) as a float; NaN, infinities and anything odd are None."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class PromClient:
    """Asks one Prometheus server. Read-only: it only ever GETs ``/api/v1/query`` and ``/api/v1/query_range``.

    Args:
        url: Prometheus's base URL (``http://127.0.0.1:9090``, or with the path prefix it is served under).
        timeout: seconds each request may take.

    Raises:
        PrometheusError: the URL is not an http(s) URL.
    """

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url, self._auth = check_url(url)
        """``url`` without credentials: what messages and ``--json`` show."""
        self.timeout = timeout
        self.requests = 0
        """Requests made so far (tests and ``--json`` use it to show the cost of a refresh)."""

    def query(self, expr: str, at: float) -> list[Sample]:
        """An instant query evaluated at Unix time ``at``; the answer must be a vector."""
        data = self._get("query", {"query": expr, "time": f"{at:.3f}"}, expr)
        if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
            raise QueryRefused(f"query {expr!r}: expected a vector, got {str(data.get('resultType'))[:40]!r}")
        out = []
        for item in data["result"]:
            labels, value = _labels(item), item.get("value") if isinstance(item, dict) else None
            if labels is None or not isinstance(value, list) or len(value) != 2:
                raise QueryRefused(f"query {expr!r}: a series of the answer is malformed")
            out.append(Sample(labels, number(value[1])))
        return out

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """A range query from ``start`` to ``end`` every ``step`` seconds; the answer must be a matrix."""
        data = self._get(
            "query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}, expr
        )
        if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
            raise QueryRefused(f"query {expr!r}: expected a matrix, got {str(data.get('resultType'))[:40]!r}")
        out = []
        for item in data["result"]:
            labels, values = _labels(item), item.get("values") if isinstance(item, dict) else None
            if labels is None or not isinstance(values, list):
                raise QueryRefused(f"query {expr!r}: a series of the answer is malformed")
            points = []
            for point in values:
                if not isinstance(point, list) or len(point) != 2 or number(point[0]) is None:
                    raise QueryRefused(f"query {expr!r}: a point of the answer is malformed")
                points.append((float(point[0]), number(point[1])))
            out.append(Series(labels, tuple(points)))
        return out

    def _get(self, endpoint: str, params: dict[str, str], expr: str) -> dict:
        url = f"{self.url}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
        headers = {"Accept": "application/json", "User-Agent": "gputab-fleet"}
        if self._auth:
            headers["Authorization"] = self._auth
        request = urllib.request.Request(url, headers=headers)
        self.requests += 1
        status = 200
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310 - scheme checked
                body = resp.read(_MAX_BODY + 1)
        except urllib.error.HTTPError as exc:
            # 400 bad_data, 422 execution error, 503 timeout/unavailable: Prometheus says why in JSON.
            status = exc.code
            try:
                body = exc.read(_MAX_BODY + 1)
            except OSError:
                body = b""
        except TimeoutError:
            raise PrometheusError(
                f"Prometheus at {self.url} did not answer within {self.timeout:g} s; it may be "
                f"overloaded: try again, or raise --timeout"
            ) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise PrometheusError(
                    f"Prometheus at {self.url} did not answer within {self.timeout:g} s; it may "
                    f"be overloaded: try again, or raise --timeout"
                ) from None
            why = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
            raise PrometheusError(
                f"cannot reach Prometheus at {self.url}: {why}; is it running, and is --prometheus right?"
            ) from None
        except (OSError, ValueError) as exc:  # reset connections, bad status lines, odd TLS
            raise PrometheusError(f"cannot read from Prometheus at {self.url}: {exc}") from None
        if status in (401, 403):
            raise PrometheusError(
                f"Prometheus at {self.url} refused access (HTTP {status}): put the user and "
                f"password in the URL (http://USER:PASSWORD@host:9090), preferably in the config "
                f"file's [fleet] prometheus, where other users cannot see it"
            )
        if len(body) > _MAX_BODY:
            raise PrometheusError(
                f"Prometheus at {self.url} sent more than {_MAX_BODY // 2**20} MiB for one query; refusing it"
            )
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            doc = None
        if not isinstance(doc, dict) or doc.get("status") not in ("success", "error"):
            raise PrometheusError(
                f"{self.url} did not answer like Prometheus's HTTP API (HTTP {status} to "
                f"/api/v1/{endpoint}); is --prometheus the Prometheus server's base URL?"
            )
        if doc["status"] == "error":
            error = str(doc.get("error") or doc.get("errorType") or "unknown error")
            raise QueryRefused(f"Prometheus refused query {expr!r}: {error[:200]}")
        data = doc.get("data")
        if not isinstance(data, dict):
            raise QueryRefused(f"query {expr!r}: the answer has no data")
        return data


def _labels(item: Any) -> dict[str, str] | None:
    if not isinstance(item, dict) or not isinstance(item.get("metric"), dict):
        return None
    return {str(k): str(v) for k, v in item["metric"].items()}
