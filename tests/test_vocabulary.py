"""One scripting vocabulary: every ``--json`` document, CSV header and Prometheus metric uses only the keys of
gputab.publish.vocabulary, with the unit its suffix names and the JSON type it documents; docs/json.md is current.

The documents come from the real commands (Click's runner, or the real fleet query against the recorded fake
Prometheus) over a demo session recorded into tmp_path, not from hand-made dicts.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet_fake import FakePrometheus, load
from gputab.cli.main import cli
from gputab.fleet import PromClient, fetch_fleet
from gputab.progress.spool import REASONS
from gputab.publish.document import COUNTS, DATA_MAPS, RENAMES, SCHEMA_VERSION, public
from gputab.publish.vocabulary import BY_NAME, KEYS, METRICS, PROMETHEUS_UNITS, TYPES, UNIT_SUFFIXES
from gputab.publish.vocabulary_page import markdown

ROOT = Path(__file__).resolve().parents[1]
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
DIMENSIONLESS = {"pue"}
"""Numbers with no unit: a ratio of like units. Any other number must name its unit."""

FLEET_ONLY = {
    "prometheus",
    "queried_at",
    "stale_after_seconds",
    "queries_per_refresh",
    "totals",
    "hosts",
    "host_count",
    "stale_host_count",
    "stale",
    "last_seen_at",
    "session_cost_usd",
    "spent_today_usd",
    "idle_today_usd",
    "waste_today_usd",
    "idle_burn_rate_usd_per_hour",
    "active_alert_count",
    "alert_counts",
    "count",
    "burn_rate_history",
    "sampled_at",
    "per_host",
    "warnings",
}
"""Keys only ``fleet --json`` has (checked against the fleet document)."""
CSV_ONLY = {"gpu_uuid", "gpu_name"}
MIG_ONLY = {"gpu_instance_slices", "slices", "sm_count", "label"}
# Only a session whose GPU readings failed has them (the demo box's never fail): tests/faults/test_read_faults.py
# checks them against the vocabulary.
FAULT_ONLY = {"call", "error", "detail", "first_at", "last_at"}
"""Keys only a GPU in MIG mode shows (checked on the fake NVML: test_a_mig_snapshot_speaks_the_vocabulary)."""
"""Keys only CSV headers have (checked against them)."""

PY_TYPES = {
    "integer": int,
    "number": (int, float),
    "string": str,
    "boolean": bool,
    "array": list,
    "object": dict,
    "time": str,
}


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    """A recorded demo session with one raised and one cleared alert and a rejected spool report, through the
    real recorder's paths (record_alert, the writer's rejected reports), so every key of ``show`` appears."""
    from gputab.alerts.observer import BUDGET_WARNING, IDLE_MONEY, Alert
    from gputab.config.settings import Config
    from gputab.recording.recorder import Recorder
    from gputab.sampling.demo import DemoBackend, FakeClock
    from gputab.store.database import Store

    path = tmp_path_factory.mktemp("vocab") / "gputab.db"
    clock = FakeClock()
    rec = Recorder(
        DemoBackend(clock=clock, wall_clock=clock.wall), Store.open(path), Config(), clock=clock, wall_clock=clock.wall
    )
    rec.start()
    for i in range(20):
        clock.advance(1.0)
        rec.step()
        if i == 5:
            rec.record_alert(
                Alert(
                    BUDGET_WARNING,
                    "warning",
                    "job llama3-8b-lora: 80% of its budget",
                    clock.wall(),
                    tag="llama3-8b-lora",
                    data={"cap_usd": 1.0},
                )
            )
            idle = Alert(IDLE_MONEY, "warning", "GPU 3: idle", clock.wall(), gpu=3)
            rec.record_alert(idle)
        if i == 10:
            rec.record_alert(dataclasses.replace(idle, ended_at=clock.wall()))
    assert rec.writer is not None
    rec.writer.set_rejected(
        [{"reason": next(iter(REASONS)), "owner_uid": 65534, "reports": 3, "samples": 30, "tokens": 0}]
    )
    assert rec.close("clean")
    return path


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def walk(obj, path="$"):
    """(path, key, value) of every vocabulary key in ``obj`` (the keys inside DATA_MAPS objects are data)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield f"{path}.{k}", k, v
            if k not in DATA_MAPS:
                yield from walk(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from walk(v, f"{path}[{i}]")


def check_document(doc: dict, name: str) -> set[str]:
    assert isinstance(doc, dict) and list(doc)[0] == "schema_version", name
    assert doc["schema_version"] == SCHEMA_VERSION
    seen = set()
    for path, key, value in walk(doc):
        assert key in BY_NAME, f"{name}: {path} is not in gputab.publish.vocabulary"
        seen.add(key)
        spec = BY_NAME[key]
        if value is None:
            continue
        assert isinstance(value, PY_TYPES[spec.type]), f"{name}: {path} = {value!r} is not {spec.type}"
        if spec.type == "integer":
            assert not isinstance(value, bool), path
        if spec.type == "time":
            assert ISO.fullmatch(value), f"{name}: {path} = {value!r} is not ISO 8601 UTC"
        if isinstance(value, float):
            assert value == float(f"{value:.15g}"), f"{name}: {path} = {value!r} carries float noise"
    return seen


def documents(db: Path) -> dict[str, dict]:
    d = ["--db", str(db)]
    docs = {
        "snapshot": run("--demo", "snapshot", "--json", "--over", "1"),
        "sessions": run(*d, "sessions", "--json"),
        "show": run(*d, "show", "last", "--json"),
        "prices": run("--demo", "prices", "--json"),
        "samples": run(*d, "samples", "llama3-8b-lora", "--add", "100", "--add-tokens", "5000", "--json"),
    }
    run(*d, "budget", "set", "llama3-*", "500", "--stop", "--user", "root")
    docs["budget list"] = run(*d, "budget", "list", "--json")
    for by in ("tag", "user", "gpu", "host", "day", "week"):
        docs[f"spend --by {by}"] = run(*d, "spend", "--by", by, "--since", "2000-01-01", "--json")
    return {name: json.loads(text) for name, text in docs.items()}


def test_every_json_document_speaks_the_vocabulary(db):
    seen: set[str] = set()
    for name, doc in documents(db).items():
        seen |= check_document(doc, name)
    # Every documented key that a box without Prometheus can show is produced (fleet's: the next test).
    assert set(BY_NAME) - FLEET_ONLY - CSV_ONLY - MIG_ONLY - FAULT_ONLY - seen == set(), "documented, never produced"
    for key in (
        "started_at",
        "duration_seconds",
        "avg_utilization_pct",
        "energy_joules",
        "rate_usd_per_hour",
        "share_pct",
        "taken_at",
        "power_watts",
        "alert_count",
        "job_count",
        "session_count",
        "idle_cost_usd",
        "waste_usd",
        "waste_by_reason",
        "price_usd_per_kwh",
        "session_id",
    ):
        assert key in seen, key


def test_fleet_json_speaks_the_vocabulary():
    recording = load()
    with FakePrometheus(recording) as fake:
        view = check_document(fetch_fleet(PromClient(fake.url), clock=lambda: fake.at).to_json(), "fleet")
        cli_doc = json.loads(run("fleet", "--json", "--prometheus", fake.url))
    check_document(cli_doc, "fleet --json")
    assert FLEET_ONLY | {"gpu_count", "utilization_pct", "avg_utilization_pct"} <= view, FLEET_ONLY - view


def test_utilization_is_a_percent_everywhere(db):
    docs = documents(db)
    utils = [
        (name, path, v)
        for name, doc in docs.items()
        for path, k, v in walk(doc)
        if k.endswith("utilization_pct") and v is not None
    ]
    assert utils and all(0 <= v <= 100 for _, _, v in utils), utils
    # At least one job near full load: a percent, not a fraction that happens to be under 1.
    assert any(v > 1 for name, path, v in utils if "avg_utilization_pct" in path), utils


def test_one_figure_once(db):
    show = documents(db)["show"]
    assert "total_cost_usd" not in show and "cost_usd" not in show["session"]
    assert all("vram_bytes" not in j for j in show["jobs"]) and all("peak_vram_bytes" in j for j in show["jobs"])
    snap = documents(db)["snapshot"]
    assert "mono" not in snap and all("energy_mj" not in g for g in snap["gpus"])
    for j in snap["jobs"]:
        assert len(j["share_pct"]) == len(j["gpus"]) and all(0 < s <= 100 for s in j["share_pct"])


def test_csv_headers_are_vocabulary_keys(db):
    csv_only = set(CSV_ONLY)
    for by in ("job", "session", "gpu"):
        text = run("--db", str(db), "export", "--csv", "--all", "--by", by)
        header = next(csv.reader(io.StringIO(text)))
        assert [c for c in header if c not in BY_NAME] == [], by
        csv_only -= set(header)
    for by in ("tag", "day"):
        text = run("--db", str(db), "spend", "--by", by, "--since", "2000-01-01", "--csv")
        header = next(csv.reader(io.StringIO(text)))
        assert [c for c in header if c not in BY_NAME] == [], by
        assert "idle_cost_usd" in header and "avg_utilization_pct" in header
    assert csv_only == set(), csv_only


def test_keys_name_their_units():
    assert len(BY_NAME) == len(KEYS), "a key is documented twice"
    for k in KEYS:
        assert k.type in TYPES, k
        assert re.fullmatch(r"[a-z][a-z0-9_]*", k.name), k
        if k.type == "number" and k.name not in DIMENSIONLESS:
            assert k.unit, f"{k.name} is a number without a unit suffix ({', '.join(UNIT_SUFFIXES)})"
        if k.name.endswith("_at"):
            assert k.type == "time", k
    # Every rename lands on a documented key; no public key is also an old spelling.
    assert set(RENAMES.values()) <= set(BY_NAME) and set(COUNTS.values()) <= set(BY_NAME)
    assert not (set(RENAMES) - {"alerts_active"}) & set(BY_NAME)


def test_public_renames_converts_and_leaves_data_alone():
    internal = {
        "start": 1_767_225_600.0,
        "avg_utilization": 0.5,
        "jobs": 3,
        "energy_mj": 1000,
        "energy_j": 1.0,
        "waste_by_reason": {"start": 0.1 + 0.2},
        "cost_usd": 0.1 + 0.2,
    }
    assert public(internal) == {
        "started_at": "2026-01-01T00:00:00Z",
        "avg_utilization_pct": 50.0,
        "job_count": 3,
        "energy_joules": 1.0,
        "waste_by_reason": {"start": 0.3},
        "cost_usd": 0.3,
    }
    assert public(public(internal)) == public(internal)  # idempotent: documents may pass through twice


def test_prometheus_names_are_documented_and_in_base_units():
    from gputab.publish.metrics import TickCollector
    from test_metrics import make_tick

    collector = TickCollector("h", alerts=lambda: [])
    collector.update(make_tick())
    exposed = {f.name + ("_total" if f.type == "counter" else "") for f in collector.collect()}
    assert exposed <= set(METRICS), exposed - set(METRICS)
    source = "".join((ROOT / "src/gputab/publish" / f).read_text() for f in ("metrics.py", "mig_metrics.py"))
    for name, key in METRICS.items():
        assert f'"{name}"' in source, f"{name} is documented but metrics.py does not serve it"
        assert name.endswith(PROMETHEUS_UNITS), name
        assert key == "" or key in BY_NAME, (name, key)


def test_docs_page_is_generated_from_the_vocabulary():
    page = (ROOT / "docs/json.md").read_text()
    assert page == markdown(), "docs/json.md is stale: python -m gputab.publish.vocabulary_page > docs/json.md"
    for k in KEYS:
        assert page.count(f"| `{k.name}` | {k.type} |") == 1, k.name


@pytest.mark.parametrize("command", ["snapshot", "sessions", "show", "spend", "prices", "fleet"])
def test_help_names_only_real_keys(command):
    """``--json``'s help lists keys (``Print JSON (a, b, c)``): each one must be a key of the vocabulary."""
    text = " ".join(run(command, "--help").split())
    listed = re.search(r"Print (?:one refresh as )?JSON \(([^)]*)\)", text)
    assert listed, text
    words = [w.strip(" .") for w in listed.group(1).split(";")[0].replace("...", "").split(",")]
    assert len(words) >= 2, words
    for w in words:
        name = w.split()[0].rstrip(":")  # "sessions: a list", "jobs across hosts"
        assert name in BY_NAME, f"`{command} --help` names {name!r}, which no document has"


def test_the_docs_list_the_csv_columns_in_order():
    from gputab.publish.csv_export import COLUMNS

    text = (ROOT / "docs/review.md").read_text()
    for by, columns in COLUMNS.items():
        m = re.search(rf"^- `--by {by}`[^:]*: (.*?)(?=^- `|^\n|\Z)", text, re.M | re.S)
        assert m, by
        listed = [re.sub(r"\s*\(.*\)", "", c).strip() for c in " ".join(m.group(1).split()).split(",")]
        assert tuple(listed) == columns, by


def test_a_mig_snapshot_speaks_the_vocabulary(fake_nvml):
    """A GPU in MIG mode lists its instances, each priced as a device, in the same words as everything else."""
    import subprocess
    import sys

    from fakenvml import GIB, GpuSpec, Mig, Scenario

    fake_nvml.write(
        Scenario(
            gpus=[GpuSpec(mig=1, util=90, power_mw=400_000)],
            migs=[Mig(0, 0, gi=1, ci=0, ci_slices=3, mem_total=40 * GIB, mem_used=9 * GIB)],
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "gputab", "snapshot", "--json", "--over", "0"],
        env=fake_nvml.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    seen = check_document(doc, "snapshot (MIG)")
    assert MIG_ONLY <= seen
    (mig,) = doc["gpus"][0]["mig"]
    assert mig["slices"] == 3 and mig["label"] == "GI 1 CI 0"
    assert mig["rate_usd_per_hour"] == pytest.approx(doc["gpus"][0]["rate_usd_per_hour"] * 3 / 7)
