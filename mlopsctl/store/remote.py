"""The DVC remote adapter.

Blobs live in a DVC remote under DVC 3's documented layout ``files/md5/<2 hex>/<30 hex>``, each
described by a ``.dvc`` pointer that stock ``dvc pull`` understands. A local-directory remote (the
embedded default) is read and written in place, which keeps ``bump`` and ``fetch`` within a small
factor of the raw streaming cost; any other remote (s3://, gs://, azure://, ssh://, ...) is reached
through the filesystem DVC builds from its config (``store.cloud``, imported only then), with our
own parallel transfers. gc's tombstones live beside the objects, under ``mlopsctl-collected/``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from mlopsctl.errors import EnvironmentProblem

if TYPE_CHECKING:
    from mlopsctl.store.cloud import CloudStore

# "dvc": read and write a local remote through DVC's filesystem, as a cloud one (for tests)
TRANSPORT_ENV = "MLOPSCTL_TRANSPORT"
TOMBSTONE_DIR = "mlopsctl-collected"
_SECTION_RE = re.compile(r"""^\s*\[\s*'?(?P<name>[^\]']+?)'?\s*\]\s*$""")
_REMOTE_RE = re.compile(r'^remote\s+"(?P<name>[^"]+)"$')


def _parse_dvc_config(text: str) -> dict[str, dict[str, str]]:
    """The subset of DVC's configobj format we need: sections and ``key = value`` lines."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if match := _SECTION_RE.match(line):
            current = sections.setdefault(match["name"].strip(), {})
        elif "=" in line and current is not None:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip().strip("'\"")
    return sections


def read_dvc_config(root: Path) -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {}
    for name in ("config", "config.local"):
        path = root / ".dvc" / name
        if path.is_file():
            for section, values in _parse_dvc_config(path.read_text()).items():
                merged.setdefault(section, {}).update(values)
    return merged


_MD5 = re.compile(r"[0-9a-f]{32}")


def object_id(md5: str) -> str:
    """``md5`` if it is one (32 lowercase hex digits), the only thing that may name an object
    in the remote: it comes from manifests, pointers and tombstones anyone can write, and
    ``../..`` in it would name a path outside the remote."""
    if not isinstance(md5, str) or not _MD5.fullmatch(md5):
        raise EnvironmentProblem(f"{str(md5)[:80]!r} is not an md5: it cannot name an object "
                                 "in the artifact remote",
                                 hint="the manifest or pointer naming it was edited: restore it "
                                 "from git (mlopsctl check names the file)")
    return md5


@dataclass(frozen=True)
class Remote:
    root: Path  # the repository
    name: str
    url: str
    # DVC remote options over the configured ones (e.g. ("endpointurl", URL)): for a remote that
    # is not in .dvc/config yet, such as the target of `remote migrate`.
    options: tuple[tuple[str, str], ...] = ()

    @property
    def local_dir(self) -> Path | None:
        """The directory of a local remote, or None for a cloud remote."""
        url = self.url
        if url.startswith("file://"):
            url = url[len("file://") :]
        elif "://" in url:
            return None
        path = Path(os.path.expanduser(url))
        if not path.is_absolute():  # DVC stores relative local remotes relative to .dvc/
            path = (self.root / ".dvc" / path).resolve()
        return path

    @property
    def direct(self) -> bool:
        return self.local_dir is not None and os.environ.get(TRANSPORT_ENV) != "dvc"

    @functools.cached_property
    def store(self) -> CloudStore:
        """The remote through DVC's filesystem (any remote that is not read directly)."""
        from mlopsctl.store.cloud import open_store

        local = self.local_dir
        return open_store(self.root, self.name, str(local) if local else self.url,
                          dict(self.options))

    def object_path(self, md5: str) -> Path:
        base = self.local_dir
        assert base is not None
        md5 = object_id(md5)
        return base / "files" / "md5" / md5[:2] / md5[2:]

    def _key(self, md5: str) -> str:
        md5 = object_id(md5)
        return self.store.key("files", "md5", md5[:2], md5[2:])

    def staging_dir(self) -> Path:
        """Where a blob is written while it streams: inside a local remote (so publishing it is
        a rename), else DVC's tmp dir (git-ignored), from where it is uploaded."""
        base = self.local_dir if self.direct else None
        path = (base / "tmp-mlopsctl") if base is not None else (self.root / ".dvc" / "tmp")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def describe(self) -> str:
        return f"{self.name} ({self.url})"

    # --- writing ------------------------------------------------------------------------------

    def put(self, blob: Path, md5: str, pointer: Path | None = None) -> None:
        """Make ``blob`` (already named by ``md5``) available in the remote. ``pointer`` is its
        .dvc file in the work tree. Returns only once the data is in the remote."""
        if self.direct:
            dest = self.object_path(md5)
            if dest.exists():
                return
            dest.parent.mkdir(parents=True, exist_ok=True)
            # Same filesystem: a rename; otherwise copy to a temp name first, then rename.
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            try:
                try:
                    os.link(blob, tmp)
                except OSError:
                    shutil.copyfile(blob, tmp)
                os.chmod(tmp, 0o444)
                os.replace(tmp, dest)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            return
        key = self._key(md5)
        if not self.store.exists(key):  # content-addressed: an object there is this blob
            self.store.upload(blob, key)

    def replace(self, source: Path, md5: str) -> None:
        """Write the object ``md5`` as a copy of ``source``, replacing whatever is there (a
        damaged copy): whole or absent at every instant."""
        if self.direct:
            _copy(source, self.object_path(md5), mode=0o444)  # as stored objects are: read-only
        else:
            self.store.upload(source, self._key(md5))

    def remove(self, md5: str) -> bool:
        """Remove the object ``md5``; False when it was not there."""
        if self.direct:
            try:
                os.unlink(self.object_path(md5))
            except FileNotFoundError:
                return False
            return True
        key = self._key(md5)
        if not self.store.exists(key):
            return False
        self.store.remove(key)
        return True

    # --- reading ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def open(self, md5: str, pointer: Path | None = None, what: str = "") -> Iterator[BinaryIO]:
        """Open the stored object ``md5``. EnvironmentProblem when it is missing."""
        try:
            if self.direct:
                fh = cast(BinaryIO, open(self.object_path(md5), "rb"))  # noqa: SIM115
            else:
                fh = cast(BinaryIO, self.store.reader(self._key(md5)))
        except FileNotFoundError:
            raise EnvironmentProblem(
                f"the stored blob of {what or md5} is missing from remote {self.describe()}",
                hint="it may have been garbage-collected or never pushed; `mlopsctl verify` "
                "lists every affected version",
            ) from None
        with fh:
            yield fh

    def exists(self, md5: str) -> bool:
        if self.direct:
            return self.object_path(md5).is_file()
        return self.store.exists(self._key(md5))

    def exists_many(self, md5s: Iterable[str]) -> dict[str, bool]:
        """md5 -> whether the remote has it; a cloud remote is asked in parallel."""
        unique = sorted(set(md5s))
        if self.direct:
            return {md5: self.object_path(md5).is_file() for md5 in unique}
        return dict(zip(unique, self.store.exists_many(self._key(m) for m in unique),
                        strict=True))

    def stored_md5(self, md5: str) -> str:
        """The md5 of the object ``md5`` as the remote returns it now (re-read in full)."""
        digest = hashlib.md5(usedforsecurity=False)
        with self.open(md5) as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    # --- gc's tombstones ----------------------------------------------------------------------

    def read_tombstone(self, md5: str) -> bytes | None:
        """gc's record of removing ``md5`` from this remote, or None. A cloud remote's records
        are kept in DVC's (git-ignored) tmp dir once read, so `check` asks for each one once: a
        record is never withdrawn."""
        md5 = object_id(md5)
        if self.direct:
            base = self.local_dir
            assert base is not None
            try:
                return (base / TOMBSTONE_DIR / md5).read_bytes()
            except FileNotFoundError:
                return None
            except OSError:
                return b""  # present but unreadable: still collected on purpose
        seen = self._seen_tombstone(md5)
        if seen.is_file():
            return seen.read_bytes()
        data = self.store.read_bytes(self.store.key(TOMBSTONE_DIR, md5))
        if data is not None:
            _remember(seen, data)
        return data

    def write_tombstone(self, md5: str, data: bytes) -> None:
        md5 = object_id(md5)
        if self.direct:
            from mlopsctl.fsio import atomic_write

            base = self.local_dir
            assert base is not None
            atomic_write(base / TOMBSTONE_DIR / md5, data)
            return
        self.store.write_bytes(self.store.key(TOMBSTONE_DIR, md5), data)
        _remember(self._seen_tombstone(md5), data)

    def _seen_tombstone(self, md5: str) -> Path:
        md5 = object_id(md5)
        tag = hashlib.sha256(f"{self.url}\0{dict(self.options)}".encode()).hexdigest()[:12]
        return self.root / ".dvc" / "tmp" / TOMBSTONE_DIR / tag / md5

    def reachable(self) -> tuple[bool, str]:
        base = self.local_dir
        if base is not None and self.direct:
            if base.is_dir() and os.access(base, os.W_OK):
                return True, str(base)
            return False, f"{base} does not exist or is not writable"
        from mlopsctl.errors import MlopsError

        try:
            return True, self.store.probe()
        except MlopsError as exc:
            return False, exc.message + (f" ({exc.hint})" if exc.hint else "")

    def probe(self) -> None:
        """Raise an EnvironmentProblem saying what to fix unless the remote can be reached."""
        if not self.direct:
            self.store.probe()


