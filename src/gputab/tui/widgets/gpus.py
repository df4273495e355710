"""GPU rows for the overview and GPU cards (with history) for the GPU view."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from gputab.tui import format as fmt
from gputab.tui.frame import GpuView
from gputab.tui.literal import clean, fit, literal
from gputab.tui.widgets.table import KeyedTable

LOST = Text("GPU lost", style="bold red")


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


def gpu_cells(g: GpuView, util_hist=(), power_hist=(), spark_width: int = 16) -> tuple:
    """One overview row: the GPU's $/h first, then utilization, memory, power and temperature."""
    head = literal(f"{g.index} {model_label(g)}")
    if g.lost:
        return (head, LOST, fmt.rate(g.rate_per_hour), "", "", "", "", "", "")
    util = None if g.utilization_pct is None else g.utilization_pct / 100
    power_top = g.power_limit_w or max((p for p in power_hist if p is not None), default=0)
    return (
        head,
        fmt.rate(g.burn_rate_usd_per_hour if g.burn_rate_usd_per_hour is not None else g.rate_per_hour),
        fmt.bar(util, 10, fmt.pct(g.utilization_pct)),
        fmt.bar(g.memory_fraction, 10, memory_label(g)),
        power_label(g),
        fmt.NA if g.temperature_c is None else f"{g.temperature_c:.0f}C",
        g.energy_method or fmt.NA,
        fmt.sparkline(util_hist, spark_width, 100),
        fmt.sparkline(power_hist, spark_width, power_top),
    )


class GpuTable(KeyedTable):
    """One row per GPU. The history columns sit last so that at 80 columns the figures stay in view."""

    COLUMNS = (
        ("gpu", "GPU", 11),
        ("burn", "$/h", 7),
        ("util", "util", 10),
        ("mem", "VRAM", 10),
        ("power", "power", 9),
        ("temp", "temp", 4),
        ("energy", "energy", 7),
        ("util_hist", "util history", 16),
        ("power_hist", "power history", 16),
    )

    FIXED = 11 + 7 + 10 + 10 + 9 + 4 + 7 + 2 * 7
    """Cells taken by the figure columns and their padding; what is left goes to the two history columns."""

    def columns_for(self, width: int) -> list[tuple[str, str, int]]:
        spark = self.spark_width(width)
        cols = [c for c in self.COLUMNS if not c[0].endswith("_hist")]
        if spark:
            cols += [("util_hist", "util history", spark), ("power_hist", "power history", spark)]
        return cols

    def spark_width(self, width: int) -> int:
        """Width of each history column at ``width`` (0: too narrow, the GPU view (2) has the history)."""
        spark = (width - self.FIXED - 4) // 2 - 2
        return min(60, spark) if spark >= 8 else 0

    def show(self, gpus: tuple[GpuView, ...], util_hist: dict[int, deque], power_hist: dict[int, deque]) -> None:
        spark = max(1, self.spark_width(self.size.width))
        self.sync([(str(g.index), gpu_cells(g, util_hist.get(g.index, ()), power_hist.get(g.index, ()), spark))
                   for g in gpus])


class GpuCard(Vertical):
    """The GPU view's panel for one GPU: identity and price, bars, and two history lines."""

    def __init__(self, index: int) -> None:
        super().__init__(id=f"gpu-card-{index}", classes="gpu-card")
        self.index = index
        self._last: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="gpu-title", classes="gpu-title")
        yield Static(id="gpu-figures")
        yield Static(id="gpu-history")

    def show(self, g: GpuView, util_hist, power_hist) -> None:
        """Refresh the card; nothing is written when the figures did not change."""
        width = max(10, (self.content_region.width or 60) - 8)
        state = (g, tuple(util_hist)[-width:], tuple(power_hist)[-width:], width)
        if state == self._last:
            return
        self._last = state
        price = fmt.rate(g.rate_per_hour) + (" (unknown model: default rate)" if g.unknown_price else "")
        self.border_title = literal(f"GPU {g.index}  {g.model_key or '?'}")
        self.query_one("#gpu-title", Static).update(
            Text.assemble(literal(g.name, "bold"), f"  {price}  cost {fmt.money(g.cost_usd)}"), layout=False)
        if g.lost:
            self.query_one("#gpu-figures", Static).update(LOST)
        else:
            bw = max(10, min(30, width // 2 - 8))
            util = None if g.utilization_pct is None else g.utilization_pct / 100
            power = None if g.power_w is None or not g.power_limit_w else g.power_w / g.power_limit_w
            temp = fmt.NA if g.temperature_c is None else f"{g.temperature_c:.0f}C"
            figures = Text.assemble(
                "util  ", fmt.bar(util, bw, fmt.pct(g.utilization_pct)),
                "  VRAM ", fmt.bar(g.memory_fraction, bw, memory_label(g)), "\n",
                "power ", fmt.bar(power, bw, power_label(g)),
                f"  temp {temp}  energy {g.energy_method or fmt.NA}  now {fmt.rate(g.burn_rate_usd_per_hour)}",
            )
            self.query_one("#gpu-figures", Static).update(figures, layout=False)
        top = g.power_limit_w or max((p for p in power_hist if p is not None), default=0)
        self.query_one("#gpu-history", Static).update(
            f"util  {fmt.sparkline(util_hist, width, 100)}\npower {fmt.sparkline(power_hist, width, top)}",
            layout=False)
