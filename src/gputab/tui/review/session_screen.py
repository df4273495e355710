"""One recorded session: every job with all its figures, and charts over the session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from gputab.cost.totals import reported_tokens
from gputab.money import per_sample
from gputab.tui.format import NA, duration, gib, hours, money, pct
from gputab.tui.literal import literal
from gputab.tui.mig_text import stored_lines
from gputab.tui.review.data import SERIES_POINTS, is_special, job_figures
from gputab.tui.review.export_dialog import offer_export
from gputab.tui.widgets.table import KeyedTable, pick_columns

NAN = float("nan")


def forecast_vs_actual(job: dict) -> str:
    """A job that reported progress: for a finished one, what it cost against its first projection and how far
    off that was; for one still running at the session's end, its last projection (docs/forecast.md)."""
    if job.get("progress_fraction") is None:
        return "-"
    first, spent = job.get("first_projected_cost_usd"), job.get("cost_usd")
    if job.get("forecast_state") == "done" and first is not None and spent:
        return f"{money(spent)} vs {money(first)} ({(first - spent) / spent * 100:+.0f}%)"
    last = job.get("projected_cost_usd")
    return f"{money(last)} at {job['progress_fraction'] * 100:.0f}%" if last is not None else "measuring"


DERIVED = {"forecast_vs_actual": forecast_vs_actual}
"""Columns computed from the whole job rather than read from one key."""
TEXT_COLUMNS = frozenset({"waste_top_reason", "forecast_vs_actual", "waste_evidence"})
"""Columns of words, left-aligned (figures are right-aligned)."""

# (header, job key, width in cells, how to write it); the keys are the JobTotals.to_json() keys used everywhere.
# The widths hold the figures of a real session; a longer cell is cut with "…". Every column fits 200 cells;
# the job column then grows to the longest tag with what is left (SessionJobsTable.columns_for).
JOB_COLUMNS: tuple[tuple[str, str, int, Callable[[Any], str]], ...] = (
    ("job", "tag", 18, str),
    ("cost", "cost_usd", 8, money),
    ("GPU-h", "gpu_hours", 6, hours),
    ("eff GPU-h", "effective_gpu_hours", 9, hours),
    ("util", "avg_utilization", 4, lambda v: pct(v, fraction=True)),
    # The waste split (docs/waste.md): n/a for sessions recorded before it; the reason names are gputab's own.
    ("wasted", "waste_usd", 8, money),
    ("waste", "waste_pct", 5, pct),
    ("why", "waste_top_reason", 15, lambda v: "-" if v is None else str(v)),
    # Spent against the first projection for a finished job (its error), the last projection for a running one.
    ("at end: vs proj.", "forecast_vs_actual", 16, str),
    ("$/eff-h", "cost_per_effective_gpu_hour_usd", 7, money),
    ("kWh", "energy_kwh", 5, lambda v: NA if v is None else f"{v:.3f}"),
    ("VRAM", "peak_vram_bytes", 6, lambda v: gib(v) if v else NA),
    ("samples", "samples", 7, lambda v: "-" if v is None else f"{v:,}"),
    ("tokens", "tokens", 9, lambda v: "-" if v is None else f"{v:,}"),
    ("$/sample", "cost_per_sample_usd", 9, per_sample),
    ("$/1k smp", "cost_per_1k_samples_usd", 8, lambda v: "-" if v is None else money(v)),
    ("$/1M tok", "cost_per_1m_tokens_usd", 8, lambda v: "-" if v is None else money(v)),
    ("evidence (why)", "waste_evidence", 80, lambda v: "-" if v is None else str(v)),
)


