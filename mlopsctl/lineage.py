"""Lineage hashes of training data: a file's sha256; for a directory, DVC's own directory hash
(md5 of the sorted JSON listing of ``relpath`` + ``md5``, suffixed ``.dir``) beside a sha256 of
the same listing over sha256s, so a version's lineage can be compared with the ``.dvc`` file or
``dvc.lock`` entry of the same data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlopsctl import manifests as mf
from mlopsctl.errors import UsageError
from mlopsctl.fsio import sha256_file

_BLOCK = 1 << 20


def _md5_sha256(path: Path) -> tuple[str, str]:
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_BLOCK):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def dir_hashes(path: Path) -> tuple[str, str]:
    """(DVC's ``<md5>.dir`` hash, our sha256) of a directory's files. DVC hashes the JSON
    listing ``[{"md5": ..., "relpath": ...}]`` sorted by relpath (``json.dumps`` with
    sort_keys); the sha256 is taken the same way over sha256s, for our own integrity."""
    files = sorted((p for p in path.rglob("*") if p.is_file()),
                   key=lambda p: p.relative_to(path).as_posix())
    if not files:
        raise UsageError(f"data directory {path} holds no files")
    md5_rows, sha_rows = [], []
    for file in files:
        rel = file.relative_to(path).as_posix()
        md5, sha = _md5_sha256(file)
        md5_rows.append({"md5": md5, "relpath": rel})
        sha_rows.append({"relpath": rel, "sha256": sha})
    md5_listing = json.dumps(md5_rows, sort_keys=True).encode()
    sha_listing = json.dumps(sha_rows, sort_keys=True).encode()
    return (hashlib.md5(md5_listing, usedforsecurity=False).hexdigest() + ".dir",
            hashlib.sha256(sha_listing).hexdigest())


def data_hash(root: Path, path: Path) -> mf.FileHash:
    """The lineage entry of a training data file or directory."""
    if path.is_dir():
        md5, sha = dir_hashes(path)
        return mf.FileHash(path=display_path(root, path), sha256=sha, md5=md5)
    if not path.is_file():
        raise UsageError(f"data path {path} does not exist",
                         hint="--data takes a file or a directory (hashed as DVC hashes it)")
    return mf.FileHash(path=display_path(root, path), sha256=sha256_file(path))



def display_path(root: Path, path: Path) -> str:
    """Repo-relative when inside the repository, else the bare name."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(root).as_posix()
    except ValueError:
        return resolved.name
