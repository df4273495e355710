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


@pytest.mark.parametrize("path,cmd", list(_commands(cli)), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_summary_is_one_whole_short_sentence(path, cmd):
    """`gputab --help` (and a group's) lists each command with one sentence that fits: never cut with `...`."""
    summary = cmd.get_short_help_str(limit=60)
    assert summary.endswith(".") and not summary.endswith("...") and summary.count(". ") == 0, summary
    parent = CliRunner().invoke(cli, [*path[:-1], "--help"], terminal_width=80).output
    assert summary in parent
