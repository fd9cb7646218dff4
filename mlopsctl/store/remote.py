"""The DVC remote adapter.

Blobs live in a DVC remote under DVC 3's documented layout ``files/md5/<2 hex>/<30 hex>``, each
described by a ``.dvc`` pointer that stock ``dvc pull`` understands. A local-directory remote (the
embedded default) is read and written in place, which keeps ``bump`` and ``fetch`` within a small
factor of the raw streaming cost; any other remote (s3://, gs://, azure://, ssh://, ...) goes
through DVC itself, imported only here and only then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mlopsctl.errors import EnvironmentProblem

TRANSPORT_ENV = "MLOPSCTL_TRANSPORT"  # "dvc" forces DVC's own push/fetch even for local remotes
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


@dataclass(frozen=True)
class Remote:
    root: Path  # the repository
    name: str
    url: str

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

    def object_path(self, md5: str) -> Path:
        base = self.local_dir
        assert base is not None
        return base / "files" / "md5" / md5[:2] / md5[2:]

    def staging_dir(self) -> Path:
        """Where a blob is written while it streams: inside a local remote (so publishing it is
        a rename), else DVC's tmp dir."""
        base = self.local_dir if self.direct else None
        path = (base / "tmp-mlopsctl") if base is not None else (self.root / ".dvc" / "tmp")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def describe(self) -> str:
        return f"{self.name} ({self.url})"

    # --- writing ------------------------------------------------------------------------------

    def put(self, blob: Path, md5: str, pointer: Path) -> None:
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
        self._dvc_push(blob, md5, pointer)

    def _dvc_push(self, blob: Path, md5: str, pointer: Path) -> None:
        cache = self.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
        if not cache.exists():
            cache.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(blob, cache.with_suffix(".tmp"))
            os.replace(cache.with_suffix(".tmp"), cache)
        repo = _dvc_repo(self.root)
        try:
            repo.push(targets=[str(pointer)], remote=self.name)
        except Exception as exc:  # DVC raises many types; all mean the remote refused
            raise EnvironmentProblem(
                f"could not push to remote {self.describe()}: {exc}",
                hint="check the remote's URL and credentials (`dvc remote list`)",
            ) from None
        finally:
            repo.close()

    # --- reading ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def open(self, md5: str, pointer: Path | None = None, what: str = "") -> Iterator[BinaryIO]:
        """Open the stored object ``md5``. EnvironmentProblem when it is missing."""
        path = self.object_path(md5) if self.direct else self._dvc_fetch(md5, pointer)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below
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
        return True  # checked when fetched

    def _dvc_fetch(self, md5: str, pointer: Path | None) -> Path:
        cache = self.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
        if cache.exists():
            return cache
        if pointer is None:
            return cache
        repo = _dvc_repo(self.root)
        try:
            with _pushd(self.root):
                repo.fetch(targets=[str(pointer.relative_to(self.root))], remote=self.name)
        except Exception as exc:
            raise EnvironmentProblem(
                f"could not fetch from remote {self.describe()}: {exc}",
                hint="check the remote's URL and credentials (`dvc remote list`)",
            ) from None
        finally:
            repo.close()
        return cache

    def reachable(self) -> tuple[bool, str]:
        base = self.local_dir
        if base is not None:
            if base.is_dir() and os.access(base, os.W_OK):
                return True, str(base)
            return False, f"{base} does not exist or is not writable"
        return True, f"{self.url} (a cloud remote: not probed offline)"


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
    from dvc.repo import Repo

    for name in ("dvc", "dvc_data", "dvc_objects"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return Repo(str(root))


@contextlib.contextmanager
def _pushd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)
