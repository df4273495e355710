"""Hostile text from a shared box reaches every screen and dialog as literal text (issue 11, item 1).

Other users name their processes, set ``GPUTAB_TAG``, and a host or GPU can be called anything. Here a backend
serves a box whose every outside string is hostile: markup that would crash Rich (``x[/y]``), run an action
(``[@click=app.quit]``), style or link; ESC sequences that would clear the screen; CJK, right-to-left text and
64-character tags. The session is recorded for real (attribution, ledger, recorder, SQLite in tmp_path, budgets
from a real TOML config raising alerts), shown live in views 1-4 and the tag dialog, then reviewed: sessions list,
session, compare, export, the filter line. Each screen is read back as rendered and must show the text as written.
"""

from __future__ import annotations

import json

import pytest
from rich.text import Text

from gputab.cli.context import AppContext
from gputab.sampling.backend import Backend, ProcessFacts, ProcessInspector
from gputab.sampling.demo import FakeClock
from gputab.sampling.snapshot import GpuSample, ProcessSample, Snapshot

pytest.importorskip("textual")

GIB = 1 << 30
ESC = "\x1b"

# Tags, set by other users through GPUTAB_TAG.
CLOSE = "x[/y]"
CLICK = "[@click=app.quit]q[/]"
LINK = "[link=http://x]l[/link]"
BOLD = "[bold]b"
CJK = "訓練ジョブ"
RTL = "אימון-מודל"
LONG = "L" * 50 + "[/long][bold]x"  # 64 characters: the longest tag there is
assert len(LONG) == 64
TAGS = (CLOSE, CLICK, LINK, BOLD, CJK, RTL, LONG)

HOST = "h[/y]\x1b[2J"
GPU_NAME = "NVIDIA [/x]\x1b[31mGPU"
EVE, EVE_PROC = "[red]eve", "[/x]"  # an untagged process: its tag becomes untagged:[red]eve/[/x]
EVIL_CMD = ("[/x]", "--out", "e\x1b[2Jz", "\u202eevil")
UNTAGGED = f"untagged:{EVE}/{EVE_PROC}"
ESC_NAME = "ev\x1b[2Jil"


def _procs() -> list[tuple[int, int, int, ProcessFacts]]:
    """(pid, gpu, sm %, facts) of every process on the hostile box."""
    out = []
    for i, tag in enumerate(TAGS):
        pid = 101 + i
        out.append(
            (
                pid,
                i % 2,
                10 + i,
                ProcessFacts(
                    pid=pid,
                    create_time=1.0,
                    name="python",
                    user=f"[bold]u{i}",
                    uid=2000 + i,
                    cmdline=("python", "train.py", "--run", tag),
                    environ={"GPUTAB_TAG": tag},
                    ppid=1,
                ),
            )
        )
    out.append(
        (
            120,
            0,
            5,
            ProcessFacts(
                pid=120, create_time=1.0, name=EVE_PROC, user=EVE, uid=3000, cmdline=EVIL_CMD, environ={}, ppid=1
            ),
        )
    )
    # No readable command line (another user's process): its name stands in for it.
    out.append(
        (
            121,
            1,
            5,
            ProcessFacts(
                pid=121, create_time=1.0, name=ESC_NAME, user="mallory", uid=3001, cmdline=(), environ=None, ppid=1
            ),
        )
    )
    return out


class HostileInspector(ProcessInspector):
    def __init__(self) -> None:
        self._facts = {pid: facts for pid, _, _, facts in _procs()}

    def facts(self, pid: int) -> ProcessFacts | None:
        return self._facts.get(pid)


class HostileBackend(Backend):
    """Two GPUs, busy with the processes of :func:`_procs`, on a host and a GPU model with hostile names."""

    name = "hostile"
    host = HOST

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._inspector = HostileInspector()

    def inspector(self) -> ProcessInspector:
        return self._inspector

    def poll(self) -> Snapshot:
        procs = _procs()
        gpus = tuple(
            GpuSample(
                index=i,
                uuid=f"GPU-hostile-{i}",
                name=GPU_NAME,
                utilization_pct=80.0,
                memory_utilization_pct=40.0,
                memory_used_bytes=20 * GIB,
                memory_total_bytes=80 * GIB,
                power_w=300.0,
                power_limit_w=700.0,
                temperature_c=60.0,
            )
            for i in range(2)
        )
        samples = tuple(
            ProcessSample(pid=pid, gpu_index=gpu, used_memory_bytes=GIB, sm_pct=sm) for pid, gpu, sm, _ in procs
        )
        return Snapshot(
            mono=self.clock(), wall=self.clock.wall(), gpus=gpus, processes=samples, driver_version="hostile"
        )


