"""``mlopsctl key``."""

from __future__ import annotations

import sys
from typing import TextIO

import click


@click.group("key")
def command() -> None:
    """Export or import the registry's encryption key.

    The key never enters the repository. Give it to CI as the secret MLOPSCTL_KEY, or import it
    on another machine.

    \b
    Example:
      mlopsctl key export                 # prints the key: handle it as a secret
      mlopsctl key export | ssh other 'cd repo && mlopsctl key import'
    """


@command.command("export")
def export() -> None:
    """Print this registry's key (hex) on stdout."""
    from mlopsctl.project import Project

    key = Project.open().key()
    if sys.stdout.isatty():
        print("warning: this is a secret; store it as the CI secret MLOPSCTL_KEY", file=sys.stderr)
    print(key.hex())


@command.command("import")
@click.argument("source", type=click.File("r"), default="-")
def import_(source: TextIO) -> None:
    """Store a key (hex or base64, from SOURCE or stdin) in your key store."""
    from mlopsctl.errors import CheckFailed
    from mlopsctl.project import Project
    from mlopsctl.store.keys import import_key

    project = Project.open()
    kid = import_key(source.read())
    if kid != project.config.encryption.key_id:
        raise CheckFailed(f"stored key {kid}, but this registry uses "
                          f"{project.config.encryption.key_id}",
                          hint="that key belongs to another registry")
    print(f"imported key {kid}", file=sys.stderr)
