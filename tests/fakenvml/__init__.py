"""The fake NVML library for tests: build it, script it, and run gputab against it in a subprocess.

``fake_nvml.c`` is compiled once per test session into ``<tmp>/libnvidia-ml.so.1``. A subprocess whose
``LD_LIBRARY_PATH`` starts with that directory loads it instead of the driver's library, so pynvml's real ctypes
code runs unchanged; nothing in pynvml is mocked. The library reads a *scenario file* (``$FAKE_NVML_SCENARIO``)
and re-reads it whenever the file changes, so a test may rewrite it between two polls of one backend.

Scenario file reference (one record a line, ``#`` starts a comment; written for you by :meth:`Scenario.render`):

=======================================================  ==========================================================
``driver 550.54.15``                                     what ``nvmlSystemGetDriverVersion`` returns
``gpus N``                                               ``nvmlDeviceGetCount_v2`` (default 0)
``gpu I KEY VALUE``                                      one GPU field (unset fields keep defaults, see ``GpuSpec``);
                                                         ``name``/``uuid`` take the rest of the line
``proc GPU PID compute|graphics USED_BYTES``             a running process (``-1`` bytes = not available)
``sample GPU PID TIMESTAMP_US SM_PCT MEM_PCT``           a process-utilization sample; returned when newer than
                                                         the caller's ``lastSeenTimeStamp``, else NOT_FOUND
``gpu I gpm 1``, ``gpu I gpm_sm_util 40``                GPM support and metric values (see ``GpuSpec``); a
                                                         metric at ``-1`` answers NOT_SUPPORTED in its own
                                                         ``nvmlReturn``, as the driver does
``gpu I clocks_event MASK``                              ``nvmlDeviceGetCurrentClocksEventReasons``
``gpu I mig 1``, ``gpu I mig_max 7``                     MIG mode (-1 = not MIG-capable, the default) and
                                                         ``nvmlDeviceGetMaxMigDeviceCount``
``mig GPU SLOT GI CI CI_SLICES GI_SLICES SMS TOTAL USED SM PROFILE``  a MIG device
                                                         (``nvmlDeviceGetMigDeviceHandleByIndex``); ``SM``: its GPU
                                                         instance's GPM SM_UTIL (-1 = unsupported); ``PROFILE``: its
                                                         GPU instance profile's name (``-`` = none)
``proc GPU PID KIND USED GI CI``                         a process on MIG instance (GI, CI) of a MIG GPU
``delay SYMBOL SECONDS [GPU]``                           every call of ``SYMBOL`` (on ``GPU`` only, when given)
                                                         sleeps that long first (a slow ``nvmlInitWithFlags``, a
                                                         hung driver call on one GPU)
``error SYMBOL|* GPU|* CODE``                            make ``SYMBOL`` (e.g. ``nvmlDeviceGetPowerUsage``) return
                                                         ``CODE`` (``NOT_SUPPORTED``, ``GPU_IS_LOST``, 999, ...);
                                                         ``*`` symbol = every device function; first match wins
=======================================================  ==========================================================

Energy: ``nvmlDeviceGetTotalEnergyConsumption`` = ``energy_base_mj`` + the integral of ``power_mw`` over real
time since the library loaded (each GPU at the power its scenario had at the time). Lowering ``energy_base_mj``
by more than what accrued makes the counter go backwards, as after a driver reload.

Init failures: ``error nvmlInitWithFlags * DRIVER_NOT_LOADED`` (pynvml's ``nvmlInit()`` calls
``nvmlInitWithFlags``). The library also exports ``fakeNvmlCallCount(symbol)`` (``"*"`` = all calls), which
:class:`BackendSession` exposes to prove what a backend did or did not query.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("fake_nvml.c")
LIB_NAME = "libnvidia-ml.so.1"
GIB = 1 << 30


def build_library(out_dir: Path) -> Path:
    """Compile ``fake_nvml.c`` into ``out_dir/libnvidia-ml.so.1`` and return ``out_dir``.

    Raises:
        FileNotFoundError: gcc is not installed (the fixture turns this into a skip).
        subprocess.CalledProcessError: the C code does not compile (a real failure, never a skip).
    """
    gcc = shutil.which("gcc")
    if gcc is None:
        raise FileNotFoundError("gcc not found")
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-o", str(out_dir / LIB_NAME), str(SOURCE)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out_dir


def build_library_once(shared_dir: Path) -> Path:
    """Build the library into ``shared_dir/fakenvml-<hash of the source>`` unless it is there already; return it.

    Processes that share ``shared_dir`` (pytest-xdist's workers share their run's temporary directory) take turns
    under an exclusive ``flock``: the first compiles, the others find the finished library. The library is compiled
    into a temporary folder and renamed into place, so a folder with the final name always holds a whole library.
    """
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    target = shared_dir / f"fakenvml-{digest}"
    shared_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(shared_dir / f"fakenvml-{digest}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not (target / LIB_NAME).is_file():
            partial = shared_dir / f"fakenvml-{digest}.{os.getpid()}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            build_library(partial)
            os.rename(partial, target)
        return target
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@dataclass
class GpuSpec:
    """One scripted GPU, in NVML's own units (mW, KB/s, bytes) so the backend's conversions are tested."""

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str | None = None
    """Defaults to a UUID derived from the GPU index."""
    util: int = 0
    memutil: int = 0
    mem_used: int = 0
    mem_total: int = 80 * GIB
    mem_reserved: int = 0
    """Driver reservation: v2 memory info reports it apart, v1 counts it as used."""
    power_mw: int = 100_000
    limit_mw: int = 700_000
    energy_base_mj: int = 1_000_000
    temp: int = 40
    sm_clock: int = 1410
    pcie_tx_kbs: int = 0
    pcie_rx_kbs: int = 0
    clocks_event: int = 0
    """``nvmlDeviceGetCurrentClocksEventReasons`` bit mask (0x4 power cap, 0x8 HW slowdown, 0x20/0x40 thermal...)."""
    gpm: int = 0
    """1: ``nvmlGpmQueryDeviceSupport`` says supported (Hopper and newer) and the gpm_* metrics answer."""
    gpm_sm_util: int = 0
    """GPM metric values (percent, or MiB/s for the link rates); -1 = that metric answers NOT_SUPPORTED."""
    gpm_sm_occupancy: int = 0
    gpm_tensor: int = 0
    gpm_dram_bw: int = 0
    gpm_pcie_tx_mibs: int = 0
    gpm_pcie_rx_mibs: int = 0
    gpm_nvlink_rx_mibs: int = 0
    gpm_nvlink_tx_mibs: int = 0
    power_fields: int = 0
    """1: ``nvmlDeviceGetFieldValues`` answers the power fields (NVML_FI_DEV_POWER_INSTANT/AVERAGE); 0: each
    answers NOT_SUPPORTED in its own ``nvmlReturn`` (an older driver)."""
    power_avg_mw: int = -1
    """The average-power field (-1: same as ``power_mw``)."""
    module_power_mw: int = -1
    """Module-scope power (Grace Hopper: GPU + CPU + memory); -1: no module scope (NOT_SUPPORTED)."""
    mig: int = -1
    """MIG mode: -1 not MIG-capable (GetMigMode answers NOT_SUPPORTED), 0 off, 1 on."""
    mig_max: int = 7
    """``nvmlDeviceGetMaxMigDeviceCount``: the GPU's compute slices (7 on A100/H100/H200)."""


