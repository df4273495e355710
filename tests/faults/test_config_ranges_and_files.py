"""Issue 11, item 7: config values that pass the type check but would break things, and config paths that are not
files. Every accepted config gives finite, sane figures; the rest is refused with file, line and fault (exit 2).
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gputab.alerts.observer import AlertEngine, RollingSums, format_duration
from gputab.config.settings import MAX_RATE_PER_HOUR, RANGES, AlertsConfig, Config, load_config, parse_config
from gputab.cost.pricing import PriceTable
from gputab.errors import ConfigError

SOURCE = "/etc/gputab/config.toml"
GPUTAB = [sys.executable, "-m", "gputab"]


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, SOURCE)
    assert exc.value.exit_code == 2
    return str(exc.value)


@pytest.mark.parametrize(
    "text, key",
    [
        (
            '[prices.gpus."0"]\nmode = "owned"\npurchase_price = 30000\nuseful_life_years = 1e-320\n',
            "useful_life_years",
        ),
        ('[prices.gpus."0"]\nmode = "owned"\npurchase_price = 1e308\n', "purchase_price"),
        ('[prices.gpus."0"]\nownership_utilization = 1e-320\npurchase_price = 3e4\n', "ownership_utilization"),
        ("[prices.models.H100-SXM]\nrate_per_hour = 1e308\n", "rate_per_hour"),
        ("[prices.models.H100-SXM]\noverhead_per_hour = 1e308\n", "overhead_per_hour"),
        ("[prices]\ndefault_rate = 1e300\n", "default_rate"),
        ("[prices]\nprice_per_kwh = 1e300\n", "price_per_kwh"),
        ("[recorder]\ngap_factor = 1e308\n", "gap_factor"),
        ("[budgets]\ntrain = 1e308\n", "train"),
        ("[alerts]\nlow_utilization_pct = -1\n", "low_utilization_pct"),
        ("[alerts]\nlow_utilization_minutes = -5\n", "low_utilization_minutes"),
        ("[alerts]\nmemory_pressure_pct = -0.5\n", "memory_pressure_pct"),
        ("[alerts]\nmemory_pressure_seconds = -60\n", "memory_pressure_seconds"),
        ("[alerts]\nidle_minutes = -30\n", "idle_minutes"),
        ("[alerts]\nbudget_warning_pct = -80\n", "budget_warning_pct"),
        ("[alerts]\nmemory_pressure_pct = 150\n", "memory_pressure_pct"),
        ("[alerts]\nidle_minutes = 1e308\n", "idle_minutes"),
    ],
)
def test_values_that_would_overflow_or_make_no_sense_are_refused_with_line(text, key):
    msg = refused("# gputab\n\n" + text)
    assert msg.startswith(f"{SOURCE}:") and key in msg and "\n" not in msg
    line = next(n for n, ln in enumerate(("# gputab\n\n" + text).splitlines(), 1) if ln.startswith(key))
    assert msg.startswith(f"{SOURCE}:{line}:"), msg


def test_a_purchase_that_implies_an_absurd_rate_is_refused_naming_the_rate():
    msg = refused('[prices.gpus."0"]\nmode = "owned"\npurchase_price = 9e7\nuseful_life_years = 0.1\n')
    assert f"{SOURCE}:3:" in msg and "/h" in msg and "useful_life_years" in msg


override_numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([0.0, 1e-320, 5e-324, 1e308, 0.1, 1.0, 1e8]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries({k: override_numbers for k in RANGES["override"]}),
    st.fixed_dictionaries({k: override_numbers for k in RANGES["override"]}),
    st.sampled_from(["rental", "owned"]),
)
def test_every_accepted_price_config_gives_a_finite_rate(model, gpu, mode):
    lines = [f'[prices]\nmode = "{mode}"', "[prices.models.H100-SXM]"]
    lines += [f"{k} = {v!r}" for k, v in model.items() if v is not None]
    lines += ['[prices.gpus."0"]'] + [f"{k} = {v!r}" for k, v in gpu.items() if v is not None]
    try:
        cfg = parse_config("\n".join(lines), SOURCE)
    except ConfigError as exc:
        assert str(exc).startswith(SOURCE)
        return
    try:
        price = PriceTable.load(cfg.prices).price_for(0, "GPU-0", "NVIDIA H100 80GB HBM3")
    except ConfigError as exc:  # owned without a purchase price: a one-line refusal, not a number
        assert "purchase_price" in str(exc)
        return
    # Each override alone is capped at MAX_RATE_PER_HOUR; two merged stay within the bounds' worst case.
    assert math.isfinite(price.rate_per_hour) and 0 <= price.rate_per_hour <= 1e8 / (0.1 * 8760 * 0.01) + 1e4
    cost = price.rate_per_hour * 86400 * 365 / 3600 + price.energy_cost(700 * 86400 * 365)
    assert math.isfinite(cost)
    for o in (cfg.prices.models["H100-SXM"], cfg.prices.gpus["0"]):
        if o.purchase_price is not None:
            alone = o.purchase_price / ((o.useful_life_years or 4) * 8760 * (o.ownership_utilization or 1))
            assert alone + (o.overhead_per_hour or 0) <= MAX_RATE_PER_HOUR


def test_zero_thresholds_are_accepted_and_the_rules_survive_them():
    cfg = parse_config(
        "[alerts]\nlow_utilization_pct = 100\nlow_utilization_minutes = 0\nmemory_pressure_pct = 0\n"
        "memory_pressure_seconds = 0\nidle_minutes = 0\nbudget_warning_pct = 0\n",
        SOURCE,
    )
    assert cfg.alerts.low_utilization_minutes == 0
    sums = RollingSums(0.0)
    sums.add(5.0, 1.0, 0.25)
    sums.expire(5.0)
    assert sums.average == 0.25  # a zero window still holds the last tick
    sums.add(6.0, 1.0, 1.0)
    sums.expire(6.0)
    assert sums.average == 1.0


def test_a_huge_budget_at_a_tiny_burn_rate_does_not_overflow():
    engine = AlertEngine(AlertsConfig(budget_warning_pct=0), {"train": 1e308})
    changes = engine.update(0.0, [], [], [{"tag": "train", "cost_usd": 1.0, "burn_rate_usd_per_hour": 1e-300}])
    (alert,) = changes.raised
    assert alert.data["projected_seconds_to_cap"] is None and "not burning" not in alert.message
    assert format_duration(math.inf) == format_duration(math.nan) == "a very long time"


ZERO_ALERTS = """
[recorder]
interval = 0.1
commit_interval = 0.2
[alerts]
low_utilization_pct = 100
low_utilization_minutes = 0
memory_pressure_pct = 0
memory_pressure_seconds = 0
idle_minutes = 0
budget_warning_pct = 0
[budgets]
"llama3-8b-lora" = 0.000001
"eval-mmlu" = 1000000000
"""


def test_zero_thresholds_in_a_real_recorder_raise_alerts_and_never_kill_the_observer(tmp_path):
    """The demo box under `gputab record`: every rule fires at once, none raises, nothing is logged as failed."""
    config = tmp_path / "zero.toml"
    config.write_text(ZERO_ALERTS)
    proc = subprocess.Popen(
        [*GPUTAB, "--demo", "--db", str(tmp_path / "d.db"), "--config", str(config), "record"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "failed" not in err, err
    kinds = {k for k in ("memory", "idle", "utilization averaged", "budget exceeded", "budget spent") if k in out}
    assert kinds == {"memory", "idle", "utilization averaged", "budget exceeded", "budget spent"}, out


# --- config paths that are not config files ------------------------------------------------------------------


def run_gputab(args: list[str], env_config: str | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if env_config is not None:
        env["GPUTAB_CONFIG"] = env_config
    return subprocess.run(
        [*GPUTAB, *args], capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
    )


def one_line_refusal(proc: subprocess.CompletedProcess, path: Path | str, words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(path) in lines[0] and words in lines[0], lines[0]


def special_path(tmp_path: Path, kind: str) -> tuple[Path, str]:
    p = tmp_path / f"config-{kind}"
    if kind == "fifo":
        os.mkfifo(p)
        return p, "FIFO"
    if kind == "directory":
        p.mkdir()
        return p, "directory"
    if kind == "loop":
        os.symlink(tmp_path / "config-loop2", p)
        os.symlink(p, tmp_path / "config-loop2")
        return p, "symlink loop"
    if kind == "dangling":
        os.symlink(tmp_path / "gone.toml", p)
        return p, "does not exist"
    if kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(p))
        s.close()
        return p, "socket"
    if kind == "device":
        return Path("/dev/zero"), "character device"
    if kind == "not-a-dir":
        (tmp_path / "plain").write_text("")
        return tmp_path / "plain" / "config.toml", "Not a directory"
    if kind == "huge":
        with open(p, "wb") as f:
            f.truncate(64 << 20)
        return p, "limit"
    if kind == "binary":
        p.write_bytes(b"[prices]\n\xff\xfe\n")
        return p, "UTF-8"
    raise AssertionError(kind)


KINDS = ["fifo", "directory", "loop", "dangling", "socket", "device", "not-a-dir", "huge", "binary"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", [["prices"], ["--demo", "snapshot"]])
def test_special_config_paths_are_refused_in_one_line_without_hanging(tmp_path, kind, command):
    path, words = special_path(tmp_path, kind)
    one_line_refusal(run_gputab(["--config", str(path), *command]), path, words)


@pytest.mark.parametrize("kind", ["fifo", "loop", "dangling", "directory"])
def test_the_env_var_path_gets_the_same_refusal_never_silent_defaults(tmp_path, kind):
    path, words = special_path(tmp_path, kind)
    one_line_refusal(run_gputab(["prices"], env_config=str(path)), path, words)


def test_only_a_missing_file_means_defaults(tmp_path):
    assert load_config(tmp_path / "absent.toml") == Config()
    assert load_config(tmp_path / "no-dir" / "absent.toml") == Config()
    proc = run_gputab(["prices"], env_config=str(tmp_path / "absent.toml"))
    assert proc.returncode == 0 and proc.stderr == ""


def test_a_symlink_to_a_regular_config_is_followed(tmp_path):
    real = tmp_path / "real.toml"
    real.write_text("[budgets]\ntrain = 5\n")
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    assert load_config(link).budgets == {"train": 5.0}


def as_nobody(fn) -> str:
    """Run ``fn()`` in a forked child after os.setuid(nobody); returns what it returned, or the error's text."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            try:
                out = f"ok {fn()!r}"
            except ConfigError as exc:
                out = f"ConfigError {exc.exit_code} {exc}"
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                out = f"other {type(exc).__name__}: {exc}"
            os.write(w, out.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read().decode()
    os.waitpid(pid, 0)
    return data


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another user")
def test_an_unreadable_config_is_an_error_never_defaults():
    top = Path(tempfile.mkdtemp(prefix="gputab-cfg-"))
    try:
        top.chmod(0o755)
        unreadable = top / "config.toml"
        unreadable.write_text("[budgets]\ntrain = 5\n")
        unreadable.chmod(0o000)
        closed = top / "closed"
        closed.mkdir(mode=0o700)
        (closed / "config.toml").write_text("")
        got = as_nobody(lambda: load_config(unreadable))
        assert got.startswith("ConfigError 2") and "permission denied" in got and str(unreadable) in got, got
        got = as_nobody(lambda: load_config(closed / "config.toml"))
        assert got.startswith("ConfigError 2") and "permission denied" in got, got
    finally:
        for p in sorted(top.rglob("*"), reverse=True):
            p.chmod(0o700)
            p.unlink() if p.is_file() else p.rmdir()
        top.rmdir()


def test_proc_file_that_fails_to_read_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config("/proc/self/mem")
    assert "/proc/self/mem" in str(exc.value)
