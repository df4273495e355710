"""Enter's job details live (every figure of the row, the job's processes, updated each tick), and gputab's own
commands in the command palette (ctrl+p) with their keys."""

from __future__ import annotations

import pytest
from tui_support import advance, make_app, screen_lines

from gputab.tui import format as fmt
from gputab.tui.details_screen import JobDetailsScreen


def _text(app) -> str:
    return "\n".join(screen_lines(app))


def _details(app) -> str:
    """What the details dialog on top shows (its widgets' content: the compositor paints a new modal later)."""
    screen = app.screen
    return "\n".join(
        str(w.render()) for w in screen.query("#details-heading, #job-figures, #job-processes-heading, #job-processes")
    )


@pytest.mark.slow
async def test_job_details_follow_every_tick_and_show_the_processes(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 50)) as pilot:
        frame = await advance(app, clock, 60)
        await pilot.pause()
        job = frame.jobs[0]
        assert not job.special
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, JobDetailsScreen) and app.screen.tag == job.tag
        text = _details(app)
        for name in ("forecast", "own SM", "waste by reason", "samples", "tokens", "GPUs", "Processes"):
            assert name in text, name
        assert fmt.money(job.cost_usd) in text
        procs = [p for p in frame.processes if p.tag == job.tag]
        assert procs and all(f"{p.pid} on GPU {p.gpu_index}" in text for p in procs)
        assert f"Processes ({len(procs)})" in text
        later = await advance(app, clock, 30)
        await pilot.pause(0.3)
        now = next(j for j in later.jobs if j.tag == job.tag)
        assert now.cost_usd > job.cost_usd
        text = _details(app)
        assert isinstance(app.screen, JobDetailsScreen)
        assert fmt.money(now.cost_usd) in text and fmt.money(job.cost_usd) not in text  # not a frozen copy
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, JobDetailsScreen)


async def test_job_details_draw_a_hostile_tag_literally(demo_ctx, clock):
    from dataclasses import replace

    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(100, 40)) as pilot:
        frame = await advance(app, clock, 3)
        evil = "[bold red]x[/]"
        job = replace(frame.jobs[0], tag=evil, waste_by_reason=(("[i]why[/i]", 0.5),))
        app.push_screen(JobDetailsScreen(evil, replace(frame, jobs=(job,))))
        await pilot.pause(0.3)
        text = _details(app)
        assert "[bold red]x[/]" in text and "[i]why[/i]" in text


@pytest.mark.slow
async def test_the_command_palette_lists_gputabs_commands_with_their_keys(demo_ctx, clock):
    from textual.command import CommandPalette

    from gputab.tui.gpus_screen import GpusScreen

    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await advance(app, clock, 3)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"gpus view")
        await pilot.pause(0.5)
        text = _text(app)
        assert "GPUs view (2)" in text and "key 2" in text
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, GpusScreen)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"chart window")
        await pilot.pause(0.5)
        assert "Chart window (w)" in _text(app)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.chart_window == 1  # the screen's own action ran: 1 h now


async def test_commands_that_do_not_apply_are_not_offered(demo_ctx, clock):
    from textual.command import CommandPalette

    from gputab.tui.commands import COMMANDS, GputabCommands

    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await advance(app, clock, 2)
        live = GputabCommands(app.screen)
        assert [c.name for c in live.available()] == [c.name for c in COMMANDS]
        await pilot.press("s")  # the review of sessions over the live view
        await pilot.pause()
        review = GputabCommands(app.screen)
        names = [c.name for c in review.available()]
        assert "Tag" not in names and "Jobs view" not in names and "Chart window" not in names
        assert "Spend" in names and "Theme" in names
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)


async def test_export_from_the_palette_writes_the_session_and_says_where(demo_ctx, clock, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from gputab.tui.commands import export_session

    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await advance(app, clock, 5)
        await pilot.pause()
        export_session(app)
        await pilot.pause()
        written = list(tmp_path.rglob("*.csv"))
        assert written, "no CSV written"
        said = [n.message for n in app._notifications]
        assert any(str(written[0].name) in m and "rows to" in m for m in said), said


def test_a_long_value_wraps_under_its_own_column():
    """A command line longer than the dialog wraps under the values, never back under the names."""
    from gputab.tui.details_screen import _name_value_lines

    value = "python train.py " + " ".join(f"--option-{n}=value" for n in range(12)) + " " + "x" * 50
    text = _name_value_lines([("pid", "42"), ("command", value)], 12, 30)
    lines = text.plain.split("\n")
    assert lines[0] == "pid".ljust(12) + "42" and lines[1].startswith("command".ljust(12) + "python train.py")
    assert len(lines) > 4 and all(line.startswith(" " * 12) and line[12] != " " for line in lines[2:])
    assert all(len(line) <= 12 + 30 for line in lines)  # "x" * 50 is cut where it must be
    assert "".join("".join(line[12:] for line in lines[1:]).split()) == "".join(value.split())  # nothing lost