@dataclass
class Proc:
    """A process NVML lists on a GPU; use real PIDs of processes the test spawned."""

    gpu: int
    pid: int
    used_bytes: int = 1 * GIB
    kind: str = "compute"
    gi: int | None = None
    """GPU instance id on a MIG GPU (with ``ci``); None off MIG."""
    ci: int | None = None


@dataclass
class Mig:
    """A MIG device (compute instance ``ci`` of GPU instance ``gi``) at ``slot`` of GPU ``gpu``."""

    gpu: int
    slot: int
    gi: int
    ci: int
    ci_slices: int
    gi_slices: int | None = None
    """Defaults to ``ci_slices`` (one compute instance filling its GPU instance)."""
    sms: int = 16
    mem_total: int = 10 * GIB
    mem_used: int = 0
    sm_util: int = -1
    """SM_UTIL of its GPU instance through ``nvmlGpmMigSampleGet`` (the parent needs ``gpm=1``); -1 = the metric
    answers NOT_SUPPORTED."""
    profile: str = ""
    """Its GPU instance profile's name as the driver gives it (``3g.40gb``; ``nvmlDeviceGetGpuInstanceProfileInfoV``
    answers ``MIG 3g.40gb``); empty = the driver gives none."""


@dataclass
class Sample:
    """A process-utilization sample; ``ts`` is NVML's microsecond timestamp."""

    gpu: int
    pid: int
    ts: int
    sm: int
    mem: int = 0


@dataclass
class Error:
    """Make ``function`` (an NVML C symbol or ``*``) return ``code`` on ``gpu`` (None = every GPU)."""

    function: str
    code: str | int
    gpu: int | None = None


