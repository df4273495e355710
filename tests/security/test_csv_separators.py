"""Every CSV gputab writes is safe in a spreadsheet whatever its list separator (issue 24, finding 3).

German and French spreadsheets split a CSV on ``;``; some readers split on tab, or ignore quotes. A tag like
``x;=2*3;`` was written unquoted, so such a reader split it and ran ``=2*3``. Each file (``export`` by every view,
``spend`` by every grouping, the review screen's export) is read back with ``,``, ``;`` and tab as the separator,
both as the csv module reads (quotes honoured) and naively (split on the separator, quotes stripped): no cell may
start with a formula character unless it is a number, and numbers are written bare.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import pytest

from gputab.config.settings import Config
from gputab.recording.recorder import Recorder
from gputab.sampling.demo import DemoBackend, FakeClock
from gputab.store import Store
from gputab.tui.review.data import export_sessions

HOSTILE = {
    "llama3-8b-lora": "x;=2*3;",
    "eval-mmlu": "a,+1,@SUM(A1)",
    "ci-gpu-tests": "-cmd;-2+3",
    "mistral-7b-serve": '=HYPERLINK("http://example.invalid","x")',
}
FORMULA = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("csvsep") / "gputab.db"
    clock = FakeClock()
    backend = DemoBackend(seed=0, clock=clock, wall_clock=clock.wall)
    rec = Recorder(backend, Store.open(path), Config(), clock=clock, wall_clock=clock.wall)
    rec.start()
    for old, new in HOSTILE.items():
        assert rec.attributor.retag(old, new)
    for _ in range(30):
        clock.advance(1.0)
        rec.step()
    assert rec.close("clean")
    return path


def _gputab(db, *args: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "gputab", "--db", str(db), *args], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _check(text: str) -> None:
    """No cell a spreadsheet would run, read with each separator, quote-aware and naive."""
    for sep in (",", ";", "\t"):
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=sep):
            for cell in row:
                assert not cell.startswith(FORMULA) or _is_number(cell), (sep, cell)
        for line in text.split("\r\n"):
            for cell in line.split(sep):
                cell = cell.strip('"')
                assert not cell.startswith(FORMULA) or _is_number(cell), ("naive", sep, cell)


def _bare_numbers(text: str) -> None:
    """Text is quoted (no separator splits it) and numbers are bare (a spreadsheet reads them as numbers): read with
    QUOTE_NONNUMERIC, every unquoted cell must be a number, and the cost columns are numbers."""
    rows = list(csv.reader(io.StringIO(text, newline=""), quoting=csv.QUOTE_NONNUMERIC))
    header = rows[0]
    assert all(isinstance(h, str) for h in header)
    costs = [i for i, h in enumerate(header) if h == "cost_usd"]
    assert costs, header
    for row in rows[1:]:
        assert all(isinstance(row[i], float) for i in costs), row


def _outputs(db, tmp_path) -> dict[str, str]:
    out: dict[str, str] = {}
    for by in ("job", "session", "gpu", "mig"):
        f = tmp_path / f"export-{by}.csv"
        _gputab(db, "export", "--csv", "--all", "--by", by, "-o", str(f))
        out[f"export --by {by}"] = f.read_bytes().decode()
    for by in ("tag", "user", "gpu", "host", "day", "week"):
        out[f"spend --by {by}"] = _gputab(db, "spend", "--csv", "--by", by, "--since", "2000-01-01")
    path, rows = export_sessions(db, [1], directory=tmp_path)
    assert rows > 0
    out["review export"] = path.read_bytes().decode()
    return out


@pytest.mark.slow
def test_every_csv_reads_safely_with_every_separator(db, tmp_path):
    outputs = _outputs(db, tmp_path)
    tagged = [name for name, text in outputs.items() if "x;'=2*3;" in text]
    assert {"export --by job", "spend --by tag", "review export"} <= set(tagged), tagged
    for name, text in outputs.items():
        try:
            _check(text)
            _bare_numbers(text)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


def test_hostile_tags_read_back_as_text_with_a_leading_quote(db, tmp_path):
    f = tmp_path / "jobs.csv"
    _gputab(db, "export", "--csv", "--all", "-o", str(f))
    text = f.read_bytes().decode()
    _check(text)
    _bare_numbers(text)
    tags = [row["tag"] for row in csv.DictReader(io.StringIO(text, newline=""))]
    assert "x;'=2*3;" in tags
    assert "a,'+1,'@SUM(A1)" in tags
    assert "'-cmd;'-2+3" in tags
    assert "'" + HOSTILE["mistral-7b-serve"] in tags