def _remember(path: Path, data: bytes) -> None:
    from mlopsctl.fsio import atomic_write

    with contextlib.suppress(OSError):  # only a cache: the remote keeps the record
        atomic_write(path, data, durable=False)


def _copy(src: Path, dst: Path, mode: int | None = None) -> None:
    """Copy through a temp name and a rename: ``dst`` is whole or absent."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def pointer_text(out_name: str, md5: str, size: int) -> bytes:
    """The content of a ``.dvc`` file for one output, as DVC 3 writes it."""
    text = f"outs:\n- md5: {md5}\n  size: {size}\n  hash: md5\n  path: {out_name}\n"
    return text.encode()


def load_remote(root: Path, name: str) -> Remote:
    config = read_dvc_config(root)
    section = config.get(f'remote "{name}"')
    if not section or not section.get("url"):
        raise EnvironmentProblem(
            f"DVC remote '{name}' is not configured in {root / '.dvc' / 'config'}",
            hint="mlopsctl init --remote URL   (or `dvc remote add -d mlops URL`)",
        )
    return Remote(root, name, section["url"])


def _dvc_repo(root: Path):
    """A DVC Repo (for `dvc pull` of a holdout), with DVC's logging quiet."""
    import logging

    from dvc.repo import Repo

    for name in ("dvc", "dvc_data", "dvc_objects"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return Repo(str(root))