@dataclass
class Delay:
    """Make every call of ``function`` on ``gpu`` (None = every GPU) sleep ``seconds`` first: a hung driver call."""

    function: str
    seconds: float
    gpu: int | None = None


@dataclass
class Scenario:
    """A whole scenario; ``count`` defaults to ``len(gpus)`` (set it to script fewer or zero GPUs)."""

    gpus: list[GpuSpec] = field(default_factory=list)
    processes: list[Proc] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    errors: list[Error] = field(default_factory=list)
    migs: list[Mig] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)
    """NVML symbol -> seconds each call of it sleeps first."""
    slow: list[Delay] = field(default_factory=list)
    """Delays of one GPU's calls (``delay SYMBOL SECONDS GPU``)."""
    driver: str = "550.54.15"
    count: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Scenario:
        """Build from plain data: ``{"gpus": [{...}], "processes": [{...}], "samples": [...], "errors": [...]}``."""
        return cls(
            gpus=[g if isinstance(g, GpuSpec) else GpuSpec(**g) for g in d.get("gpus", [])],
            processes=[p if isinstance(p, Proc) else Proc(**p) for p in d.get("processes", [])],
            samples=[s if isinstance(s, Sample) else Sample(**s) for s in d.get("samples", [])],
            errors=[e if isinstance(e, Error) else Error(**e) for e in d.get("errors", [])],
            migs=[m if isinstance(m, Mig) else Mig(**m) for m in d.get("migs", [])],
            delays=dict(d.get("delays", {})),
            slow=[x if isinstance(x, Delay) else Delay(**x) for x in d.get("slow", [])],
            driver=d.get("driver", "550.54.15"),
            count=d.get("count"),
        )

    def render(self) -> str:
        """The scenario in the line format the C library parses."""
        lines = [f"driver {self.driver}", f"gpus {len(self.gpus) if self.count is None else self.count}"]
        for i, g in enumerate(self.gpus):
            values = asdict(g)
            if values["uuid"] is None:
                values["uuid"] = f"GPU-fa4e{i:04d}-1111-2222-3333-{i:012d}"
            lines += [f"gpu {i} {k} {v}" for k, v in values.items()]
        lines += [
            f"proc {p.gpu} {p.pid} {p.kind} {p.used_bytes}" + ("" if p.gi is None else f" {p.gi} {p.ci}")
            for p in self.processes
        ]
        lines += [
            f"mig {m.gpu} {m.slot} {m.gi} {m.ci} {m.ci_slices} {m.gi_slices or m.ci_slices} {m.sms} "
            f"{m.mem_total} {m.mem_used} {m.sm_util} {m.profile or '-'}"
            for m in self.migs
        ]
        lines += [f"sample {s.gpu} {s.pid} {s.ts} {s.sm} {s.mem}" for s in self.samples]
        lines += [f"delay {sym} {seconds}" for sym, seconds in self.delays.items()]
        lines += [f"delay {d.function} {d.seconds} {'*' if d.gpu is None else d.gpu}" for d in self.slow]
        lines += [f"error {e.function} {'*' if e.gpu is None else e.gpu} {e.code}" for e in self.errors]
        return "\n".join(lines) + "\n"


class FakeNvml:
    """What the ``fake_nvml`` fixture yields: where the library is, the scenario file, and a subprocess env."""

    def __init__(self, lib_dir: Path, scenario_path: Path) -> None:
        self.lib_dir = lib_dir
        self.scenario_path = scenario_path

    def write(self, scenario: Scenario | Mapping[str, Any]) -> Scenario:
        """Replace the scenario atomically (write + rename: a reader never sees half a file, and the new inode
        tells the library to re-read even within one mtime tick)."""
        sc = scenario if isinstance(scenario, Scenario) else Scenario.from_dict(scenario)
        tmp = self.scenario_path.with_suffix(".tmp")
        tmp.write_text(sc.render())
        os.replace(tmp, self.scenario_path)
        return sc

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for a subprocess that must load the fake instead of a real driver."""
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = str(self.lib_dir)
        env["FAKE_NVML_SCENARIO"] = str(self.scenario_path)
        env.update(extra)
        return env

    def session(self, **extra: str) -> BackendSession:
        """Start one ``NvmlBackend`` in a subprocess that polls on demand (see :class:`BackendSession`); ``extra``:
        more environment variables for it."""
        return BackendSession(self.env(**extra))


# The subprocess side of BackendSession: one backend, driven line by line over stdin, one JSON answer per line.
_DRIVER = r"""
import ctypes, json, sys
from gputab.errors import BackendError
try:
    from gputab.sampling.nvml import NvmlBackend
    backend = NvmlBackend()
