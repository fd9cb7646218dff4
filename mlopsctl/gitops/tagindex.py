"""The tag index: what every registry tag says, read once and kept under the git dir.

At 100,000 tags, git needs one to two seconds just to hand over every tag object, before a
command has done anything. But a tag object never changes (its id is its content's hash); only
which names point at which objects does. So the index keeps, per model, the records of that
model's tags and a small summary the registry derives from them, and is keyed by the refs'
state:

- **hit**: ``packed-refs`` and every loose tag ref still have the stamps (inode, mtime, size)
  they had when the index was written: nothing is read but the index's header, plus a model's
  section when a command asks for that model;
- **refresh**: otherwise the listing (packed-refs parsed, loose refs read) is compared name by
  name; only the tags whose object changed are read (new ones are usually loose objects,
  inflated in-process, else one ``git cat-file --batch``), only their models are derived again,
  and the index is rewritten with the other models' sections copied as they are;
- **rebuild**: missing, unreadable, corrupt (a digest covers each section), or written by
  another version: built again, the tag objects streamed through one ``git cat-file --batch``
  model by model, so memory holds one model at a time.

It is a cache, never the truth. The stamps are taken before the refs are read, so a write that
races a read leaves stamps that no longer match; a stamp within ``RACY_NS`` of when it was taken
is marked racy and its ref read again next time (two writes in one file-system tick leave one
mtime: git's own "racy" case); the file is replaced atomically, so concurrent writers leave one
complete index or the other. It lives in the git dir, which no clone or fetch transfers: whoever
can write there can already rewrite the refs themselves (and git's hooks). The paths that enforce
under ``signing: required`` (``trust.trusted_registry``, ``verify --signatures``, ``check-ref``)
read the tags through git, not through the index.

A repository in the reftable format has no loose files to stat: its listing comes from one
``git for-each-ref`` of names and ids, which still spares reading every tag object.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import re
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from mlopsctl.errors import EnvironmentProblem
from mlopsctl.gcpause import paused_gc
from mlopsctl.gitops import tags as T
from mlopsctl.gitops.git import git
from mlopsctl.gitops.refs import TagRecord

FORMAT = 1
INDEX_PATH = Path("mlopsctl") / "tag-index"  # under the common git dir
MAGIC = b"MLTAGIDX"
RACY_NS = 100_000_000  # 0.1 s: above the tick of any file system with sub-second times
COARSE_RACY_NS = 2_000_000_000  # file systems with whole-second times (ext3, HFS+, FAT)
# The file: a prefix (magic, format), the models' sections as they were made, the packed
# listing, the header, and a trailer saying where the header is: written front to back, so a
# rebuild never holds more than one model's section in memory.
_PREFIX = struct.Struct("<8sI")  # magic, format
_TRAILER = struct.Struct("<QQ16s8s")  # header offset, header length, header digest, magic
_SIGNATURES = (b"-----BEGIN PGP SIGNATURE-----", b"-----BEGIN SSH SIGNATURE-----",
               b"-----BEGIN SIGNED MESSAGE-----")
_PACKED_RE = re.compile(r"^([0-9a-f]{40,64}) refs/tags/(.+)$", re.MULTILINE)
_MAX_PEEL = 8  # tags of tags of ...: deeper chains are not events
REBUILD_ABOVE = 2000  # changed tags beyond which (and beyond a quarter of all) it is rebuilt

Stamp = tuple[int, int, int]  # (inode, mtime_ns, size)
Pair = tuple[TagRecord, T.TagEvent]  # a tag's record and its name parsed


class Codec(Protocol):
    """What a model's section holds, decided by the layer that folds (the registry)."""

    version: str  # a section packed by another version is rebuilt

    def pack(self, model: str, pairs: list[Pair]) -> tuple[bytes, Any]:
        """(the section, a small summary kept in the header) for a model's tags."""

    def records(self, section: bytes) -> list[TagRecord]:
        """The records a section was packed from (to fold again when a tag changes)."""


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _stamp(path: Path | str) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _racy(stamp: Stamp | None, now: int) -> bool:
    if stamp is None:
        return False
    window = COARSE_RACY_NS if stamp[1] % 1_000_000_000 == 0 else RACY_NS
    return now - stamp[1] < window


