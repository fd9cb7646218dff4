"""GTO's tag grammar as pure functions: ``format_tag`` / ``parse_tag``.

Reading accepts everything GTO accepts (so registries written by GTO or by hand are listed);
writing only ever produces names from our safe lowercase subset.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from mlopsctl.errors import UsageError
from mlopsctl.semver import SEMVER_PATTERN

REGISTER = "register"
DEREGISTER = "deregister"
ASSIGN = "assign"
UNASSIGN = "unassign"
DEPRECATE = "deprecate"
CREATE = "create"  # `name@created`: GTO parses it, then crashes on it; we read it, never write it
KINDS = (REGISTER, DEREGISTER, ASSIGN, UNASSIGN, DEPRECATE, CREATE)

# The names we create: a safe subset of GTO's (no uppercase, '/', ':' or '.'), safe as a path part.
NAME_RE = re.compile(r"[a-z0-9]([a-z0-9_-]*[a-z0-9])?")  # used with fullmatch
_MAX_NAME = 100

# GTO's own grammar, for reading (names may carry a `dir=` prefix standing for `dir:`).
_GTO_NAME = r"[a-zA-Z0-9]([a-zA-Z0-9-/_]*[a-zA-Z0-9])?"
_GTO_FULLNAME = rf"([a-zA-Z0-9-_./]+=)?{_GTO_NAME}"
_GTO_SEMVER = SEMVER_PATTERN.replace("?P<build>", "?P<buildmetadata>")
_TAG_RE = re.compile(
    rf"^(?P<artifact>{_GTO_FULLNAME})"
    rf"(((#(?P<stage>{_GTO_NAME})|@(?P<version>v{_GTO_SEMVER}))(?P<cancel>!?))"
    rf"|@((?P<deprecated>deprecated)|(?P<created>created)))"
    rf"(#(?P<counter>[0-9]+))?$"
)


class TagEvent(NamedTuple):
    """One event as spelled in a tag name."""

    kind: str
    model: str
    version: str | None = None  # with the leading 'v', exactly as in the tag
    stage: str | None = None
    counter: int | None = None


def check_name(name: str, what: str = "model name") -> str:
    """Return ``name`` if it is a safe registry name, else raise UsageError (exit 2)."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or len(name) > _MAX_NAME:
        shown = name if name else "(empty)"
        raise UsageError(
            f"invalid {what} '{shown}'",
            hint="use lowercase letters, digits, '-' and '_', starting and ending with a letter "
            "or digit (e.g. churn-model)",
        )
    return name


def format_tag(event: TagEvent) -> str:
    """Spell ``event`` as a GTO tag name. Raises UsageError on names outside our subset."""
    check_name(event.model)
    if event.stage is not None:
        check_name(event.stage, "environment name")
    kind, counter = event.kind, event.counter
    if kind == REGISTER:
        text = f"{event.model}@{_vtag(event.version)}"
        return text if counter is None else f"{text}#{counter}"
    if kind == DEREGISTER:
        return f"{event.model}@{_vtag(event.version)}!#{_need(counter)}"
    if kind == ASSIGN:
        return f"{event.model}#{_need_stage(event.stage)}#{_need(counter)}"
    if kind == UNASSIGN:
        return f"{event.model}#{_need_stage(event.stage)}!#{_need(counter)}"
    if kind == DEPRECATE:
        text = f"{event.model}@deprecated"
        return text if counter is None else f"{text}#{counter}"
    raise UsageError(f"cannot write a '{kind}' tag")


def parse_tag(name: str) -> TagEvent | None:
    """Parse a tag name as GTO does; None when it is not a registry tag."""
    match = _TAG_RE.match(name)
    if not match:
        return None
    model = match["artifact"].replace("=", ":")
    counter = int(match["counter"]) if match["counter"] is not None else None
    if match["created"]:
        return TagEvent(CREATE, model, counter=counter)
    if match["deprecated"]:
        return TagEvent(DEPRECATE, model, counter=counter)
    cancel = bool(match["cancel"])
    if match["version"]:
        return TagEvent(DEREGISTER if cancel else REGISTER, model, match["version"], None, counter)
    return TagEvent(UNASSIGN if cancel else ASSIGN, model, None, match["stage"], counter)


def _vtag(version: str | None) -> str:
    if not version:
        raise UsageError("a version is required for this event")
    return version if version.startswith("v") else f"v{version}"


def _need(counter: int | None) -> int:
    if counter is None or counter < 0:
        raise UsageError("this event needs a counter")
    return counter


def _need_stage(stage: str | None) -> str:
    if not stage:
        raise UsageError("this event needs an environment")
    return stage