except BackendError as exc:
    print(json.dumps({"init_error": str(exc)}), flush=True)
    sys.exit(0)
print(json.dumps({"ready": True}), flush=True)
ledger = attributor = None
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "poll":
        out = backend.poll().to_json()
    elif cmd == "tick":  # poll -> attribute -> charge, as the recorder does; arg: the [waste] config as JSON
        if ledger is None:
            from gputab.attribution import Attributor
            from gputab.config.settings import AttributionConfig, PricesConfig, WasteConfig
            from gputab.cost.ledger import Ledger
            from gputab.cost.pricing import PriceTable
            attributor = Attributor(backend.inspector(), AttributionConfig())
            ledger = Ledger(PriceTable.load(PricesConfig()), interval=0.2, gap_factor=50,
                            waste=WasteConfig(**json.loads(arg or "{}")))
        snap = backend.poll()
        infos = attributor.attribute([p.pid for p in snap.processes])
        ledger.tick(snap, {pid: i.tag for pid, i in infos.items()})
        out = {"snapshot": snap.to_json(), "jobs": {j.tag: j.to_json() for j in ledger.jobs.values()}}
    elif cmd == "calls":
        import pynvml
        fn = pynvml.nvmlLib.fakeNvmlCallCount
        fn.restype = ctypes.c_long
        out = {"calls": fn(arg.encode())}
    elif cmd == "max_in_flight":
        import pynvml
        fn = pynvml.nvmlLib.fakeNvmlMaxInFlight
        fn.restype = ctypes.c_long
        out = {"max_in_flight": fn(arg.encode())}
    elif cmd == "gpm_live":
        import pynvml
        fn = pynvml.nvmlLib.fakeNvmlGpmSamplesLive
        fn.restype = ctypes.c_long
        out = {"gpm_live": fn()}
    elif cmd == "facts":
        try:
            facts = backend.inspector().facts(int(arg))
        except ModuleNotFoundError as exc:
            out = {"missing": str(exc)}
        else:
            out = {"facts": None if facts is None else facts.pid}
    elif cmd == "close":
        backend.close()
        out = {"closed": True}
    else:
        out = {"unknown": cmd}
    print(json.dumps(out), flush=True)
"""


class BackendSession:
    """One long-lived ``NvmlBackend`` in a subprocess, so a test can rewrite the scenario between two polls.

    ``init_error`` holds the BackendError message when the backend could not start.
    """

    def __init__(self, env: Mapping[str, str], timeout: float = 20.0) -> None:
        self._timeout = timeout
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _DRIVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env),
        )
        first = self._read()
        self.init_error: str | None = first.get("init_error")

    def _read(self) -> dict:
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait(self._timeout)
            raise RuntimeError(f"backend subprocess died: {self._proc.stderr.read()}")
        return json.loads(line)

    def _ask(self, cmd: str) -> dict:
        self._proc.stdin.write(cmd + "\n")
        self._proc.stdin.flush()
        return self._read()

    def poll(self) -> dict:
        """One ``backend.poll()`` as ``Snapshot.to_json()``."""
        return self._ask("poll")

    def tick(self, waste: Mapping[str, float] | None = None) -> dict:
        """One poll charged by a real attributor and ledger in the backend's process: ``{"snapshot", "jobs"}``
        (``jobs``: tag -> ``JobTotals.to_json()``). ``waste`` (first call only): ``WasteConfig`` fields."""
        return self._ask("tick " + json.dumps(dict(waste or {})))

    def calls(self, symbol: str = "*") -> int:
        """How many times the backend's process called ``symbol`` in the fake library so far."""
        return self._ask(f"calls {symbol}")["calls"]

    def gpm_live(self) -> int:
        """GPM samples the backend allocated and has not freed."""
        return self._ask("gpm_live")["gpm_live"]

    def facts(self, pid: int) -> dict:
        """``{"facts": pid or None}`` from the backend's inspector, or ``{"missing": ...}`` without host.py."""
        return self._ask(f"facts {pid}")

    def close_backend(self) -> None:
        """``backend.close()``; the subprocess stays up, so ``calls()`` still answers."""
        self._ask("close")

    def close(self) -> str:
        """Close the backend, end the subprocess and return its stderr (tracebacks land there)."""
        if self._proc.poll() is None and self.init_error is None:
            self._ask("close")
        try:
            _, err = self._proc.communicate(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            _, err = self._proc.communicate()
        return err

    def __enter__(self) -> BackendSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