# --- the refs' state ----------------------------------------------------------------------------


class RefsState:
    """Stamps of packed-refs and of every loose tag ref, taken before anything is read."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        self.now = time.time_ns()
        self.packed = _stamp(git_dir / "packed-refs")
        self.loose: dict[str, Stamp] = {}
        top = git_dir / "refs" / "tags"
        stack = [(str(top), "")]
        while stack:
            directory, prefix = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, f"{prefix}{entry.name}/"))
                elif not entry.name.endswith(".lock"):
                    try:
                        st = entry.stat()
                    except OSError:
                        continue
                    self.loose[prefix + entry.name] = (st.st_ino, st.st_mtime_ns, st.st_size)

    def racy_names(self) -> set[str]:
        return {name for name, st in self.loose.items() if _racy(st, self.now)}

    @property
    def packed_racy(self) -> bool:
        return _racy(self.packed, self.now)


def parse_packed(text: str) -> dict[str, str]:
    """tag name -> object id, from the text of ``packed-refs`` (peeled lines skipped)."""
    return {name: oid for oid, name in _PACKED_RE.findall(text)}


def _read_packed(git_dir: Path) -> dict[str, str]:
    try:
        text = (git_dir / "packed-refs").read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return {}
    return parse_packed(text)


def _read_loose(git_dir: Path, name: str) -> str | None:
    try:
        text = (git_dir / "refs" / "tags" / name).read_text("utf-8", "replace").strip()
    except OSError:
        return None
    if text.startswith("ref: "):  # a symbolic ref: resolved against the listing later
        return text
    return text if re.fullmatch(r"[0-9a-f]{40,64}", text) else None


def _listing_from_git(root: Path) -> dict[str, str]:
    out = git(root, "for-each-ref", "--format=%(objectname) %(refname)", "refs/tags")
    return parse_packed(out.decode("utf-8", "replace"))


# --- tag objects --------------------------------------------------------------------------------


def _split_ident(value: bytes) -> tuple[str, str, int, str]:
    """``Name <email> 1700000000 +0100`` -> (name, email, unix time, '+0100')."""
    text = value.decode("utf-8", "replace")
    name, _, rest = text.partition(" <")
    email, _, when = rest.rpartition("> ")
    ts, _, tz = when.partition(" ")
    try:
        return name, email, int(ts), tz or "+0000"
    except ValueError:
        return name, email, 0, "+0000"


def parse_tag_object(name: str, oid: str, kind: str, body: bytes
                     ) -> tuple[TagRecord | None, str | None]:
    """(record, inner tag id): the record of tag ``name`` whose object is ``oid``; for a tag of
    a tag, the record still points at the inner tag, whose id comes second (peel it). A
    lightweight tag of a commit is a record with ``annotated=False``; anything else is None."""
    if kind == "commit":
        return TagRecord(name, "", oid, "", "", 0, "", "", annotated=False), None
    if kind != "tag":
        return None, None
    header, _, message = body.partition(b"\n\n")
    lines = header.split(b"\n")
    # git writes object, type, tag, tagger in this order (fsck insists); read anything else
    # field by field
    if len(lines) >= 4 and lines[0][:7] == b"object " and lines[1][:5] == b"type " \
            and lines[3][:7] == b"tagger ":
        target, target_type, tagger_line = lines[0][7:], lines[1][5:], lines[3][7:]
    else:
        fields: dict[bytes, bytes] = {}
        for line in lines:
            key, _, value = line.partition(b" ")
            fields.setdefault(key, value)
        if b"tagger" not in fields:
            return None, None
        target, target_type = fields.get(b"object", b""), fields.get(b"type", b"")
        tagger_line = fields[b"tagger"]
    if target_type != b"commit" and target_type != b"tag":
        return None, None
    if b"-----BEGIN " in message:
        for marker in _SIGNATURES:
            at = 0 if message.startswith(marker) else message.find(b"\n" + marker)
            if at >= 0:
                message = message[: at + (1 if at else 0)]
                break
    tagger, email, ts, tz = _split_ident(tagger_line)
    record = TagRecord(name, oid, target.decode("ascii", "replace"), tagger, email, ts, tz,
                       message.decode("utf-8", "replace"))
    return record, (record.commit if target_type == b"tag" else None)


def committer_time(body: bytes) -> int:
    for line in body.split(b"\n\n", 1)[0].split(b"\n"):
        if line.startswith(b"committer "):
            return _split_ident(line[10:])[2]
    return 0


def stream_objects(root: Path, oids: Iterable[str]) -> Iterator[tuple[str, str, bytes]]:
    """(id, type, content) for each id, in order, through one ``git cat-file --batch`` read as
    git writes it (missing ids are skipped). The ids are fed from a thread, so neither side
    waits for the other's pipe; the output is read in large chunks and cut in memory."""
    wanted = [o for o in oids if o and "\n" not in o]
    if not wanted:
        return
    proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=root, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None

    def feed() -> None:
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.write(("\n".join(wanted) + "\n").encode())
            proc.stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    fd = proc.stdout.fileno()
    buf = b""
    pos = 0
    try:
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            buf = buf[pos:] + chunk if pos < len(buf) else chunk
            pos = 0
            end = len(buf)
            while True:
                eol = buf.find(b"\n", pos)
                if eol < 0:
                    break
                header = buf[pos:eol].split(b" ")
                if len(header) != 3 or not header[2].isdigit():
                    pos = eol + 1  # '<id> missing'
                    continue
                stop = eol + 1 + int(header[2])
                if stop + 1 > end:
                    break  # the rest of this object is still in the pipe
                yield header[0].decode(), header[1].decode(), buf[eol + 1:stop]
                pos = stop + 1
    finally:
        proc.stdout.close()
        code = proc.wait()
        writer.join()
    if code != 0:  # never a partial listing taken for the whole: the caller gives up
        raise EnvironmentProblem(f"git cat-file --batch failed (exit {code}) in {root}",
                                 hint="git fsck, then run the command again")


