"""Shell completion of model names, versions and environments, read from the registry (through
the tag index, as `show` reads it). Used as ``shell_complete=`` on command arguments; any
failure completes nothing rather than printing into the user's shell."""

from __future__ import annotations

from typing import Any

import click
from click.shell_completion import CompletionItem


def _registry() -> Any:
    from mlopsctl import registry as reg
    from mlopsctl.workspace import find_root

    return reg.load(find_root())


def _safely(fn: Any) -> Any:
    def wrapper(ctx: click.Context, param: click.Parameter, incomplete: str
                ) -> list[CompletionItem]:
        try:
            return list(fn(ctx, incomplete))
        except Exception:  # completion must never break the shell
            return []
    return wrapper


def _models(incomplete: str) -> list[CompletionItem]:
    registry = _registry()
    return [CompletionItem(name) for name, state in registry.models.items()
            if name.startswith(incomplete) and not state.deprecated] + \
        [CompletionItem(name) for name, state in registry.models.items()
         if name.startswith(incomplete) and state.deprecated]


def _refs(incomplete: str) -> list[CompletionItem]:
    """``model``, then ``model@VERSION`` / ``model@latest`` / ``model#ENV``."""
    if "@" not in incomplete and "#" not in incomplete:
        return [CompletionItem(f"{item.value}@", type="plain") for item in _models(incomplete)]
    registry = _registry()
    sep = "@" if "@" in incomplete else "#"
    name, _, rest = incomplete.partition(sep)
    state = registry.model(name)
    if state is None:
        return []
    if sep == "#":
        options = sorted(state.stages)
    else:
        options = [v.number for v in reversed(state.active_versions)] + ["latest"]
    return [CompletionItem(f"{name}{sep}{o}") for o in options if o.startswith(rest)]


def _version_of_model(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    state = _registry().model(ctx.params.get("model") or "")
    if state is None:
        return []
    return [CompletionItem(v.number) for v in reversed(state.active_versions)
            if v.number.startswith(incomplete)]


models = _safely(lambda ctx, incomplete: _models(incomplete))
refs = _safely(lambda ctx, incomplete: _refs(incomplete))
versions = _safely(_version_of_model)
