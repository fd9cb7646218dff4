"""Editing a model card (``.mlops/models/<model>/model.yaml``) outside a ``bump``: one commit of
the card alone, made the way every registry commit is (temporary index, branch moved by
compare-and-swap, under the repository lock), so the user's own work is never swept in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlopsctl import manifests as mf
from mlopsctl.errors import UsageError
from mlopsctl.gitops import tags as T
from mlopsctl.project import Project

EDITABLE = ("description", "owner", "task", "intended_use", "artifact")


def update_card(project: Project, model: str, fields: dict[str, Any],
                holdout: Path | None = None, target: str | None = None) -> mf.ModelCard:
    """Set card fields (and the holdout set); commits only when something changed."""
    from mlopsctl.fsio import file_lock
    from mlopsctl.gitops import refs

    T.check_name(model)
    unknown = sorted(set(fields) - set(EDITABLE))
    if unknown:
        raise UsageError(f"unknown model card field(s): {', '.join(unknown)}",
                         hint=f"card fields: {', '.join(EDITABLE)}")
    if holdout is not None:
        holdout = Path(holdout).resolve()
        if not target:
            raise UsageError("a holdout needs its target column")
        if not holdout.is_file():
            raise UsageError(f"holdout file {holdout} does not exist")
        try:
            rel_holdout = holdout.relative_to(project.root).as_posix()
        except ValueError:
            raise UsageError(f"holdout {holdout} is outside the repository",
                             hint="keep the holdout in the repository, so validation in "
                             "every clone reads the same rows") from None
    project.require_policy_pin()
    project.require_role("bump")
    ws = project.ws
    with file_lock(ws.lock_path):
        card = project.card(model) or mf.ModelCard(name=model)
        before = mf.dump(card)
        for key, value in fields.items():
            if value is not None:
                setattr(card, key, str(value))
        if holdout is not None:
            card.holdout = mf.Holdout(path=rel_holdout, target=str(target))
        content = mf.dump(card)
        if content != before:
            files = {ws.rel(ws.card_path(model)): content}
            head = refs.head_commit(project.root)
            refs.commit_files(project.root, files, f"mlopsctl: model card of {model}", head)
            refs.sync_worktree(project.root, files)
    return card