def _loose_object(git_dir: Path, oid: str) -> tuple[str, bytes] | None:
    """A loose object inflated in-process (a new tag is loose: microseconds, against a git
    process's milliseconds); None when it is packed or unreadable."""
    import zlib

    try:
        data = zlib.decompress((git_dir / "objects" / oid[:2] / oid[2:]).read_bytes())
    except (OSError, zlib.error):
        return None
    header, _, body = data.partition(b"\0")
    kind, _, size = header.decode("ascii", "replace").partition(" ")
    if not size.isdigit() or int(size) != len(body):
        return None
    return kind, body


def read_objects(root: Path, git_dir: Path, oids: Iterable[str]) -> dict[str, tuple[str, bytes]]:
    """id -> (type, content): loose objects read directly, the rest through one git."""
    found: dict[str, tuple[str, bytes]] = {}
    rest = []
    for oid in set(oids):
        loose = _loose_object(git_dir, oid)
        if loose is None:
            rest.append(oid)
        else:
            found[oid] = loose
    found.update((oid, (kind, body)) for oid, kind, body in stream_objects(root, sorted(rest)))
    return found


def tag_target(body: bytes) -> tuple[str, str]:
    """(object, type) a tag object points at."""
    target = kind = ""
    for line in body.split(b"\n", 3)[:3]:
        if line.startswith(b"object "):
            target = line[7:].decode("ascii", "replace")
        elif line.startswith(b"type "):
            kind = line[5:].decode("ascii", "replace")
    return target, kind


def _finish(root: Path, git_dir: Path, pairs: list[Pair], inner: dict[str, str]) -> list[Pair]:
    """One model's records made whole: tags of tags peeled to their commits (``inner``: tag
    name -> the inner tag's id; a chain that ends anywhere but at a commit is no event), and
    commit dates filled in where the model needs them (see ``_needs_commit_times``)."""
    points_at: dict[str, tuple[str, str]] = {}  # tag id -> (object, type)
    todo = set(inner.values())
    for _ in range(_MAX_PEEL):
        if not todo:
            break
        objects = read_objects(root, git_dir, todo)
        todo = set()
        for oid, (kind, body) in objects.items():
            if kind == "tag":
                points_at[oid] = tag_target(body)
                if points_at[oid][1] == "tag":
                    todo.add(points_at[oid][0])
    peeled: dict[str, str | None] = {}
    for name, oid in inner.items():
        target, kind = oid, "tag"
        for _ in range(_MAX_PEEL):
            if kind != "tag" or target not in points_at:
                break
            target, kind = points_at[target]
        peeled[name] = target if kind == "commit" else None
    out = []
    for rec, parsed in pairs:
        if rec.name in peeled:
            commit = peeled[rec.name]
            if commit is None:
                continue
            rec = rec._replace(commit=commit)
        out.append((rec, parsed))
    if _needs_commit_times(out):
        wanted = {r.commit for r, _ in out if r.annotated and not r.commit_time}
        commits = read_objects(root, git_dir, wanted)
        out = [(r._replace(commit_time=committer_time(commits[r.commit][1])), p)
               if r.commit in wanted and commits.get(r.commit, ("",))[0] == "commit" else (r, p)
               for r, p in out]
    return out


