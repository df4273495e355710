"""How a GPU whose reading failed looks in the live view: "not read", never "GPU lost", with the reason as text."""

from __future__ import annotations

import pytest

from gputab.live.frame import GpuView


def test_the_gpu_row_says_not_read_for_an_unobserved_gpu_and_lost_for_a_lost_one():
    pytest.importorskip("textual")
    from gputab.tui.widgets.gpus import gpu_cells

    unread = GpuView(index=1, uuid="GPU-1", name="H100", lost=True, unobserved="GPU 1 compute processes: Timeout")
    lost = GpuView(index=2, uuid="GPU-2", name="H100", lost=True)
    assert str(gpu_cells(unread)[1]) == "not read"
    assert str(gpu_cells(lost)[1]) == "GPU lost"


def test_the_snapshot_table_says_why(tmp_path):
    from gputab.cli.snapshot import format_table
    from gputab.sampling.snapshot import GpuSample, Snapshot

    snap = Snapshot(
        mono=1.0,
        wall=1.0,
        gpus=(
            GpuSample(index=0, uuid="u0", name="H100", lost=True, unobserved="GPU 0 utilization: [bold]x[/bold]"),
            GpuSample(index=1, uuid="u1", name="H100", lost=True),
        ),
    )
    lines = format_table(snap).splitlines()
    assert "not read: GPU 0 utilization: [bold]x[/bold]" in lines[1]
    assert lines[2].endswith("GPU lost")
