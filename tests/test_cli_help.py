"""Every command has help text, and --help works on each (click's CliRunner)."""

import pytest
from click.testing import CliRunner

from gputab.cli import cli


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, prefix + (name,))


@pytest.mark.parametrize("path,cmd", list(_commands(cli)), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_has_help(path, cmd):
    assert (cmd.help or cmd.short_help or "").strip(), f"{' '.join(path)} has no help text"
    r = CliRunner().invoke(cli, [*path, "--help"])
    assert r.exit_code == 0 and "Usage:" in r.output


def test_group_lists_the_commands():
    out = CliRunner().invoke(cli, ["--help"]).output
    for name in ("snapshot", "record", "sessions", "show", "export", "review", "prices", "run", "samples"):
        assert name in out
