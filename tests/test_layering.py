"""The flow is one-way: nothing below the TUI imports textual (proved in a fresh interpreter)."""

import subprocess
import sys

HEADLESS = [
    "gputab",
    "gputab.sampling",
    "gputab.sampling.demo",
    "gputab.sampling.nvml",
    "gputab.config.settings",
    "gputab.cli",
    "gputab.live.feed",
    "gputab.live.attached_feed",
    "gputab.live.start",
    "gputab.live.poller",
    "gputab.live.history",
    "gputab.live.alert_log",
]
OPTIONAL = [
    "gputab.attribution",
    "gputab.cost.ledger",
    "gputab.store",
    "gputab.recording.recorder",
    "gputab.report",
    "gputab.publish.csv_export",
    "gputab.publish.metrics",
    "gputab.alerts.observer",
    "gputab.budgets.model",
    "gputab.recording.budget_keeper",
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
    code = "import sys, gputab; print(','.join(k for k in sys.modules if k.startswith(('textual','sqlite_utils','pynvml','gputab.store','gputab.cost.ledger'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_no_module_imports_itself_through_others():
    """No import cycle among gputab's modules (grimp, which import-linter uses, reads every import statement)."""
    import grimp

    graph = grimp.build_graph("gputab")
    modules = sorted(graph.modules)
    cycles = []
    for module in modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(importer=imported, imported=module):
                cycles.append((module, imported))
    assert cycles == [], f"import cycles: {cycles[:5]}"


def test_the_package_root_holds_a_dozen_modules_at_most():
    from pathlib import Path

    import gputab

    root = Path(gputab.__file__).parent
    assert len(list(root.glob("*.py"))) <= 12, sorted(p.name for p in root.glob("*.py"))
