"""The processes table: who is on which GPU, and which job pays for it (and why)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gputab.live.frame import GpuView, ProcessView
from gputab.live.sm_share import instances_by_key, process_sm
from gputab.tui import format as fmt
from gputab.tui.literal import literal
from gputab.tui.widgets.table import KeyedTable

SOURCE_LABELS = {
    "env": "env",
    "inherited": "env (par.)",
    "key": "env key",
    "rule": "rule",
    "container": "container",
    "manual": "manual",
    "untagged": "untagged",
    "no_permission": "untagged (no permission)",
    "hidden": "not visible (host PID)",
    "gone": "exited",
}
"""How each attribution source reads in the ``how`` column."""


DERIVED_MARK = "~"
"""Before an SM % that the driver did not report for the process but that is derived from its MIG instance's."""


def derived_sm(processes: Sequence[ProcessView], gpus: Iterable[GpuView]) -> dict[str, float]:
    """Row key -> SM % of each process on a MIG instance for which the driver reports none (it reports no
    per-process utilization on MIG): its part of its instance's SM activity (GPM), as the jobs view's ``own SM``
    takes it (:func:`gputab.live.sm_share.process_sm`). A process whose instance has no GPM figure is left out
    (its SM stays n/a), as is every process the driver reports SM % for."""
    out: dict[str, float] = {}
    for p, sm in process_sm(processes, instances_by_key(gpus)):
        if p.sm_pct is None and sm is not None:
            out[p.key] = sm
    return out


def sm_text(p: ProcessView, derived: float | None) -> str:
    """``97%`` as the driver reports it, ``~63%`` derived from its MIG instance, else ``n/a``."""
    if p.sm_pct is None and derived is not None:
        return DERIVED_MARK + fmt.pct(derived)
    return fmt.pct(p.sm_pct)


def process_cells(p: ProcessView, derived: float | None = None) -> tuple:
    """One row; ``derived``: its SM % from its MIG instance (:func:`derived_sm`), shown with ``~``."""
    untagged = p.source in ("untagged", "no_permission", "hidden")
    return (
        str(p.pid),
        literal(p.user or "?"),
        str(p.gpu_index),
        fmt.gib(p.used_memory_bytes),
        sm_text(p, derived),
        literal(p.tag or "?", style="bold yellow" if untagged else ""),
        literal(SOURCE_LABELS.get(p.source, p.source), style="yellow" if untagged else "dim"),
        literal(p.command),
    )


class ProcessTable(KeyedTable):
    """One row per process per GPU. Select one and press ``t`` to charge it to a tag."""

    COLUMNS = (
        ("pid", "pid", 7),
        ("user", "user", 7),
        ("gpu", "GPU", 3),
        ("vram", "VRAM", 6),
        ("sm", "SM", 5),
        ("tag", "tag", 18),
        ("how", "how", 9),
        ("cmd", "command (redacted)", 30),
    )

    NARROW = {"user": 6, "tag": 14, "how": 8}
    """Column widths under 100 columns, so that the command line still gets a few cells at 80."""

    def columns_for(self, width: int) -> list[tuple[str, str, int]]:
        # The command line takes whatever the terminal has left (enter shows it in full).
        cols = [(k, label, self.NARROW.get(k, w) if width < 100 else w) for k, label, w in self.COLUMNS[:-1]]
        fixed = sum(c[2] + 2 for c in cols) + 4
        key, label, _ = self.COLUMNS[-1]
        return [*cols, (key, label, max(10, width - fixed))]

    def show(self, processes: tuple[ProcessView, ...], derived: dict[str, float] | None = None) -> None:
        """Show ``processes``; ``derived``: SM % from their MIG instances by row key (:func:`derived_sm`)."""
        derived = derived or {}
        rows = sorted(processes, key=lambda p: (p.gpu_index, p.pid))
        self.sync([(p.key, process_cells(p, derived.get(p.key))) for p in rows])
