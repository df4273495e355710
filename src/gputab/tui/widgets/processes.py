"""The processes table: who is on which GPU, and which job pays for it (and why)."""

from __future__ import annotations

from gputab.tui import format as fmt
from gputab.tui.frame import ProcessView
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


def process_cells(p: ProcessView) -> tuple:
    untagged = p.source in ("untagged", "no_permission", "hidden")
    return (
        str(p.pid),
        literal(p.user or "?"),
        str(p.gpu_index),
        fmt.gib(p.used_memory_bytes),
        fmt.pct(p.sm_pct),
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
        ("sm", "SM", 4),
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

    def show(self, processes: tuple[ProcessView, ...]) -> None:
        rows = sorted(processes, key=lambda p: (p.gpu_index, p.pid))
        self.sync([(p.key, process_cells(p)) for p in rows])
