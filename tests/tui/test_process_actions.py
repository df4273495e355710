"""Signals from the processes view, on real processes: your own get SIGINT/SIGTERM/SIGKILL after a confirmation
that names them; another user's (`nobody`'s) are never offered; `--readonly` and the demo box send nothing."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess

import pytest
from tui_support import advance, make_app

from gputab.live.frame import Frame, ProcessView
from gputab.tui.process_actions import NotSignalable, pin, send
from gputab.tui.signal_screen import SignalScreen
from gputab.tui.widgets.processes import ProcessTable
from support import Notified


def _nobody() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody on this machine")


def _as_nobody():
    user = _nobody()

    def drop() -> None:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return drop


@pytest.fixture
def procs():
    """A process of ours and one of ``nobody``'s, both ``sleep``, killed at the end whatever happened."""
    if os.getuid() != 0:
        pytest.skip("starting a process as nobody needs root (the suite runs as root)")
    mine = subprocess.Popen(["sleep", "60"])
    theirs = subprocess.Popen(["sleep", "61"], preexec_fn=_as_nobody())
    yield mine, theirs
    for p in (mine, theirs):
        if p.poll() is None:
            p.kill()
        p.wait()


def _frame(*pids_users, real=True) -> Frame:
    processes = tuple(
        ProcessView(
            pid=pid,
            gpu_index=i,
            user=user,
            command=f"sleep ({user})",
            used_memory_bytes=1 << 30,
            sm_pct=10.0,
            tag=f"job-{user}",
            source="env",
        )
        for i, (pid, user) in enumerate(pids_users)
    )
    return Frame(host="h", state="recording", processes=processes, real_pids=real)


def _exited(p: subprocess.Popen, timeout: float = 5.0) -> int | None:
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


async def _select(app, pilot, pid: int) -> None:
    await pilot.press("3")
    await pilot.pause()
    table = app.screen.query_one(ProcessTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(next(k for k in table._cells if k.startswith(f"{pid}@"))))
    await pilot.pause()


@pytest.mark.parametrize("key,sig", [("I", signal.SIGINT), ("T", signal.SIGTERM), ("K", signal.SIGKILL)])
async def test_own_process_gets_the_signal_after_a_confirmation_naming_it(demo_ctx, clock, procs, key, sig):
    mine, theirs = procs
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 1)
        app.show(_frame((mine.pid, "me"), (theirs.pid, "nobody")))
        await _select(app, pilot, mine.pid)
        await pilot.press(key)
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, SignalScreen)
        text = "\n".join(str(w.render()) for w in dialog.query("Label, Static"))
        assert f"Send {sig.name} to process {mine.pid}?" in text and "sleep 60" in text and "job-me" in text
        await pilot.press("y")
        await pilot.pause()
        assert _exited(mine) == -sig
        assert theirs.poll() is None


async def test_cancel_sends_nothing(demo_ctx, clock, procs):
    mine, _ = procs
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 1)
        app.show(_frame((mine.pid, "me")))
        await _select(app, pilot, mine.pid)
        await pilot.press("K")
        await pilot.pause()
        assert isinstance(app.screen, SignalScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, SignalScreen)
        assert _exited(mine, 0.3) is None


async def test_another_users_process_is_never_offered(demo_ctx, clock, procs):
    _, theirs = procs
    app = make_app(demo_ctx, clock)
    notified = Notified()
    async with app.run_test(size=(120, 40), message_hook=notified) as pilot:
        await advance(app, clock, 1)
        app.show(_frame((theirs.pid, "nobody")))
        await _select(app, pilot, theirs.pid)
        for key in ("I", "T", "K"):
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, SignalScreen)
        assert _exited(theirs, 0.3) is None
        assert any("not you" in n.message for n in notified)


@pytest.mark.parametrize("readonly,real", [(True, True), (False, False)], ids=["readonly", "demo"])
async def test_readonly_and_the_demo_send_nothing(demo_ctx, clock, procs, readonly, real):
    mine, _ = procs
    app = make_app(demo_ctx, clock, readonly=readonly)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 1)
        app.show(_frame((mine.pid, "me"), real=real))
        await _select(app, pilot, mine.pid)
        await pilot.press("K")
        await pilot.pause()
        assert not isinstance(app.screen, SignalScreen)
        assert _exited(mine, 0.3) is None


async def test_demo_frames_say_their_pids_are_simulated(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(80, 24)):
        frame = await advance(app, clock, 2)
        assert frame.processes and frame.real_pids is False


def test_pin_refuses_another_user_and_a_reused_pid_gets_nothing(procs):
    mine, theirs = procs
    with pytest.raises(NotSignalable, match="not you"):
        pin(theirs.pid)
    target = pin(mine.pid)
    assert target.cmdline == "sleep 60"
    mine.kill()
    mine.wait()
    with pytest.raises(NotSignalable, match="exited"):
        send(target, "SIGTERM")
    with pytest.raises(NotSignalable, match="exited"):
        pin(mine.pid)


def test_a_user_cannot_pin_roots_process_from_their_own_session(procs):
    """In a child that really is nobody (forked, then setuid): root's process is refused by the ownership and the
    kernel checks, nobody's own is offered; nothing is sent either way."""
    mine, theirs = procs
    drop = _as_nobody()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        try:
            os.close(read)
            drop()
            lines = []
            try:
                pin(mine.pid)
                lines.append("offered")
            except NotSignalable as exc:
                lines.append(f"refused: {exc}")
            try:
                pin(mine.pid, uid=0)  # even claiming to be root, the kernel refuses
                lines.append("offered")
            except NotSignalable as exc:
                lines.append(f"refused: {exc}")
            lines.append(f"own: {pin(theirs.pid).cmdline}")
            os.write(write, "\n".join(lines).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        out = f.read()
    os.waitpid(child, 0)
    first, second, own = out.splitlines()
    assert first.startswith("refused:") and "not you" in first
    assert second.startswith("refused:") and "kernel refuses" in second
    assert own == "own: sleep 61"
    assert mine.poll() is None and theirs.poll() is None


def test_readonly_is_an_option_of_the_live_view():
    from click.testing import CliRunner

    from gputab.cli.main import cli

    out = CliRunner().invoke(cli, ["--help"])
    assert out.exit_code == 0 and "--readonly" in out.output and "no process actions" in out.output
