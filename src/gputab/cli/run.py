"""``gputab run --tag NAME -- CMD ...``: start a command so that its GPU time is charged to NAME.

The command gets ``GPUTAB_TAG=NAME`` in its environment and nothing else changes; attribution finds the tag in
the process and in every process it starts. gputab stays in between as a supervisor, rather than exec'ing the
command, so that it can pass signals on, report how the command ended, and later watch a budget while it runs.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from gputab.attribution import TAG_ENV, validate_tag
from gputab.cli.context import AppContext, pass_ctx
from gputab.config.settings import MAX_GRACE_SECONDS
from gputab.errors import GputabError
from gputab.money import usd

if TYPE_CHECKING:
    from gputab.progress.job_output import OutputProgress

FORWARDED = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))
"""Signals passed on to the command: interrupt, termination (Slurm, systemd, kill), hang-up."""
SI_KERNEL = 0x80
"""Linux ``si_code`` of a signal the kernel sent, e.g. the terminal's Ctrl-C, which reaches the command anyway."""
# The precise path needs sigtimedwait() and the Linux si_code values; elsewhere, handlers forward every signal.
_PRECISE = sys.platform.startswith("linux") and hasattr(signal, "sigtimedwait") and hasattr(os, "posix_spawnp")

_RESTORED = tuple(getattr(signal, n) for n in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, n))

WATCH_TICK = 1.0
"""Seconds between two budget readings of ``gputab run --budget``."""

Watcher = Callable[[int], None]
"""Called with the command's PID about once per ``tick`` while it runs (a budget check hooks in here)."""


