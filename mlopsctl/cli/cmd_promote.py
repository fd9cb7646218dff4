"""``mlopsctl promote``."""

from __future__ import annotations

import click

from mlopsctl.cli import complete, console


@click.command("promote")
@click.argument("model", shell_complete=complete.models)
@click.argument("version", required=False, shell_complete=complete.versions)
@click.option("--to", "env", required=True, metavar="ENV", help="The environment to release to.")
@click.option("-m", "--message", default="", help="Why (kept in the event's tag).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(model: str, version: str | None, env: str, message: str, as_json: bool) -> None:
    """Release a version (default: the latest) to an environment, blue-green.

    Checks the policy pin, your role (.mlops/access.yaml), the promotion order (production only
    after staging, by default) and the gates (a fresh passing `validate` report, or validates
    now with the model card's holdout). Then loads the version into the idle slot, smoke-tests
    it there, records the stage tag MODEL#ENV#N, and flips the live pointer. Promoting what is
    already live changes nothing.

    \b
    Example:
      mlopsctl promote churn 1.2.0 --to staging
      mlopsctl promote churn 1.2.0 --to production -m "Q4 release"
    """
    from mlopsctl.project import Project
    from mlopsctl.promotion import promote

    result = promote(Project.open(), model, version, env, message, console.ProgressReporter())
    if as_json:
        console.emit_json(result.to_json())
    elif result.tag is None:
        console.note(f"{model} {result.version} is already live in {env}; nothing to do")
    else:
        prev = f" (was {result.previous})" if result.previous else ""
        console.note(f"{model} {result.version} is live in {env}{prev}: slot {result.slot}, "
                     f"event {result.tag}")
