"""The command line: a click group whose commands are imported only when run.

``main`` is the one error boundary: MlopsError -> ``error:``/``hint:`` and its exit code, click
usage errors -> 2, Ctrl-C -> 130, anything else -> 4 with the traceback saved to a log file.
Under ``--json`` an error is also a JSON object on stdout (``{"error", "hint", "exit_code"}``),
unless the command had already written its document.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from mlopsctl import __version__

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

# name -> (module, one-line summary). Summaries live here so `--help` imports no command.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init", "Make this git repository a model registry."),
    "bump": ("bump", "Register the next version of a model."),
    "show": ("show", "List models, or the versions of one model."),
    "history": ("history", "Show the registry's events, newest first."),
    "fetch": ("fetch", "Restore a verified copy of a version's artifact."),
    "verify": ("verify", "Re-check stored artifacts end to end."),
    "validate": ("validate", "Validate a version against an environment's gates."),
    "promote": ("promote", "Release a version to an environment (blue-green)."),
    "approve": ("approve", "Approve a version for an environment."),
    "rollback": ("rollback", "Flip an environment back to its previous version."),
    "status": ("status", "What is live where, and whether targets match."),
    "monitor": ("monitor", "The live monitor (Textual app), or --once --json / --watch."),
    "sync": ("sync", "Make deploy targets match the registry."),
    "unassign": ("unassign", "Take a version out of an environment."),
    "deregister": ("deregister", "Withdraw one version of a model."),
    "deprecate": ("deprecate", "Deprecate a model (hidden from show)."),
    "card": ("card", "Show or edit a model's card (like gto annotate)."),
    "serve": ("serve", "Serve an environment's live version over HTTP."),
    "push": ("push", "Send registry tags, notes and the branch to a git remote."),
    "pull": ("pull", "Fetch the team's registry tags and notes; merge the notes."),
    "gc": ("gc", "Remove stored blobs of versions no longer needed."),
    "remote": ("remote", "Move the stored blobs to a new artifact remote."),
    "policy": ("policy", "Show, check and accept the policy (the constitution)."),
    "doctor": ("doctor", "Check the repository's health."),
    "check": ("check", "Check the registry's files, pins and events (pre-commit, CI)."),
    "check-ref": ("check_ref", "Say what a pushed registry tag did (for CI)."),
    "completion": ("completion", "Print the shell completion script (bash, zsh, fish)."),
    "key": ("key", "Export or import the registry's encryption key."),
    "demo": ("demo", "Run a narrated demo in a temporary repository."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"mlopsctl.cli.cmd_{COMMANDS[cmd_name][0]}")
        command: click.Command = module.command
        return command

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        # From the static table: completing a command name imports no command module.
        from click.shell_completion import CompletionItem

        items = [CompletionItem(name, help=summary) for name, (_, summary) in COMMANDS.items()
                 if name.startswith(incomplete)]
        return items + click.Command.shell_complete(self, ctx, incomplete)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, summary) for name, (_, summary) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Exit codes: 0 ok, 1 a gate or check failed, 2 usage error, 3 environment error, "
    "4 internal error. Run `mlopsctl COMMAND --help` for examples.",
)
@click.version_option(__version__, "-V", "--version", prog_name="mlopsctl")
@click.option("-C", "directory", metavar="PATH", help="Run as if started in PATH.")
@click.option("--traceback", is_flag=True,
              help="Print the traceback of an error (also MLOPSCTL_TRACEBACK=1).")
def cli(directory: str | None, traceback: bool) -> None:
    """mlopsctl: a Git-native model registry and release tool.

    State lives in the repository (`.mlops/` manifests, GTO-compatible git tags, git notes);
    artifacts are stored compressed and encrypted in a DVC remote.

    \b
    Quick tour:
      mlopsctl init
      mlopsctl bump churn --artifact model.pkl --metrics metrics.json
      mlopsctl show churn
      mlopsctl fetch churn@0.1.0 -o restored.pkl
    """
    if directory:
        try:
            os.chdir(directory)
        except OSError as exc:
            raise click.BadParameter(f"cannot enter {directory}: {exc.strerror}") from None


def main(argv: Sequence[str] | None = None) -> int:
    from mlopsctl.errors import ExitCode, MlopsError

    args = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in args or os.environ.get("MLOPSCTL_TRACEBACK") == "1"
    as_json = "--json" in (args[: args.index("--")] if "--" in args else args)
    from mlopsctl.cli import console

    console.reset_json_written()  # main may run several times in one process (tests, api)
    try:
        cli.main(args=args, prog_name="mlopsctl", standalone_mode=False)
    except MlopsError as exc:
        if show_traceback:
            import traceback

            traceback.print_exc()
        _err(f"error: {exc.message}")
        if exc.hint:
            _err(f"hint: {exc.hint}")
        return _json_error(as_json, exc.message, exc.hint, int(exc.exit_code))
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        ctx = getattr(exc, "ctx", None)
        hint = f"{ctx.command_path} --help" if ctx is not None else "mlopsctl --help"
        return _json_error(as_json, exc.format_message(), hint, int(ExitCode.USAGE))
    except (KeyboardInterrupt, click.exceptions.Abort):
        _err("interrupted")
        return _json_error(as_json, "interrupted", None, int(ExitCode.INTERRUPTED))
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception:
        return _report_bug(show_traceback, as_json)
    return int(ExitCode.OK)


def _json_error(as_json: bool, message: str, hint: str | None, code: int) -> int:
    """Under --json, the error as a JSON object on stdout too (scripts parse stdout), unless
    the command already wrote its document there. Returns ``code``."""
    from mlopsctl.cli import console

    if as_json and not console.json_written():
        console.emit_json({"error": message, "hint": hint, "exit_code": code})
    return code


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def _report_bug(show_traceback: bool, as_json: bool = False) -> int:
    import tempfile
    import traceback

    text = traceback.format_exc()
    if show_traceback:
        _err(text)
    fd, path = tempfile.mkstemp(prefix="mlopsctl-crash-", suffix=".log")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    last = text.strip().splitlines()[-1]
    hint = f"this is a bug in mlopsctl; the traceback is in {path} (or rerun with --traceback)"
    _err(f"error: internal error: {last}")
    _err(f"hint: {hint}")
    return _json_error(as_json, f"internal error: {last}", hint, 4)
