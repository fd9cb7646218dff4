"""GTO's tag grammar as pure functions: ``format_tag`` / ``parse_tag``.

Names follow GTO's grammar on both sides: a model name is ``name`` or the monorepo form
``dir:name`` (spelled ``dir=name`` in tags), where ``name`` may hold letters of either case,
digits, ``-``, ``_`` and ``/``. Names never become paths as they are: see ``path_part``.
"""

from __future__ import annotations

import functools
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

# The names mlopsctl suggests (and `init` uses): lowercase, safe as they are in paths and URLs.
NAME_RE = re.compile(r"[a-z0-9]([a-z0-9_-]*[a-z0-9])?")  # used with fullmatch
_MAX_NAME = 100

# GTO's grammar: a name; a model name may carry a `dir:` prefix, spelled `dir=` in tags.
_GTO_NAME = r"[a-zA-Z0-9]([a-zA-Z0-9-/_]*[a-zA-Z0-9])?"
_GTO_DIRNAME = r"[a-zA-Z0-9-_./]+"
_GTO_FULLNAME = rf"({_GTO_DIRNAME}=)?{_GTO_NAME}"
GTO_NAME_RE = re.compile(_GTO_NAME)  # stages; used with fullmatch
GTO_MODEL_RE = re.compile(rf"({_GTO_DIRNAME}:)?{_GTO_NAME}")  # models; used with fullmatch
_PATH_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
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
    """Return ``name`` if GTO's grammar accepts it (a model name may be ``dir:name``, other
    names may not), else raise UsageError (exit 2)."""
    pattern = GTO_MODEL_RE if what == "model name" else GTO_NAME_RE
    if not isinstance(name, str) or not pattern.fullmatch(name) or len(name) > _MAX_NAME \
            or not _git_can_tag(name):
        shown = name if name else "(empty)"
        monorepo = " (a monorepo model: dir:name)" if what == "model name" else ""
        raise UsageError(
            f"invalid {what} '{shown}'",
            hint="use letters, digits, '-', '_' and '/', starting and ending with a letter or "
            f"digit, as GTO does (e.g. churn-model){monorepo}",
        )
    return name


def _git_can_tag(name: str) -> bool:
    """Whether git accepts tags spelled with ``name`` (``git check-ref-format``): GTO's dir
    part allows '..', '//', a leading '/' or '.', which git refuses in any ref."""
    tag = name.replace(":", "=")
    parts = tag.split("/")
    return ".." not in tag and all(parts) and not any(
        p.startswith(".") or p.endswith((".lock", ".")) for p in parts)


def path_part(name: str) -> str:
    """A registry name as one path component that cannot leave its directory: lowercase
    letters, digits, '-' and '_' stay, every other byte becomes ``%XX`` ('/' and '.' included,
    so no '..' or separator survives; uppercase too, so 'Churn' and 'churn' never share a
    directory on a case-insensitive disk). Injective: '%' is never part of a name."""
    if not name:
        raise UsageError("a name is required")
    return "".join(chr(b) if chr(b) in _PATH_SAFE else f"%{b:02X}" for b in name.encode())


@functools.lru_cache(maxsize=4096)
def name_of_path_part(part: str) -> str | None:
    """The model name ``path_part`` turned into ``part``; None when ``part`` is not such a
    spelling of a valid model name (a directory made by hand, say)."""
    name = re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m[1], 16)), part)
    try:
        check_name(name)
    except UsageError:
        return None
    return name if path_part(name) == part else None


def ref_patterns(model: str) -> list[str]:
    """``git for-each-ref`` patterns matching exactly the tags of ``model`` (GTO's names hold no
    glob character)."""
    spelled = model.replace(":", "=")
    return [f"refs/tags/{spelled}@*", f"refs/tags/{spelled}#*"]


def format_tag(event: TagEvent) -> str:
    """Spell ``event`` as a GTO tag name. Raises UsageError on names outside our subset."""
    check_name(event.model)
    if event.stage is not None:
        check_name(event.stage, "environment name")
    kind, counter = event.kind, event.counter
    model = event.model.replace(":", "=")  # GTO spells a monorepo `dir:name` as `dir=name`
    if kind == REGISTER:
        text = f"{model}@{_vtag(event.version)}"
        return text if counter is None else f"{text}#{counter}"
    if kind == DEREGISTER:
        return f"{model}@{_vtag(event.version)}!#{_need(counter)}"
    if kind == ASSIGN:
        return f"{model}#{_need_stage(event.stage)}#{_need(counter)}"
    if kind == UNASSIGN:
        return f"{model}#{_need_stage(event.stage)}!#{_need(counter)}"
    if kind == DEPRECATE:
        text = f"{model}@deprecated"
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
