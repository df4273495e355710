"""Progress bars read from a job's output (issue 29): the parser, and the tap that passes output through."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time

import pytest

from gputab.progress.bars import Bar, BarReader, parse_count, parse_segment
from gputab.progress.job_output import compile_pattern
from support import gputab_cmd, subprocess_env


def read(chunks: list[bytes], pattern=None) -> tuple[list[tuple[Bar, int]], BarReader]:
    seen: list[tuple[Bar, int]] = []
    reader = BarReader(lambda bar, advanced: seen.append((bar, advanced)), pattern)
    for chunk in chunks:
        reader.feed(chunk)
    reader.close()
    return seen, reader


def test_a_tqdm_line_gives_n_total_desc_and_unit():
    bar = parse_segment(b"train: 45%|####5     | 1234/5000 [02:01<06:10, 42.1it/s]")
    assert bar == Bar("train", 1234, 5000, "it")
    assert parse_segment(b" 12%|#2        | 12/100 [00:01<00:08, 10.00samples/s]") == Bar("", 12, 100, "samples")
    assert parse_segment(b"gen: 50%|#####     | 1.50k/3.00k [00:03<00:03, 499.9tok/s]") == Bar("gen", 1500, 3000, "tok")
    assert parse_segment(b"slow: 10%|#         | 1/10 [00:02<00:18, 2.00s/it]") == Bar("slow", 1, 10, "it")
    assert parse_segment(b"  0%|          | 0/400 [00:00<?, ?it/s]") == Bar("", 0, 400, "it")


def test_counts_with_unit_scale():
    assert parse_count(b"1234") == 1234
    assert parse_count(b"1.23k") == 1230
    assert parse_count(b"2M") == 2_000_000


def test_lines_that_are_not_bars_with_a_total_are_ignored():
    assert parse_segment(b"1234it [00:01, 1000.00it/s]") is None  # no total
    assert parse_segment(b"epoch 3 | loss 0.25 | 12/100") is None
    assert parse_segment(b"") is None


def test_a_bar_split_across_chunks_and_redrawn_with_carriage_returns_counts_each_item_once():
    lines = [f"\rtrain: {n:3d}%|          | {n}/100 [00:01<00:01, 10.00it/s]".encode() for n in range(0, 101, 10)]
    data = b"".join(lines) + b"\n"
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    seen, reader = read(chunks)
    assert sum(advanced for _, advanced in seen) == 100
    assert reader.bar == Bar("train", 100, 100, "it")


def test_the_outer_bar_of_nested_loops_counts_until_it_completes():
    out = []
    for epoch in range(3):
        out.append(f"\repochs: {epoch * 33}%|   | {epoch}/3 [00:01<00:02, 1.00it/s]")
        for step in range(0, 11, 5):
            out.append(f"\x1b[A\rbatches: {step * 10}%|   | {step}/10 [00:00<00:01, 50.00it/s]\x1b[B")
    out.append("\repochs: 100%|   | 3/3 [00:03<00:00, 1.00it/s]\n")
    out.append("\reval: 100%|   | 20/20 [00:01<00:00, 20.00it/s]\n")  # a bar after the outer one completed
    seen, _ = read(["".join(out).encode()])
    by_desc = {}
    for bar, advanced in seen:
        by_desc[bar.desc] = by_desc.get(bar.desc, 0) + advanced
    assert by_desc == {"epochs": 3, "eval": 20}


def test_a_bar_that_starts_over_counts_from_zero_and_never_goes_negative():
    data = b"\rx: 50%|  | 50/100 [00:01<00:01, 1it/s]\rx: 90%|  | 90/100 [00:01<00:01, 1it/s]"
    data += b"\rx: 20%|  | 20/100 [00:01<00:01, 1it/s]\n"
    seen, _ = read([data])
    assert [a for _, a in seen] == [50, 40, 20]


def test_a_shrinking_total_is_another_bar_and_counts_are_capped_at_the_total():
    data = b"\rx: 50%|  | 50/100 [00:01<00:01, 1it/s]\rx: 99%|  | 120/100 [00:01<00:01, 1it/s]\n"
    seen, reader = read([data])
    assert reader.bar is not None and reader.bar.n == 100
    assert sum(a for _, a in seen) == 100


def test_invalid_utf8_and_a_10_mb_line_without_newline_cost_little():
    junk = b"\xff\xfe\x80" * 1000
    big = b"x" * (10 * 1024 * 1024)
    start = time.perf_counter()
    seen, _ = read([junk, big[: 5 * 1024 * 1024], big[5 * 1024 * 1024 :], b"\rok: 10%|  | 1/10 [00:01<00:09, 1it/s]\n"])
    assert time.perf_counter() - start < 2.0
    assert [(b.desc, a) for b, a in seen] == [("ok", 1)]


def test_a_bar_whose_unit_is_tokens_counts_tokens():
    bar = parse_segment(b"decode: 10%|#  | 100/1000 [00:01<00:09, 99.0tokens/s]")
    assert bar is not None and bar.tokens


def test_progress_pattern_needs_n_and_total():
    pattern = compile_pattern(r"step (?P<n>\d+) of (?P<total>\d+)")
    seen, _ = read([b"step 5 of 20\nstep 7 of 20\n"], pattern)
    assert [a for _, a in seen] == [5, 2]
    with pytest.raises(ValueError, match="named groups"):
        compile_pattern(r"step (\d+)")
    with pytest.raises(ValueError, match="not a valid"):
        compile_pattern(r"step (")


WRITER = r"""
import os, sys
sys.stdout.buffer.write(b"out: \x1b[31mred\x1b[0m\r\n" + bytes(range(256)) + b"\n")
sys.stdout.flush()
sys.stderr.buffer.write(b"\rjob: 50%|#####     | 5/10 [00:01<00:01, 5.00it/s]")
sys.stderr.buffer.write(b"\rjob: 100%|##########| 10/10 [00:02<00:00, 5.00it/s]\n")
sys.stderr.flush()
print("tty", os.isatty(1), os.isatty(2), file=sys.stderr)
"""


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, env=env, timeout=60)


def test_output_passes_through_unchanged_and_a_pipe_stays_a_pipe(tmp_path):
    env = {**subprocess_env(), "GPUTAB_SPOOL": str(tmp_path / "spool")}
    direct = _run([sys.executable, "-c", WRITER], env)
    tapped = _run([*gputab_cmd(), "--demo", "run", "--tag", "t", "--", sys.executable, "-c", WRITER], env)
    assert tapped.returncode == 0, tapped.stderr
    assert tapped.stdout == direct.stdout
    assert tapped.stderr == direct.stderr
    assert b"tty False False" in tapped.stderr
    (spooled,) = (tmp_path / "spool").iterdir()
    assert '"t":[10,0]' in spooled.read_text()


def _under_a_terminal(argv: list[str], env: dict[str, str]) -> bytes:
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    out = b""
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
    finally:
        os.waitpid(pid, 0)
        os.close(master)
    return out


def test_a_terminal_stays_a_terminal_and_gets_the_same_bytes(tmp_path):
    env = {**subprocess_env(), "GPUTAB_SPOOL": str(tmp_path / "spool")}
    direct = _under_a_terminal([sys.executable, "-c", WRITER], env)
    tapped = _under_a_terminal([*gputab_cmd(), "--demo", "run", "--tag", "t", "--", sys.executable, "-c", WRITER], env)
    assert b"tty True True" in direct
    assert tapped == direct


def test_no_progress_leaves_the_output_alone(tmp_path):
    env = {**subprocess_env(), "GPUTAB_SPOOL": str(tmp_path / "spool")}
    r = _run([*gputab_cmd(), "--demo", "run", "--tag", "t", "--no-progress", "--", sys.executable, "-c", WRITER], env)
    assert r.returncode == 0 and b"tty False False" in r.stderr
    assert not (tmp_path / "spool").exists() or not list((tmp_path / "spool").iterdir())


def test_a_bad_progress_pattern_is_one_line_and_exit_2():
    r = subprocess.run(
        [*gputab_cmd(), "--demo", "run", "--tag", "t", "--progress-pattern", "(", "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "--progress-pattern" in r.stderr and "Traceback" not in r.stderr


TRAIN = r"""
import os, sys, time
from pathlib import Path
from tqdm import tqdm

