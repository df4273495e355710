"""The flow is one-way: nothing below the TUI imports textual (proved in a fresh interpreter)."""

import subprocess
import sys

HEADLESS = [
    "gputab",
    "gputab.sampling",
    "gputab.sampling.demo",
    "gputab.sampling.nvml",
    "gputab.config",
    "gputab.cli",
]
OPTIONAL = [
    "gputab.attribution",
    "gputab.ledger",
    "gputab.store",
    "gputab.recorder",
    "gputab.report",
    "gputab.export",
    "gputab.metrics",
    "gputab.alerts",
    "gputab.budgets",
    "gputab.budget_keeper",
    "gputab.cli.budget",
]


def test_headless_modules_do_not_import_textual():
    code = (
        "import importlib, importlib.util, sys\n"
        f"for m in {HEADLESS!r}: importlib.import_module(m)\n"
        f"for m in {OPTIONAL!r}:\n"
        "    if importlib.util.find_spec(m) is not None: importlib.import_module(m)\n"
        "bad = sorted(k for k in sys.modules if k == 'textual' or k.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"textual imported by headless modules: {out.stdout}"


def test_report_import_is_light():
    """A training script's `import gputab` must not pull in the store, the ledger or NVML."""
    code = "import sys, gputab; print(','.join(k for k in sys.modules if k.startswith(('textual','sqlite_utils','pynvml','gputab.store','gputab.ledger'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
