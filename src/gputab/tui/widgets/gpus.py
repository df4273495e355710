"""GPU rows for the overview and GPU cards (with history) for the GPU view."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from gputab.live.frame import GpuView, ProcessView
from gputab.live.history import History, power_key, util_key
from gputab.tui import format as fmt
from gputab.tui.literal import clean, fit, literal
from gputab.tui.mig_text import instance_line
from gputab.tui.widgets.chart import Chart, ChartSpec, Line, nice_ceiling
from gputab.tui.widgets.chart_window import ago_from, live_span
from gputab.tui.widgets.table import KeyedTable

LOST = Text("GPU lost", style="bold red")
NOT_READ = Text("not read", style="bold yellow")
"""A GPU whose reading failed this tick though it is there: its time is (unobserved) (the notes say why)."""


def model_label(g: GpuView) -> str:
    """``H100-SXM``; an unknown model shows its NVML name and a ``?`` (priced at the default rate).

    The NVML name is the driver's text: cleaned here, and drawn as literal text by whoever shows the label.
    """
    return fit(clean(g.model_key or g.name.replace("NVIDIA ", "")), 12) + ("?" if g.unknown_price else "")


def memory_label(g: GpuView) -> str:
    if g.memory_used_bytes is None or g.memory_total_bytes is None:
        return fmt.NA
    return f"{g.memory_used_bytes / fmt.GIB:.0f}/{g.memory_total_bytes / fmt.GIB:.0f}G"


def power_label(g: GpuView) -> str:
    if g.power_w is None:
        return fmt.NA
    limit = f"/{g.power_limit_w:.0f}" if g.power_limit_w is not None else ""
    return f"{g.power_w:.0f}{limit}W"


def gpu_cells(g: GpuView, jobs: str = "") -> tuple:
    """One overview row: the GPU's $/h first, then utilization, memory, power, temperature, and its jobs.

    No history here: the charts under the table (and the GPU view's) draw it. A history cell changes every
    tick and made every row of the table render again each second; these cells change only when a figure does.
    """
    head = literal(f"{g.index} {model_label(g)}")
    if g.lost:
        return (head, NOT_READ if g.unobserved else LOST, fmt.rate(g.rate_per_hour), "", "", "", "", literal(jobs))
    util = None if g.utilization_pct is None else g.utilization_pct / 100
    return (
        head,
        fmt.rate(g.burn_rate_usd_per_hour if g.burn_rate_usd_per_hour is not None else g.rate_per_hour),
        fmt.bar(util, 10, fmt.pct(g.utilization_pct)),
        fmt.bar(g.memory_fraction, 10, memory_label(g)),
        power_label(g),
        fmt.NA if g.temperature_c is None else f"{g.temperature_c:.0f}C",
        g.energy_method or fmt.NA,
        literal(jobs or "-", style="" if jobs else "dim"),
    )


def jobs_by_gpu(processes: Iterable[ProcessView]) -> dict[int, str]:
    """``{gpu index: "tag-a, tag-b"}``: the jobs whose processes hold each GPU now, in the order first seen."""
    out: dict[int, list[str]] = {}
    for p in processes:
        tags = out.setdefault(p.gpu_index, [])
        tag = p.tag or "?"
        if tag not in tags:
            tags.append(tag)
    return {index: ", ".join(tags) for index, tags in out.items()}


class GpuTable(KeyedTable):
    """One row per GPU: its price, load and the jobs on it; at 80 columns the figures stay in view."""

    COLUMNS = (
        ("gpu", "GPU", 11),
        ("burn", "$/h", 7),
        ("util", "util", 10),
        ("mem", "VRAM", 10),
        ("power", "power", 9),
        ("temp", "temp", 4),
        ("energy", "energy", 7),
        ("jobs", "jobs on it", 12),
    )

    FIXED = 11 + 7 + 10 + 10 + 9 + 4 + 7 + 2 * 7
    """Cells taken by the figure columns and their padding; what is left goes to the jobs column."""

    def columns_for(self, width: int) -> list[tuple[str, str, int]]:
        cols = list(self.COLUMNS[:-1])
        rest = width - self.FIXED - 4 - 2
        if rest >= 8:
            cols.append(("jobs", "jobs on it", min(60, rest)))
        return cols

    def show(
        self, gpus: tuple[GpuView, ...], history: History | None = None, processes: Sequence[ProcessView] = ()
    ) -> None:
        jobs = jobs_by_gpu(processes)
        self.sync([(str(g.index), gpu_cells(g, jobs.get(g.index, ""))) for g in gpus])


BAR = 16
"""Width of the cards' bars: fixed, so the first frame (drawn before the card knows its width) and every later
one look the same."""
FIGURES_WIDTH = BAR + 8
"""Cells of a card's figures column (a label, a bar and its value)."""


def util_spec(index: int, history: History, window: float | None, label: str) -> ChartSpec:
    """GPU ``index``'s utilization over ``window`` on its fixed 0-100 % scale (a percentage has a natural range:
    a GPU moving between 30 and 31 % draws a flat line, as it should)."""
    t, v = history.points(util_key(index), window)
    t0, t1 = live_span(history, window)
    return ChartSpec(
        f"util % ({label})",
        (Line("util", t, v, "green"),),
        100.0,
        t0,
        t1,
        y_fmt=lambda x: f"{x:.0f}%",
        legend=False,
        t_fmt=ago_from(t1),
    )


def power_spec(index: int, history: History, window: float | None, label: str) -> ChartSpec:
    """GPU ``index``'s power over ``window``, from 0 to its power limit (to the highest reading when the driver
    reports no limit)."""
    t, v = history.points(power_key(index), window)
    t0, t1 = live_span(history, window)
    top = history.power_limits.get(index) or nice_ceiling(max((x for x in v if x == x), default=0.0))
    return ChartSpec(
        f"power W ({label})",
        (Line("power", t, v, "yellow"),),
        top,
        t0,
        t1,
        y_fmt=lambda x: f"{x:.0f}W",
        legend=False,
        t_fmt=ago_from(t1),
    )


def card_title(g: GpuView) -> Text:
    """The card's border title: index, model, price, $/h now and cost so far (the model's name is outside text)."""
    price = fmt.rate(g.rate_per_hour) + (" (unknown model: default rate)" if g.unknown_price else "")
    return Text.assemble(
        literal(f"GPU {g.index} {g.model_key or '?'}", "bold"),
        f"  {price}  now {fmt.rate(g.burn_rate_usd_per_hour)}  cost {fmt.money(g.cost_usd)}",
    )


def card_figures(g: GpuView) -> Text:
    """The card's figures column: utilization, VRAM and power bars, temperature and energy method, the name."""
    if g.lost:
        said = Text.assemble(NOT_READ, "  ", literal(g.unobserved)) if g.unobserved else LOST
        return Text.assemble(said, "\n", literal(g.name, "dim"))
    util = None if g.utilization_pct is None else g.utilization_pct / 100
    power = None if g.power_w is None or not g.power_limit_w else g.power_w / g.power_limit_w
    temp = fmt.NA if g.temperature_c is None else f"{g.temperature_c:.0f}C"
    return Text.assemble(
        "util  ",
        fmt.bar(util, BAR, fmt.pct(g.utilization_pct)),
        "\nVRAM  ",
        fmt.bar(g.memory_fraction, BAR, memory_label(g)),
        "\npower ",
        fmt.bar(power, BAR, power_label(g)),
        f"\ntemp {temp}  energy {g.energy_method or fmt.NA}\n",
        literal(fit(clean(g.name), FIGURES_WIDTH), "dim"),
    )


class GpuCard(Vertical):
    """The GPU view's compact panel for one GPU: price and cost in its top border, its MIG instances, then the
    figures beside its utilization and power charts (they take every row the card gets: 3 rows at least)."""

    def __init__(self, index: int) -> None:
        super().__init__(id=f"gpu-card-{index}", classes="gpu-card")
        self.index = index
        self._last: GpuView | None = None
        self._drawn: tuple | None = None

    @property
    def mig_lines(self) -> int:
        """Rows its MIG instance lines take (0 off MIG)."""
        return len(self._last.mig) if self._last is not None else 0

    def compose(self) -> ComposeResult:
        yield Static(id="gpu-mig")
        with Horizontal(classes="gpu-body"):
            yield Static(id="gpu-figures")
            yield Chart(classes="util-chart")
            yield Chart(classes="power-chart")

    def show(self, g: GpuView, history: History, window: float | None, label: str) -> None:
        """Refresh the card; the figures are written only when they changed, the charts when the history did."""
        if g != self._last:
            self._last = g
            self._show_figures(g)
        drawn = (history.version, window)
        if drawn != self._drawn:
            self._drawn = drawn
            self.query_one(".util-chart", Chart).plot(util_spec(g.index, history, window, label))
            self.query_one(".power-chart", Chart).plot(power_spec(g.index, history, window, label))

    def _show_figures(self, g: GpuView) -> None:
        self.border_title = card_title(g)
        self.query_one("#gpu-figures", Static).update(card_figures(g), layout=False)
        self._show_mig(g)

    def _show_mig(self, g: GpuView) -> None:
        """A line per MIG instance under the GPU's figures: profile, ids, slices, $/h, SM activity, memory."""
        box = self.query_one("#gpu-mig", Static)
        box.display = bool(g.mig)
        if not g.mig:
            return
        lines = [
            instance_line(
                m.profile,
                m.gpu_instance_id,
                m.compute_instance_id,
                m.slices,
                g.mig_slices,
                None if g.rate_per_hour is None or not g.mig_slices else g.rate_per_hour * m.slices / g.mig_slices,
                m.sm_active_pct,
                m.memory_used_bytes,
                m.memory_total_bytes,
            )
            for m in g.mig
        ]
        box.update(Text("\n").join(lines))