def needs_commit_times(records: list[TagRecord]) -> bool:
    """Whether one model's fold needs its commits' dates (see ``_needs_commit_times``)."""
    return _needs_commit_times(_parsed(records))


def _needs_commit_times(pairs: list[Pair]) -> bool:
    """Commit dates matter to GTO's fold only for a model with a deprecation (the newest event,
    commits included, decides) or with a version that has no registration (dated by its
    commit): anywhere else reading the commits would be wasted."""
    registered: set[str] = set()
    others: set[str] = set()
    for rec, parsed in pairs:
        if not rec.annotated:
            continue
        if parsed.kind == T.DEPRECATE:
            return True
        if parsed.kind == T.REGISTER:
            registered.add(rec.commit)
        else:
            others.add(rec.commit)
    return bool(others - registered)


# --- the index ----------------------------------------------------------------------------------


class TagIndex:
    """Per model: a section packed by the codec from its tags, and a summary. Read-only once
    open."""

    def __init__(self, root: Path, git_dir: Path, codec: Codec) -> None:
        self.root = root
        self.git_dir = git_dir
        self.codec = codec
        self.key = f"{FORMAT}:{codec.version}"
        self.path = git_dir / INDEX_PATH
        self._fd: int | None = None
        self._models: dict[str, tuple[int, int, bytes, Any]] = {}  # offset, length, digest, data
        self._memory: dict[str, bytes] = {}  # sections held in memory (an unwritable git dir)
        # every tag name listed, registry event or not: the listing, made into names on demand
        self._listed: tuple[dict[str, str], dict[str, str]] | None = None
        self._hit_header: dict[str, Any] | None = None
        self.status = "hit"  # hit | refresh | rebuild: what opening it took

    def __del__(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    @classmethod
    def open(cls, root: Path, git_dir: Path, codec: Codec) -> TagIndex:
        index = cls(root, git_dir, codec)
        index._open()
        return index

    # --- reading ---------------------------------------------------------------------------

    def summaries(self) -> dict[str, Any]:
        """model -> the summary the codec packed beside its section."""
        return {name: entry[3] for name, entry in self._models.items()}

    def tag_names(self) -> list[str]:
        """Every tag's name, a registry event or not (the listing the index was checked
        against)."""
        if self._listed is None and self._hit_header is not None:
            header = self._hit_header
            self._listed = (self._packed_section(header),
                            {n: v[1] for n, v in header["loose"].items()})
        return list(_effective(*self._listed)) if self._listed else []

    def records(self, model: str) -> list[TagRecord]:
        raw = self.section(model)
        return self.codec.records(raw) if raw else []

    def section(self, model: str) -> bytes | None:
        """The model's section (None: the model has no tags)."""
        try:
            return self._section(model)
        except _Corrupt:  # damaged since it was opened: build it again, then read that
            self._close()
            self._models, self._memory = {}, {}
            state = None if (self.git_dir / "reftable").is_dir() else RefsState(self.git_dir)
            with paused_gc():
                self._rebuild(state)
            return self._section(model)

    def _section(self, model: str) -> bytes | None:
        if model in self._memory:
            return self._memory[model]
        entry = self._models.get(model)
        if entry is None or self._fd is None:
            return None
        return self._read_checked(entry[0], entry[1], entry[2])

    def _read_checked(self, offset: int, length: int, digest: bytes) -> bytes:
        assert self._fd is not None
        raw = os.pread(self._fd, length, offset)
        if len(raw) != length or _digest(raw) != digest:
            raise _Corrupt("a section does not match its digest")
        return raw

    # --- opening ---------------------------------------------------------------------------

    def _open(self) -> None:
        # Stamps first: a ref written after this point makes them differ next time.
        state = None if (self.git_dir / "reftable").is_dir() else RefsState(self.git_dir)
        with paused_gc():
            self._open_from(state)

    def _open_from(self, state: RefsState | None) -> None:
        try:
            header = self._read_header()
            if not self._refresh(header, state):
                self._hit_header = header  # its listing is read only if asked for
                return  # a hit
        except (OSError, _Corrupt, _Rebuild, ValueError, EOFError, TypeError, KeyError,
                IndexError):
            self._close()
            self._models, self._memory = {}, {}
            self._rebuild(state)

    def _read_header(self) -> dict[str, Any]:
        fd = os.open(self.path, os.O_RDONLY)
        self._fd = fd
        size = os.fstat(fd).st_size
        if size < _PREFIX.size + _TRAILER.size:
            raise _Corrupt("short file")
        if _PREFIX.unpack(os.pread(fd, _PREFIX.size, 0)) != (MAGIC, FORMAT):
            raise _Corrupt("another format")
        offset, length, digest, magic = _TRAILER.unpack(
            os.pread(fd, _TRAILER.size, size - _TRAILER.size))
        if magic != MAGIC:
            raise _Corrupt("no trailer")
        header = marshal.loads(self._read_checked(offset, length, digest))
        if not isinstance(header, dict) or header.get("key") != self.key:
            raise _Corrupt("written by another version")
        self._models = header["models"]
        return header

    def _refresh(self, header: dict[str, Any], state: RefsState | None) -> bool:
        """Bring an index that was read up to date; False when nothing changed (a hit)."""
        stored: dict[str, tuple[Stamp, str]] = header["loose"]
        if state is not None and not header["packed_racy"] and not header["racy"] \
                and _same(header["packed"], state.packed) and len(stored) == len(state.loose) \
                and all(tuple(stored[n][0]) == st if n in stored else False
                        for n, st in state.loose.items()):
            return False
        old_loose = {n: v[1] for n, v in stored.items()}
        packed_same = state is not None and not header["packed_racy"] and \
            _same(header["packed"], state.packed)
        loose = self._loose_now(state, header)
        packed: dict[str, str] | None = None
        if packed_same and not _has_symrefs(old_loose) and not _has_symrefs(loose):
            # Only loose refs changed: compare just their names, looked up in packed-refs'
            # unchanged text (a new tag costs what it is, not a pass over 100,000 names).
            lookup = _PackedText(self.git_dir)
            now: dict[str, str] = {}
            changed = set()
            for name in old_loose.keys() | loose.keys():
                before, after = _one(name, lookup, old_loose), _one(name, lookup, loose)
                if before != after:
                    changed.add(name)
                if after is not None:
                    now[name] = after
            total = header.get("count", 0) + len(loose)
        else:
            packed = self._packed_section(header) if packed_same else \
                _listing_from_git(self.root) if state is None else _read_packed(self.git_dir)
            old = _effective(self._packed_section(header), old_loose)
            now = _effective(packed, loose)
            changed = {n for n in old.keys() | now.keys() if old.get(n) != now.get(n)}
            total = len(packed) + len(loose)
        if state is None and not changed:
            return False  # reftable: the listing is the stamp
        if len(changed) > REBUILD_ABOVE and len(changed) * 4 > total:
            raise _Rebuild  # a fetch of many tags: streaming them all costs less memory
        self.status = "refresh"
        touched: dict[str, list[str]] = {}
        for name in changed:
            parsed = T.parse_tag(name)
            if parsed is not None:
                touched.setdefault(parsed.model, []).append(name)
        wanted = {n: now[n] for names in touched.values() for n in names if n in now}
        fresh, inner, missing = self._read_records(wanted)
        writer = _Writer(self.path)
        writer.keep = not missing
        if self._fd is not None:  # the other models' sections, copied as they are
            writer.copy(self._fd, {m: e for m, e in self._models.items() if m not in touched})
        for model, names in touched.items():
            drop = set(names)
            records = [r for r in self.records(model) if r.name not in drop]
            records += [fresh[n] for n in names if n in fresh]
            pairs = _finish(self.root, self.git_dir, _parsed(records),
                            {n: inner[n] for n in names if n in inner})
            self._add(writer, model, pairs)
        self._finish_writing(writer, state, packed if packed is not None
                             else header["packed_section"], loose, header.get("count", 0))
        return True

    def _packed_section(self, header: dict[str, Any]) -> dict[str, str]:
        packed = marshal.loads(self._read_checked(*header["packed_section"]))
        if not isinstance(packed, dict):
            raise _Corrupt("packed section")
        return packed

    def _loose_now(self, state: RefsState | None, header: dict[str, Any] | None
                   ) -> dict[str, str]:
        """Loose tag refs, name -> id, as they are now. One whose stamp matches a non-racy one
        in ``header`` is not read again; one that cannot be read is listed with the id '' (no
        tag, but a stamp to compare). A reftable repository has none."""
        if state is None:
            return {}
        stored: dict[str, tuple[Stamp, str]] = header["loose"] if header else {}
        racy_before = set(header["racy"]) if header else set()
        loose: dict[str, str] = {}
        for name, st in state.loose.items():
            seen = stored.get(name)
            if seen is not None and tuple(seen[0]) == st and name not in racy_before:
                loose[name] = seen[1]
            else:
                loose[name] = _read_loose(self.git_dir, name) or ""
        return loose

    def _read_records(self, wanted: dict[str, str]
                      ) -> tuple[dict[str, TagRecord], dict[str, str], bool]:
        """(name -> record, name -> inner tag id, whether an object was missing) for a few
        changed tags."""
        objects = read_objects(self.root, self.git_dir, wanted.values())
        records: dict[str, TagRecord] = {}
        inner: dict[str, str] = {}
        for name, oid in wanted.items():
            kind, body = objects.get(oid, ("missing", b""))
            record, deeper = parse_tag_object(name, oid, kind, body)
            if record is not None:
                records[name] = record
                if deeper:
                    inner[name] = deeper
        return records, inner, any(oid not in objects for oid in wanted.values())

    def _add(self, writer: _Writer, model: str, pairs: list[Pair]) -> None:
        """A model's section and its summary (a model with no tags left has none)."""
        if pairs:
            writer.add(model, *self.codec.pack(model, pairs))

    def _rebuild(self, state: RefsState | None) -> None:
        """Everything from the refs: the listing, then every registry tag's object streamed
        through one ``git cat-file --batch`` in model order, each model derived as soon as
        its last tag has arrived (so memory holds one model's records at a time)."""
        self.status = "rebuild"
        loose = self._loose_now(state, None)
        packed = _listing_from_git(self.root) if state is None else _read_packed(self.git_dir)
        now = _effective(packed, loose)
        groups: dict[str, list[tuple[str, T.TagEvent]]] = {}
        for name in now:
            parsed = T.parse_tag(name)
            if parsed is not None:
                groups.setdefault(parsed.model, []).append((name, parsed))
        order = [(model, name, parsed) for model, names in groups.items()
                 for name, parsed in names]
        left = {model: len(names) for model, names in groups.items()}
        collected: dict[str, list[Pair]] = {}
        inner: dict[str, dict[str, str]] = {}
        writer = _Writer(self.path)
        objects = stream_objects(self.root, [now[name] for _, name, _ in order])
        arrived = next(objects, None)
        for model, name, parsed in order:
            oid = now[name]
            if arrived is not None and arrived[0] == oid:
                record, deeper = parse_tag_object(name, oid, arrived[1], arrived[2])
                arrived = next(objects, None)
                if record is not None:
                    collected.setdefault(model, []).append((record, parsed))
                    if deeper:
                        inner.setdefault(model, {})[name] = deeper
            else:  # missing: git skipped it
                writer.keep = False
            left[model] -= 1
            if left[model] == 0:
                pairs = collected.pop(model, [])
                if pairs and (model in inner or _needs_commit_times(pairs)):
                    pairs = _finish(self.root, self.git_dir, pairs, inner.pop(model, {}))
                self._add(writer, model, pairs)
        for _ in objects:  # drain the stream (it ends before the listing only on a race)
            pass
        self._finish_writing(writer, state, packed, loose, len(packed))

    def _finish_writing(self, writer: _Writer, state: RefsState | None,
                        packed: dict[str, str] | tuple[int, int, bytes],
                        loose: dict[str, str], count: int) -> None:
        """The header, and the packed listing: ``packed`` as a map, or the place of the open
        index's own section when packed-refs is unchanged (copied, not loaded)."""
        header: dict[str, Any] = {
            "key": self.key,
            "packed": state.packed if state is not None else None,
            "packed_racy": state.packed_racy if state is not None else True,
            "racy": sorted(state.racy_names()) if state is not None else [],
            "loose": {n: (state.loose[n], oid) for n, oid in loose.items()
                      if state is not None and n in state.loose},
            "count": count,  # tags in packed-refs
        }
        if not isinstance(packed, dict) and writer.fh is None:  # nothing will be written:
            packed = self._packed_section({"packed_section": packed})  # keep the map here
        if isinstance(packed, dict):
            section: bytes | tuple[int, int, int, bytes] = marshal.dumps(packed)
        else:
            assert self._fd is not None
            section = (self._fd, *packed)
        fd, self._models, self._memory = writer.finish(header, section)
        self._close()
        self._fd = fd
        if isinstance(packed, dict):
            self._listed, self._hit_header = (packed, loose), None
        else:  # the copied section is read only if the listing is asked for
            self._listed, self._hit_header = None, header


class _Writer:
    """A new index, written front to back into a temp file that is renamed into place at the
    end and kept open for reading (another process's later rename leaves it readable). When
    the git dir cannot be written (read-only, full), what could not be written stays in
    memory for this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.models: dict[str, tuple[int, int, bytes, Any]] = {}
        self.memory: dict[str, bytes] = {}
        self.pos = _PREFIX.size
        self.tmp: str | None = None
        self.fh: Any = None
        self.read_fd: int | None = None
        # False when a tag's object could not be read: such an index is used by this process
        # and not kept (a ref that points at a missing object would never be read again)
        self.keep = True
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(prefix=".tag-index.", dir=path.parent)
            self.fh = os.fdopen(fd, "w+b")
            self.fh.write(_PREFIX.pack(MAGIC, FORMAT))
        except OSError:
            self._abandon()

    def copy(self, fd: int, entries: dict[str, tuple[int, int, bytes, Any]]) -> None:
        """Sections of another index file, copied by the kernel in runs of adjacent ones (at
        100,000 tags, 50 MB that never pass through Python); read back if that fails."""
        ordered = sorted(entries.items(), key=lambda item: item[1][0])
        runs: list[list[tuple[str, tuple[int, int, bytes, Any]]]] = []
        for item in ordered:
            if runs and runs[-1][-1][1][0] + runs[-1][-1][1][1] == item[1][0]:
                runs[-1].append(item)
            else:
                runs.append([item])
        for run in runs:
            start = run[0][1][0]
            length = run[-1][1][0] + run[-1][1][1] - start
            if self.fh is not None and self._copy_range(fd, start, length):
                for model, (offset, size, digest, data) in run:
                    self.models[model] = (self.pos + offset - start, size, digest, data)
                self.pos += length
                continue
            for model, (offset, size, digest, data) in run:
                self.add(model, os.pread(fd, size, offset), data, digest)

    def _copy_range(self, src: int, offset: int, length: int) -> bool:
        """Append ``length`` bytes of ``src`` from ``offset``, in the kernel; False (and
        nothing appended) where that cannot be done."""
        try:
            self.fh.flush()
            dst = self.fh.fileno()
            os.lseek(dst, self.pos, os.SEEK_SET)
            done = 0
            while done < length:
                n = os.copy_file_range(src, dst, length - done, offset + done)
                if n <= 0:
                    raise OSError("copy_file_range copied nothing")
                done += n
            self.fh.seek(self.pos + length)
            return True
        except (OSError, AttributeError):  # no copy_file_range (old kernel, macOS, EXDEV)
            with contextlib.suppress(OSError):
                self.fh.seek(self.pos)
                self.fh.truncate()
            return False

    def add(self, model: str, raw: bytes, data: Any, digest: bytes | None = None) -> None:
        digest = digest or _digest(raw)
        if self.fh is not None:
            try:
                self.fh.write(raw)
                self.models[model] = (self.pos, len(raw), digest, data)
                self.pos += len(raw)
                return
            except OSError:
                self._abandon()
        self.memory[model] = raw
        self.models[model] = (0, len(raw), digest, data)

    def finish(self, header: dict[str, Any], packed: bytes | tuple[int, int, int, bytes]
               ) -> tuple[int | None, dict[str, tuple[int, int, bytes, Any]], dict[str, bytes]]:
        """(a descriptor to read the sections from, the models' entries, sections in memory).
        ``packed`` is the packed listing's section, or (descriptor, offset, length, digest) of
        one to copy."""
        if isinstance(packed, tuple) and (self.fh is None
                                          or not self._copy_range(packed[0], *packed[1:3])):
            packed = os.pread(packed[0], packed[2], packed[1])  # no kernel copy: read it
        if isinstance(packed, tuple):
            length, digest = packed[2], packed[3]
            self.pos += length  # copied already
            start = self.pos - length
        else:
            length, digest = len(packed), _digest(packed)
            start = self.pos
        header["packed_section"] = (start, length, digest)
        header["models"] = self.models
        header_raw = marshal.dumps(header)
        if self.fh is not None:
            try:
                offset = start + length
                if not isinstance(packed, tuple):
                    self.fh.write(packed)
                self.fh.write(header_raw)
                self.fh.write(_TRAILER.pack(offset, len(header_raw), _digest(header_raw), MAGIC))
                self.fh.flush()
                assert self.tmp is not None
                if self.keep:
                    os.replace(self.tmp, self.path)
                    self.tmp = None
            except OSError:
                pass  # the sections written so far stay readable through read_fd
        self._abandon()
        return self.read_fd, self.models, self.memory

    def _abandon(self) -> None:
        """Stop writing: keep a descriptor for reading what was written, drop the temp file
        unless it was renamed into place."""
        if self.fh is not None:
            with contextlib.suppress(OSError):
                self.fh.flush()
            with contextlib.suppress(OSError):
                self.read_fd = os.dup(self.fh.fileno())
            with contextlib.suppress(OSError):
                self.fh.close()
            self.fh = None
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            self.tmp = None


def _has_symrefs(refs: dict[str, str]) -> bool:
    return any(oid.startswith("ref: ") for oid in refs.values())


class _PackedText:
    """packed-refs as it was when the index was written (its stamp unchanged), asked name by
    name: a few searches of its text cost less than loading the 100,000-name map."""

    def __init__(self, git_dir: Path) -> None:
        try:
            self.text = (git_dir / "packed-refs").read_bytes()
        except FileNotFoundError:
            self.text = b""

    def get(self, name: str) -> str | None:
        needle = b" refs/tags/" + name.encode("utf-8", "surrogateescape") + b"\n"
        at = self.text.find(needle)
        if at < 0:
            return None
        oid = self.text[self.text.rfind(b"\n", 0, at) + 1:at].decode("ascii", "replace")
        return oid if re.fullmatch(r"[0-9a-f]{40,64}", oid) else None


def _one(name: str, packed: Any, loose: dict[str, str]) -> str | None:
    """What tag ``name`` points at (no symbolic refs around): a loose ref wins over a packed
    one; an unreadable loose ref ('') hides the packed one and is no tag."""
    oid = loose[name] if name in loose else packed.get(name)
    return oid or None


def _effective(packed: dict[str, str], loose: dict[str, str]) -> dict[str, str]:
    """What each tag name points at: a loose ref wins over a packed one; a symbolic ref is
    resolved one level (against the refs as listed, so the order of names does not matter);
    an unreadable one ('') is no tag."""
    listed = dict(packed)
    listed.update(loose)
    out = {}
    for name, oid in listed.items():
        if oid.startswith("ref: "):
            oid = listed.get(oid[5:].strip().removeprefix("refs/tags/"), "")
            if oid.startswith("ref: "):
                continue
        if oid:
            out[name] = oid
    return out


def _parsed(records: list[TagRecord]) -> list[Pair]:
    return [(r, parsed) for r in records if (parsed := T.parse_tag(r.name)) is not None]


def _same(stored: Any, now: Stamp | None) -> bool:
    if stored is None or now is None:
        return stored is None and now is None
    return tuple(stored) == now


class _Corrupt(Exception):
    """The index on disk cannot be used: it is rebuilt."""


class _Rebuild(Exception):
    """So much changed that building the index again costs less than refreshing it."""
