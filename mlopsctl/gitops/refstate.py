"""The refs' state, read cheaply: change detection and an incremental tag reader.

A monitor asks "did anything change?" several times a second. Running git for that costs a
process start (~5 ms, more under load), and re-reading every tag costs far more at thousands of
tags. Git's refs are plain files, so the question is answered by ``stat``: the mtime, size and
inode of ``packed-refs``, of the ``refs/tags`` and ``refs/notes`` directories (a ref written,
renamed into place or deleted changes its directory's mtime) and of the config files. When
something did change, only the refs whose object changed are read, with one
``git cat-file --batch`` for all of them; everything else comes from the cache.

Repositories in the reftable format (no loose files to stat) fall back to one
``git for-each-ref``, which is still far cheaper than reading every tag's message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from mlopsctl.gitops.git import git
from mlopsctl.gitops.refs import TagRecord
from mlopsctl.gitops.tagindex import committer_time, parse_tag_object, read_objects, tag_target

Stamp = tuple[int, int, int]  # (inode, mtime_ns, size); (0, 0, -1) when absent
_ABSENT: Stamp = (0, 0, -1)

def stamp(path: Path) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return _ABSENT
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class RefsDigest(NamedTuple):
    """What changes when a tag, a note or a watched file changes. Compare with ``==``."""

    tags: tuple[Stamp, ...]
    notes: tuple[Stamp, ...]
    files: tuple[Stamp, ...]
    files_racy: bool = False  # a watched file changed too recently for its stamp to be trusted
    nonce: int = 0  # differs from call to call while anything is racy: look again next time


class RefListing(NamedTuple):
    packed: dict[str, str]  # tag name -> object id, from packed-refs (a cached object)
    loose: dict[str, str]  # tag name -> object id of the loose refs, which win over packed ones
    notes: str | None  # the object id of the notes ref

    def oid(self, name: str) -> str | None:
        return self.loose.get(name) or self.packed.get(name)

    def names(self) -> set[str]:
        return set(self.packed) | set(self.loose)


def _subdirs(top: Path) -> list[Path]:
    """The directories below ``top`` (GTO allows '/' in names; ours never have one)."""
    out: list[Path] = []
    for dirpath, dirnames, _ in os.walk(top):
        out.extend(Path(dirpath) / d for d in dirnames)
    return out


class RefsReader:
    """Reads the tags of one repository incrementally. Not thread-safe: one owner at a time."""

    def __init__(self, root: Path, git_dir: Path, watched: Iterable[Path] = (),
                 notes_ref: str = "refs/notes/mlops",
                 seed: Callable[[], list[TagRecord]] | None = None) -> None:
        self.root = root
        self.seed = seed  # the first read's records (the tag index's), else every tag read
        self.git_dir = git_dir
        self.watched = tuple(watched)
        self.notes_ref = notes_ref
        self.reftable = (git_dir / "reftable").is_dir()
        self._records: dict[str, tuple[str, TagRecord | None]] = {}  # name -> (oid, record)
        self._commit_times: dict[str, int] = {}
        self._loose: dict[str, tuple[Stamp, str]] = {}  # loose ref path -> (stamp, oid)
        self._packed_cache: tuple[Stamp, dict[str, str], str | None] | None = None
        self._dirs: tuple[Stamp, list[Path]] | None = None  # refs/tags' stamp, its subdirs
        self._racy = 0
        self._scan: dict[str, tuple[Stamp, dict[str, tuple[int, str]]]] = {}
        self._last: RefListing | None = None

    # --- change detection ------------------------------------------------------------------

    def digest(self) -> RefsDigest:
        """Stat calls only (a dozen or so); no process, no reads."""
        files = tuple(stamp(p) for p in self.watched)
        if self.reftable:  # pragma: no cover - no loose files: ask git
            out = git(self.root, "for-each-ref", "--format=%(objectname)", "refs/tags",
                      self.notes_ref)
            return RefsDigest(((hash(out), 0, 0),), (), files)
        packed = stamp(self.git_dir / "packed-refs")
        tags = (packed, *(stamp(d) for d in self._tag_dirs()))
        notes_file = self.git_dir / self.notes_ref
        notes = (packed, stamp(notes_file.parent), stamp(notes_file))
        files_racy = _racy(*files)
        nonce = 0
        if files_racy or _racy(*tags, *notes):
            # Modified within the file system's timestamp granularity: a second change in the
            # same tick would leave the same stamp (git's "racy" case), so look again next time.
            self._racy += 1
            nonce = self._racy
        return RefsDigest(tags, notes, files, files_racy, nonce)

    # --- listing ---------------------------------------------------------------------------

    def _tag_dirs(self) -> list[Path]:
        """refs/tags and its subdirectories; the walk is redone only when refs/tags itself
        changed (a new subdirectory changes its parent's mtime)."""
        top = self.git_dir / "refs" / "tags"
        st = stamp(top)
        if self._dirs is None or self._dirs[0] != st:
            self._dirs = (_ABSENT if _racy(st) else st, _subdirs(top) if st != _ABSENT else [])
        return [top, *self._dirs[1]]

    def listing(self) -> RefListing:
        if self.reftable:  # pragma: no cover
            return self._listing_from_git()
        packed, notes = self._packed()
        loose: dict[str, str] = {}
        top = self.git_dir / "refs" / "tags"
        for directory in self._tag_dirs():
            prefix = directory.relative_to(top).as_posix()
            prefix = "" if prefix == "." else prefix + "/"
            for name, (_, oid) in self._scan_dir(directory).items():
                loose[prefix + name] = oid
        notes_file = self.git_dir / self.notes_ref
        if notes_file.is_file():
            notes = self._loose_oid(notes_file) or notes
        return RefListing(packed, loose, notes)

    def _scan_dir(self, directory: Path) -> dict[str, tuple[int, str]]:
        """name -> (inode, oid) of the loose refs in one directory. Git replaces a ref by
        renaming a new file into place, so a changed ref has a new inode: ``scandir`` gives
        inodes without a ``stat`` per file, and only new inodes are read. Unchanged
        directories are not listed at all."""
        key = str(directory)
        st = stamp(directory)
        cached = self._scan.get(key)
        if cached is not None and cached[0] == st:
            return cached[1]
        old = cached[1] if cached else {}
        found: dict[str, tuple[int, str]] = {}
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if entry.name.endswith(".lock") or not entry.is_file(follow_symlinks=False):
                continue
            inode = entry.inode()
            prev = old.get(entry.name)
            if prev is not None and prev[0] == inode:
                found[entry.name] = prev
                continue
            oid = _read_ref(Path(entry.path))
            if oid:
                found[entry.name] = (inode, oid)
        self._scan[key] = (_ABSENT if _racy(st) else st, found)
        return found

    def _packed(self) -> tuple[dict[str, str], str | None]:
        """packed-refs parsed, cached by its stamp (git rewrites it whole, never in place)."""
        path = self.git_dir / "packed-refs"
        st = stamp(path)
        if self._packed_cache is not None and self._packed_cache[0] == st:
            return self._packed_cache[1], self._packed_cache[2]
        tags: dict[str, str] = {}
        notes: str | None = None
        try:
            packed = path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            packed = ""
        for line in packed.splitlines():
            if not line or line[0] in "#^":
                continue
            oid, _, ref = line.partition(" ")
            if ref.startswith("refs/tags/"):
                tags[ref[10:]] = oid
            elif ref == self.notes_ref:
                notes = oid
        self._packed_cache = (st, tags, notes)
        return tags, notes

    def _loose_oid(self, path: Path) -> str | None:
        st = stamp(path)
        cached = self._loose.get(str(path))
        if cached and cached[0] == st:
            return cached[1]
        oid = _read_ref(path)
        if oid:
            self._loose[str(path)] = (st, oid)
        return oid

    def _listing_from_git(self) -> RefListing:  # pragma: no cover
        out = git(self.root, "for-each-ref", "--format=%(refname) %(objectname)",
                  "refs/tags", self.notes_ref).decode()
        tags: dict[str, str] = {}
        notes = None
        for line in out.splitlines():
            ref, _, oid = line.partition(" ")
            if ref == self.notes_ref:
                notes = oid
            elif ref.startswith("refs/tags/"):
                tags[ref[10:]] = oid
        return RefListing(tags, {}, notes)

    # --- records ---------------------------------------------------------------------------

    def update(self, listing: RefListing | None = None) -> set[str]:
        """Bring the cache up to date; return the tag names whose object changed since the
        last call (new, moved or deleted). Only those are read. When packed-refs is unchanged,
        only the loose refs are compared, so the cost follows the change, not the registry."""
        listing = listing or self.listing()
        last = self._last
        if last is None and not self._records:
            self._seed(listing)
            everything = set(self._records)
            # read only what the seed does not hold as listed (a tag moved meanwhile)
            names = listing.names() | everything
            self._last = listing
            self._read({n: listing.oid(n) for n in names if self._oid(n) != listing.oid(n)})
            return everything | listing.names()
        if last is not None and last.packed is listing.packed:
            names = set(listing.loose) | set(last.loose)
            changed = {n for n in names if self._oid(n) != listing.oid(n)}
        else:
            names = listing.names() | set(self._records)
            changed = {n for n in names if self._oid(n) != listing.oid(n)}
        self._last = listing
        self._read({n: listing.oid(n) for n in changed})
        return changed

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def get(self, name: str) -> TagRecord | None:
        found = self._records.get(name)
        return found[1] if found else None

    def all(self) -> list[TagRecord]:
        return [rec for _, rec in self._records.values() if rec is not None]

    def records(self) -> list[TagRecord]:
        """Every tag, as ``read_tags`` returns it (after bringing the cache up to date)."""
        self.update()
        return self.all()

    def _oid(self, name: str) -> str | None:
        found = self._records.get(name)
        return found[0] if found else None

    def _seed(self, listing: RefListing) -> None:
        """The first read: the registry's records from ``seed``, else one ``for-each-ref``
        with every message (``read_tags``). Any other name is remembered with its object."""
        from mlopsctl.gitops.refs import read_tags

        for rec in self.seed() if self.seed is not None else read_tags(self.root):
            self._records[rec.name] = (rec.tag_sha or rec.commit, rec)
        for name in listing.names() - set(self._records):  # tags of trees, blobs, tags
            oid = listing.oid(name)
            if oid:
                self._records[name] = (oid, None)

    def _read(self, wanted: dict[str, str | None]) -> None:
        oids = {oid for oid in wanted.values() if oid}
        objects = read_objects(self.root, self.git_dir, oids)
        commits_needed = set()
        for kind, body in objects.values():
            if kind == "tag":
                target, target_type = tag_target(body)
                if target_type == "commit" and target not in self._commit_times:
                    commits_needed.add(target)
        for oid, (kind, body) in read_objects(self.root, self.git_dir, commits_needed).items():
            if kind == "commit":
                self._commit_times[oid] = committer_time(body)
        for name, found in wanted.items():
            if found is None:
                self._records.pop(name, None)
                continue
            kind, body = objects.get(found, ("missing", b""))
            self._records[name] = (found, self._record(name, found, kind, body))

    def _record(self, name: str, oid: str, kind: str, body: bytes) -> TagRecord | None:
        record, inner = parse_tag_object(name, oid, kind, body)
        if record is None or inner is not None:  # a tag of a tag is no event here
            return None
        if not record.annotated:
            return record
        return record._replace(commit_time=self._commit_times.get(record.commit, 0))


RACY_NS = 100_000_000  # 0.1 s: well above any file system's timestamp granularity


def _racy(*stamps: Stamp) -> bool:
    now = time.time_ns()
    return any(now - st[1] < RACY_NS for st in stamps if st[2] >= 0)


def _read_ref(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return None if not text or text.startswith("ref:") else text
