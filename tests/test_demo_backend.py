import json
import subprocess

from gputab.sampling.demo import DemoBackend, FakeClock
from support import gputab_cmd


def _polls(seed, n=5, step=1.0):
    clock = FakeClock()
    b = DemoBackend(seed=seed, clock=clock, wall_clock=clock.wall)
    out = []
    for _ in range(n):
        out.append(b.poll())
        clock.advance(step)
    return out


def test_same_seed_same_numbers():
    a = _polls(7)
    b = _polls(7)
    assert [s.to_json() for s in a] == [s.to_json() for s in b]


def test_other_seed_other_noise():
    a, b = _polls(1), _polls(2)
    assert [g.power_w for g in a[0].gpus] != [g.power_w for g in b[0].gpus]


def test_box_shape_busy_idle_and_slow():
    snap = _polls(0, n=1)[0]
    assert len(snap.gpus) == 5
    util = {g.index: g.utilization_pct for g in snap.gpus}
    assert util[0] > 80 and util[1] > 80  # LoRA fine-tune
    assert 15 < util[2] < 50  # slow eval
    assert util[3] == 0 and not snap.processes_on(3)  # idle GPU
    pids = {p.pid for p in snap.processes}
    assert {31001, 31002, 32010} <= pids


def test_energy_counter_advances_with_power():
    polls = _polls(0, n=3, step=10.0)
    for i in range(5):
        e0, e1 = polls[0].gpus[i].energy_mj, polls[1].gpus[i].energy_mj
        p0, p1 = polls[0].gpus[i].power_w, polls[1].gpus[i].power_w
        expected = (p0 + p1) / 2 * 10 * 1000
        assert abs((e1 - e0) - expected) / expected < 0.01


def test_jobs_start_and_finish():
    polls = _polls(0, n=40, step=10.0)
    seen = [33100 in {p.pid for p in s.processes} for s in polls]
    assert any(seen) and not all(seen)
    # it starts after being absent and stops after being present
    assert any(not a and b for a, b in zip(seen, seen[1:]))
    assert any(a and not b for a, b in zip(seen, seen[1:]))


def test_demo_inspector_explains_demo_pids():
    b = DemoBackend(seed=0)
    facts = b.inspector().facts(31001)
    assert facts.environ["GPUTAB_TAG"] == "llama3-8b-lora"
    assert b.inspector().facts(999999) is None


def _numbers(doc):
    doc.pop("taken_at")
    return doc


def test_cli_snapshot_json_is_deterministic():
    runs = [
        subprocess.run(
            gputab_cmd() + ["--demo", "--seed", "3", "snapshot", "--json"], capture_output=True, text=True, check=True
        )
        for _ in range(2)
    ]
    docs = [json.loads(r.stdout) for r in runs]
    assert len(docs[0]["gpus"]) >= 4 and len(docs[0]["processes"]) >= 3
    assert _numbers(docs[0]) == _numbers(docs[1])
