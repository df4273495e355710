"""Snapshot tests: the demo box after a fixed number of polls on a fake clock, at 80x24, 120x40 and 200x60.

Regenerate after an intended change of the screen with ``pytest tests/tui/test_snapshots.py --snapshot-update``
and review the SVG diff. NO_COLOR is set by the suite's conftest, so the pictures are monochrome.
"""

from __future__ import annotations

import pytest
from tui_support import make_app

from gputab.tui.screenshots import drive

STEPS = 90


@pytest.fixture(autouse=True)
def steady_toasts(monkeypatch):
    """Alert toasts stay up however long the run takes: a loaded machine must not change the picture."""
    from gputab.tui.app import GputabApp

    monkeypatch.setattr(GputabApp, "toast_scale", 1000.0)


SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)], ids=["80x24", "120x40", "200x60"])


def _run(app, clock, keys=(), dialog_keys=()):
    """The demo after STEPS polls, then ``keys``; then, with the alert toasts dismissed (they would cover a
    dialog's middle at 80x24), ``dialog_keys``."""

    async def run_before(pilot) -> None:
        await drive(app, pilot, clock, STEPS, keys)
        if dialog_keys:
            app.clear_notifications()
            for key in dialog_keys:
                await pilot.press(key)
            await pilot.pause()

    return run_before


@SIZES
@pytest.mark.slow
def test_jobs_view(snap_compare, demo_ctx, clock, size):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=size, run_before=_run(app, clock))


@SIZES
@pytest.mark.slow
def test_gpus_view(snap_compare, demo_ctx, clock, size):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=size, run_before=_run(app, clock, ("2",)))


@SIZES
@pytest.mark.slow
def test_processes_view(snap_compare, demo_ctx, clock, size):
    # Open from the start: the selected process's charts keep history from when the view was first shown.
    app = make_app(demo_ctx, clock)

    async def run_before(pilot) -> None:
        await drive(app, pilot, clock, STEPS, first=("3",))

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
@pytest.mark.slow
def test_alerts_view(snap_compare, demo_ctx, clock, size):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=size, run_before=_run(app, clock, ("4",)))


@SIZES
@pytest.mark.slow
def test_keys_dialog(snap_compare, demo_ctx, clock, size):
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=size, run_before=_run(app, clock, ("question_mark",)))


@SIZES
@pytest.mark.slow
def test_tag_dialog(snap_compare, demo_ctx, clock, size):
    # t on the costliest job: the dialog that retags every process of it.
    app = make_app(demo_ctx, clock)
    assert snap_compare(app, terminal_size=size, run_before=_run(app, clock, dialog_keys=("t",)))


@SIZES
@pytest.mark.slow
def test_process_action_dialog(snap_compare, demo_ctx, clock, size):
    """The confirmation before SIGTERM, over the processes view. The demo's processes are simulated (never
    signalled), so the dialog gets a pinned target as :func:`gputab.tui.process_actions.pin` would build it."""
    from gputab.tui.process_actions import Target
    from gputab.tui.signal_screen import SignalScreen

    app = make_app(demo_ctx, clock)
    command = "python train_lora.py --model llama3-8b --rank 0 --wandb-api-key=***"

    async def run_before(pilot) -> None:
        await drive(app, pilot, clock, STEPS, ("3",))
        target = Target(31001, 0.0, "maria", command, None)  # type: ignore[arg-type]
        app.clear_notifications()
        await app.push_screen(SignalScreen("SIGTERM", target, 0, "llama3-8b-lora"))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.slow
def test_jobs_view_light_theme(snap_compare, demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    app.theme = "textual-light"
    assert snap_compare(app, terminal_size=(120, 40), run_before=_run(app, clock))
