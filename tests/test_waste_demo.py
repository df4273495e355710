"""The demo box shows every waste reason within its first minute, the same way for the same seed."""

import pytest

from gputab.attribution import Attributor
from gputab.config.settings import AttributionConfig, PricesConfig, WasteConfig
from gputab.cost.diagnosis import REASONS, UNEXPLAINED
from gputab.cost.ledger import Ledger
from gputab.cost.pricing import PriceTable
from gputab.cost.waste import config_for
from gputab.sampling.demo import DemoBackend, FakeClock


def first_minute(seed: int, seconds: int = 60) -> dict:
    clock = FakeClock()
    backend = DemoBackend(seed=seed, clock=clock, wall_clock=clock.wall)
    attributor = Attributor(backend.inspector(), AttributionConfig())
    ledger = Ledger(PriceTable.load(PricesConfig()), interval=1.0, waste=config_for(backend, WasteConfig()))
    first_seen: dict[str, float] = {}
    for k in range(seconds + 1):
        snap = backend.poll()
        infos = attributor.attribute([p.pid for p in snap.processes])
        ledger.tick(snap, {pid: i.tag for pid, i in infos.items()})
        for j in ledger.jobs.values():
            for reason in j.waste.by_reason:
                first_seen.setdefault(reason, k)
        clock.advance(1.0)
    assert ledger.check_waste_conservation()
    return {"first_seen": first_seen, "jobs": {t: j.to_json() for t, j in ledger.jobs.items()}}


def test_every_reason_within_the_first_minute():
    out = first_minute(0)
    missing = set(REASONS) - {UNEXPLAINED} - set(out["first_seen"])
    assert not missing, out["first_seen"]
    jobs = out["jobs"]
    # Each reason lands on the job the story gives it, with its evidence.
    expected = {
        "eval-mmlu": ("input_bound", "pid 32011"),
        "untagged:?/pid35500": ("stranded_memory", "held by pid 35500, which has exited"),
        "resnet50-fp32": ("no_tensor_cores", "mixed precision off?"),
        "bert-base-bs8": ("small_batch", "occupancy 7%"),
        "faiss-index-build": ("memory_bound", "DRAM bandwidth "),
    }
    for tag, (reason, words) in expected.items():
        assert jobs[tag]["waste_top_reason"] == reason, (tag, jobs[tag]["waste_by_reason"])
        assert words in jobs[tag]["waste_evidence"]
    lora = jobs["llama3-8b-lora"]
    assert lora["waste_by_reason"]["comm_stall"] > 0
    assert "on 2 GPUs" in lora["waste_evidence_by_reason"]["comm_stall"]
    assert lora["throttled_usd"]["power_cap"] > 0 and lora["tensor_active_usd"] > 0
    notebook = next(j for t, j in jobs.items() if t.startswith("untagged:alice"))
    assert "oversized" in notebook["waste_by_reason"]
    assert jobs["eval-mmlu"]["tensor_active_usd"] is None  # the A100 reports no GPM: nothing claimed
    assert jobs["(idle)"]["waste_by_reason"] == {"idle": pytest.approx(jobs["(idle)"]["waste_usd"])}


def test_the_same_seed_tells_the_same_waste_story():
    a, b = first_minute(4, 40), first_minute(4, 40)
    assert a == b
    assert first_minute(5, 40)["jobs"]["llama3-8b-lora"]["waste_usd"] != a["jobs"]["llama3-8b-lora"]["waste_usd"]
