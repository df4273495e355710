"""``gputab spend``: sums equal the export's, restarts merge, days and windows pro-rate, databases stay apart.

Sessions are recorded from the demo box by the real Recorder on a fake clock (demo backend -> Attributor -> Ledger
-> store), so the figures are what a user's database would hold.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gputab.cli.main import cli
from gputab.config.settings import Config
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DEMO_START_WALL, DemoBackend, FakeClock
from gputab.store import Store
from support import gputab_cmd, subprocess_env

DAY = 86400.0
ALL = ("--since", "2000-01-01T00:00Z")
SUMMED = ("cost_usd", "gpu_hours", "effective_gpu_hours", "energy_kwh")


def record(
    db: Path,
    seconds: int,
    start_wall: float = DEMO_START_WALL,
    host: str | None = None,
    seed: int = 0,
    retag: tuple[str, str] | None = None,
) -> int:
    """Record one closed demo session of ``seconds`` one-second ticks starting at ``start_wall``; its id.

    ``retag``: ``(old, new)`` retags a job by hand right after the start, as the TUI would.
    """
    clock = FakeClock(wall_start=start_wall)
    backend = DemoBackend(seed=seed, clock=clock, wall_clock=clock.wall)
    if host is not None:
        backend.host = host
    rec = Recorder(backend, Store.open(db), Config(), clock=clock, wall_clock=clock.wall)
    rec.start()
    if retag:
        assert rec.attributor.retag(*retag)
    for _ in range(seconds):
        clock.advance(1.0)
        rec.step()
    assert rec.close("clean")
    return rec.session_id


def spend_json(db: Path | list[Path], *args: str) -> dict:
    dbs = db if isinstance(db, list) else [db]
    r = CliRunner().invoke(
        cli, ["spend", *[a for p in dbs for a in ("--db", str(p))], *args, "--json"], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def rel_close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "data" / "gputab.db"


@pytest.fixture
def three_sessions(db) -> Path:
    """Day 0: a session and its restart (same jobs); day 2: another; samples entered for one job."""
    first = record(db, 90)
    record(db, 60, start_wall=DEMO_START_WALL + 120)
    record(db, 50, start_wall=DEMO_START_WALL + 2 * DAY, seed=1)
    with Store.open(db) as store:
        store.add_samples(first, "llama3-8b-lora", samples=200_000, tokens=9_000_000)
    return db


def test_spend_sums_equal_export_by_job(three_sessions):
    """The issue's test: every --by view sums to what `gputab export --by job` sums to, to 1e-9."""
    r = CliRunner().invoke(cli, ["--db", str(three_sessions), "export", "--csv", "--all"], catch_exceptions=False)
    exported = list(csv.DictReader(io.StringIO(r.output)))
    assert len({row["session_id"] for row in exported}) == 3
    want = {k: math.fsum(float(row[k] or 0) for row in exported) for k in SUMMED}
    want["samples"] = sum(int(row["samples"]) for row in exported if row["samples"])
    assert want["cost_usd"] > 0 and want["samples"] > 200_000  # entered by hand, and the demo's reports
    for by in ("tag", "user", "host", "day", "week"):
        out = spend_json(three_sessions, "--by", by, *ALL)
        for k in SUMMED:
            assert rel_close(math.fsum(row[k] for row in out["rows"]), want[k]), (by, k)
            assert rel_close(out["total"][k], want[k]), (by, k)
        assert sum(row["samples"] or 0 for row in out["rows"]) == want["samples"]
        assert out["total"]["session_count"] == 3
    # And per GPU, against the export's GPU rows (which include idle and unobserved time).
    r = CliRunner().invoke(cli, ["--db", str(three_sessions), "export", "--csv", "--all", "--by", "gpu"])
    gpus = list(csv.DictReader(io.StringIO(r.output)))
    out = spend_json(three_sessions, "--by", "gpu", *ALL)
    for k in ("cost_usd", "energy_kwh"):
        assert rel_close(out["total"][k], math.fsum(float(g[k]) for g in gpus)), k


