"""Pictures of the live view on this machine's real GPUs: part of the real-GPU check (``scripts/gpu-check.sh``).

    python bench/real_screens.py [--demo] OUT_DIR [SECONDS]

Opens the live view on the real NVML backend (a throwaway database), polls once a second for SECONDS (default 12)
while whatever runs on the GPUs runs, and saves the jobs and GPUs views as SVG at 120x40 and 80x24. ``--demo`` as
the first argument takes the pictures on the demo box instead (to try the script without a GPU). Nothing of the user's is read or written.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

SHOTS = (("live-jobs", (120, 40), ()), ("live-gpus", (120, 40), ("2",)), ("live-jobs", (80, 24), ()))


async def _shot(
    out: Path, work: Path, name: str, size: tuple[int, int], keys: tuple[str, ...], seconds: int, demo: bool
) -> Path:
    from gputab.app_context import AppContext
    from gputab.tui.app import create_app

    ctx = AppContext(demo=demo, db_path=work / f"{name}-{size[0]}.db", config_path=work / "none.toml")
    app = create_app(ctx, start_polling=False)
    async with app.run_test(size=size) as pilot:
        await app.feed_ready()
        for _ in range(seconds):
            await asyncio.sleep(1.0)
            await app.poll_now()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        await app.poll_now()
        await pilot.pause()
        stem = f"{name}-{size[0]}x{size[1]}"
        app.save_screenshot(filename=f"{stem}.svg", path=str(out))
    return out / f"{stem}.svg"


def main(argv: list[str]) -> int:
    demo = argv[:1] == ["--demo"]
    argv = argv[1:] if demo else argv
    out = Path(argv[0]) if argv else Path("real-screens")
    seconds = int(argv[1]) if len(argv) > 1 else 12
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for name, size, keys in SHOTS:
            print(asyncio.run(_shot(out, Path(work), name, size, keys, seconds, demo)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