class SessionJobsTable(KeyedTable):
    """A session's jobs in whole columns that fit the terminal (no horizontal scrollbar at 80 columns): the
    columns least often looked at go first; the line under the table and the CSV export carry every figure."""

    COLUMNS = tuple((key, label, width) for label, key, width, _ in JOB_COLUMNS)
    PRIORITY = (
        "tag", "cost_usd", "cost_per_effective_gpu_hour_usd", "waste_pct", "cost_per_sample_usd",
        "forecast_vs_actual", "gpu_hours", "waste_usd", "waste_top_reason", "avg_utilization", "effective_gpu_hours",
        "cost_per_1k_samples_usd", "samples", "tokens", "cost_per_1m_tokens_usd", "energy_kwh", "peak_vram_bytes",
    )  # fmt: skip
    """Most useful first. At 80 columns: job, cost, $/eff-h, waste, $/sample, at end (tests/tui)."""
    FILL = "waste_evidence"
    tag_cells = 0
    """The widest job cell (its tag with the mark), set by :meth:`show`: the job column grows to it when there is
    room, before the evidence takes what is left."""

    def columns_for(self, width: int) -> list[tuple[str, str, int]]:
        defined = {key: (label, w) for key, label, w in self.COLUMNS}
        used = 2 + sum(w + 2 for _, _, w in pick_columns(defined, self.PRIORITY, width))
        label, most = defined["tag"]
        defined["tag"] = (label, most + max(0, min(width - used, self.tag_cells - most)))
        return pick_columns(defined, self.PRIORITY, width, self.FILL)

    def show(self, rows: list[tuple[str, tuple[Text, ...]]]) -> None:
        """Show ``rows`` (tag, cells in COLUMNS' order), widening the job column to a longer tag when it fits."""
        self.tag_cells = max((cells[0].cell_len for _, cells in rows), default=0)
        self.sync(rows)
        self.on_resize()  # a no-op unless the columns changed

    def cell(self, tag: str, key: str) -> str:
        """The whole text of job ``tag``'s cell in column ``key`` (shown or not), for tests and actions."""
        cells = self.row_cells(tag) or ()
        value = cells[[k for k, _, _ in self.COLUMNS].index(key)]
        return getattr(value, "plain", value)


def job_summary(job: dict) -> Text:
    """The line under the table for the job under the cursor: its waste by reason, each with its evidence, its
    tokens by kind where an inference server counted them, and its forecast against what it cost."""
    text = literal(job["tag"], style="bold")
    waste = job.get("waste_usd")
    if waste is None:
        text.append(" · waste not measured (recorded before gputab split it)", style="dim")
    else:
        text.append(f" · wasted {money(waste)} ({pct(job.get('waste_pct'))})")
        evidence = job.get("waste_evidence_by_reason") or {}
        for reason, usd in (job.get("waste_by_reason") or {}).items():
            text.append(f" · {reason} {money(usd)}")
            if evidence.get(reason):
                text.append_text(literal(f": {evidence[reason]}", style="dim"))
    prompt, generated = job.get("prompt_tokens"), job.get("generated_tokens")
    if job.get("tokens") is not None and (prompt is not None or generated is not None):
        reported = reported_tokens(job["tokens"], prompt, generated)
        text.append(f" · tokens {job['tokens']:,}: prompt {prompt or 0:,}, generated {generated or 0:,}")
        text.append(f", reported {reported:,}" if reported > 0 else "")
    if job.get("progress_fraction") is not None:
        first, fp = job.get("first_projected_cost_usd"), job.get("first_projected_progress_fraction")
        made = f"first projection {money(first)} at {fp * 100:.0f}%" if first is not None and fp is not None else ""
        text.append(f" · forecast: {made}{', ' if made else ''}last {money(job.get('projected_cost_usd'))}")
        text.append(f", spent {money(job.get('cost_usd'))}")
        text.append(" (done)" if job.get("forecast_state") == "done" else " (still running at the end)")
    return text