def test_a_job_cut_by_a_recorder_restart_is_one_row(three_sessions):
    with Store.open(three_sessions) as store:
        first, second = (store.jobs(sid) for sid in (1, 2))
    reported = sum(j["samples"] or 0 for j in (*first, *second) if j["tag"] == "llama3-8b-lora") - 200_000
    cost = {}
    for jobs in (first, second):
        for j in jobs:
            cost[j["tag"]] = cost.get(j["tag"], 0.0) + j["cost_usd"]
    out = spend_json(three_sessions, "--by", "tag", "--until", "2026-01-02T00:00Z", *ALL)
    tags = [row["tag"] for row in out["rows"]]
    assert len(tags) == len(set(tags)) == len(cost)
    lora = next(row for row in out["rows"] if row["tag"] == "llama3-8b-lora")
    assert lora["session_count"] == 2
    for row in out["rows"]:
        assert rel_close(row["cost_usd"], cost[row["tag"]]), row["tag"]
    # Samples entered in the first session count once; $/sample is over both sessions' cost.
    assert reported > 0 and lora["samples"] == 200_000 + reported
    assert rel_close(lora["cost_per_sample_usd"], cost["llama3-8b-lora"] / (200_000 + reported))


def test_idle_and_utilization_figures(three_sessions):
    out = spend_json(three_sessions, "--by", "tag", *ALL)
    idle = next(row for row in out["rows"] if row["tag"] == "(idle)")
    assert idle["idle_cost_usd"] == idle["cost_usd"] > 0 and idle["idle_gpu_hours"] == idle["gpu_hours"]
    assert rel_close(out["total"]["idle_cost_usd"], math.fsum(row["idle_cost_usd"] for row in out["rows"]))
    for row in out["rows"]:
        if row["avg_utilization_pct"] is not None and row["tag"] != "(idle)":
            # 0 is real: the demo holds VRAM at 0 % utilization (its stranded-memory job)
            assert 0 <= row["avg_utilization_pct"] <= 100
            if row["effective_gpu_hours"] > 0:
                assert rel_close(row["cost_per_effective_gpu_hour_usd"], row["cost_usd"] / row["effective_gpu_hours"])


def test_day_split_prorates_by_series_time(db):
    """A session over UTC midnight: (idle) holds one GPU for the whole of it, so its days split 100 s : 200 s."""
    sid = record(db, 300, start_wall=DEMO_START_WALL + DAY - 100)
    with Store.open(db) as store:
        jobs = {j["tag"]: j for j in store.jobs(sid)}
    out = spend_json(db, "--by", "day", "--utc", *ALL)
    assert [row["day"] for row in out["rows"]] == ["2026-01-01", "2026-01-02"]
    assert out["timezone"] == "UTC"
    total = math.fsum(j["cost_usd"] for j in jobs.values())
    assert rel_close(math.fsum(row["cost_usd"] for row in out["rows"]), total)
    # Each job's days split as its series' GPU-seconds do: steps 1-10 (ending by midnight) vs steps 11-30.
    with Store.open(db) as store:
        held = {
            tag: store.db.execute(
                "SELECT s.t_ms, s.gpu_s FROM job_samples s JOIN jobs j ON j.id = s.job_id WHERE j.session_id = ? "
                "AND j.tag = ? ORDER BY s.t_ms",
                [sid, tag],
            ).fetchall()
            for tag in jobs
        }
    for tag in ("(idle)", "llama3-8b-lora"):
        days = spend_json(db, "--by", "day", "--utc", "--tag", tag, *ALL)["rows"]
        # Steps ending by midnight (100 s in); a job that held no GPU in a step has no row for it.
        first = math.fsum(g for t, g in held[tag] if t <= 100_000) / math.fsum(g for _, g in held[tag])
        assert 0 < first < 1
        assert rel_close(days[0]["cost_usd"], jobs[tag]["cost_usd"] * first), tag
        assert rel_close(days[0]["cost_usd"] + days[1]["cost_usd"], jobs[tag]["cost_usd"]), tag
    # By week: one week holds both days.
    weeks = spend_json(db, "--by", "week", "--utc", *ALL)["rows"]
    assert [w["week"] for w in weeks] == ["2025-12-29"] and rel_close(weeks[0]["cost_usd"], total)


