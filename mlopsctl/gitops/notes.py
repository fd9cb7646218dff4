"""Reports attached to commits as git notes under ``refs/notes/mlops`` (one JSON document per
commit, merged by key so reports for several environments live side by side)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlopsctl.gitops.git import GitFailed, git
from mlopsctl.workspace import NOTES_REF


def read_note(root: Path, commit: str) -> dict[str, Any]:
    try:
        text = git(root, "notes", f"--ref={NOTES_REF}", "show", commit)
    except GitFailed:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def merge_note(root: Path, commit: str, section: str, key: str, value: Any) -> None:
    """Set ``note[section][key] = value`` on ``commit`` (callers hold the repository lock)."""
    doc = read_note(root, commit)
    doc.setdefault("schema_version", 1)
    doc.setdefault(section, {})[key] = value
    body = json.dumps(doc, indent=2, sort_keys=True).encode()
    git(root, "notes", f"--ref={NOTES_REF}", "add", "-f", "-F", "-", commit, input=body)