class HostileContext(AppContext):
    """The CLI context of ``gputab`` on the hostile box (the backend is the only thing replaced)."""

    clock: FakeClock | None = None

    def open_backend(self, **kwargs):
        return HostileBackend(self.clock)


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """A context whose database, config and export directory sit in directories with markup in their names."""
    home = tmp_path / "db[bold][@click=app.quit]"
    home.mkdir()
    out = tmp_path / "out[red]x"
    out.mkdir()
    monkeypatch.chdir(out)  # the review screens export into the current directory
    config = home / "config.toml"
    # A tiny budget on every tag: each raises "budget exceeded" alerts whose message quotes the tag.
    config.write_text("[budgets]\n" + "".join(f"{json.dumps(tag)} = 0.00001\n" for tag in TAGS))
    ctx = HostileContext(db_path=home / "gputab.db", config_path=config, config_explicit=True)
    ctx.clock = FakeClock()
    return ctx


# -- reading the screen back ------------------------------------------------------------------------------------
def screen_lines(app) -> list[str]:
    """What the terminal shows now, line by line (every segment's text as the compositor draws it)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def screen_text(app) -> str:
    text = "\n".join(screen_lines(app))
    assert ESC not in text, "an ESC character reached the terminal"
    return text


def toasts(app) -> str:
    """The text of every notification on screen, as drawn (title and message)."""
    from textual.widgets._toast import Toast

    text = "\n".join(t.render().plain for t in app.screen.query(Toast))
    assert ESC not in text
    return text


def widget_text(widget) -> str:
    """A Static's content as drawn (wrapping aside): for lines longer than the terminal, such as paths."""
    visual = widget.visual
    text = visual.plain if hasattr(visual, "plain") else str(visual)
    assert ESC not in text
    return text


def shows(text: str, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} is not on screen:\n{text}"


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def live_app(ctx):
    """The live app on the hostile box, polled by hand (``await polls(app, n)``)."""
    from gputab.tui.app import create_app

    return create_app(ctx, clock=ctx.clock, wall_clock=ctx.clock.wall, start_polling=False)


async def polls(app, ctx, n: int) -> None:
    """Open the feed (the session's baseline), then ``n`` one-second polls: a session with costs and alerts."""
    await app.feed_ready()
    for _ in range(n):
        ctx.clock.advance(1.0)
        await app.poll_now()