def exit_code_of(status: int) -> int:
    """Shell convention: the command's exit code, or 128 + N if signal N killed it."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def run_command(
    argv: Sequence[str],
    tag: str,
    watch: Watcher | None = None,
    tick: float = 1.0,
    progress: OutputProgress | None = None,
) -> int:
    """Run ``argv`` with ``GPUTAB_TAG=tag`` added to the environment, forwarding signals; return its exit code.

    Args:
        argv: the command and its arguments; ``argv[0]`` is looked up in ``PATH``.
        tag: a tag that passed :func:`gputab.attribution.validate_tag`.
        watch: optional periodic check while the command runs.
        tick: seconds between ``watch`` calls.
        progress: taps the command's output for progress bars (None: the command writes to gputab's own
            stdout and stderr directly).

    Raises:
        GputabError: the command does not exist (exit 127) or cannot be executed (exit 126).
    """
    if not argv or not argv[0]:
        raise GputabError("command not found: the command is empty", exit_code=127)
    env = dict(os.environ)
    env[TAG_ENV] = tag
    try:
        if _PRECISE:
            return _supervise_sigwait(list(argv), env, watch, tick, progress)
        return _supervise_handlers(list(argv), env, watch, tick, progress)
    except FileNotFoundError:
        raise GputabError(f"command not found: {argv[0]}", exit_code=127) from None
    except PermissionError:
        raise GputabError(f"cannot execute {argv[0]}: permission denied", exit_code=126) from None
    except OSError as exc:
        raise GputabError(f"cannot execute {argv[0]}: {exc.strerror or exc}", exit_code=126) from None
    except ValueError as exc:  # a NUL byte in an argument: no exec can take it
        raise GputabError(f"cannot execute {argv[0]!r}: {exc}", exit_code=126) from None


def _supervise_sigwait(
    argv: list[str], env: dict[str, str], watch: Watcher | None, tick: float, progress: OutputProgress | None
) -> int:
    """Linux: block the signals and take them with ``sigtimedwait``, which tells who sent each one.

    A signal from the kernel (the terminal's Ctrl-C or hang-up) went to the whole foreground process group, the
    command included, so passing it on would deliver it twice (and a second Ctrl-C makes many training loops
    abort their clean-up). A signal another process sent to gputab alone (``kill``, Slurm, systemd) is passed on.
    """
    waited = {*FORWARDED, signal.SIGCHLD}  # SIGCHLD wakes the loop when the command ends
    if progress is not None:
        waited.add(signal.SIGWINCH)  # the terminal was resized: so are the command's pseudo-terminals
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in (progress.fds.items() if progress else ())]
    try:
        # The command starts with gputab's original mask; the blocked one is gputab's business only. Python
        # ignores SIGPIPE and SIGXFSZ in itself; the command gets the defaults back, as subprocess would do.
        pid = os.posix_spawnp(argv[0], argv, env, setsigmask=old_mask, setsigdef=_RESTORED, file_actions=actions)
        if progress is not None:
            progress.started()
        try:
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return exit_code_of(status)
                info = signal.sigtimedwait(waited, tick)
                if info is not None and info.si_signo == getattr(signal, "SIGWINCH", None):
                    if progress is not None:
                        progress.resized()
                    continue
                if info is not None and info.si_signo != signal.SIGCHLD and info.si_code != SI_KERNEL:
                    _send(pid, info.si_signo)
                if info is None and watch is not None:
                    watch(pid)
        finally:
            if progress is not None:
                progress.finish()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _supervise_handlers(
    argv: list[str], env: dict[str, str], watch: Watcher | None, tick: float, progress: OutputProgress | None
) -> int:
    """Portable fallback: handlers pass every forwarded signal on (no way to tell who sent it)."""
    fds = progress.fds if progress is not None else {}
    child = subprocess.Popen(argv, env=env, stdout=fds.get(1), stderr=fds.get(2))
    if progress is not None:
        progress.started()
    previous = {sig: signal.signal(sig, lambda sig, _frame: _send(child.pid, sig)) for sig in FORWARDED}
    try:
        while True:
            try:
                child.wait(timeout=tick)
                break
            except subprocess.TimeoutExpired:
                if watch is not None:
                    watch(child.pid)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if progress is not None:
            progress.finish()
    code = child.returncode
    return 128 - code if code < 0 else code


def _send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:  # it exited in the meantime; the wait loop will see it
        pass


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that refuses nan and infinity: no budget or grace period is either."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def looks_negative(word: str) -> bool:
    """Whether a command-line word is a negative number (``-5``, ``-inf``), which click takes for an option."""
    try:
        float(word)
    except ValueError:
        return False
    return word.startswith("-")


def cap_or_fail(given: str, example: str) -> float:
    """The cap ``given`` on the command line, or a GputabError (exit 2): what a cap is, what was given, and
    ``example``, a command that works."""
    from gputab.budgets.model import parse_cap

    try:
        return parse_cap(given)
    except ValueError as exc:
        raise GputabError(f"{exc}: give one such as `{example}`", exit_code=2) from None


def _budget_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    return None if value is None else cap_or_fail(value, "gputab run --tag NAME --budget 20 -- COMMAND")


def _tag_option(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return validate_tag(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    short_help="Run a command with its GPU time charged to a tag.",
)
@click.option(
    "--tag",
    "-t",
    required=True,
    callback=_tag_option,
    metavar="NAME",
    help="Job tag: 1-64 printable characters, not starting with '('.",
)
@click.option(
    "--budget",
    callback=_budget_option,
    default=None,
    metavar="DOLLARS",
    help="Budget cap of this run in dollars [config: the [budgets] entry matching NAME, by glob]: alerts at 80 % "
    "and 100 %. gputab watches it by itself (no recorder needed), counting only what COMMAND and the processes "
    "it starts cost, never other processes tagged NAME.",
)
@click.option(
    "--stop-at-cap",
    is_flag=True,
    help="At the cap, send COMMAND and its children SIGINT (to checkpoint), then SIGTERM after --grace "
    "[config: on when the matching budget has stop = true].",
)
@click.option(
    "--grace",
    type=FiniteFloatRange(min=0, max=MAX_GRACE_SECONDS),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between SIGINT and SIGTERM with --stop-at-cap.",
)
@click.option(
    "--no-progress",
    is_flag=True,
    help="Do not read progress bars in COMMAND's output (its stdout and stderr then go to the terminal directly).",
)
@click.option(
    "--progress-pattern",
    metavar="REGEX",
    default=None,
    help="Read progress lines of another format than tqdm's: a regex with named groups n and total.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_ctx
def run(
    app: AppContext,
    tag: str,
    budget: float | None,
    stop_at_cap: bool,
    grace: float,
    no_progress: bool,
    progress_pattern: str | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND with GPUTAB_TAG=NAME in its environment, so its GPU time is charged to NAME.

    Every process COMMAND starts inherits the tag (dataloader workers, torchrun ranks). gputab stays in
    between: it passes SIGINT, SIGTERM and SIGHUP on to COMMAND and exits with COMMAND's exit code (128+N if
    signal N killed it; 127 if COMMAND does not exist).

    gputab reads tqdm progress bars in COMMAND's output (Hugging Face's and Lightning's bars are tqdm) and
    reports them as the job's samples (or tokens, for a bar whose unit is tokens) and progress, so cost per
    sample and the forecast need no code in the job. The output reaches the terminal unchanged.

    With --budget (or a budget in the config whose tag glob matches NAME), gputab watches the run by itself,
    whether a recorder runs or not: it polls the GPUs (same prices as the recorder) and counts what this run's
    own processes cost from the run's start: COMMAND and every process it starts. Other processes that carry the
    same tag, yours or another user's, are charged to NAME in the recorder and held to its budget there, but
    never count toward this run's budget, and --stop-at-cap never signals them.

    \b
    Examples:
      gputab run --tag llama3-lora -- torchrun --nproc-per-node 8 train.py
      gputab run -t eval-mmlu python eval.py --suite mmlu
      gputab run -t sweep-7 --budget 20 --stop-at-cap --grace 60 -- python train.py
    """
    from gputab.budgets.model import from_config, resolve

    cap = budget
    configured = resolve(from_config(app.config), tag)  # the config's budget holding NAME (by glob)
    if cap is None and configured is not None:
        cap = configured.cap_usd
        if configured.stop and not stop_at_cap:  # the budget stops its jobs: so does this run, with its grace
            stop_at_cap = True
            if click.get_current_context().get_parameter_source("grace") == ParameterSource.DEFAULT:
                grace = configured.grace_seconds
    if stop_at_cap and cap is None:
        raise click.UsageError(
            "--stop-at-cap needs a budget: --budget DOLLARS, or a budget matching NAME in the config"
        )
    progress = None if no_progress else _output_progress(tag, progress_pattern)
    if cap is None:
        sys.exit(run_command(command, tag, progress=progress))
    from gputab.cost.pricing import PriceTable
    from gputab.errors import BackendError
    from gputab.recording.run_watch import JobGuard, RunCost

    config = app.config
    try:
        backend = app.open_backend()
    except BackendError as exc:
        raise GputabError(f"--budget needs to read the GPUs: {exc}") from None
    with backend:
        meter = RunCost(
            backend, PriceTable.load(config.prices), tag, interval=WATCH_TICK, gap_factor=config.recorder.gap_factor
        )
        guard = JobGuard(
            tag, cap, stop_at_cap=stop_at_cap, grace_seconds=grace, config=config, stream=sys.stderr, meter=meter
        )
        stops = f"; stops it at the cap (SIGTERM {grace:g} s after SIGINT)" if stop_at_cap else ""
        click.echo(
            f"gputab: watching this run's {usd(cap)} budget by itself (no recorder needed), counting only what "
            f"COMMAND and its children cost{stops}",
            err=True,
        )
        try:
            # The first reading is the ledger's baseline; the command's time is charged from its first tick.
            code = run_command(command, tag, watch=guard.check, tick=WATCH_TICK, progress=progress)
        finally:
            guard.close()
    sys.exit(code)


def _output_progress(tag: str, pattern_text: str | None) -> OutputProgress | None:
    """The tap on COMMAND's output, or None where gputab cannot tap it (no stdout or stderr open)."""
    from gputab.progress.job_output import OutputProgress, compile_pattern

    try:
        pattern = compile_pattern(pattern_text) if pattern_text is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--progress-pattern") from None
    try:
        return OutputProgress(tag, pattern)
    except OSError as exc:
        click.echo(f"gputab: not reading progress bars ({exc.strerror or exc}); COMMAND runs as usual", err=True)
        return None


def register(cli: click.Group) -> None:
    """Add ``gputab run`` to the ``gputab`` group."""
    cli.add_command(run)
