"""Pilot tests of the review screens over sessions these tests record (demo backend, fake clock)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from textual.widgets import Input
from tui_support import advance, longest_blank_run, make_app, screen_lines, until

from gputab.money import per_sample
from gputab.sampling.demo import DEMO_START_WALL
from gputab.store import Store
from gputab.store.review import session_series
from gputab.tui.format import money, pct
from gputab.tui.review import ReviewApp, SessionsScreen
from gputab.tui.review.compare_screen import CompareScreen
from gputab.tui.review.export_dialog import ExportDialog
from gputab.tui.review.samples_dialog import SamplesDialog, parse_count
from gputab.tui.review.session_screen import SessionScreen
from gputab.tui.screenshots import record_demo_session as record
from support import Notified

DAY = 86400.0


def three_sessions(db) -> None:
    """Sessions 1-3: 120 s on demo-box (Jan 1), 30 s on demo-box (Jan 3), 90 s on gpu-node-7 (Jan 5)."""
    record(db, 120)
    record(db, 30, day=2)
    record(db, 90, day=4, host="gpu-node-7")


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "review.db"
    three_sessions(path)
    return path


def _ids(app) -> list[int]:
    return [r.id for r in app.screen.shown]


def _cells(table, key: str) -> list[str]:
    return [getattr(c, "plain", c) for c in table.get_row(key)]


async def open_session(app, pilot, session_id: int):
    """Enter on session ``session_id`` in the sessions list; the screen it opens."""
    await pilot.pause()
    table = app.screen.query_one("#sessions")
    table.move_cursor(row=table.get_row_index(str(session_id)))
    await pilot.press("enter")
    await pilot.pause()
    return app.screen


async def press_each(pilot, keys) -> None:
    """Let the review open, then press ``keys`` one by one, each taking effect before the next."""
    await pilot.pause()
    for key in keys:
        await pilot.press(key)
        await pilot.pause()


async def _type(pilot, text: str) -> None:
    for ch in text:
        await pilot.press("space" if ch == " " else ch)
    await pilot.pause()


async def test_list_shows_sessions_with_stored_totals(db):
    with Store.open(db, readonly=True) as store:
        stored = {s["id"]: s for s in store.sessions()}
        jobs = {sid: store.jobs(sid) for sid in stored}
    app = ReviewApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, SessionsScreen)
        assert _ids(app) == [3, 2, 1]  # newest first
        table = app.screen.query_one("#sessions")
        for sid, s in stored.items():
            cells = _cells(table, str(sid))
            idle = next(j["cost_usd"] for j in jobs[sid] if j["tag"] == "(idle)")
            eff = sum(j["effective_gpu_hours"] or 0 for j in jobs[sid])
            hours = sum(j["gpu_hours"] or 0 for j in jobs[sid])
            assert cells[1] == str(sid)
            assert cells[3] == {1: "0:02:00", 2: "0:00:30", 3: "0:01:30"}[sid]
            assert cells[4] == s["host"] and cells[5] == "5"
            assert cells[6] == money(s["cost_usd"]) and cells[7] == money(idle)
            assert cells[8] == pct(eff / hours, fraction=True) and cells[9] == "clean"
        assert _cells(table, "3")[2] == "2026-01-05 00:00"


async def test_filter_by_tag_host_and_date_as_you_type(db):
    app = ReviewApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("slash")
        await _type(pilot, "tag:slurm")  # the sweep starts at 40 s: session 2 (30 s) never saw it
        assert _ids(app) == [3, 1]
        app.screen.query_one("#sessions-filter").value = ""
        await pilot.pause()
        await _type(pilot, "host:node")
        assert _ids(app) == [3]
        app.screen.query_one("#sessions-filter").value = "since:2026-01-02T00:00Z"
        await pilot.pause()
        assert _ids(app) == [3, 2]
        app.screen.query_one("#sessions-filter").value = "until:2026-01-04T00:00Z demo"
        await pilot.pause()
        assert _ids(app) == [2, 1]
        # A date half typed is told, not raised, and does not filter.
        app.screen.query_one("#sessions-filter").value = "since:2026-0"
        await pilot.pause()
        assert _ids(app) == [3, 2, 1]
        assert "not a date" in str(app.screen.query_one("#sessions-filter-error").render())
        await pilot.press("enter")  # back to the list, keys act on it again
        assert app.screen.focused is app.screen.query_one("#sessions")


async def test_sort_cycles_columns_and_reverses(db):
    with Store.open(db, readonly=True) as store:
        by_cost = [s["id"] for s in sorted(store.sessions(), key=lambda s: -s["cost_usd"])]
    app = ReviewApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("o")  # start -> duration
        assert _ids(app) == [1, 3, 2]
        for _ in range(3):  # -> host -> GPUs -> cost
            await pilot.press("o")
        assert "sorted by cost ↓" in str(app.screen.query_one("#sessions-title").render())
        assert _ids(app) == by_cost
        await pilot.press("R")
        assert _ids(app) == by_cost[::-1]


async def test_open_session_shows_every_job_as_stored_and_charts(db):
    with Store.open(db, readonly=True) as store:
        jobs = store.jobs(1)
        gpus = store.gpus(1)
    app = ReviewApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_session(app, pilot, 1)
        assert isinstance(screen, SessionScreen) and screen.session_id == 1
        jt = screen.query_one("#session-jobs")
        assert [k.value for k in jt.rows] == [j["tag"] for j in jobs]
        assert "(idle)" in [j["tag"] for j in jobs]
        for j in jobs:

            def cell(key: str, tag: str = j["tag"]) -> str:
                return jt.cell(tag, key)

            assert cell("cost_usd") == money(j["cost_usd"])
            assert cell("gpu_hours") == f"{j['gpu_hours']:.3f}"
            assert cell("effective_gpu_hours") == f"{j['effective_gpu_hours']:.3f}"
            assert cell("avg_utilization") == pct(j["avg_utilization"], fraction=True)
            # The waste split: wasted dollars and the costliest reason, as stored.
            assert cell("waste_usd") == money(j["waste_usd"]) and cell("waste_pct") == pct(j["waste_pct"])
            assert cell("waste_top_reason") == (j["waste_top_reason"] or "-")
            assert cell("waste_evidence") == (j["waste_evidence"] or "-")
            assert cell("energy_kwh") == f"{j['energy_kwh']:.3f}"
        # Cumulative cost per job, utilization and power per GPU, on fixed scales from 0.
        from gputab.tui.widgets.chart import Chart

        cost, util, power = (c.spec for c in screen.query(Chart))
        assert [line.label for line in cost.lines] == [j["tag"] for j in jobs]
        assert cost.y_min == 0 and cost.y_max >= jobs[0]["cost_usd"]
        lora = cost.lines[0]
        assert lora.values[-1] == pytest.approx(jobs[0]["cost_usd"], rel=1e-6)  # the last point is its total
        assert util.y_min == 0 and util.y_max == 100.0 and len(util.lines) == len(gpus)
        assert all(0 < len(line.values) <= 60 for line in util.lines + power.lines)
        assert power.y_min == 0 and power.y_max >= max(v for line in power.lines for v in line.values if v == v)
        await pilot.press("escape")
        assert isinstance(app.screen, SessionsScreen)


@pytest.mark.slow
async def test_entering_samples_updates_per_sample_and_stores_it(db):
    app = ReviewApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("enter")  # session 3, costliest job first
        await pilot.pause()
        screen = app.screen
        await pilot.press("n")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, SamplesDialog) and dialog.tag == "llama3-8b-lora"
        await _type(pilot, "-5")
        await pilot.press("enter")
        assert app.screen is dialog and "not a count" in str(dialog.query_one("#samples-error").render())
        dialog.query_one("#samples-input").value = "200,000"
        dialog.query_one("#tokens-input").value = "50000000"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen
        jt = screen.query_one("#session-jobs")
        with Store.open(db, readonly=True) as store:
            job = next(j for j in store.jobs(3) if j["tag"] == "llama3-8b-lora")
        assert job["samples"] == 200_000 and job["tokens"] == 50_000_000
        assert job["cost_per_sample_usd"] == pytest.approx(job["cost_usd"] / 200_000, rel=1e-12)
        assert jt.cell("llama3-8b-lora", "samples") == "200,000"
        assert jt.cell("llama3-8b-lora", "cost_per_sample_usd") == per_sample(job["cost_usd"] / 200_000)
        # A correction sets the totals, it does not add to them.
        await pilot.press("n")
        await pilot.pause()
        app.screen.query_one("#samples-input").value = "1000"
        await pilot.press("enter")
        await pilot.pause()
        with Store.open(db, readonly=True) as store:
            job = next(j for j in store.jobs(3) if j["tag"] == "llama3-8b-lora")
        assert job["samples"] == 1000 and job["tokens"] == 50_000_000


def test_parse_count_takes_grouped_digits_only():
    assert parse_count("1,000,000") == 1_000_000 and parse_count(" 42 ") == 42 and parse_count("") == 0
    for bad in ("-1", "1.5", "1e6", "12,34", "abc"):
        with pytest.raises(ValueError):
            parse_count(bad)


@pytest.mark.slow
async def test_compare_two_sessions_and_two_jobs(db):
    app = ReviewApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("c")  # nothing marked: told, no screen
        assert isinstance(app.screen, SessionsScreen)
        await pilot.press("m", "down", "down", "m", "c")  # sessions 3 and 1
        await pilot.pause()
        cmp = app.screen
        assert isinstance(cmp, CompareScreen) and (cmp.name_a, cmp.name_b) == ("session 3", "session 1")
        row = _cells(cmp.query_one("#compare"), "cost_usd")
        a, b = cmp.a["cost_usd"], cmp.b["cost_usd"]
        assert row[1] == money(a) and row[2] == money(b) and row[3] == money(b - a)
        assert row[4] == f"{(b - a) / a * 100:+.1f}%"
        await pilot.press("escape", "enter")  # cursor is on session 1
        await pilot.pause()
        await pilot.press("m", "down", "m", "c")
        await pilot.pause()
        cmp = app.screen
        assert (cmp.name_a, cmp.name_b) == ("llama3-8b-lora", "mistral-7b-serve")
        assert cmp.a["gpu_hours"] > cmp.b["gpu_hours"] > 0
        assert _cells(cmp.query_one("#compare"), "gpu_hours")[3] == f"{cmp.b['gpu_hours'] - cmp.a['gpu_hours']:+.3f}"


async def test_export_writes_what_gputab_export_writes(db, tmp_path, monkeypatch):
    from gputab.cli.main import cli

    out = tmp_path / "exports"
    out.mkdir()
    monkeypatch.chdir(out)
    expected = CliRunner().invoke(cli, ["--db", str(db), "export", "--csv", "--session", "2"])
    assert expected.exit_code == 0, expected.output
    app = ReviewApp(db)
    notified = Notified()
    async with app.run_test(size=(120, 40), message_hook=notified) as pilot:
        await pilot.pause()
        await pilot.press("down", "e")  # session 2: the path is offered before anything is written
        await pilot.pause()
        written = out / "gputab-session-2.csv"
        assert isinstance(app.screen, ExportDialog) and not written.exists()
        assert app.screen.query_one("#export-path", Input).value == str(written)
        await pilot.press("enter")
        await pilot.pause()
        assert written.read_bytes() == expected.stdout_bytes and expected.stdout_bytes.count(b"\r\n") > 3
        assert any(n.message.startswith("wrote ") and str(written) in n.message for n in notified)
        await pilot.press("m", "up", "m", "e")  # marked: sessions 2 and 3, to a path of the user's
        await pilot.pause()
        elsewhere = tmp_path / "mine.csv"
        app.screen.query_one("#export-path", Input).value = str(elsewhere)
        await pilot.press("enter")
        await pilot.pause()
        assert any(str(elsewhere) in n.message for n in notified)
        await pilot.press("e", "escape")  # cancelled: nothing written
        await pilot.pause()
        assert not isinstance(app.screen, ExportDialog)
    both = elsewhere.read_text(encoding="utf-8").splitlines()
    assert {line.split(",")[0] for line in both[1:]} == {"2", "3"}
    assert not (out / "gputab-sessions-2-3.csv").exists()


async def test_live_view_opens_the_sessions_with_s(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 5)
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, SessionsScreen)
        (row,) = app.screen.shown
        assert row.end_reason == "recording" and row.host == "demo-box"
        await pilot.press("escape")
        assert not isinstance(app.screen, SessionsScreen)


def test_gputab_review_is_a_command():
    from gputab.cli.main import cli

    r = CliRunner().invoke(cli, ["review", "--help"])
    assert r.exit_code == 0 and "Browse recorded sessions" in r.output


def test_month_long_session_series_is_read_by_seeks(tmp_path):
    """A 30-day 8-GPU session: the charts read a bounded number of points, fast, whatever the row count."""
    db = tmp_path / "long.db"
    record(db, 30)
    with Store.open(db) as store:
        end = DEMO_START_WALL + 30 * DAY
        store.db.execute("UPDATE sessions SET ended_wall = ?, last_wall = ? WHERE id = 1", [end, end])
        store.db["gpu_samples"].insert_all(
            (
                {
                    "session_id": 1,
                    "gpu_index": g,
                    "t_ms": t * 600_000,
                    "dt_ms": 10_000,
                    "utilization": 0.5,
                    "power_w": 300.0,
                    "energy_j": 1.0,
                    "cost_usd": 0.01,
                }
                for g in range(4)
                for t in range(1, 4321)
            ),
            batch_size=5000,
        )
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        store.db.conn.set_progress_handler(count, 1000)  # SQLite's work, counted in 1,000s of VM instructions
        series = session_series(store, 1, points=60)
        seeks = steps[0]
        steps[0] = 0
        rows = store.db.execute("SELECT count(*), sum(cost_usd) FROM gpu_samples WHERE session_id = 1").fetchone()
        scan = steps[0]
        store.db.conn.set_progress_handler(None, 0)
    assert len(series["t"]) == 60 and series["t"][-1] == pytest.approx(30 * DAY)
    assert all(len(g["utilization"]) == 60 for g in series["gpus"].values())
    assert series["gpus"][0]["power_w"][-1] == 300.0
    # Seeks, not a scan: less work than reading each of the session's rows once (timed in bench/RESULTS.md).
    assert rows[0] > 17_000 and seeks < scan / 4, (seeks, scan)


async def test_session_screen_shows_each_jobs_waste_with_evidence_and_its_forecast(db):
    with Store.open(db, readonly=True) as store:
        jobs = {j["tag"]: j for j in store.jobs(1)}
    app = ReviewApp(db)
    async with app.run_test(size=(200, 60)) as pilot:
        screen = await open_session(app, pilot, 1)
        jt = screen.query_one("#session-jobs")
        lora = jobs["llama3-8b-lora"]
        assert lora["progress_fraction"] is not None and lora["forecast_state"] == "running"
        assert jt.cell("llama3-8b-lora", "forecast_vs_actual") == f"{money(lora['projected_cost_usd'])} at " + (
            f"{lora['progress_fraction'] * 100:.0f}%"
        )
        assert jt.cell("eval-mmlu", "forecast_vs_actual") == "-"  # reports no progress
        for row, tag in enumerate(jobs):
            jt.move_cursor(row=row)
            await pilot.pause()
            line = str(screen.query_one("#session-job").render())
            job = jobs[tag]
            assert line.startswith(tag) and f"wasted {money(job['waste_usd'])}" in line
            for reason, usd in job["waste_by_reason"].items():
                assert f"{reason} {money(usd)}: {job['waste_evidence_by_reason'][reason]}" in line
            assert ("forecast:" in line) is (job["progress_fraction"] is not None)
            # Tokens by kind where an inference server counted them (the demo's serving job).
            kinds = f"tokens {job['tokens'] or 0:,}: prompt {job['prompt_tokens'] or 0:,}"
            assert (kinds in line) is (job["prompt_tokens"] is not None)
        assert jobs["mistral-7b-serve"]["prompt_tokens"] and jobs["mistral-7b-serve"]["generated_tokens"]


def test_a_finished_jobs_forecast_is_set_against_what_it_cost():
    from gputab.tui.review.session_screen import forecast_vs_actual, job_summary

    done = {
        "tag": "run",
        "cost_usd": 20.0,
        "progress_fraction": 1.0,
        "forecast_state": "done",
        "first_projected_cost_usd": 22.0,
        "first_projected_progress_fraction": 0.1,
        "projected_cost_usd": 20.0,
        "waste_usd": None,
    }
    assert forecast_vs_actual(done) == "$20.00 vs $22.00 (+10%)"
    line = job_summary(done).plain
    assert "first projection $22.00 at 10%" in line and "spent $20.00 (done)" in line and "not measured" in line
    assert forecast_vs_actual({"tag": "x", "cost_usd": 1.0}) == "-"
    assert forecast_vs_actual({"tag": "x", "progress_fraction": 0.2, "forecast_state": "unknown"}) == "measuring"


async def test_the_list_previews_the_session_under_the_cursor(db):
    with Store.open(db, readonly=True) as store:
        jobs = {sid: store.jobs(sid) for sid in (1, 3)}
    app = ReviewApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#sessions")
        for sid in (3, 1):
            table.move_cursor(row=table.get_row_index(str(sid)))
            await pilot.pause()
            preview = str(app.screen.query_one("#sessions-preview").render())
            assert preview.startswith(f"Session {sid}: {len(jobs[sid])} jobs")
            for j in jobs[sid]:
                assert j["tag"] in preview
                assert f"wasted {money(j['waste_usd']):>8} {pct(j['waste_pct']):>4}  {j['waste_top_reason']}" in preview


def test_compare_bars_share_one_scale_per_figure_and_fill_the_height():
    from gputab.tui.review.compare_screen import ROWS, compare_bars

    a = {"cost_usd": 4.0, "gpu_hours": 1.0, "avg_utilization": 0.5}
    b = {"cost_usd": 1.0, "gpu_hours": 2.0, "avg_utilization": None}
    bar_rows = []
    for height in (12, 30, 60):
        lines = compare_bars(a, b, 60, height).plain.split("\n")
        assert height - 6 <= len(lines) - 1 <= height  # the rows are used, none spill over
        bar_rows.append(sum(1 for line in lines if "█" in line))
    assert bar_rows[0] < bar_rows[1] < bar_rows[2]  # a taller screen draws thicker bars, not blank rows
    lines = compare_bars(a, b, 60, 12).plain.split("\n")
    cost_a, cost_b = lines[1], lines[2]
    assert cost_a.count("█") == 44 and cost_b.count("█") == 11  # $4 fills the 44 cells, $1 a quarter
    util_b = lines[lines.index("avg utilization") + 2]
    assert "█" not in util_b and util_b.rstrip().endswith("n/a")
    assert "samples" not in lines  # n/a on both sides: no bars
    assert [label for label, *_ in ROWS][:2] == ["cost", "GPU-hours"]


@pytest.mark.parametrize(
    "keys",
    [[], ["enter"], ["enter", "m", "down", "m", "c"], ["dollar_sign"]],
    ids=["sessions", "session", "compare", "spend"],
)
async def test_review_footers_fit_80_columns_with_every_key(db, keys):
    app = ReviewApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await press_each(pilot, keys)
        await until(pilot, lambda: "q Quit" in screen_lines(app)[-1], what="the footer composed")
        shown = list(app.screen.query("FooterKey"))
        assert shown and max(k.region.right for k in shown) <= 80
        footer = [s.text for s in app.screen._compositor.render_strips()][-1]
        assert "q Quit" in footer and "esc Back" in footer
        # Every key the screen shows is in the footer (none is pushed off its right edge).
        for active in app.screen.active_bindings.values():
            b = active.binding
            if b.show:
                assert (b.group.description if b.group else b.description) in footer, b


@pytest.mark.parametrize("size", [(120, 40), (200, 60)], ids=["120x40", "200x60"])
@pytest.mark.parametrize("keys", [["enter"], ["enter", "m", "down", "m", "c"]], ids=["session", "compare"])
async def test_review_screens_leave_no_blank_stretch(db, size, keys):
    app = ReviewApp(db)
    async with app.run_test(size=size) as pilot:
        await press_each(pilot, keys)
        lines = screen_lines(app)
        assert longest_blank_run(lines[1:-1]) <= 4, "\n".join(lines)


async def test_the_filter_placeholder_and_the_sort_keys_read_plainly(db):
    """The empty filter does not look like an active one, and the footer does not run o and R together."""
    from textual.widgets._footer import FooterKey

    app = ReviewApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        field = app.screen.query_one("#sessions-filter", Input)
        assert field.value == "" and field.placeholder.startswith("press / to filter")

        def quit_key_laid_out() -> bool:  # the footer composes, then lays out, after its bindings are known
            keys = {k.key: k for k in app.screen.query(FooterKey)}
            return "q" in keys and keys["q"].region.width > 0

        await until(pilot, quit_key_laid_out, what="the footer's q key laid out")
        keys = {k.key: k for k in app.screen.query(FooterKey)}
        footer = screen_lines(app)[-1]
        assert "o/R Sort" in footer and "oR" not in footer  # two keys, not one key "oR"
        assert keys["q"].region.right <= 80  # and the footer still fits 80 columns
