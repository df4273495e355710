"""CSV export: columns and their order, figures equal to the ledger's, views that agree, inert formulas, errors.

Sessions are recorded from the demo box on a fake clock by the real Recorder (demo backend -> Attributor ->
Ledger -> store), so what is checked is what a user's database would hold.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys

import pytest
from click.testing import CliRunner

from gputab.cli.main import cli
from gputab.config.settings import Config
from gputab.cost.ledger import IDLE, Ledger
from gputab.publish.csv_export import (
    COLUMNS,
    GPU_COLUMNS,
    JOB_COLUMNS,
    SESSION_COLUMNS,
    export_csv,
    format_cell,
    iso_utc,
    neutralise,
)
from gputab.publish.document import public
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DEMO_START_WALL, DemoBackend, FakeClock
from gputab.store.database import Store
from gputab.store.lock import utc_iso
from gputab.store.review import iter_sessions, session_ids

GPUTAB = [sys.executable, "-m", "gputab"]
"""The CLI as a subprocess (spelled here: a nested conftest.py can shadow the top one's helpers)."""
EVIL_TAG = '=HYPERLINK("http://example.invalid","x")'
DAY = 86400.0


def record_demo(
    db_path,
    ticks: int = 40,
    start_wall: float = DEMO_START_WALL,
    retag: tuple | None = None,
    seed: int = 0,
    gaps: dict[int, float] | None = None,
) -> Ledger:
    """Record one demo session with the real Recorder on a fake clock; returns the ledger it charged.

    Args:
        retag: ``(old_tag, new_tag)``: retag a job by hand right after the baseline, as the TUI would.
        gaps: tick number -> seconds the recorder does not see before it (a suspend): charged to (unobserved).
    """
    clock = FakeClock(wall_start=start_wall)
    backend = DemoBackend(seed=seed, clock=clock, wall_clock=clock.wall)
    rec = Recorder(backend, Store.open(db_path), Config(), clock=clock, wall_clock=clock.wall)
    rec.start()
    if retag:
        assert rec.attributor.retag(*retag)
    for k in range(ticks):
        clock.advance(1.0 + (gaps or {}).get(k, 0.0))
        rec.step()
    assert rec.close("clean")
    return rec.ledger


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "data" / "gputab.db"


def run(db_path, *args):
    return CliRunner().invoke(cli, ["--db", str(db_path), *args])


def parse(text: str) -> tuple[list[str], list[dict]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    return header, [dict(zip(header, r)) for r in reader]


def num(cell: str) -> float | None:
    return None if cell == "" else float(cell)


# -- cells ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", EVIL_TAG])
def test_formula_text_is_neutralised(text):
    assert neutralise(text) == "'" + text
    assert format_cell(text) == "'" + text


def test_numbers_stay_numbers_even_negative():
    assert format_cell(-3.5) == -3.5
    assert format_cell(-2) == -2
    assert format_cell(None) == ""
    assert format_cell(True) == "true"
    assert repr(format_cell(0.1 + 0.2)) == "0.3"  # float noise goes (15 significant digits), as in JSON
    assert float(format_cell(1 / 3)) == pytest.approx(1 / 3, rel=1e-15)  # precision stays
    assert format_cell("plain-tag") == "plain-tag"


def test_iso_utc():
    assert iso_utc(DEMO_START_WALL) == "2026-01-01T00:00:00Z"
    assert iso_utc("2026-01-01T01:00:00+01:00") == "2026-01-01T00:00:00Z"
    assert iso_utc(None) is None


# -- exports of recorded sessions ---------------------------------------------------------------------------------


def test_job_rows_equal_the_ledger(db_path):
    ledger = record_demo(db_path, ticks=40)
    result = run(db_path, "export", "--csv", "--session", "last")
    assert result.exit_code == 0, result.output
    header, rows = parse(result.stdout)
    assert tuple(header) == JOB_COLUMNS
    assert {r["tag"] for r in rows} == set(ledger.jobs)
    assert IDLE in {r["tag"] for r in rows}  # GPU 3 of the demo box idles
    for r in rows:
        want = public(ledger.jobs[r["tag"]].to_json())  # the public keys: avg_utilization_pct is 0-100
        for key in (
            "cost_usd",
            "gpu_hours",
            "effective_gpu_hours",
            "avg_utilization_pct",
            "energy_kwh",
            "idle_gpu_hours",
            "cost_per_effective_gpu_hour_usd",
            "busy_usd",
            "waste_usd",
            "waste_pct",
        ):
            got = num(r[key])
            if want[key] is None:
                assert got is None, key
            else:
                assert got == pytest.approx(want[key], rel=1e-12, abs=1e-15), key
        assert int(r["peak_vram_bytes"]) == want["peak_vram_bytes"]
        assert r["unknown_price"] == ("true" if want["unknown_price"] else "false")
        assert r["session_id"] == "1" and r["host"] == "demo-box"
        assert r["started_at"] == "2026-01-01T00:00:00Z"
        assert r["ended_at"] == utc_iso(DEMO_START_WALL + 40)
        assert r["end_reason"] == "clean"


def test_job_rows_carry_the_waste_split(db_path):
    """busy + waste = cost per row; waste_by_reason is one compact-JSON cell that sums to waste_usd."""
    ledger = record_demo(db_path, ticks=40)
    _, rows = parse(run(db_path, "export", "--csv", "--session", "last").stdout)
    wasted = 0
    for r in rows:
        want = public(ledger.jobs[r["tag"]].to_json())
        assert num(r["busy_usd"]) + num(r["waste_usd"]) == pytest.approx(num(r["cost_usd"]), rel=1e-9, abs=1e-12)
        by_reason = json.loads(r["waste_by_reason"])
        assert r["waste_by_reason"] == json.dumps(by_reason, separators=(",", ":"))  # compact
        assert by_reason == pytest.approx(want["waste_by_reason"], rel=1e-12, abs=1e-15)
        assert sum(by_reason.values()) == pytest.approx(num(r["waste_usd"]), rel=1e-9, abs=1e-12)
        assert r["waste_top_reason"] == (want["waste_top_reason"] or "")
        wasted += num(r["waste_usd"]) > 0
    assert wasted  # the demo wastes money somewhere
    assert format_cell({"small_batch": 1.5}) == '{"small_batch":1.5}'  # starts with "{": never a formula


def test_costs_per_sample_after_counts_are_entered(db_path):
    record_demo(db_path, ticks=20)
    with Store.open(db_path) as store:
        before = next(j for j in store.jobs(1) if j["tag"] == "llama3-8b-lora")
        job = store.add_samples(1, "llama3-8b-lora", samples=200_000, tokens=4_000_000)
    reported = before["samples"] or 0  # what the demo's fine-tune reported through the spool while it recorded
    assert reported > 0 and not before["tokens"]
    samples = reported + 200_000
    result = run(db_path, "export", "--csv", "--session", "1")
    _, rows = parse(result.stdout)
    row = next(r for r in rows if r["tag"] == "llama3-8b-lora")
    cost = num(row["cost_usd"])
    assert int(row["samples"]) == samples and int(row["tokens"]) == 4_000_000
    assert num(row["cost_per_sample_usd"]) == pytest.approx(cost / samples)
    assert num(row["cost_per_1k_samples_usd"]) == pytest.approx(cost * 1000 / samples)
    assert num(row["cost_per_1m_tokens_usd"]) == pytest.approx(cost / 4)
    assert num(row["cost_per_sample_usd"]) == pytest.approx(job["cost_per_sample_usd"])
    idle = next(r for r in rows if r["tag"] == IDLE)
    assert idle["samples"] == "" and idle["cost_per_sample_usd"] == ""  # unknown, not zero


def test_views_agree(db_path):
    for day in range(3):
        record_demo(db_path, ticks=25 + 5 * day, start_wall=DEMO_START_WALL + day * DAY, seed=day)
    out = {by: parse(run(db_path, "export", "--csv", "--all", "--by", by).stdout) for by in COLUMNS}
    for by, (header, _) in out.items():
        assert tuple(header) == COLUMNS[by]
    jobs, sessions, gpus = out["job"][1], out["session"][1], out["gpu"][1]
    assert [s["session_id"] for s in sessions] == ["1", "2", "3"]
    for s in sessions:
        sid = s["session_id"]
        js = [r for r in jobs if r["session_id"] == sid]
        gs = [r for r in gpus if r["session_id"] == sid]
        assert len(gs) == 5 == int(s["gpu_count"])
        for key in ("cost_usd", "energy_kwh"):
            total = num(s[key])
            assert math.fsum(num(r[key]) for r in js) == pytest.approx(total, rel=1e-9)
            assert math.fsum(num(r[key]) for r in gs) == pytest.approx(total, rel=1e-9)
        assert math.fsum(num(r["idle_cost_usd"]) for r in gs) == pytest.approx(num(s["idle_cost_usd"]), rel=1e-9)
        assert num(s["duration_seconds"]) > 0
    with Store.open(db_path) as store:
        for rec in iter_sessions(store, session_ids(store)):
            assert num(next(s for s in sessions if s["session_id"] == str(rec.id))["cost_usd"]) == pytest.approx(
                rec.total_cost_usd, rel=1e-9
            )


def test_gpu_rows_carry_the_price(db_path):
    record_demo(db_path, ticks=10)
    _, rows = parse(run(db_path, "export", "--csv", "--by", "gpu").stdout)
    assert [r["gpu_index"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert {r["model_key"] for r in rows} == {"H100-SXM", "A100-80GB"}
    for r in rows:
        assert num(r["rate_usd_per_hour"]) > 0
        assert r["price_mode"] in ("rental", "owned")
        assert r["energy_method"] == "counter"
        assert r["unknown_price"] == "false"


def test_formula_tag_is_inert(db_path):
    record_demo(db_path, ticks=10, retag=("llama3-8b-lora", EVIL_TAG))
    text = run(db_path, "export", "--csv").stdout
    _, rows = parse(text)
    tags = [r["tag"] for r in rows]
    assert "'" + EVIL_TAG in tags
    assert not any(t.startswith(("=", "+", "-", "@")) for t in tags)
    # The quotes inside the tag are doubled and the cell quoted: it cannot break out of its cell.
    assert '"\'=HYPERLINK(""http://example.invalid"",""x"")"' in text
    # Real numbers are not touched by the neutralising.
    assert all(not r["cost_usd"].startswith("'") for r in rows)


def test_since_and_output_file(db_path, tmp_path):
    record_demo(db_path, ticks=10, start_wall=DEMO_START_WALL)
    record_demo(db_path, ticks=10, start_wall=DEMO_START_WALL + 10 * DAY)
    out = tmp_path / "out" / "sessions.csv"
    out.parent.mkdir()
    result = run(db_path, "export", "--csv", "--since", "2026-01-05T00:00:00Z", "--by", "session", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "1 rows" in result.stderr and str(out) in result.stderr
    _, rows = parse(out.read_text())
    assert [r["session_id"] for r in rows] == ["2"]
    assert [p.name for p in out.parent.iterdir()] == ["sessions.csv"]  # no temp file left behind
    assert out.read_bytes().count(b"\r\n") == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--session", "99"], "no session 99"),
        (["--session", "abc"], "not a session"),
        (["--since", "2030-01-01"], "no sessions ran since 2030-01-01"),
        (["--since", "last tuesday"], "bad date"),
        (["--session", "1", "--all"], "choose one of"),
        ([], None),
    ],
)
def test_bad_selections_fail_clearly(db_path, args, message):
    record_demo(db_path, ticks=5)
    result = run(db_path, "export", "--csv", *args)
    if message is None:
        assert result.exit_code == 0
        return
    assert result.exit_code != 0
    assert message in str(result.exception) + result.output


def test_no_format_writes_csv_and_no_database_fails(db_path):
    result = run(db_path, "export")
    assert result.exit_code != 0
    record_demo(db_path, ticks=3)
    plain, flagged = run(db_path, "export"), run(db_path, "export", "--csv")
    assert plain.exit_code == 0 and plain.stdout == flagged.stdout  # CSV, the only format, is the default
    header, rows = parse(plain.stdout)
    assert tuple(header) == JOB_COLUMNS and rows


def test_demo_export_to_a_file_writes_csv(tmp_path):
    """`gputab --demo export -o out.csv`, through the real entry point, on the demo's own database."""
    import os
    import subprocess

    record_demo(tmp_path / "data" / "demo.db", ticks=5)
    out = tmp_path / "out.csv"
    env = {**os.environ, "GPUTAB_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [*GPUTAB, "--demo", "export", "-o", str(out)], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    header, rows = parse(out.read_text())
    assert tuple(header) == JOB_COLUMNS and {r["tag"] for r in rows} >= {"llama3-8b-lora", "(idle)"}


def test_cli_errors_exit_nonzero_with_one_line(db_path):
    """Through the real entry point: a message on stderr, no traceback, a non-zero exit."""
    import subprocess

    record_demo(db_path, ticks=3)
    proc = subprocess.run(
        [*GPUTAB, "--db", str(db_path), "export", "--csv", "--session", "42"], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "gputab: there is no session 42" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [*GPUTAB, "--db", str(db_path), "export", "--csv", "--since", "nope"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "bad date" in proc.stderr


def test_export_of_a_year_of_sessions_reads_the_stored_totals_only(db_path):
    """A year of daily sessions exports from the stored totals, never from the series (how long it takes is a bench
    row: bench/RESULTS.md, "export a year of sessions to CSV")."""
    record_demo(db_path, ticks=5)
    with Store.open(db_path) as store:
        db = store.db
        base = db.execute("SELECT * FROM sessions WHERE id = 1").fetchone()
        cols = [d[0] for d in db.execute("SELECT * FROM sessions").description]
        jobs = [
            dict(zip([d[0] for d in db.execute("SELECT * FROM jobs").description], r))
            for r in db.execute("SELECT * FROM jobs WHERE session_id = 1").fetchall()
        ]
        gpus = [
            dict(zip([d[0] for d in db.execute("SELECT * FROM session_gpus").description], r))
            for r in db.execute("SELECT * FROM session_gpus WHERE session_id = 1").fetchall()
        ]
        with db.conn:
            for sid in range(2, 366):
                row = dict(zip(cols, base), id=sid)
                db["sessions"].insert(row)
                db["jobs"].insert_all([{**j, "id": None, "session_id": sid} for j in jobs])
                db["session_gpus"].insert_all([{**g, "session_id": sid} for g in gpus])
    statements: list[str] = []
    with Store.open(db_path) as store:
        store.db.conn.set_trace_callback(statements.append)
        buf = io.StringIO()
        count = export_csv(iter_sessions(store, session_ids(store)), buf, by="job")
    assert count == 365 * len(jobs) and len(buf.getvalue().splitlines()) == count + 1
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert reads and not [s for s in reads if "gpu_samples" in s or "job_samples" in s]


def test_documented_columns_are_distinct():
    for cols in (JOB_COLUMNS, SESSION_COLUMNS, GPU_COLUMNS):
        assert len(set(cols)) == len(cols)
        assert cols[:5] == ("session_id", "host", "started_at", "ended_at", "end_reason")
