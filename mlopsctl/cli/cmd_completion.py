"""``mlopsctl completion``."""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def command(shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    Commands, options, model names, versions (MODEL@VERSION) and environments (MODEL#ENV) are
    completed; names and versions are read from the registry of the current directory. The
    script is click's: it calls mlopsctl with _MLOPSCTL_COMPLETE set.

    \b
    Example:
      mlopsctl completion bash > ~/.local/share/bash-completion/completions/mlopsctl
      mlopsctl completion zsh > "${fpath[1]}/_mlopsctl"
      mlopsctl completion fish > ~/.config/fish/completions/mlopsctl.fish
      eval "$(mlopsctl completion bash)"   # this shell only
    """
    from click.shell_completion import get_completion_class

    from mlopsctl.cli import cli

    cls = get_completion_class(shell)
    assert cls is not None  # the three shells are click's own
    click.echo(cls(cli, {}, "mlopsctl", "_MLOPSCTL_COMPLETE").source())
