"""A good neighbour to DCGM: where DCGM runs on this host, leave the profiling counters to it.

NVML GPM and DCGM's profiling (DCP) read the same hardware counters and disturb each other. So where a DCGM host
engine (``nv-hostengine``) or dcgm-exporter runs on this box, gputab does not start GPM sampling (unless
``GPUTAB_GPM=on`` says to), and reads the profiling figures from dcgm-exporter's ``/metrics`` on this host where
it serves them. Each GPU sample says where its activity figures came from (``GpuSample.activity_source``).

The field names are dcgm-exporter's (etc/dcp-metrics-included.csv); its ratios (0-1) become gputab's percents.
Only loopback addresses are asked, with a short timeout.
"""

from __future__ import annotations

import os
import re
import threading
import urllib.parse
from dataclasses import replace
from pathlib import Path

from gputab.sampling.gpu_worker import GpuWorker, Job
from gputab.sampling.snapshot import GpuSample

DCGM_PROCESSES = ("nv-hostengine", "dcgm-exporter")
"""Process names (``/proc/PID/comm``) that mean DCGM samples the profiling counters on this host."""

DEFAULT_EXPORTER_URL = "http://127.0.0.1:9400/metrics"
"""dcgm-exporter's default address (``:9400``), asked on this host only."""

FIELDS: dict[str, str] = {
    "DCGM_FI_PROF_SM_ACTIVE": "sm_active_pct",
    "DCGM_FI_PROF_SM_OCCUPANCY": "sm_occupancy_pct",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": "tensor_active_pct",
    "DCGM_FI_PROF_DRAM_ACTIVE": "dram_bw_pct",
}
"""dcgm-exporter's profiling gauges (ratios 0-1) -> the ``GpuSample`` field (percent) each fills."""

SCAN_WAIT = 3.0
"""Seconds a GPU that supports GPM waits, at most, for the scan for DCGM before GPM is started."""

SOURCE = "dcgm-exporter"
"""``GpuSample.activity_source`` of figures read from dcgm-exporter."""

