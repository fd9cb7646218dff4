"""Validated manifests by git blob id, one file per model under the git dir.

A version manifest's bytes never change once tagged, and a blob id names exactly those bytes,
so what the schema made of them can be kept: ``show MODEL`` of a model with a hundred versions
would otherwise parse and validate two hundred YAML documents (the work-tree copy and the
tagged one, ~0.5 ms each, plus pydantic's import) to print one table. Kept is the document the
schema validated (``model_dump(mode="json", exclude_none=True)``), under a fingerprint of the
schemas: when manifests.py changes, everything is validated again.

A cache, not the truth: unreadable, damaged or from other schemas, it starts empty; a git dir
that cannot be written means validating again next time. marshal runs no code when it loads.
"""

from __future__ import annotations

import contextlib
import marshal
from pathlib import Path
from typing import Any

from mlopsctl import __version__
from mlopsctl.fsio import atomic_write
from mlopsctl.gitops.objects import blob_id
from mlopsctl.gitops.tags import path_part

FORMAT = 1


def fingerprint() -> str:
    """Changes whenever a schema could have: the manifests module's bytes and our version."""
    schemas = Path(__file__).with_name("manifests.py").read_bytes()
    return blob_id(schemas + f"{__version__}:{FORMAT}".encode())


class ParseCache:
    """blob id -> the validated document, and '<commit>:<path>' -> blob id (a commit never
    changes, so neither does what it holds); loaded on first use, saved when it grew."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, Any] | None = None
        self._specs: dict[str, str] = {}
        self._dirty = False

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            self._data = {}
            with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
                loaded = marshal.loads(self.path.read_bytes())
                if isinstance(loaded, tuple) and len(loaded) == 3 \
                        and loaded[0] == fingerprint() and isinstance(loaded[1], dict) \
                        and isinstance(loaded[2], dict):
                    self._data, self._specs = loaded[1], loaded[2]
        return self._data

    def blob_at(self, spec: str) -> str | None:
        """The blob id ``spec`` ('<commit>:<path>') named when last read, if it was."""
        self._load()
        return self._specs.get(spec)

    def remember(self, spec: str, blob: str) -> None:
        self._load()
        if self._specs.get(spec) != blob:
            self._specs[spec] = blob
            self._dirty = True

    def get(self, blob: str) -> dict[str, Any] | None:
        found = self._load().get(blob)
        return found if isinstance(found, dict) else None

    def put(self, blob: str, doc: dict[str, Any]) -> None:
        try:
            marshal.dumps(doc)
        except ValueError:  # not plain data: validated again next time
            return
        self._load()[blob] = doc
        self._dirty = True

    def save(self) -> None:
        if not self._dirty or self._data is None:
            return
        with contextlib.suppress(OSError):
            atomic_write(self.path, marshal.dumps((fingerprint(), self._data, self._specs)),
                         durable=False)
        self._dirty = False


class ModelCaches:
    """One ParseCache per model, saved together."""

    def __init__(self, git_dir: Path) -> None:
        self.base = git_dir / "mlopsctl" / "parsed"
        self._caches: dict[str, ParseCache] = {}

    def of(self, model: str) -> ParseCache:
        if model not in self._caches:
            self._caches[model] = ParseCache(self.base / path_part(model))
        return self._caches[model]

    def save(self) -> None:
        for cache in self._caches.values():
            cache.save()


def manifest_doc(cache: ParseCache, text: bytes, source: str, blob: str | None = None
                 ) -> dict[str, Any]:
    """The version manifest in ``text`` as its schema validates it (EnvironmentProblem naming
    ``source``, line and field when it does not), from ``cache`` when these bytes were seen."""
    blob = blob or blob_id(text)
    doc = cache.get(blob)
    if doc is None:
        from mlopsctl import manifests as mf  # pydantic: only for bytes not seen before

        doc = mf.parse_yaml(text, mf.VersionManifest, source).model_dump(
            mode="json", exclude_none=True)
        cache.put(blob, doc)
    return doc