# -- the live view ----------------------------------------------------------------------------------------------
@pytest.mark.slow
async def test_live_views_and_tag_dialog_show_hostile_text_literally(hostile):
    from textual.widgets import Input

    from gputab.tui.tag_screen import TagScreen
    from gputab.tui.widgets.processes import ProcessTable

    clock = hostile.clock
    app = live_app(hostile)
    async with app.run_test(size=(220, 60), notifications=True) as pilot:
        await polls(app, hostile, 4)
        await settle(pilot)

        # 1: jobs. Every tag as written (the long one cut with an ellipsis), GPU model from the NVML name.
        jobs = screen_text(app)
        shows(
            jobs,
            CLOSE,
            CLICK,
            "[link=http://x]l[/lin",
            BOLD,
            CJK,
            RTL,
            "L" * 20,
            "…",
            "untagged:[red]eve",
            "0 [/x]␛[31",
        )
        # Alerts were raised for the tags and notified; the notifications quote them literally.
        shows(toasts(app), "budget exceeded", "job x[/y]")
        # Clicking the would-be action link selects a row; it must not quit the app.
        y = next(i for i, line in enumerate(screen_lines(app)) if CLICK in line)
        x = screen_lines(app)[y].index(CLICK) + CLICK.index("]q") + 1
        await pilot.click(offset=(x, y))
        await settle(pilot)
        assert app.is_running and app.return_code is None

        # 2: GPUs. The card title and the border title carry the NVML name.
        await pilot.press("2")
        await settle(pilot)
        shows(screen_text(app), "NVIDIA [/x]␛[31mGPU")

        # 3: processes. Users, tags and command lines as written; ESC and the RTL override shown, not obeyed.
        await pilot.press("3")
        await settle(pilot)
        procs = screen_text(app)
        # (The command line comes shell-quoted from redaction, its control characters already escaped.)
        shows(
            procs,
            "[bold]…",
            "[red]e…",
            "untagged:[red]eve…",
            "python train.py --run 'x[/y]'",
            "'[/x]' --out $'e\\x1b[2Jz' $'\\u202eevil'",
            CJK,
            "[@click=app.quit]…",
            "[2Jil",
        )  # the ESC of the name is replaced (by attribution already) and never reaches the terminal

        # 4: alerts. Subjects and messages quote the tags.
        await pilot.press("4")
        await settle(pilot)
        alerts = screen_text(app)
        shows(alerts, f"job {CLOSE}: budget exceeded", f"job {CLICK}: budget", f"job {CJK}: budget", BOLD)

        # The tag dialog of the untagged process: its user and command line, literally.
        await pilot.press("3")
        await settle(pilot)
        table = app.screen.query_one(ProcessTable)
        table.move_cursor(row=table.get_row_index("120@0"))
        await pilot.press("t")
        await settle(pilot)
        assert isinstance(app.screen, TagScreen)
        shows(
            widget_text(app.screen.query_one("#tag-target")),
            "process 120 on GPU 0 ([red]eve: '[/x]' --out $'e\\x1b[2Jz' $'\\u202eevil')",
        )
        shows(screen_text(app), "process 120 on GPU 0 ([red]eve: '[/x]'")
        # A tag with markup typed into the dialog is applied and confirmed literally.
        app.screen.query_one(Input).value = "[/z]new"
        await pilot.press("enter")
        await settle(pilot)
        clock.advance(1.0)
        await app.poll_now()
        await settle(pilot)
        shows(toasts(app), "process 120 is charged to [/z]new")

        # The jobs view's tag dialog: the job's tag, in the description and as the starting value.
        await pilot.press("1")
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        assert isinstance(app.screen, TagScreen)
        current = app.screen.query_one(Input).value
        assert current in TAGS
        shows(widget_text(app.screen.query_one("#tag-target")), f"every process of job {current}")
        shows(screen_text(app), current[:20])
        await pilot.press("escape")
        await settle(pilot)
        assert app.is_running and app.return_code is None


