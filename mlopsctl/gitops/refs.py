"""Reading every tag with one ``git for-each-ref``; writing commits, tags and refs safely.

Writes never touch the user's index or sweep up their changes: a commit is built in a temporary
index from HEAD's tree plus our files, and the branch moves by compare-and-swap.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

from mlopsctl.errors import ConflictError, EnvironmentProblem
from mlopsctl.fsio import atomic_write
from mlopsctl.gitops.git import GitFailed, git, git_ok, git_text

# %00 separates fields; a record ends with an extra %00 before git's newline.
_FIELDS = (
    "%(refname)",
    "%(objecttype)",
    "%(objectname)",
    "%(*objectname)",
    "%(*objecttype)",
    "%(taggername)",
    "%(taggeremail)",
    "%(taggerdate:unix)",
    "%(taggerdate:raw)",  # '<unix> +0200': the timezone, formatted by us (see iso_date)
    "%(*committerdate:unix)",
    "%(contents)",
    "%(contents:signature)",
)
_FORMAT = "%00".join(_FIELDS) + "%00"


class TagRecord(NamedTuple):
    """An annotated tag as read from git."""

    name: str  # without refs/tags/
    tag_sha: str
    commit: str  # the peeled target
    tagger_name: str
    tagger_email: str
    timestamp: int  # unix seconds
    tz: str  # the tagger's offset, '+0200'
    message: str
    commit_time: int = 0  # committer date of the target commit
    annotated: bool = True  # lightweight tags only matter for GTO's counters

    @property
    def date_iso(self) -> str:
        """The tagger date as GTO prints it (formatted on demand: most reads never show it)."""
        return iso_date(self.timestamp, self.tz)


def iso_date(unix: int, offset: str) -> str:
    """A tagger date as GTO writes it: ISO 8601 in the tagger's timezone, UTC as ``+00:00``.
    Formatted here rather than by git, whose ``iso-strict`` prints UTC as ``Z`` since 2.45."""
    sign = -1 if offset.startswith("-") else 1
    digits = offset.lstrip("+-")
    try:
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4]))
    except ValueError:
        delta = timedelta(0)
    if delta >= timedelta(days=1):
        delta = timedelta(0)
    return datetime.fromtimestamp(unix, timezone(sign * delta)).isoformat()


def _record(chunk: list[str]) -> TagRecord | None:
    refname = chunk[0].lstrip("\n").removeprefix("refs/tags/")
    if chunk[1] == "commit":  # a lightweight tag
        return TagRecord(refname, "", chunk[2], "", "", 0, "", "", annotated=False)
    if chunk[1] != "tag" or chunk[4] not in ("commit", "tag") or not chunk[7]:
        return None  # a tag of a tree or blob: not a registry event
    timestamp = int(chunk[7])
    return TagRecord(
        name=refname,
        tag_sha=chunk[2],
        commit=chunk[3],  # for a tag of a tag, the inner tag: read_tags peels it
        tagger_name=chunk[5],
        tagger_email=chunk[6].strip("<>"),
        timestamp=timestamp,
        tz=chunk[8].rpartition(" ")[2],
        message=chunk[10].removesuffix(chunk[11]) if chunk[11] else chunk[10],
        commit_time=int(chunk[9] or 0) if chunk[4] == "commit" else 0,
    )


def read_tags(root: Path, patterns: Sequence[str] = ("refs/tags",)) -> list[TagRecord]:
    """Every tag pointing at a commit (of those ``patterns`` match: ``tags.ref_patterns`` for
    one model's), in one git call. Lightweight ones come back with ``annotated=False``: they
    are no events (GTO ignores them) but still count for counters. An annotated tag of an
    annotated tag is peeled to its commit (one more git call, made only when such tags exist);
    one that ends at a tree or blob is dropped."""
    out = git(root, "for-each-ref", f"--format={_FORMAT}", *patterns)
    fields = out.decode("utf-8", errors="replace").split("\0")
    width = len(_FIELDS)
    chunks = [fields[i : i + width] for i in range(0, len(fields) - width + 1, width)]
    records = [r for r in map(_record, chunks) if r is not None]
    nested = {chunk[3] for chunk in chunks if chunk[1] == "tag" and chunk[4] == "tag"}
    if not nested:
        return records
    peeled = peel_commits(root, sorted(nested))
    out_records = []
    for rec in records:
        if rec.annotated and rec.commit in nested:
            if rec.commit not in peeled:
                continue
            sha, when = peeled[rec.commit]
            rec = rec._replace(commit=sha, commit_time=when)
        out_records.append(rec)
    return out_records


def peel_commits(root: Path, revs: list[str]) -> dict[str, tuple[str, int]]:
    """``rev -> (commit, committer time)`` for each rev that peels to a commit, read with one
    ``git cat-file --batch``; revs that do not are left out."""
    found: dict[str, tuple[str, int]] = {}
    for rev, (sha, kind, body) in _batch(root, [f"{r}^{{commit}}" for r in revs]).items():
        if kind == "commit":
            found[rev.removesuffix("^{commit}")] = (sha, _committer_time(body))
    return found


def read_at_head(root: Path, path: str) -> tuple[str, int, bytes | None] | None:
    """(HEAD's commit, its committer time, the committed content of ``path`` or None), with one
    ``git cat-file --batch``; None when there is no HEAD yet."""
    objects = _batch(root, ["HEAD^{commit}", f"HEAD:{path}"])
    head = objects.get("HEAD^{commit}")
    if head is None:
        return None
    blob = objects.get(f"HEAD:{path}")
    return head[0], _committer_time(head[2]), blob[2] if blob and blob[1] == "blob" else None


def _batch(root: Path, specs: list[str]) -> dict[str, tuple[str, str, bytes]]:
    """``spec -> (object id, type, content)`` for each spec git finds, in one process."""
    safe = [s for s in specs if s and "\n" not in s]
    if not safe:
        return {}
    out = git(root, "cat-file", "--batch", input="".join(f"{s}\n" for s in safe).encode())
    found: dict[str, tuple[str, str, bytes]] = {}
    pos = 0
    for spec in safe:
        end = out.index(b"\n", pos)
        header = out[pos:end].split(b" ")
        pos = end + 1
        if len(header) != 3 or not header[2].isdigit():
            continue  # '<spec> missing' or '<spec> ambiguous'
        size = int(header[2])
        found[spec] = (header[0].decode(), header[1].decode(), out[pos : pos + size])
        pos += size + 1
    return found


def _committer_time(commit: bytes) -> int:
    for line in commit.split(b"\n\n", 1)[0].split(b"\n"):
        if line.startswith(b"committer "):
            try:
                return int(line.rsplit(b" ", 2)[1])
            except (IndexError, ValueError):
                return 0
    return 0


def head_commit(root: Path) -> str | None:
    try:
        return git_text(root, "rev-parse", "--verify", "-q", "HEAD^{commit}")
    except GitFailed:
        return None


def current_branch(root: Path) -> str:
    """The branch HEAD points at (``refs/heads/...``); EnvironmentProblem when detached."""
    try:
        return git_text(root, "symbolic-ref", "-q", "HEAD")
    except GitFailed as exc:
        raise EnvironmentProblem(
            "HEAD is detached: there is no branch to record the registry change on",
            hint="git switch -c <branch>  (or check out an existing branch)",
        ) from exc


def commit_files(
    root: Path,
    files: Mapping[str, bytes],
    message: str,
    expected_head: str | None,
    remove: Sequence[str] = (),
) -> str:
    """Commit ``files`` (repo-relative path -> content), and the removal of the paths in
    ``remove``, on top of ``expected_head`` and move the current branch there by
    compare-and-swap. Returns the new commit. ConflictError if the branch moved meanwhile.
    Nothing else in the work tree or index is committed."""
    branch = current_branch(root)
    tree = edit_tree(root, expected_head, files, remove)
    parents = ["-p", expected_head] if expected_head else []
    # `git commit-tree` ignores commit.gpgSign: honour it as `git commit` would, so registries
    # whose governance history is verified from a trust anchor get signed commits from us too.
    sign = ["-S"] if _config_true(root, "commit.gpgsign") else []
    commit = git_text(root, "commit-tree", tree, *parents, *sign, "-F", "-",
                      input=message.encode())
    old = expected_head or ""
    try:
        git(root, "update-ref", "-m", f"mlopsctl: {message.splitlines()[0]}", branch, commit, old)
    except GitFailed as exc:
        raise ConflictError(
            f"{branch.removeprefix('refs/heads/')} moved while mlopsctl was writing",
            hint="run the command again",
        ) from exc
    return commit


_TREE_MODE = b"40000"
_FILE_MODE = b"100644"


def edit_tree(root: Path, base: str | None, files: Mapping[str, bytes],
              remove: Sequence[str] = ()) -> str:
    """The id of ``base``'s tree with ``files`` written and ``remove`` taken out, built by
    rewriting only the directories on the way to them: a registry of 100,000 versions has
    200,000 files, and reading all of them into an index to change three costs seconds.
    Directories left empty disappear, as ``git write-tree`` would have them."""
    changes: dict[tuple[bytes, ...], dict[bytes, tuple[bytes, bytes] | None]] = {(): {}}
    paths = [(p, True) for p in files] + [(p, False) for p in remove]
    for path, _ in paths:
        parts = tuple(path.encode().split(b"/"))
        if not all(parts) or any(part in (b".", b"..") for part in parts):
            raise EnvironmentProblem(f"cannot commit the path {path!r}")
        for depth in range(len(parts)):
            changes.setdefault(parts[:depth], {})
    blobs = _write_objects(root, "blob", list(files.values()))
    for (path, _), blob in zip(paths, blobs, strict=False):
        parts = tuple(path.encode().split(b"/"))
        changes[parts[:-1]][parts[-1]] = (_FILE_MODE, bytes.fromhex(blob))
    for path in remove:
        parts = tuple(path.encode().split(b"/"))
        changes[parts[:-1]].setdefault(parts[-1], None)
    dirs = sorted(changes, key=len, reverse=True)  # deepest first: children before parents
    specs = {d: (f"{base}:{b'/'.join(d).decode()}" if d else f"{base}^{{tree}}") for d in dirs}
    found = _batch(root, list(specs.values())) if base else {}
    trees: list[bytes] = []
    order: list[tuple[bytes, ...]] = []
    for d in dirs:
        _, kind, body = found.get(specs[d], ("", "tree", b""))
        if kind != "tree":
            raise EnvironmentProblem(f"{b'/'.join(d).decode()} is not a directory in "
                                     f"{base}: cannot commit under it")
        entries = _parse_tree(body)
        for name, entry in changes[d].items():
            if entry is None:
                entries.pop(name, None)
            else:
                entries[name] = entry
        trees.append(_format_tree(entries))
        order.append(d)
        if d:  # tell the parent what this directory became (or that it is gone)
            parent = changes[d[:-1]]
            parent[d[-1]] = (_TREE_MODE, _tree_id(trees[-1])) if entries else None
    written = _write_objects(root, "tree", [t for t, d in zip(trees, order, strict=True)])
    for tree, oid in zip(trees, written, strict=True):
        if _tree_id(tree).hex() != oid:  # git and we must agree on every byte
            raise EnvironmentProblem(f"git stored a tree as {oid}, expected "
                                     f"{_tree_id(tree).hex()}")
    return written[order.index(())]


def _parse_tree(body: bytes) -> dict[bytes, tuple[bytes, bytes]]:
    """name -> (mode, 20-byte id) of a tree object's entries."""
    entries: dict[bytes, tuple[bytes, bytes]] = {}
    pos = 0
    while pos < len(body):
        space = body.index(b" ", pos)
        nul = body.index(b"\0", space)
        entries[body[space + 1:nul]] = (body[pos:space], body[nul + 1:nul + 21])
        pos = nul + 21
    return entries


def _format_tree(entries: dict[bytes, tuple[bytes, bytes]]) -> bytes:
    """A tree object's content, entries in git's order (a directory sorts as 'name/')."""
    def key(item: tuple[bytes, tuple[bytes, bytes]]) -> bytes:
        name, (mode, _) = item
        return name + b"/" if mode == _TREE_MODE else name

    return b"".join(mode + b" " + name + b"\0" + sha
                    for name, (mode, sha) in sorted(entries.items(), key=key))


def _tree_id(content: bytes) -> bytes:
    return hashlib.sha1(b"tree %d\0" % len(content) + content).digest()


def _write_objects(root: Path, kind: str, contents: list[bytes]) -> list[str]:
    """Store ``contents`` as objects of ``kind`` with one ``git hash-object -w`` (which checks
    each tree it is given); their ids, in order."""
    if not contents:
        return []
    with tempfile.TemporaryDirectory(prefix="mlopsctl-objects-") as tmp:
        names = []
        for i, content in enumerate(contents):
            name = os.path.join(tmp, str(i))
            with open(name, "wb") as fh:
                fh.write(content)
            names.append(name)
        out = git_text(root, "hash-object", "-w", "-t", kind, "--stdin-paths",
                       input=("\n".join(names) + "\n").encode())
    ids = out.split()
    if len(ids) != len(contents):
        raise EnvironmentProblem(f"git hash-object stored {len(ids)} of {len(contents)} objects")
    return ids


def _config_true(root: Path, key: str) -> bool:
    try:
        return git_text(root, "config", "--type=bool", "--get", key) == "true"
    except GitFailed:
        return False


def sync_worktree(root: Path, files: Mapping[str, bytes], remove: Sequence[str] = ()) -> None:
    """Bring the work tree and the index in line with files just committed (and removed)."""
    for rel, content in files.items():
        atomic_write(root / rel, content, durable=False)  # git holds the committed copy
    if files:
        git(root, "update-index", "--add", "--", *files.keys())
    for rel in remove:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(root / rel)
    if remove:
        git(root, "update-index", "--force-remove", "--", *remove)


def repair_index(root: Path, under: str = ".mlops") -> list[str]:
    """Undo what a write killed between moving the branch and updating the index leaves:
    registry files in HEAD shown as staged deletions. Restores their index entries (and the
    files, if missing) from HEAD. Returns the paths repaired."""
    out = git(root, "diff", "--cached", "--name-only", "--diff-filter=D", "-z", "HEAD", "--",
              under)
    paths = [p for p in out.decode().split("\0") if p]
    if paths:
        git(root, "reset", "-q", "HEAD", "--", *paths)
        missing = [p for p in paths if not (root / p).exists()]
        if missing:
            git(root, "checkout", "HEAD", "--", *missing)
    return paths


def unstage(root: Path, commit: str, paths: list[str]) -> None:
    """Reset the index entries of ``paths`` to ``commit`` (work-tree files stay)."""
    git(root, "reset", "-q", commit, "--", *paths)


def remove_untracked(root: Path, commit: str, paths: list[str]) -> None:
    """Delete work-tree files among ``paths`` that ``commit`` does not have (our own files from
    an abandoned write)."""
    for rel in paths:
        if not git_ok(root, "cat-file", "-e", f"{commit}:{rel}"):
            (root / rel).unlink(missing_ok=True)


def create_tag(
    root: Path,
    name: str,
    target: str,
    message: str,
    *,
    sign: bool = False,
    env: Mapping[str, str] | None = None,
) -> None:
    """Create the annotated tag ``name`` -> ``target``. git creates the ref only if it does not
    exist (a locked compare-and-swap against the null id): ConflictError when it does."""
    if not message.endswith("\n"):
        message += "\n"  # else git glues a signature onto the last line
    with tempfile.NamedTemporaryFile("wb", prefix="mlopsctl-tag-", delete=False) as fh:
        fh.write(message.encode())
    try:
        flag = "-s" if sign else "-a"
        git(root, "tag", flag, "--cleanup=verbatim", "-F", fh.name, name, target, env=env)
    except GitFailed as exc:
        if git_ok(root, "rev-parse", "-q", "--verify", f"refs/tags/{name}"):
            raise ConflictError(f"tag {name} already exists") from exc
        raise
    finally:
        os.unlink(fh.name)


def delete_ref_if(root: Path, ref: str, expected: str) -> bool:
    """Delete ``ref`` only if it still points at ``expected``."""
    return git_ok(root, "update-ref", "-d", ref, expected)


def move_ref_back(root: Path, ref: str, new: str, expected: str) -> bool:
    return git_ok(root, "update-ref", ref, new, expected)