def test_since_and_until_clip_a_session(db):
    sid = record(db, 300)
    whole = spend_json(db, "--tag", "(idle)", *ALL)["rows"][0]["cost_usd"]
    start = "2026-01-01T00:01:40Z"  # 100 s in
    clipped = spend_json(db, "--tag", "(idle)", "--since", start)["rows"][0]
    with Store.open(db) as store:
        steps = store.db.execute(
            "SELECT s.t_ms, s.gpu_s FROM job_samples s JOIN jobs j ON j.id = s.job_id WHERE j.session_id = ? "
            "AND j.tag = '(idle)'",
            [sid],
        ).fetchall()
    after = math.fsum(g for t, g in steps if t > 100_000) / math.fsum(g for _, g in steps)
    assert 0.5 < after < 1
    assert rel_close(clipped["cost_usd"], whole * after)
    early = spend_json(db, "--tag", "(idle)", *ALL, "--until", start)["rows"][0]
    assert rel_close(early["cost_usd"] + clipped["cost_usd"], whole)
    assert spend_json(db, "--since", "2026-02-01")["rows"] == []
    # Without --since: the 30 days before --until.
    assert spend_json(db, "--until", "2026-01-31")["rows"]
    assert spend_json(db, "--until", "2026-02-01")["rows"] == []


@pytest.mark.slow
def test_local_days_follow_the_zone(db):
    """18:00-19:00 UTC is 23:30-00:30 in India: two local days, one UTC day; the zone is stated."""
    record(db, 3600, start_wall=DEMO_START_WALL + 18 * 3600)
    env = subprocess_env(TZ="Asia/Kolkata")
    args = [*gputab_cmd(), "spend", "--db", str(db), "--by", "day", *ALL, "--json"]
    local = json.loads(subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout)
    utc = json.loads(subprocess.run([*args, "--utc"], capture_output=True, text=True, env=env, check=True).stdout)
    assert [r["day"] for r in local["rows"]] == ["2026-01-01", "2026-01-02"]
    assert [r["day"] for r in utc["rows"]] == ["2026-01-01"]
    assert local["timezone"] == "IST, UTC+05:30" and utc["timezone"] == "UTC"
    # Half an hour on each side of local midnight: about half the cost each (series steps are 10 s).
    share = local["rows"][0]["cost_usd"] / local["total"]["cost_usd"]
    assert abs(share - 0.5) < 0.01
    assert rel_close(local["total"]["cost_usd"], utc["total"]["cost_usd"])
    text = subprocess.run(args[:-1], capture_output=True, text=True, env=env, check=True).stdout
    assert "days in IST, UTC+05:30" in text.splitlines()[0]