_LINE = re.compile(r"^(DCGM_FI_PROF_[A-Z_]+)\{([^}]*)\}\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_MAX_BYTES = 4 << 20  # a /metrics page of a box with many GPUs is a few hundred KiB


def dcgm_running(proc: Path = Path("/proc")) -> str | None:
    """The name of a DCGM process running on this host (``nv-hostengine`` or ``dcgm-exporter``), or None.

    One small read per process: quick on a workstation, a second or more on a box with thousands of processes, so
    :class:`DcgmNeighbour` runs it in a thread.
    """
    wanted = {name.encode() for name in DCGM_PROCESSES}
    try:
        entries = os.scandir(proc)
    except OSError:
        return None
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                fd = os.open(f"{entry.path}/comm", os.O_RDONLY)
                try:
                    comm = os.read(fd, 64).strip()
                finally:
                    os.close(fd)
            except OSError:
                continue  # gone, or not ours to read
            if comm in wanted:
                return comm.decode()
    return None


def gpm_wanted(dcgm: str | None) -> bool:
    """Whether to start GPM sampling: not beside DCGM, unless ``GPUTAB_GPM=on``; never with ``GPUTAB_GPM=off``."""
    choice = os.environ.get("GPUTAB_GPM", "auto").strip().lower()
    if choice == "on":
        return True
    if choice == "off":
        return False
    return dcgm is None


def exporter_url() -> str | None:
    """dcgm-exporter's /metrics URL (``GPUTAB_DCGM_EXPORTER_URL`` overrides the default); None when it names a
    host that is not this one (gputab asks servers on loopback only)."""
    url = os.environ.get("GPUTAB_DCGM_EXPORTER_URL") or DEFAULT_EXPORTER_URL
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or (parts.hostname or "") not in _LOOPBACK:
        return None
    return url


def parse_metrics(text: str) -> dict[str, dict[str, float]]:
    """The profiling figures of a dcgm-exporter page, per GPU: ``{"GPU-uuid" or "gpu index": {field: pct}}``.

    A GPU is keyed by its UUID label when it has one, else by its ``gpu`` label. MIG instances' rows (with a
    ``GPU_I_ID`` label) are left out: their figures are not the whole GPU's.
    """
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None or m.group(1) not in FIELDS:
            continue
        labels = dict(_LABEL.findall(m.group(2)))
        if labels.get("GPU_I_ID"):
            continue
        key = labels.get("UUID") or labels.get("gpu")
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        if key is None or not 0.0 <= value <= 1.0:
            continue  # NaN, or not a ratio: never a figure
        out.setdefault(key, {})[FIELDS[m.group(1)]] = value * 100.0
    return out


class ExporterReader:
    """Reads dcgm-exporter's /metrics on this host, once per poll.

    Args:
        url: the page (loopback only; see :func:`exporter_url`).
        timeout: seconds one read may take.
    """

    def __init__(self, url: str, timeout: float = 0.5) -> None:
        self.url = url
        self.timeout = timeout
        self.error: str | None = None
        """Why the last read failed (None when it worked)."""

    def read(self) -> dict[str, dict[str, float]]:
        """The figures per GPU (see :func:`parse_metrics`); empty, with :attr:`error` set, when the page cannot be
        read."""
        import urllib.request  # here: it loads ssl, which a box without DCGM never needs

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        try:
            with opener.open(self.url, timeout=self.timeout) as resp:
                text = resp.read(_MAX_BYTES).decode("utf-8", "replace")
        except (OSError, ValueError) as exc:  # URLError is an OSError
            self.error = f"cannot read dcgm-exporter at {self.url}: {exc}"
            return {}
        self.error = None
        return parse_metrics(text)


class DcgmNeighbour:
    """What the NVML backend does about DCGM on this host: whether to start GPM, and dcgm-exporter's figures.

    The exporter is read by its own thread, started with the poll and waited for until the poll's deadline, so a
    slow exporter never holds the GPUs' readings (and is not asked again while a read is still under way).
    """

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self._found: list[str | None] = []
        self._scanned = threading.Event()
        self.reader: ExporterReader | None = None
        """dcgm-exporter's page, once the scan found DCGM and its URL is on this host."""
        self._worker: GpuWorker[dict[str, dict[str, float]]] = GpuWorker("gputab-dcgm-exporter")
        self._job: Job[dict[str, dict[str, float]]] | None = None
        # The scan of /proc runs beside the backend's start: only a GPU that supports GPM waits for its answer.
        threading.Thread(target=self._scan, args=(proc,), name="gputab-dcgm-scan", daemon=True).start()

    def _scan(self, proc: Path) -> None:
        try:
            self._found.append(dcgm_running(proc))
        finally:
            self._scanned.set()

    @property
    def running(self) -> str | None:
        """``nv-hostengine`` or ``dcgm-exporter`` when one runs here (None: none, or the scan is not done)."""
        return self._found[0] if self._found else None

    def gpm_allowed(self, wait: float = SCAN_WAIT) -> bool:
        """Whether the backend may start GPM sampling: waits up to ``wait`` seconds for the scan (a scan that takes
        longer counts as no DCGM found)."""
        self._scanned.wait(wait)
        return gpm_wanted(self.running)

    @property
    def note(self) -> str | None:
        """The host note that says so (None when DCGM does not run here)."""
        if self.running is None:
            return None
        gpm = "GPM sampling is on (GPUTAB_GPM=on)" if gpm_wanted(self.running) else "gputab does not start GPM sampling"
        where = (
            f"SM, tensor and DRAM activity are read from dcgm-exporter at {self.reader.url}"
            if self.reader is not None
            else "GPUTAB_DCGM_EXPORTER_URL is not on this host: activity figures n/a"
        )
        return f"DCGM runs on this host ({self.running}): {gpm}; {where}"

    def begin(self) -> None:
        """Start reading the exporter for this poll (in its thread; nothing when a read is still under way)."""
        if self.reader is None and self.running is not None:
            url = exporter_url()
            self.reader = ExporterReader(url) if url else None
        if self.reader is not None and not self._worker.busy:
            self._job = self._worker.submit(self.reader.read)

    def figures(self, wait: float | None) -> dict[str, dict[str, float]]:
        """This poll's figures per GPU, waiting at most ``wait`` seconds (None: as long as the read takes)."""
        job, self._job = self._job, None
        if job is None or not job.done.wait(wait):
            return {}
        return job.result or {}

    def apply(self, samples: list[GpuSample], wait: float | None) -> tuple[GpuSample, ...]:
        """``samples`` with this poll's dcgm-exporter figures (and ``activity_source``) where it serves them."""
        if self.reader is None:
            return tuple(samples)
        figures = self.figures(wait)
        out = []
        for g in samples:
            figs = None if g.lost else figures.get(g.uuid) or figures.get(str(g.index))
            if not figs:
                out.append(g)
                continue
            out.append(
                replace(
                    g,
                    sm_active_pct=figs.get("sm_active_pct"),
                    sm_occupancy_pct=figs.get("sm_occupancy_pct"),
                    tensor_active_pct=figs.get("tensor_active_pct"),
                    dram_bw_pct=figs.get("dram_bw_pct"),
                    activity_source=SOURCE,
                )
            )
        return tuple(out)

    def close(self) -> None:
        self._worker.stop()
