"""What the live view and the store do not import: numpy and pandas (through sqlite-utils), and at the live
view's start, what only other screens and commands need (each proved in a fresh interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _fake_packages(root: Path) -> None:
    """A numpy and a pandas that leave a mark when imported (whether or not the real ones are installed)."""
    for name in ("numpy", "pandas"):
        pkg = root / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text(
            f"import pathlib\npathlib.Path({str(root / (name + '.imported'))!r}).write_text('yes')\nint8 = int\nTimestamp = str\n"
        )


def _python(code: str, root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(SRC)]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def test_the_store_loads_sqlite_utils_without_numpy_or_pandas(tmp_path):
    _fake_packages(tmp_path)
    code = (
        "import sys, gputab.store\n"
        f"gputab.store.Store.open({str(tmp_path / 'new.db')!r}).close()\n"  # a new database: migrated
        "import sqlite_utils.db as d\n"
        "print(sorted(m for m in ('numpy', 'pandas') if m in sys.modules), d.np, d.pd)\n"
        "import numpy, pandas\n"  # hidden only while sqlite-utils loaded: a later import works as usual
        "print(numpy.int8 is int)\n"
    )
    r = _python(code, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["[] None None", "True"]
    # The later import really imported them (and the store's import did not: it ran before).
    assert (tmp_path / "numpy.imported").exists() and (tmp_path / "pandas.imported").exists()


def test_a_database_at_the_current_schema_is_written_and_read_without_sqlite_utils(tmp_path):
    """sqlite-utils (3.6 MiB with its dependencies) is loaded to create or migrate a database, not to use one."""
    db = tmp_path / "g.db"
    code = (
        "import sys, time\n"
        "from gputab.store import SessionMeta, SessionWriter, Store\n"
        f"store = Store.open({str(db)!r})\n"
        "print('sqlite_utils' in sys.modules)\n"
        "w = SessionWriter(store, SessionMeta('h', 'demo', 1, '0', time.time(), 1.0, 2.0, 10.0, '{}'))\n"
        "w.add_job_sample('train', 0, 0.5, 1.0, None, None, 1.8)\n"
        "w.set_totals([{'tag': 'train', 'cost_usd': 0.5}], [], time.time(), 1, 0.5, 0.0)\n"
        "w.flush(); w.flush()\n"
        "print([j['cost_usd'] for j in store.jobs(w.session_id)], store.rejected_reports(w.session_id))\n"
        "print('sqlite_utils' in sys.modules)\n"
    )
    first = _python(code, tmp_path)  # creates the database: migrations need sqlite-utils
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["True", "[0.5] []", "True"]
    again = _python(code, tmp_path)  # the same database, now at the current schema
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["False", "[0.5] []", "False"]


def test_numpy_imported_before_the_store_is_left_alone(tmp_path):
    """A process that has numpy already (a training script) keeps it, and sqlite-utils sees it as usual."""
    _fake_packages(tmp_path)
    code = (
        "import numpy, gputab.store\n"
        f"gputab.store.Store.open({str(tmp_path / 'new.db')!r}).close()\n"
        "import sqlite_utils.db as d\nprint(d.np is numpy)"
    )
    r = _python(code, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"


#: What the live view's start-up path (the CLI, the feed, the recorder, the app and its first view) must not import:
#: the other views, the review, the Spend screen, the fleet, the exporter, and what only some commands need. The pty
#: test (tests/test_live_startup.py) checks a real first frame; this one names the module that brought one in.
NOT_AT_START = (
    "gputab.tui.gpus_screen",
    "gputab.tui.processes_screen",
    "gputab.tui.alerts_screen",
    "gputab.tui.tag_screen",
    "gputab.tui.commands",
    "gputab.tui.keys_screen",
    "gputab.tui.details_screen",
    "gputab.tui.spend_screen",
    "gputab.tui.review",
    "gputab.tui.fleet_screen",
    "gputab.fleet",
    "gputab.publish.metrics",  # the exporter (`gputab record --metrics`)
    "prometheus_client",
    "sqlite_utils",
    "urllib.request",
    "http.client",
    "email",
)


def test_the_live_views_start_up_path_imports_only_what_the_first_frame_needs(tmp_path):
    code = (
        "import sys\n"
        "import gputab.cli.live, gputab.live.start, gputab.live.poller, gputab.recording.recorder\n"
        "import gputab.sampling.nvml, gputab.sampling.demo, gputab.store, gputab.tui.app, gputab.tui.driver\n"
        f"names = {NOT_AT_START!r}\n"
        "print(sorted(m for m in sys.modules if any(m == n or m.startswith(n + '.') for n in names)))\n"
        "print('gputab.tui.jobs_screen' in sys.modules)\n"
    )
    r = _python(code, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["[]", "True"]