def test_several_databases_keep_hosts_apart(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    record(a, 60)
    record(b, 60, host="gpu-node-7")
    one = spend_json(a, *ALL)
    both = spend_json([a, b], *ALL)
    lora = [row for row in both["rows"] if row["tag"] == "llama3-8b-lora"]
    assert sorted(row["host"] for row in lora) == ["demo-box", "gpu-node-7"]
    assert rel_close(both["total"]["cost_usd"], 2 * one["total"]["cost_usd"])
    hosts = spend_json([a, b], "--by", "host", *ALL)["rows"]
    assert sorted(h["host"] for h in hosts) == ["demo-box", "gpu-node-7"]
    # The same file named twice is read once.
    again = spend_json([a, a], *ALL)
    assert rel_close(again["total"]["cost_usd"], one["total"]["cost_usd"])


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reading_never_creates_or_migrates(tmp_path):
    missing = tmp_path / "nothing" / "here.db"
    r = subprocess.run([*gputab_cmd(), "spend", "--db", str(missing)], capture_output=True, text=True, check=False)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not missing.exists() and not missing.parent.exists()
    # A database from before m007_job_user: spend reads it as it is (users "?") and leaves it untouched.
    old = tmp_path / "old.db"
    record(old, 40)
    conn = sqlite3.connect(old)
    conn.execute("ALTER TABLE jobs DROP COLUMN user")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm007_job_user'")
    conn.commit()
    conn.close()
    before = _digest(old)
    out = spend_json(old, "--by", "user", *ALL)
    users = {row["user"] for row in out["rows"]}
    assert "?" in users and users <= {"?", "(idle)", "(unobserved)"}
    assert _digest(old) == before
    conn = sqlite3.connect(old)
    assert "user" not in {r[1] for r in conn.execute("PRAGMA table_info(jobs)")}
    conn.close()


def test_users_are_stored_and_grouped(db):
    sid = record(db, 60)
    with Store.open(db) as store:
        stored = {r["tag"]: r["user"] for r in store.db.query("SELECT tag, user FROM jobs WHERE session_id = ?", [sid])}
        procs = {}
        for r in store.db.query("SELECT tag, user FROM processes WHERE session_id = ?", [sid]):
            procs.setdefault(r["tag"], set()).add(r["user"])
    # Each job's user is the owner of its processes; the buckets have none.
    for tag, users in procs.items():
        known = sorted(u for u in users if u)  # a process that has exited (stranded memory) has no user
        assert stored[tag] == (",".join(known) or None)
    assert stored["(idle)"] is None
    out = spend_json(db, "--by", "user", *ALL)
    by_user = {row["user"]: row["cost_usd"] for row in out["rows"]}
    for user in stored.values():
        if user is not None:
            assert user in by_user
    assert "(idle)" in by_user


@pytest.mark.parametrize(
    "args, words",
    [
        (("--since", "banana"), "bad date"),
        (("--since", "99999999d"), "99999999d': an age goes back at most"),
        (("--until", "99999-01-01"), "bad date"),
        (("--by", "nope"), "--by 'nope'"),
        (("--since", "2026-02-01", "--until", "2026-01-01"), "not before"),
        (("--json", "--csv"), "one of --json and --csv"),
        (("--by", "gpu", "--tag", "exp-*"), "--tag does not apply"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, words):
    r = subprocess.run([*gputab_cmd(), "spend", *args], capture_output=True, text=True, check=False)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert words in r.stderr


def test_table_and_csv(three_sessions, tmp_path):
    r = CliRunner().invoke(cli, ["spend", "--db", str(three_sessions), *ALL], catch_exceptions=False)
    lines = r.output.splitlines()
    assert lines[0].startswith("Spend by tag") and "3 session(s)" in lines[0]
    assert lines[-1].startswith("total")
    r = CliRunner().invoke(cli, ["spend", "--db", str(three_sessions), "--by", "user", *ALL, "--csv"])
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert rows and list(rows[0])[:3] == ["host", "user", "cost_usd"]
    out = spend_json(three_sessions, "--by", "user", *ALL)
    assert [row["user"] for row in rows] == [row["user"] for row in out["rows"]]


def test_by_user_with_a_real_second_user(fake_nvml, tmp_path):
    """`gputab record` on the fake NVML with one job run by nobody and one by root: spend names each owner."""
    from fakenvml import GIB, GpuSpec, Proc, Scenario

    if os.geteuid() != 0:
        pytest.skip("needs root to start a process as another user")
    config = tmp_path / "config.toml"
    config.write_text("[recorder]\ninterval = 0.2\ncommit_interval = 0.4\nseries_interval = 1.0\n")
    env = {**os.environ, "GPUTAB_CONFIG": str(config)}
    theirs = subprocess.Popen(
        ["sleep", "60"], env={**env, "GPUTAB_TAG": "job-of-nobody"}, user=65534, group=65534, cwd="/"
    )
    mine = subprocess.Popen(["sleep", "60"], env={**env, "GPUTAB_TAG": "job-of-root"})
    try:
        fake_nvml.write(
            Scenario(
                gpus=[GpuSpec(util=80, mem_used=10 * GIB), GpuSpec(util=40, mem_used=10 * GIB)],
                processes=[Proc(0, theirs.pid), Proc(1, mine.pid)],
            )
        )
        rec = subprocess.Popen(
            [*gputab_cmd(), "record"],
            env=fake_nvml.env(GPUTAB_CONFIG=str(config)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3.0)
        rec.send_signal(signal.SIGTERM)
        _, err = rec.communicate(timeout=30)
        assert rec.returncode == 0, err
    finally:
        for p in (theirs, mine):
            p.kill()
            p.wait()
    r = subprocess.run(
        [*gputab_cmd(), "spend", "--by", "user", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=fake_nvml.env(GPUTAB_CONFIG=str(config)),
    )
    rows = {row["user"]: row for row in json.loads(r.stdout)["rows"]}
    assert rows["nobody"]["cost_usd"] > 0 and rows["root"]["cost_usd"] > 0
    tags = spend_json(Path(os.environ["GPUTAB_DB"]), "--by", "tag")["rows"]
    cost = {row["tag"]: row["cost_usd"] for row in tags}
    assert rel_close(rows["nobody"]["cost_usd"], cost["job-of-nobody"])
    assert rel_close(rows["root"]["cost_usd"], cost["job-of-root"])


def test_csv_cells_a_spreadsheet_would_run_are_text(db):
    evil = '=HYPERLINK("http://example.invalid","x")'
    record(db, 30, retag=("llama3-8b-lora", evil))
    r = CliRunner().invoke(cli, ["spend", "--db", str(db), *ALL, "--csv"], catch_exceptions=False)
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert "'" + evil in [row["tag"] for row in rows]
    assert evil not in [row["tag"] for row in rows]
    text = CliRunner().invoke(cli, ["spend", "--db", str(db), *ALL]).output
    assert evil[:28] in text  # the table prints it as it is: a terminal runs no formulas


def test_gpu_rows_split_by_their_series(db):
    """A GPU cut at midnight: its two pieces add up to its stored totals, split as its series steps' length."""
    record(db, 300, start_wall=DEMO_START_WALL + DAY - 100)
    whole = spend_json(db, "--by", "gpu", *ALL)
    midnight = "2026-01-02T00:00Z"
    before = spend_json(db, "--by", "gpu", *ALL, "--until", midnight)
    after = spend_json(db, "--by", "gpu", "--since", midnight)
    for w in whole["rows"]:
        b = next(r for r in before["rows"] if r["gpu"] == w["gpu"])
        a = next(r for r in after["rows"] if r["gpu"] == w["gpu"])
        assert rel_close(a["cost_usd"] + b["cost_usd"], w["cost_usd"]), w["gpu"]
        # Steps of 10 s: 100 s before midnight, 200 s after.
        assert rel_close(b["gpu_hours"], w["gpu_hours"] / 3), w["gpu"]


def test_local_midnights_follow_daylight_saving(monkeypatch):
    """In New York, 2026-03-08 has 23 hours: the day cut is at local midnight either side of the change."""
    from datetime import date

    from gputab.store.spend_window import bucket_start, bucket_wall

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert bucket_wall(date(2026, 3, 9), False) - bucket_wall(date(2026, 3, 8), False) == 23 * 3600
        assert bucket_start(bucket_wall(date(2026, 3, 9), False) - 1, "day", False) == date(2026, 3, 8)
        assert bucket_start(bucket_wall(date(2026, 3, 9), False), "week", False) == date(2026, 3, 9)
    finally:
        monkeypatch.undo()
        time.tzset()


# -- waste: busy and wasted dollars, and the waste by reason ------------------------------------------------------
def show_jobs(db: Path, sid: int) -> list[dict]:
    r = CliRunner().invoke(cli, ["--db", str(db), "show", str(sid), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)["jobs"]


def check_waste_row(row: dict) -> None:
    """busy + waste = cost and the reasons sum to the waste, where the row's waste is known."""
    assert row["waste_usd"] is not None and row["busy_usd"] is not None, row
    assert rel_close(row["busy_usd"] + row["waste_usd"], row["cost_usd"]), row
    assert rel_close(math.fsum(row["waste_by_reason"].values()), row["waste_usd"]), row


def test_waste_sums_equal_show(three_sessions):
    """Per tag and in total, spend's busy and wasted dollars and reasons are what `gputab show --json` says."""
    want: dict[str, dict] = {}
    for sid in (1, 2, 3):
        for j in show_jobs(three_sessions, sid):
            w = want.setdefault(j["tag"], {"busy_usd": [], "waste_usd": [], "reasons": {}})
            w["busy_usd"].append(j["busy_usd"])
            w["waste_usd"].append(j["waste_usd"])
            for reason, usd in j["waste_by_reason"].items():
                w["reasons"].setdefault(reason, []).append(usd)
    assert math.fsum(v for w in want.values() for v in w["waste_usd"]) > 0
    out = spend_json(three_sessions, "--by", "tag", *ALL)
    assert {row["tag"] for row in out["rows"]} == set(want)
    for row in out["rows"]:
        w = want[row["tag"]]
        for k in ("busy_usd", "waste_usd"):
            assert rel_close(row[k], math.fsum(w[k])), (row["tag"], k)
        assert set(row["waste_by_reason"]) == set(w["reasons"]), row["tag"]
        for reason, usd in w["reasons"].items():
            assert rel_close(row["waste_by_reason"][reason], math.fsum(usd)), (row["tag"], reason)
        check_waste_row(row)
    idle = next(row for row in out["rows"] if row["tag"] == "(idle)")
    assert rel_close(idle["waste_usd"], idle["cost_usd"]) and list(idle["waste_by_reason"]) == ["idle"]
    for by in ("user", "host", "day", "week"):
        other = spend_json(three_sessions, "--by", by, *ALL)
        for row in [*other["rows"], other["total"]]:
            check_waste_row(row)
        for k in ("busy_usd", "waste_usd"):
            assert rel_close(other["total"][k], math.fsum(v for w in want.values() for v in w[k])), (by, k)


def test_waste_is_prorated_like_cost(db):
    """A session over UTC midnight: each day's busy, waste and reasons are the job's, split as its cost is."""
    sid = record(db, 300, start_wall=DEMO_START_WALL + DAY - 100)
    jobs = {j["tag"]: j for j in show_jobs(db, sid)}
    days = spend_json(db, "--by", "day", "--utc", *ALL)["rows"]
    assert len(days) == 2
    for row in days:
        check_waste_row(row)
    for k in ("busy_usd", "waste_usd"):
        assert rel_close(days[0][k] + days[1][k], math.fsum(j[k] for j in jobs.values())), k
    for tag in ("(idle)", "llama3-8b-lora"):
        split = spend_json(db, "--by", "day", "--utc", "--tag", tag, *ALL)["rows"]
        f = split[0]["cost_usd"] / jobs[tag]["cost_usd"]
        assert 0 < f < 1
        for k in ("busy_usd", "waste_usd"):
            assert rel_close(split[0][k], jobs[tag][k] * f), (tag, k)
            assert rel_close(split[0][k] + split[1][k], jobs[tag][k]), (tag, k)
        for reason, usd in jobs[tag]["waste_by_reason"].items():
            assert rel_close(split[0]["waste_by_reason"][reason], usd * f), (tag, reason)
        for row in split:
            check_waste_row(row)


def test_waste_in_the_table_and_csv(three_sessions):
    r = CliRunner().invoke(cli, ["spend", "--db", str(three_sessions), *ALL], catch_exceptions=False)
    assert "wasted" in r.output.splitlines()[1]
    r = CliRunner().invoke(cli, ["spend", "--db", str(three_sessions), *ALL, "--csv"], catch_exceptions=False)
    rows = list(csv.DictReader(io.StringIO(r.output)))
    out = spend_json(three_sessions, *ALL)
    for row, want in zip(rows, out["rows"], strict=True):
        assert rel_close(float(row["waste_usd"]), want["waste_usd"])
        assert json.loads(row["waste_by_reason"]) == want["waste_by_reason"]


def test_gpu_rows_have_no_waste(three_sessions):
    out = spend_json(three_sessions, "--by", "gpu", *ALL)
    assert out["rows"]
    for row in [*out["rows"], out["total"]]:
        assert row["busy_usd"] is None and row["waste_usd"] is None and row["waste_by_reason"] is None


def test_a_database_from_before_waste_has_none(tmp_path):
    """Sessions recorded before the waste split: NULL figures, or no columns at all; None, no error, no write."""
    nulls, old = tmp_path / "nulls.db", tmp_path / "old.db"
    for path in (nulls, old):
        record(path, 40)
    conn = sqlite3.connect(nulls)
    conn.execute("UPDATE jobs SET busy_usd = NULL, waste_usd = NULL, tensor_active_usd = NULL")
    conn.commit()
    conn.close()
    conn = sqlite3.connect(old)
    for column in ("busy_usd", "waste_usd", "tensor_active_usd"):
        conn.execute(f"ALTER TABLE jobs DROP COLUMN {column}")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm006_waste'")
    conn.commit()
    conn.close()
    for path in (nulls, old):
        before = _digest(path)
        for by in ("tag", "day"):
            out = spend_json(path, "--by", by, *ALL)
            assert out["rows"] and out["total"]["cost_usd"] > 0
            for row in [*out["rows"], out["total"]]:
                assert row["busy_usd"] is None and row["waste_usd"] is None and row["waste_by_reason"] is None
        text = CliRunner().invoke(cli, ["spend", "--db", str(path), *ALL], catch_exceptions=False).output
        assert "wasted" in text
        assert _digest(path) == before
    # A row mixing a pre-waste session and a recorded one counts the recorded one's waste only.
    record(nulls, 40, start_wall=DEMO_START_WALL + DAY)
    jobs = {j["tag"]: j for j in show_jobs(nulls, 2)}
    for row in spend_json(nulls, "--by", "tag", *ALL)["rows"]:
        assert row["session_count"] == 2
        assert rel_close(row["waste_usd"], jobs[row["tag"]]["waste_usd"]), row["tag"]
