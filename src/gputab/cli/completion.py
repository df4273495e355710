"""``gputab completion SHELL``: the tab-completion script of bash, zsh or fish, made by click itself.

click completes any command when the shell sets ``_GPUTAB_COMPLETE`` (``_GPUTAB_COMPLETE=bash_source gputab``
prints the same script); this command only spares users that spelling.
"""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_GPUTAB_COMPLETE"


def completion_script(cli: click.Command, shell: str) -> str:
    """The script click generates for ``shell`` (one of :data:`SHELLS`) and the ``gputab`` command ``cli``."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:  # click knows these three; the choice below admits no other
        raise click.BadParameter(f"no completion for {shell}", param_hint="SHELL")
    return cls(cli, {}, "gputab", COMPLETE_VAR).source()


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the tab-completion script for SHELL (bash, zsh or fish).

    \b
    bash: eval "$(gputab completion bash)"    (a line in ~/.bashrc)
    zsh:  eval "$(gputab completion zsh)"     (a line in ~/.zshrc)
    fish: gputab completion fish > ~/.config/fish/completions/gputab.fish
    """
    click.echo(completion_script(ctx.find_root().command, shell), nl=False)


def register(cli: click.Group) -> None:
    cli.add_command(completion)
