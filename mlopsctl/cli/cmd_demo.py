"""``mlopsctl demo``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(path_type=Path), metavar="PATH",
              help="Where to create the demo (default: a new temporary directory).")
def command(directory: Path | None) -> None:
    """Run a narrated demo in a fresh temporary repository.

    Trains a small scikit-learn model, then runs init, bumps, show, history, a verified fetch,
    verify, validate, promotions to staging and production, a second release and a rollback,
    printing each command as it runs. Nothing outside the demo directory is touched (keys and
    the artifact remote live inside it).

    \b
    Example:
      mlopsctl demo
    """
    from mlopsctl.cli import console
    from mlopsctl.demo import run_demo

    out = console.out()

    def command_runner(args: list[str]) -> int:
        import sys

        from mlopsctl.cli import main

        sys.stdout.flush()
        code = main(args)
        sys.stdout.flush()
        sys.stderr.flush()
        return code

    run_demo(directory, lambda text: out.print(text), command_runner)
