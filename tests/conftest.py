"""Shared fixtures: every test gets its own data dir, database and config, never the user's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

EXTRA_WORKERS = 2
"""Workers beyond one per core in the default run (``-n auto``): about a quarter of its time is spent waiting on
child processes (recorders, the demo, ``gputab`` commands), and two more workers fill those waits. Measured on a
2-core box with nothing else running: ``-n 2`` 5 min 3 s, ``-n 4`` 4 min 30 s (bench/RESULTS.md). The ``slow``
run keeps one worker per core: its soaks and kill loops measure time."""


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core the process may use, plus EXTRA_WORKERS when ``slow`` tests are left out."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores + (EXTRA_WORKERS if config.getoption("markexpr", "") == "not slow" else 0)


@pytest.fixture(autouse=True)
def isolated_paths(tmp_path, monkeypatch):
    """Point every gputab path at tmp_path so no test reads or writes the user's files."""
    monkeypatch.setenv("GPUTAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GPUTAB_DB", str(tmp_path / "data" / "gputab.db"))
    monkeypatch.setenv("GPUTAB_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("GPUTAB_SPOOL", str(tmp_path / "spool"))
    monkeypatch.delenv("GPUTAB_TAG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    yield tmp_path


@pytest.fixture(scope="session")
def fake_nvml_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake ``libnvidia-ml.so.1``, compiled once per test run; its directory goes in LD_LIBRARY_PATH.

    Every xdist worker has a session of its own, so the library is built in the run's shared temporary directory,
    under a lock, in a folder named for the C source's hash: the first worker compiles it, the others wait for it
    and load the same file.
    """
    from fakenvml import build_library_once

    base = tmp_path_factory.getbasetemp()
    run_dir = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # workers get <run>/popen-gwN
    try:
        return build_library_once(run_dir)
    except FileNotFoundError:
        pytest.skip("gcc not found: cannot build the fake NVML library (tests/fakenvml/fake_nvml.c)")


@pytest.fixture
def fake_nvml(fake_nvml_lib, tmp_path):
    """A :class:`fakenvml.FakeNvml`: ``.write(scenario)``, ``.env()`` for subprocesses, ``.session()``.

    Starts with an empty scenario (driver loads, zero GPUs) so a forgotten ``write`` fails visibly.
    """
    from fakenvml import FakeNvml, Scenario

    fake = FakeNvml(fake_nvml_lib, tmp_path / "fake_nvml_scenario.txt")
    fake.write(Scenario())
    yield fake
