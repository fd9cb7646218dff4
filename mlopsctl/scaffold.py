"""What ``mlopsctl init --template NAME`` and ``--ci github|gitlab`` add: environments and gates
for the config, a model card with its holdout, a CI workflow. Read from ``templates/`` (pure,
apart from reading the shipped files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlopsctl import __version__
from mlopsctl import manifests as mf
from mlopsctl.errors import UsageError
from mlopsctl.gitops.tags import check_name
from mlopsctl.templates import read_template, templates_dir

CI_TARGETS = {"github": ".github/workflows/mlopsctl.yml", "gitlab": ".gitlab-ci.yml"}
DEFAULT_MODEL = "model"


def template_names() -> list[str]:
    return sorted(p.stem for p in (templates_dir() / "init").glob("*.yaml"))


def _template(name: str, model: str) -> dict[str, Any]:
    if name not in template_names():
        raise UsageError(f"no template '{name}'", hint="templates: " + ", ".join(template_names()))
    text = read_template(f"init/{name}.yaml").decode().replace("__MODEL__", model)
    data = yaml.safe_load(text)
    return data if isinstance(data, dict) else {}


def environments(name: str, model: str = DEFAULT_MODEL) -> dict[str, mf.Environment]:
    """The template's environments, validated as config.yaml would be."""
    raw = _template(name, check_name(model)).get("environments") or {}
    config = mf.Config.model_validate({"registry_id": "x", "constitutional_hash": "x",
                                       "environments": raw})
    return config.environments


def card(name: str, model: str, owner: str) -> mf.ModelCard | None:
    raw = _template(name, check_name(model)).get("card")
    if not raw:
        return None
    return mf.ModelCard.model_validate({"name": model, "owner": owner, **raw})


def ci_workflow(kind: str) -> tuple[str, bytes]:
    """(repository-relative path, content) of the CI workflow for ``kind``."""
    if kind not in CI_TARGETS:
        raise UsageError(f"no CI template for '{kind}'", hint="--ci github or --ci gitlab")
    text = read_template(f"ci/{kind}.yml").decode().replace("__MLOPSCTL_VERSION__", __version__)
    return CI_TARGETS[kind], text.encode()


def extra_files(root: Path, template: str | None, model: str, ci: str | None,
                owner: str) -> dict[str, bytes]:
    """Files to commit besides the config: the template's model card (unless the model has one)
    and the CI workflow (unless the same file is there already; a different one is kept, and
    the user told)."""
    files: dict[str, bytes] = {}
    if template:
        made = card(template, model, owner)
        rel = f".mlops/models/{model}/model.yaml"
        if made is not None and not (root / rel).exists():
            files[rel] = mf.dump(made)
    if ci:
        rel, content = ci_workflow(ci)
        existing = root / rel
        if existing.is_file() and existing.read_bytes() != content:
            raise UsageError(f"{rel} exists and differs from mlopsctl's workflow",
                             hint=f"move it aside to have mlopsctl write its own, or merge by "
                             f"hand (`mlopsctl init --ci {ci}` writes the file only when absent)")
        if not existing.is_file():
            files[rel] = content
    return files