class SessionScreen(Screen):
    """A session's jobs (the ``(idle)`` and ``(unobserved)`` rows included) and its charts.

    Args:
        db_path: the session database.
        session_id: the session to show.
    """

    CSS_PATH = "session_screen.tcss"
    BINDINGS = [
        # Short footer words (the whole under `?`): the footer then fits 80 columns, `?` and q included.
        Binding("n", "samples", "Samples", tooltip="Enter or correct the job's samples and tokens"),
        Binding("m", "mark", "Mark", tooltip="Mark the job (two marked: c compares them)"),
        Binding("c", "compare", "Compare"),
        Binding("e", "export", "CSV", tooltip="Export the session (or the marked ones) as CSV"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, db_path: Path, session_id: int) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.session_id = session_id
        self.jobs: list[dict] = []
        self.marked: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="session-head")
        yield Static("", id="session-rejected", markup=False)
        yield Static("", id="session-mig")
        yield SessionJobsTable(id="session-jobs", zebra_stripes=True)
        yield Static("", id="session-job")
        yield VerticalScroll(id="session-charts")
        yield Footer(show_command_palette=False)  # ctrl+p is under `?`: the footer keeps its room

    def on_mount(self) -> None:
        from gputab.store import Store
        from gputab.store.review import load_session, session_series

        table = self.query_one("#session-jobs", SessionJobsTable)
        with Store.open(self.db_path, readonly=True) as store:
            info = store.session(self.session_id)
            record = load_session(store, self.session_id)
            series = session_series(store, self.session_id, SERIES_POINTS)
            rejected = store.rejected_reports(self.session_id)
        rejected_line = self.query_one("#session-rejected", Static)
        rejected_line.display = bool(rejected)
        if rejected:
            from gputab.progress.spool import rejected_summary

            rejected_line.update(literal(f"Samples reports not counted: {rejected_summary(rejected)}"))  # user names
        self.info, self.record = info, record
        self.mig_lines = [line for g in record.gpus for line in stored_lines(g)]
        self.query_one("#session-mig", Static).display = bool(self.mig_lines)
        self._show_mig()
        self.jobs = record.jobs
        self.fill_jobs()
        self.query_one("#session-charts", VerticalScroll).mount_all(self._charts(series))
        table.focus()

    # -- content ------------------------------------------------------------------------------------------------
    def fill_jobs(self) -> None:
        """(Re)fill the jobs table and the heading from :attr:`jobs`, keeping the cursor on its job."""
        rows = []
        for job in self.jobs:
            cells: list[Text] = []
            for i, (_, key, _, fmt) in enumerate(JOB_COLUMNS):
                value = job.get(key)
                if i == 0:
                    mark = "*" if value in self.marked else " "
                    cells.append(literal(f"{mark}{value}{' ?' if job.get('unknown_price') else ''}"))
                elif key in DERIVED:
                    cells.append(literal(DERIVED[key](job)))
                elif key in TEXT_COLUMNS:
                    cells.append(literal(fmt(value)))
                else:
                    cells.append(Text(fmt(value), justify="right"))
            rows.append((job["tag"], tuple(cells)))
        # Only changed cells are written and the cursor stays on its job (KeyedTable.sync).
        self.query_one("#session-jobs", SessionJobsTable).show(rows)
        info = self.info
        end = (info["end"] or "now").replace("T", " ").removesuffix("Z")
        start = (info["start"] or "-").replace("T", " ").removesuffix("Z")
        marked = f" · marked: {', '.join(self.marked)}" if self.marked else ""
        self.query_one("#session-head", Static).update(
            literal(
                f"Session {self.session_id} on {info['host']} · {start} → {end} UTC ({info['end_reason'] or 'open'}) · "
                f"{duration(info['duration_s'])} · {len(self.record.gpus)} GPUs · {money(info['cost_usd'])}{marked}",
                wrap=True,
            )
        )

    def _show_mig(self) -> None:
        """One line per MIG instance, each cut to the screen's width with "…" (a wrapped one reads as two)."""
        width = max(self.size.width or self.app.size.width, 3) - 2  # the line's padding
        lines = []
        for line in getattr(self, "mig_lines", []):
            line = line.copy()
            line.truncate(width, overflow="ellipsis")
            lines.append(line)
        self.query_one("#session-mig", Static).update(Text("\n").join(lines))

    def on_resize(self) -> None:
        self._show_mig()

    def _charts(self, series: dict) -> list:
        """Three charts on fixed scales: every GPU's utilization (0-100 %), every GPU's power (0 to a round figure
        above the highest reading: the store keeps no power limit), every job's cumulative cost (from $0)."""
        from gputab.tui.widgets.chart import Chart, ChartSpec, Line, nice_ceiling, palette

        t = [float(x) for x in series["t"]]
        if not t:
            return [Static("No series recorded for this session", classes="chart-heading")]
        t1 = max(t[-1], 60.0)
        gpus = series["gpus"]
        colors = list(palette(max(len(gpus), len(self.jobs))))

        def known(values: list, scale: float = 1.0) -> list[float]:
            return [NAN if v is None else v * scale for v in values]

        util = tuple(Line(f"GPU {i}", t, known(g["utilization"], 100.0), c) for (i, g), c in zip(gpus.items(), colors))
        power = tuple(Line(f"GPU {i}", t, known(g["power_w"]), c) for (i, g), c in zip(gpus.items(), colors))
        top_w = nice_ceiling(max((v for line in power for v in line.values if v == v), default=0.0))
        jobs = tuple(
            Line(j["tag"], t, known(series["jobs"].get(j["tag"], [])[: len(t)]), c) for j, c in zip(self.jobs, colors)
        )
        top_usd = nice_ceiling(max((j.get("cost_usd") or 0.0 for j in self.jobs), default=0.0))
        specs = (
            ChartSpec("Cumulative $ per job", jobs, top_usd, 0.0, t1, y_fmt=money),
            ChartSpec("GPU utilization, 0-100 %", util, 100.0, 0.0, t1, y_fmt=lambda v: f"{v:.0f}%"),
            ChartSpec(f"GPU power, 0-{top_w:.0f} W", power, top_w, 0.0, t1, y_fmt=lambda v: f"{v:.0f}W"),
        )
        out: list = [
            Static(f"Over the session (0:00:00 → {duration(t[-1])}, {len(t)} points)", classes="chart-heading")
        ]
        for spec in specs:
            chart = Chart(classes="chart")
            chart.plot(spec)
            out.append(chart)
        return out

    def selected_tag(self) -> str | None:
        """The job under the cursor."""
        return self.query_one("#session-jobs", SessionJobsTable).selected_key

    def job(self, tag: str) -> dict:
        """The job ``tag`` of this session, as stored."""
        return next(j for j in self.jobs if j["tag"] == tag)

    # -- actions ------------------------------------------------------------------------------------------------
    def action_samples(self) -> None:
        """Enter or correct the selected job's samples and tokens."""
        from gputab.tui.review.samples_dialog import SamplesDialog

        tag = self.selected_tag()
        if tag is None or is_special(tag):
            self.notify("select a job (not a bucket such as (idle)) to enter its samples", severity="warning")
            return
        if self._is_live():
            from gputab.store.queries import live_refusal

            # Refused before any typing: the recorder owns a live session's counts.
            self.notify(live_refusal(self.session_id), title="cannot set samples now", severity="warning", markup=False)
            return
        job = self.job(tag)
        self.app.push_screen(
            SamplesDialog(tag, job.get("samples"), job.get("tokens")), lambda counts: self._store_samples(tag, counts)
        )

    def _is_live(self) -> bool:
        from gputab.store import Store

        return Store(self.db_path, readonly=True).live_session_id() == self.session_id

    def _store_samples(self, tag: str, counts: tuple[int, int] | None) -> None:
        from gputab.store import Store
        from gputab.store.review import set_samples

        if counts is None:
            return
        try:
            with Store.open(self.db_path, create=False, write=True) as store:
                updated = set_samples(store, self.session_id, tag, *counts)
        except Exception as exc:  # noqa: BLE001 - a live or locked session is told, the screen stays
            self.notify(str(exc), title="not stored", severity="error", markup=False)
            return
        self.jobs = [updated if j["tag"] == tag else j for j in self.jobs]
        self.fill_jobs()
        per = updated.get("cost_per_sample_usd")
        self.notify(
            f"{tag}: {updated.get('samples') or 0:,} samples, {updated.get('tokens') or 0:,} tokens; "
            f"{per_sample(per)} per sample",
            title="stored",
            markup=False,
        )

    def action_mark(self) -> None:
        """Mark or unmark the job under the cursor, for compare."""
        tag = self.selected_tag()
        if tag is None:
            return
        if tag in self.marked:
            self.marked.remove(tag)
        else:
            self.marked.append(tag)
        self.fill_jobs()

    def action_compare(self) -> None:
        from gputab.tui.review.compare_screen import CompareScreen

        if len(self.marked) != 2:
            self.notify(f"mark two jobs with m to compare them ({len(self.marked)} marked)", severity="warning")
            return
        a, b = self.marked
        self.app.push_screen(CompareScreen(a, job_figures(self.job(a)), b, job_figures(self.job(b))))

    def action_export(self) -> None:
        offer_export(self, self.db_path, [self.session_id], f"session {self.session_id}")

    def action_back(self) -> None:
        self.app.pop_screen()

    @on(DataTable.RowHighlighted, "#session-jobs")
    def _row_highlighted(self) -> None:
        tag = self.selected_tag()
        line = self.query_one("#session-job", Static)
        line.update(job_summary(self.job(tag)) if tag is not None else "")

    @on(DataTable.RowSelected, "#session-jobs")
    def _row_selected(self) -> None:
        # Enter on a job opens its counts: the one thing on this screen that can be changed.
        self.action_samples()