Path(sys.argv[1]).write_text(str(os.getpid()))
while not Path(sys.argv[2]).exists():
    time.sleep(0.05)
for _ in tqdm(range(400), desc="train", mininterval=0.05):
    time.sleep(0.025)
"""


@pytest.mark.slow
def test_a_tqdm_job_under_gputab_run_gets_samples_progress_and_a_forecast(tmp_path, fake_nvml):
    """No gputab code in the job: a real tqdm loop of 400 items, a real recorder on the fake NVML."""
    import json

    pytest.importorskip("tqdm")
    from fakenvml import GIB, GpuSpec, Proc, Scenario
    from test_recorder_process import Rec

    gpu = GpuSpec(name="NVIDIA H100 80GB HBM3", uuid="GPU-aaaa", util=90, mem_used=10 * GIB, power_mw=400_000)
    fake_nvml.write(Scenario(gpus=[gpu], processes=[]))
    env = fake_nvml.env()
    config = tmp_path / "config.toml"
    config.write_text(
        "[recorder]\ninterval = 0.2\ncommit_interval = 0.4\nseries_interval = 0.5\nforecast_min_span = 2\n"
    )
    env["GPUTAB_CONFIG"] = str(config)
    rec = Rec(env=env)
    rec.wait_for(r"recording session \d+")  # counts from before the session would be its baseline
    pid_file, go = tmp_path / "pid", tmp_path / "go"
    run = subprocess.Popen(
        [*gputab_cmd(), "run", "--tag", "tqdm-job", "--", sys.executable, "-c", TRAIN, str(pid_file), str(go)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and run.poll() is None, run.stderr.read() if run.poll() else ""
            time.sleep(0.05)
        fake_nvml.write(Scenario(gpus=[gpu], processes=[Proc(0, int(pid_file.read_text()), used_bytes=10 * GIB)]))
        time.sleep(1.0)  # the recorder sees the job, and the spool's baseline, before the bar starts
        go.touch()
        forecasts = []
        while run.poll() is None:
            show = subprocess.run([*gputab_cmd(), "show", "last", "--json"], capture_output=True, env=env, timeout=60)
            jobs = {j["tag"]: j for j in json.loads(show.stdout)["jobs"]} if show.returncode == 0 else {}
            if jobs.get("tqdm-job", {}).get("projected_cost_usd") is not None:
                forecasts.append(jobs["tqdm-job"])
            time.sleep(0.3)
        out, err = run.communicate(timeout=30)
        assert run.returncode == 0, err
        assert b"train: 100%" in err and b"400/400" in err  # the bar still reaches the terminal
        time.sleep(1.5)  # the last spool write reaches the recorder
        rec.stop()
        show = subprocess.run([*gputab_cmd(), "show", "last", "--json"], capture_output=True, env=env, timeout=60)
        job = {j["tag"]: j for j in json.loads(show.stdout)["jobs"]}["tqdm-job"]
        assert job["samples"] == 400
        assert job["progress_pct"] == pytest.approx(100.0)
        assert job["cost_per_sample_usd"] == pytest.approx(job["cost_usd"] / 400, rel=1e-9)
        assert forecasts, "no forecast while the job ran"
        assert 0 < forecasts[0]["progress_pct"] < 100
        assert forecasts[0]["projected_cost_usd"] > 0 and forecasts[0]["forecast_state"] == "running"
    finally:
        if run.poll() is None:
            run.kill()
        if rec.proc.poll() is None:
            rec.stop()


def test_stdout_and_stderr_to_one_file_keep_their_order(tmp_path):
    """`> log 2>&1`: one tap takes both, so the command's writes to the two keep their order."""
    env = {**subprocess_env(), "GPUTAB_SPOOL": str(tmp_path / "spool")}
    argv = [sys.executable, "-c", WRITER]
    direct = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=60)
    tapped = subprocess.run(
        [*gputab_cmd(), "--demo", "run", "--tag", "t", "--", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        timeout=60,
    )
    assert tapped.returncode == 0
    assert tapped.stdout == direct.stdout
