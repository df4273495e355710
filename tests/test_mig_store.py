"""MIG instances stored (m009_mig) and read back: `gputab show` (text and JSON), `export --by mig`, the review.

A demo session is recorded by the real Recorder on a fake clock into tmp_path; the stored instance figures must be
the ledger's exactly, and a database from before MIG was stored must still read.
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess

import pytest
from sqlite_utils import Database

from gputab.store import Store
from gputab.store.schema import migrate
from support import gputab_cmd, record_demo_session

MIG_GPU = 4


def gputab(*args: str) -> str:
    r = subprocess.run([*gputab_cmd(), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def record(db_path, ticks: int = 30):
    return record_demo_session(db_path, ticks)


def test_instances_are_stored_as_the_ledger_charged_them(tmp_path):
    db = tmp_path / "g.db"
    rec = record(db)
    want = rec.ledger.gpus[MIG_GPU].mig_json()
    with Store.open(db, readonly=True) as store:
        gpus = store.gpus(1)
        series = store.job_series(1, "mistral-7b-serve")
    assert gpus[MIG_GPU]["mig"] == want  # every figure, exactly
    assert [g["mig_slices"] for g in gpus] == [None] * MIG_GPU + [7]  # what "3/7" is out of (m010_mig_slices)
    # The job's stored series carries its own instance's utilization too, as its totals do (not GPU 4's).
    eff_s = sum(p["utilization"] * p["gpu_s"] for p in series)
    job = rec.ledger.jobs["mistral-7b-serve"]
    assert eff_s == pytest.approx(job.effective_gpu_hours * 3600, rel=1e-9)
    assert sum(p["gpu_s"] for p in series) == pytest.approx(job.gpu_hours * 3600, rel=1e-9)
    assert all(g["mig"] is None for g in gpus[:MIG_GPU])  # GPUs not in MIG mode have none
    # The instances and the free slice make up the GPU's charged cost (no gap: nothing unobserved).
    g = gpus[MIG_GPU]
    assert g["unobserved_cost_usd"] == 0
    assert math.isclose(sum(m["cost_usd"] for m in g["mig"]) + g["cost_usd"] / 7, g["cost_usd"], rel_tol=1e-9)


def test_show_json_and_text_list_the_instances_under_their_gpu(tmp_path):
    db = tmp_path / "g.db"
    rec = record(db)
    doc = json.loads(gputab("--db", str(db), "show", "last", "--json"))
    insts = doc["gpus"][MIG_GPU]["mig"]
    assert [(m["profile"], m["gpu_instance_id"], m["slices"]) for m in insts] == [
        ("3g.40gb", 2, 3),
        ("2g.20gb", 3, 2),
        ("1g.10gb", 9, 1),
    ]
    serve = insts[0]
    # Public names and units: the mean SM activity in percent, the rate in $/h.
    ledger_serve = rec.ledger.gpus[MIG_GPU].mig_json()[0]
    assert serve["avg_utilization_pct"] == pytest.approx(ledger_serve["avg_utilization"] * 100, rel=1e-12)
    assert 50 < serve["avg_utilization_pct"] < 80  # the server's instance, not the whole GPU
    assert serve["rate_usd_per_hour"] == pytest.approx(doc["gpus"][MIG_GPU]["rate_usd_per_hour"] * 3 / 7)
    assert serve["cost_usd"] == pytest.approx(
        next(j for j in doc["jobs"] if j["tag"] == "mistral-7b-serve")["cost_usd"]
    )
    assert insts[1]["avg_utilization_pct"] == 0  # the empty 2g.20gb instance

    text = gputab("--db", str(db), "show", "last")
    lines = text.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith(f"GPU {MIG_GPU}:"))
    assert [ln.split()[1] for ln in lines[at + 1 : at + 4]] == ["3g.40gb", "2g.20gb", "1g.10gb"]
    assert all(ln.startswith("  MIG ") for ln in lines[at + 1 : at + 4])
    assert "3/7 slices" in lines[at + 1] and f"${serve['rate_usd_per_hour']:.3f}/h" in lines[at + 1]


def test_export_by_mig_has_a_row_per_instance_with_units_in_the_header(tmp_path):
    db = tmp_path / "g.db"
    record(db)
    record(db, ticks=10)
    text = gputab("--db", str(db), "export", "--csv", "--by", "mig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["session_id"], r["profile"]) for r in rows] == [
        (s, p) for s in ("1", "2") for p in ("3g.40gb", "2g.20gb", "1g.10gb")
    ]
    header = next(csv.reader(io.StringIO(text)))  # the header row (its cells are quoted)
    assert {"rate_usd_per_hour", "cost_usd", "avg_utilization_pct", "memory_total_bytes", "gpu_hours"} <= set(header)
    gpus = {
        (r["session_id"], r["gpu_index"]): r
        for r in csv.DictReader(io.StringIO(gputab("--db", str(db), "export", "--csv", "--by", "gpu")))
    }
    for sid in ("1", "2"):
        g = gpus[(sid, str(MIG_GPU))]
        mine = [r for r in rows if r["session_id"] == sid]
        assert all(r["gpu_uuid"] == g["gpu_uuid"] for r in mine)
        # Instances + the free slice (1 of 7) = the GPU's cost.
        total = sum(float(r["cost_usd"]) for r in mine) + float(g["cost_usd"]) / 7
        assert total == pytest.approx(float(g["cost_usd"]), rel=1e-9)


def test_a_database_from_before_mig_was_stored_still_reads(tmp_path):
    db_path = tmp_path / "old.db"
    db = Database(db_path)
    migrate(db, db_path, stop_before="m009_mig")
    assert not db["mig_instances"].exists()
    db.execute(
        "INSERT INTO sessions (id, host, backend, started_wall, last_wall, ended_wall, end_reason, interval, ticks, "
        "total_cost_usd) VALUES (1, 'old', 'nvml', 1e9, 1e9 + 60, 1e9 + 60, 'clean', 1, 60, 1.0)"
    )
    db.execute(
        "INSERT INTO session_gpus (session_id, gpu_index, uuid, name, mode, rate_per_hour, charge_energy, "
        "unknown_price, energy_method, cost_usd, idle_cost_usd, unobserved_cost_usd, energy_j) "
        "VALUES (1, 0, 'GPU-x', 'NVIDIA H100 80GB HBM3', 'rental', 4.76, 0, 0, 'counter', 1.0, 0, 0, 0)"
    )
    db.conn.commit()
    db.close()
    # A reader opens it read-only: it neither creates the table nor fails for want of it.
    with Store.open(db_path, readonly=True) as store:
        (g,) = store.gpus(1)
    assert g["mig"] is None
    assert not Database(db_path)["mig_instances"].exists()
    assert gputab("--db", str(db_path), "export", "--csv", "--by", "mig").splitlines()[1:] == []


def test_a_session_recorded_before_the_gpus_slices_were_stored_still_says_3_of_7(tmp_path):
    from gputab.store.mig import parent_slices

    db_path = tmp_path / "mid.db"
    record(db_path, ticks=10)
    # As a database between m009_mig and m010_mig_slices holds it: the instances, not the GPU's slices.
    db = Database(db_path)
    db.execute("UPDATE session_gpus SET mig_slices = NULL")
    db.conn.commit()
    db.close()
    with Store.open(db_path, readonly=True) as store:
        g = store.gpus(1)[MIG_GPU]
    assert g["mig_slices"] is None
    assert [parent_slices(g, m) for m in g["mig"]] == [7, 7, 7]  # worked back from the stored rates
    assert "3/7 slices" in gputab("--db", str(db_path), "show", "last")
