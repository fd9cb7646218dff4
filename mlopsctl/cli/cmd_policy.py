"""``mlopsctl policy``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.group("policy")
def command() -> None:
    """Show, check and accept the policy (the "constitution").

    Its hash is pinned in .mlops/config.yaml; every command that writes or gates refuses to run
    while policy.yaml differs from the pin.

    \b
    Example:
      mlopsctl policy show
      mlopsctl policy check
      mlopsctl policy accept -m "raise the F1 floor to 0.85"
    """


@command.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(as_json: bool) -> None:
    """The rules, their weights, the pin, and past acceptances."""
    from mlopsctl.policy_admin import describe

    doc = describe()
    if as_json:
        console.emit_json(doc)
        return
    out = console.out()
    state = "intact" if doc["pin_intact"] else f"[red]DRIFTED[/] (file is {doc['actual_hash']})"
    out.print(f"policy {doc['name']!r}: pinned {doc['pinned_hash']}, {state}")
    t = console.table("rule", "check", "weight", "description")
    for rule in doc["rules"]:
        t.add_row(rule["id"], rule["check"], f"{rule['weight']:g}", rule.get("description", ""))
    out.print(t)
    for acc in doc["acceptances"]:
        out.print(f"accepted {acc['hash']} on {acc['date'][:16]} by {acc['actor']}: "
                  f"{acc['message']}", markup=False)


@command.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def check(as_json: bool) -> None:
    """Is the pin intact and are the rules well-formed? Exit 1 if not."""
    from mlopsctl.errors import CheckFailed
    from mlopsctl.policy_admin import check_policy

    problems = check_policy()
    if as_json:
        console.emit_json({"ok": not problems, "problems": problems})
    elif not problems:
        console.note("policy pin intact; rules well-formed")
    if problems:
        raise CheckFailed("; ".join(problems), hint="fix .mlops/policy.yaml, then "
                          "`mlopsctl policy accept`")


@command.command("accept")
@click.option("-m", "--message", default="", help="Why the policy changed.")
def accept(message: str) -> None:
    """Re-pin the policy's current hash, in a commit of its own."""
    from mlopsctl.policy_admin import accept_policy

    old, new, commit = accept_policy(message)
    if commit is None:
        console.note(f"policy already pinned at {new}")
    else:
        console.note(f"accepted policy {new} (was {old}) in commit {commit[:8]}")
