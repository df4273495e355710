"""Shell completion (click's own, for bash, zsh and fish) and ``gputab --version``, through the real command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import version

import pytest

from gputab import __version__
from support import subprocess_env

GPUTAB = [sys.executable, "-m", "gputab"]


def gputab(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GPUTAB, *args], capture_output=True, text=True, timeout=60, env=subprocess_env(**env), check=False
    )


def test_version_names_gputab_and_the_nvml_binding():
    r = gputab("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"gputab {__version__}", f"nvidia-ml-py {version('nvidia-ml-py')}"]


@pytest.mark.parametrize(
    "shell,marker",
    [
        ("bash", "complete -o nosort -F _gputab_completion gputab"),
        ("zsh", "#compdef gputab"),
        ("fish", "complete --no-files --command gputab"),
    ],
)
def test_completion_prints_the_script_click_makes(shell, marker):
    r = gputab("completion", shell)
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout and f"_GPUTAB_COMPLETE={shell}_complete" in r.stdout
    # The same script as click's own spelling, so the documented one-liners are interchangeable.
    assert r.stdout == gputab(_GPUTAB_COMPLETE=f"{shell}_source").stdout


def test_completion_refuses_another_shell():
    r = gputab("completion", "tcsh")
    assert r.returncode == 2 and "tcsh" in r.stderr and r.stdout == ""


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_bash_script_completes_commands_and_options(tmp_path):
    """bash sources the script and runs its function as it would on Tab; click answers from the real command."""
    script = tmp_path / "gputab.bash"
    script.write_text(gputab("completion", "bash").stdout)
    shim = tmp_path / "bin" / "gputab"  # the script calls `gputab` by name, as an installed one would be
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gputab "$@"\n')
    shim.chmod(0o755)
    probe = (
        f"source {script}\n"
        'COMPREPLY=(); COMP_WORDS=(gputab rec); COMP_CWORD=1; _gputab_completion gputab; echo "${COMPREPLY[*]}"\n'
        "COMPREPLY=(); COMP_WORDS=(gputab completion ''); COMP_CWORD=2; _gputab_completion gputab; echo \"${COMPREPLY[*]}\"\n"
    )
    env = subprocess_env(PATH=f"{shim.parent}:{subprocess_env()['PATH']}")
    r = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["record", "bash zsh fish"]