@pytest.mark.slow
async def test_review_screens_show_hostile_text_literally(hostile, tmp_path):
    from textual.widgets import DataTable, Input

    from gputab.tui.review import ReviewApp, SessionsScreen
    from gputab.tui.review.compare_screen import CompareScreen
    from gputab.tui.review.session_screen import SessionScreen

    # Session 1, recorded by the live view and reviewed from it (s, Enter): the hostile host and tags.
    app = live_app(hostile)
    async with app.run_test(size=(220, 60), notifications=True) as pilot:
        await polls(app, hostile, 4)
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, SessionsScreen)
        shows(screen_text(app), "h[/y]␛[2J", "recording")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, SessionScreen)
        shows(screen_text(app), CLOSE, CLICK, LINK, CJK, RTL, "L" * 40)
        assert app.is_running
    # Session 2, so the list has two to compare.
    hostile.clock.advance(60.0)
    app = live_app(hostile)
    async with app.run_test(size=(220, 60), notifications=True):
        await polls(app, hostile, 1)

    review = ReviewApp(hostile.db_path)
    async with review.run_test(size=(220, 60), notifications=True) as pilot:
        await settle(pilot)
        screen = review.screen
        assert isinstance(screen, SessionsScreen) and len(screen.rows) == 2
        listed = screen_text(review)
        first = screen.rows[0].tags
        assert set(first[:3]) <= set(TAGS)
        shows(listed, "h[/y]␛[2J", ", ".join(first[:3]) + f" +{len(first) - 3}")  # the three costliest tags
        # The filter line quotes what was typed when it cannot read it.
        screen.query_one("#sessions-filter", Input).value = "since:[/x]"
        await settle(pilot)
        shows(widget_text(screen.query_one("#sessions-filter-error")), "'[/x]' is not a date")
        screen.query_one("#sessions-filter", Input).value = ""
        await settle(pilot)
        screen.query_one("#sessions", DataTable).focus()

        # Export the session under the cursor: the dialog offers a path in this directory (named out[red]x);
        # the notification names it.
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        shows(toasts(review), "exported", "out[red]x")
        assert list((tmp_path / "out[red]x").glob("gputab-session-*.csv"))

        # Open the session: jobs, the heading (host) and the chart labels (tags, cut in cells).
        await pilot.press("enter")
        await settle(pilot)
        session = review.screen
        assert isinstance(session, SessionScreen)
        shows(widget_text(session.query_one("#session-head")), "on h[/y]␛[2J")
        text = screen_text(review)
        shows(text, CLOSE, CLICK, LINK, BOLD, CJK, RTL, "L" * 40, "untagged:[red]eve/[/x]"[:18])
        # The cost chart's legend names every job: as written, each cut at 20 cells with an ellipsis.
        from gputab.tui.widgets.chart import Chart, render_chart

        cost = next(c.spec for c in session.query(Chart) if c.spec.title.startswith("Cumulative"))
        assert {CLOSE, CLICK, CJK, LONG} <= {line.label for line in cost.lines}
        legend = render_chart(cost, 1000, 6)[0].plain
        shows(legend, CLOSE, CLICK[:19] + "…", CJK, "L" * 19 + "…")

        # Export from the session screen too (its dialog offers the path; enter writes there).
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        shows(toasts(review), "out[red]x")

        # Compare two of its jobs: the title and the column labels carry both tags.
        table = session.query_one("#session-jobs", DataTable)
        rows = [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]
        table.move_cursor(row=rows.index(CLOSE))
        await pilot.press("m")
        table.move_cursor(row=rows.index(CLICK))
        await pilot.press("m")
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(review.screen, CompareScreen)
        shows(widget_text(review.screen.query_one("#compare-title")), f"A: {CLOSE}  ·  B: {CLICK}")
        shows(screen_text(review), f"A {CLOSE}", f"B {CLICK}")
        await pilot.press("escape")
        await pilot.press("escape")
        await settle(pilot)

        # Compare the two sessions from the list.
        assert isinstance(review.screen, SessionsScreen)
        await pilot.press("m")
        await pilot.press("down")
        await pilot.press("m")
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(review.screen, CompareScreen)
        assert review.is_running and review.return_code is None


async def test_empty_database_in_a_hostile_path(tmp_path):
    from gputab.tui.review import ReviewApp

    db = tmp_path / "[bold]x[link=y]" / "none.db"
    review = ReviewApp(db)
    async with review.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        shows(widget_text(review.screen.query_one("#sessions-empty")), f"No sessions yet in {db}")
        assert review.is_running


async def test_samples_dialog_shows_the_tag_literally(hostile):
    from gputab.tui.review import ReviewApp
    from gputab.tui.review.samples_dialog import SamplesDialog

    app = live_app(hostile)
    async with app.run_test(size=(160, 50), notifications=True):
        await polls(app, hostile, 3)
    review = ReviewApp(hostile.db_path)
    async with review.run_test(size=(160, 50), notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        table = review.screen.query_one("#session-jobs")
        rows = [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]
        table.move_cursor(row=rows.index(CLOSE))
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(review.screen, SamplesDialog)
        shows(screen_text(review), f"Set samples and tokens of {CLOSE}")
        assert review.is_running


def test_literal_helper_cleans_cuts_and_never_parses():
    from gputab.tui.literal import clean, fit, literal, pad

    assert clean("a\x1b[2Jb\x07\n\x9b\u202e\ud800") == "a␛[2Jb␇␊<U+009B><U+202E>\ufffd"
    assert clean(CLOSE) == CLOSE and clean(CJK) == CJK and clean(RTL) == RTL
    assert literal(CLICK).plain == CLICK and literal(CLICK).spans == []
    assert isinstance(literal(None), Text) and literal(None).plain == ""
    assert fit(CJK, 5) == "訓練…" and fit(CJK, 10) == CJK and fit("abcdef", 4) == "abc…"
    assert pad(CJK, 6) == "訓練… " and pad("ab", 4) == "ab  "
