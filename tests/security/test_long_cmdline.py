"""Long command lines (issue 24): redaction reads a bounded prefix of each argument, in linear time, and never
shows part of a secret that straddles the cut."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gputab.redaction import CUT, MAX_ARG_SCAN, MAX_CMDLINE_CHARS, redact_cmdline

# Each 2 MiB in all, the shapes that made redaction slow or that a glob or an inline config takes.
ARGVS = {
    "one long word": ["python", "train.py", "--shards=" + "a" * (2 << 20)],
    "letters only (the URL pattern's worst case)": ["python", "https" * ((2 << 20) // 5)],
    "16 arguments of 128 KiB": ["python", *["x" * (128 << 10)] * 16],
    "100,000 short arguments": ["python", *[f"/data/shard-{i:07d}.tar" for i in range(100_000)]],
    "one argument of 2 MiB of words": ["sh", "-c", "ab " * ((2 << 20) // 3)],
    "an inline JSON config": ["python", "--config=" + '{"lr":1,' * ((2 << 20) // 8)],
    "a URL that never closes its user-info": ["git", "https://" + "u:p," * ((2 << 20) // 4)],
}

_TIMER = r"""
import json, sys, time
sys.setrecursionlimit(10000)
from gputab.redaction import redact_cmdline
argv = json.loads(sys.stdin.read())
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    redact_cmdline(argv)
    best = min(best, time.perf_counter() - t)
print(best)
"""


@pytest.mark.parametrize("name", sorted(ARGVS))
def test_redacting_a_2_mib_argv_takes_milliseconds(name):
    """Issue 24 asks for <= 5 ms (bench/RESULTS.md); the assertion allows for a loaded test box. Main took minutes,
    so the work runs in a subprocess with a timeout rather than hanging the suite."""
    argv = ARGVS[name]
    try:
        r = subprocess.run(
            [sys.executable, "-c", _TIMER], input=json.dumps(argv), capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"redacting {name} took more than 30 s")
    assert r.returncode == 0, r.stderr
    assert float(r.stdout) < 0.05, f"{name}: {float(r.stdout) * 1000:.1f} ms"


@pytest.mark.parametrize("name", sorted(ARGVS))
def test_a_long_command_line_is_cut_and_the_cut_is_marked(name):
    line = redact_cmdline(ARGVS[name])
    assert len(line) <= MAX_CMDLINE_CHARS
    assert line.endswith(CUT)
    assert line.isprintable()


# Secrets written with letters the filler never uses: any Q or Z in the output is part of a secret shown.
SECRETS = [
    "hf_" + "QZ" * 10,
    "sk-" + "QZ" * 10,
    "AKIA" + "QZ" * 8,
    "--token=" + "QZ" * 10,
    "HF_TOKEN=" + "QZ" * 10,
    "--password " + "QZ" * 10,
    "Authorization: Bearer " + "QZ" * 10,
    "https://QZQZ:QZQZ@example.com/x",
    "https://QZ,QZ;QZ@example.com/x",
    "postgres://QZQZ@db/x",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_a_secret_straddling_the_cut_is_never_shown_in_part(secret):
    filler = "ab cd " * (MAX_ARG_SCAN // 6 + 1)
    for at in range(MAX_ARG_SCAN - len(secret) - 8, MAX_ARG_SCAN + 2):
        arg = filler[:at] + " " + secret + " tail " * 10
        for argv in (["sh", "-c", arg], ["python", *arg.split(" ")]):
            line = redact_cmdline(argv)
            assert "Q" not in line and "Z" not in line, (at, line[-80:])


@pytest.mark.parametrize("secret", SECRETS)
def test_secrets_within_the_scanned_prefix_are_still_redacted(secret):
    arg = "ab " * 100 + secret + " " + "x" * (3 * MAX_ARG_SCAN)
    line = redact_cmdline(["sh", "-c", arg])
    assert "Q" not in line and "Z" not in line
    assert "***" in line and CUT in line


def test_short_command_lines_are_unchanged_by_the_bound():
    args = ["python", "train.py", "--lr", "3e-4", "--data", "/data/shards/*.tar"]
    assert redact_cmdline(args) == "python train.py --lr 3e-4 --data /data/shards/*.tar"
    assert CUT not in redact_cmdline(["x", "y" * (MAX_ARG_SCAN - 10)])
