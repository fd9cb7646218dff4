"""``mlopsctl card``."""

from __future__ import annotations

from pathlib import Path

import click

from mlopsctl.cli import console


@click.command("card")
@click.argument("model")
@click.option("--description", help="What the model does.")
@click.option("--intended-use", help="What it may and may not be used for.")
@click.option("--owner", help="Who answers for it.")
@click.option("--task", help="classification / regression.")
@click.option("--holdout", type=click.Path(path_type=Path), metavar="PATH",
              help="The holdout set `validate` and `promote` use (needs --target).")
@click.option("--target", metavar="COLUMN", help="The holdout's label column.")
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON.")
def command(model: str, description: str | None, intended_use: str | None, owner: str | None,
            task: str | None, holdout: Path | None, target: str | None, as_json: bool) -> None:
    """Show or edit MODEL's model card (.mlops/models/MODEL/model.yaml), like `gto annotate`.

    The change is one commit of the card alone, made as every registry commit is (a private
    index, the branch moved by compare-and-swap): your own staged or unstaged work is never
    swept in. Nothing given: the card is shown. Cards are read at validation time, so a
    completed card counts for versions registered before it.

    \b
    Example:
      mlopsctl card churn --description "Predicts churn from usage" \\
          --intended-use "Retention offers; never pricing" --owner ml-team@example.com
      mlopsctl card churn --json
    """
    from mlopsctl import registry as reg
    from mlopsctl.cards import update_card
    from mlopsctl.errors import UsageError
    from mlopsctl.gitops.tags import check_name
    from mlopsctl.project import Project

    check_name(model)
    project = Project.open()
    fields = {k: v for k, v in (("description", description), ("intended_use", intended_use),
                                ("owner", owner), ("task", task)) if v is not None}
    if target is not None and holdout is None:
        raise UsageError("--target goes with --holdout PATH")
    if fields or holdout is not None:
        if reg.load(project.root).model(model) is None:
            raise UsageError(f"unknown model '{model}': a card is edited after the first bump",
                             hint=f"mlopsctl bump {model} --artifact PATH (mlopsctl show)")
        before = project.card(model)
        card = update_card(project, model, fields, holdout, target)
        changed = before is None or before.model_dump() != card.model_dump()
        if not as_json:
            console.note(f"updated the model card of {model} (committed)" if changed
                         else f"the model card of {model} already says so; nothing to do")
    else:
        found = project.card(model)
        if found is None:
            raise UsageError(f"{model} has no model card yet",
                             hint=f"mlopsctl card {model} --description TEXT --intended-use TEXT")
        card = found
    if as_json:
        console.emit_json(card.model_dump(mode="json"))
    elif not fields and holdout is None:
        for key, value in card.model_dump(mode="json", exclude_none=True).items():
            if key != "schema_version":
                console.out().print(f"{key}: {value}")
