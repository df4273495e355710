"""MIG lines of a stored session (the review's session screen, `gputab show`): at 80 columns the instance, its
profile, its slices of the GPU's (``3/7``, as the live view writes them), its $/h and its cost stay whole; what is
cut, with an ellipsis, is the least useful end (SM activity, memory)."""

from __future__ import annotations

import re
import subprocess

import pytest

from gputab.store import Store
from gputab.tui.mig_text import stored_lines
from gputab.tui.review import ReviewApp
from support import gputab_cmd, record_demo_session

MIG_GPU = 4
WIDTH = 78  # an 80-column terminal less the line's padding


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "mig.db"
    record_demo_session(path, 40)
    return path


def stored_gpu(db) -> dict:
    with Store.open(db, readonly=True) as store:
        return store.gpus(store.resolve_session("last"))[MIG_GPU]


def money_text(usd: float) -> str:
    from gputab.tui.format import money

    return money(usd)


async def screen_mig_lines(app, pilot) -> list[str]:
    from test_review import open_session

    screen = await open_session(app, pilot, 1)
    await pilot.pause()
    return str(screen.query_one("#session-mig").render()).split("\n")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_session_screen_keeps_what_matters_of_each_instance(db, size):
    gpu = stored_gpu(db)
    insts = gpu["mig"]
    assert [m["slices"] for m in insts] == [3, 2, 1]
    app = ReviewApp(db)
    async with app.run_test(size=size) as pilot:
        lines = await screen_mig_lines(app, pilot)
    assert lines[0] == f"GPU {MIG_GPU} in MIG mode: 3 instances"
    assert len(lines) == 1 + len(insts)
    for text, m in zip(lines[1:], insts, strict=True):
        assert len(text) <= size[0] - 2
        head = (
            f"MIG {m['profile']:<10} GI {m['gpu_instance_id']}/CI {m['compute_instance_id']}  "
            f"{m['slices']}/7  ${m['rate_per_hour']:.2f}/h  cost {money_text(m['cost_usd'])}  "
        )
        # The whole head, the cost's last digit included: nothing of it is cut.
        assert text.strip().startswith(head), (text, head)
        assert "slices" not in text
        if size[0] >= 120:
            assert not text.endswith("…") and re.search(r"SM \d+%  [\d.]+G/[\d.]+G$", text), text


async def test_a_long_instance_line_loses_its_memory_not_its_cost(db):
    """Two-digit ids, a compute instance's long profile and a five-figure cost: the line is longer than 78 cells,
    and the cut takes the memory (then SM activity) with an ellipsis, never the money."""
    gpu = {
        "index": MIG_GPU,
        "rate_per_hour": 9.87,
        "mig": [
            {
                "profile": "1c.7g.141gb",
                "gpu_instance_id": 13,
                "compute_instance_id": 12,
                "slices": 1,
                "rate_per_hour": 9.87 / 7,
                "avg_utilization": 0.42,
                "peak_memory_used_bytes": 123_456 * 2**20,
                "memory_total_bytes": 131_072 * 2**20,
                "cost_usd": 12345.6,
            }
        ],
    }
    full = stored_lines(gpu)[1].plain
    assert len(full) > WIDTH
    app = ReviewApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        from test_review import open_session

        screen = await open_session(app, pilot, 1)
        screen.mig_lines = stored_lines(gpu)
        screen._show_mig()
        await pilot.pause()
        line = str(screen.query_one("#session-mig").render()).split("\n")[1]
    assert len(line) == WIDTH and line.endswith("…")
    assert full.startswith(line[:-1])
    assert "MIG 1c.7g.141gb GI 13/CI 12  1/7  $1.41/h  cost $12,346  SM 42%" in line


def test_show_writes_the_slices_as_the_live_view_does(db):
    r = subprocess.run([*gputab_cmd(), "--db", str(db), "show", "last"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith(f"GPU {MIG_GPU}:"))
    shares = [re.search(r"GI \d+ CI \d+  (\S+) slices", ln).group(1) for ln in lines[at + 1 : at + 4]]
    assert shares == ["3/7", "2/7", "1/7"]


def test_slices_stay_plain_where_the_gpus_are_not_known():
    """A free GPU (rate 0) gives no way back to the GPU's slices: the count alone, never a made-up total."""
    gpu = {
        "index": 0,
        "rate_per_hour": 0.0,
        "mig": [{"gpu_instance_id": 1, "compute_instance_id": 0, "slices": 2, "rate_per_hour": 0.0, "cost_usd": 0.0}],
    }
    assert "  2 slices  $0.00/h" in stored_lines(gpu)[1].plain
