"""The bench's 8 fake GPUs: the project's fake NVML (tests/fakenvml), completed for third-party monitors.

The fake library implements what gputab calls. gpustat and nvitop also call functions it does not have (fan speed,
encoder utilization, CUDA driver version...); pynvml then raises FunctionNotFound and gpustat refuses to start,
while nvitop logs a traceback per call. So the bench wraps the fake in a second ``libnvidia-ml.so.1`` that depends
on it and answers every *other* symbol pynvml knows with NVML_ERROR_NOT_SUPPORTED, as a GPU without that feature
would. The symbols the fake does implement resolve to the fake, unchanged, for all three tools.

Nothing here copies the fake: it is built by ``tests/fakenvml.build_library`` and scripted by its ``Scenario``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakenvml import GIB, FakeNvml, GpuSpec, Proc, Sample, Scenario, build_library  # noqa: E402

NOT_SUPPORTED = 3
CORE = "libfakenvml-core.so"


def _pynvml_symbols() -> list[str]:
    import pynvml

    text = Path(pynvml.__file__).read_text()
    return sorted(set(re.findall(r'_nvmlGetFunctionPointer\("(nvml\w+)"\)', text)))


def _defined(lib: Path) -> set[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in out.stdout.splitlines() if line.split()}


def build(out_dir: Path) -> Path:
    """Build the fake and its NOT_SUPPORTED wrapper under ``out_dir``; return the dir for LD_LIBRARY_PATH."""
    core_dir = out_dir / "core"
    build_library(core_dir)
    core = core_dir / CORE
    # Under another file name, so the wrapper (which is libnvidia-ml.so.1) can depend on it without the loader
    # taking the wrapper itself for its own dependency.
    shutil.copy(core_dir / "libnvidia-ml.so.1", core)
    have = _defined(core)
    missing = [s for s in _pynvml_symbols() if s not in have]
    wrap_dir = out_dir / "lib"
    wrap_dir.mkdir(parents=True, exist_ok=True)
    src = out_dir / "nvml_not_supported.c"
    # x86-64/aarch64 C calling conventions let a stub that ignores its arguments stand in for any signature.
    # nvmlDeviceGetIndex is one gpustat cannot do without; the fake's handle is a pointer to {int index}.
    special = {
        "nvmlDeviceGetIndex": "int nvmlDeviceGetIndex(const int *dev, unsigned int *i) { *i = *dev; return 0; }\n"
    }
    src.write_text("".join(special.get(s, f"int {s}(void) {{ return {NOT_SUPPORTED}; }}\n") for s in missing))
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O1",
            "-o",
            str(wrap_dir / "libnvidia-ml.so.1"),
            str(src),
            # --no-as-needed before -l: the stubs reference nothing in the core, and an as-needed link would drop it.
            "-Wl,--no-as-needed",
            f"-L{core_dir}",
            f"-l:{CORE}",
            f"-Wl,-rpath,{core_dir}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return wrap_dir


def scenario(pids: list[int], ts_us: int = 1) -> Scenario:
    """8 busy H100s, one process of ``pids`` on each, with SM samples (as on a box running 8 training ranks)."""
    gpus = [
        GpuSpec(
            util=60 + i,
            memutil=30,
            mem_used=(20 + i) * GIB,
            power_mw=400_000 + 1000 * i,
            temp=55 + i,
            pcie_tx_kbs=1_000_000,
            pcie_rx_kbs=2_000_000,
        )
        for i in range(8)
    ]
    procs = [Proc(gpu=i, pid=pid, used_bytes=(18 + i) * GIB) for i, pid in enumerate(pids)]
    samples = [Sample(gpu=i, pid=pid, ts=ts_us, sm=55 + i, mem=25) for i, pid in enumerate(pids)]
    return Scenario(gpus=gpus, processes=procs, samples=samples)


class FakeBox:
    """8 fake GPUs and 8 real child processes (``sleep``) that NVML lists on them."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.lib_dir = build(work / "nvml")
        self.children = [subprocess.Popen(["sleep", "100000"]) for _ in range(8)]
        self.nvml = FakeNvml(self.lib_dir, work / "scenario.txt")
        self.nvml.write(scenario([c.pid for c in self.children]))

    def env(self, **extra: str) -> dict[str, str]:
        return self.nvml.env(**extra)

    def close(self) -> None:
        for c in self.children:
            c.kill()
            c.wait()


def existing_database(env: dict[str, str]) -> str:
    """Create and migrate the database ``env["GPUTAB_DB"]`` in a process of its own, before a live view is measured
    on it: every run of ``gputab`` but a user's first finds its database at the current schema, which it reads with
    plain SQL; only creating or migrating one loads sqlite-utils (3.6 MiB, bench/NOTES.md). Returns the words for
    the table's "how" column."""
    code = "import sys; from gputab.store import Store; Store.open(sys.argv[1]).close()"
    subprocess.run([sys.executable, "-c", code, env["GPUTAB_DB"]], env=env, check=True, timeout=60)
    return "the database created beforehand, as every run but a user's first finds it"
