"""The demo's jobs report samples and tokens through the spool, as a real job does (issue 23 item 3).

The demo box's real recorder runs on a fake clock; the reports go through the demo's own spool directory, the
recorder's baseline and trust, and the store; ``gputab show --json`` (a real subprocess) reads them back.
"""

from __future__ import annotations

import csv
import json
import subprocess

import pytest

from gputab.sampling.demo_reports import REPORTERS, SPOOL_REPORTERS, counts_at, lora_progress, server_counts_at
from gputab.store.database import Store
from support import demo_recorder, gputab_cmd


def _reporter(tag):
    return next(r for r in REPORTERS if r.tag == tag)


def _record_demo(db, seconds: int):
    rec, clock = demo_recorder(db, store=Store.open(db))
    rec.start()
    for _ in range(seconds):
        clock.advance(1.0)
        rec.step()
    assert rec.close("clean")
    return rec


def test_counts_are_deterministic_from_the_seed_and_never_go_down():
    for r in REPORTERS:
        series = [counts_at(r, t / 2, seed=3) for t in range(400)]
        assert series == [counts_at(r, t / 2, seed=3) for t in range(400)]
        assert all(b[0] >= a[0] and b[1] >= a[1] for a, b in zip(series, series[1:]))
        assert counts_at(r, 120.0, seed=3) != counts_at(r, 120.0, seed=4)
    assert counts_at(_reporter("llama3-8b-lora"), 0.0, seed=0) == (0, 0)


def test_the_fine_tune_slows_during_its_all_reduce_stall():
    lora = _reporter("llama3-8b-lora")
    steady = counts_at(lora, 30.0, 0)[0] - counts_at(lora, 27.0, 0)[0]
    stalled = counts_at(lora, 43.0, 0)[0] - counts_at(lora, 40.0, 0)[0]  # the stall: 40-43 s of each minute
    assert stalled < 0.6 * steady
    assert lora_progress(60.0) > lora_progress(0.0)


def test_after_one_minute_the_demo_session_has_cost_per_sample_and_per_million_tokens(tmp_path):
    db = tmp_path / "demo.db"
    _record_demo(db, 60)
    out = subprocess.run(
        [*gputab_cmd(), "--db", str(db), "show", "--json"], capture_output=True, text=True, timeout=60, check=True
    )
    jobs = {j["tag"]: j for j in json.loads(out.stdout)["jobs"]}
    lora, evals, serve = jobs["llama3-8b-lora"], jobs["eval-mmlu"], jobs["mistral-7b-serve"]
    # Every count the demo wrote while it recorded, read at the clean stop: exactly its counts at 60 s.
    assert lora["samples"] == counts_at(_reporter("llama3-8b-lora"), 60.0, 0)[0] > 0
    assert evals["samples"] == counts_at(_reporter("eval-mmlu"), 60.0, 0)[0] > 0
    # The server's counters are read at each series step (the last at 60 s): prompt and generated apart and together.
    server = _reporter("mistral-7b-serve")
    assert (serve["prompt_tokens"], serve["generated_tokens"]) == server_counts_at(server, 60.0, 0)
    assert serve["prompt_tokens"] + serve["generated_tokens"] == serve["tokens"] == counts_at(server, 60.0, 0)[1]
    assert serve["prompt_tokens"] > serve["generated_tokens"] > 0
    for j in (lora, evals):
        assert j["cost_per_sample_usd"] == pytest.approx(j["cost_usd"] / j["samples"], rel=1e-9)
        assert j["cost_per_1k_samples_usd"] == pytest.approx(1000 * j["cost_usd"] / j["samples"], rel=1e-9)
    assert serve["cost_per_1m_tokens_usd"] == pytest.approx(1e6 * serve["cost_usd"] / serve["tokens"], rel=1e-9)
    assert serve["samples"] == 0 or serve["samples"] is None
    assert lora["projected_cost_usd"] is not None  # beside the forecast
    assert "(idle)" in jobs and not jobs["(idle)"]["samples"]


def test_the_demo_reports_reach_the_csv_export(tmp_path):
    db = tmp_path / "demo.db"
    _record_demo(db, 10)
    out_csv = tmp_path / "out.csv"
    subprocess.run(
        [*gputab_cmd(), "--db", str(db), "export", "--csv", "-o", str(out_csv)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = {r["tag"]: r for r in csv.DictReader(out_csv.open())}
    assert float(rows["eval-mmlu"]["cost_per_1k_samples_usd"]) > 0
    assert float(rows["mistral-7b-serve"]["cost_per_1m_tokens_usd"]) > 0


def test_the_demo_writes_only_its_own_spool(tmp_path):
    db = tmp_path / "demo.db"
    _record_demo(db, 3)
    files = sorted(p.name for p in (tmp_path / "demo-spool").iterdir())
    assert len(files) == len(SPOOL_REPORTERS) == len(REPORTERS) - 1  # the inference server is read, not spooled
    assert not (tmp_path / "spool").exists()  # GPUTAB_SPOOL, the real spool of this test: untouched
