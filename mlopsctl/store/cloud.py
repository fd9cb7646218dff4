"""Artifact remotes other than a directly-written local directory: S3 (and S3-compatible stores
such as MinIO), GCS, Azure, SSH, ... reached through the filesystem DVC itself builds from the
repository's DVC config, so every setting DVC honours (``endpointurl``, ``profile``, ``region``,
credentials in ``.dvc/config.local``, the AWS variables) applies here too.

Only the transfer is ours: a blob goes up in parallel multipart parts and comes down as parallel
ranged reads fed in order to the decrypting reader, so a large artifact moves at the store's
speed while memory stays bounded (a few parts in flight, each streamed through a short queue).
Nothing read from the store is trusted: the reader hands bytes to ``pipeline.decrypt_file``,
which authenticates every chunk and checks the sha256 from the manifest.

Imported only when such a remote is used: DVC's filesystem layer costs about half a second.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import queue
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlopsctl.errors import EnvironmentProblem, MlopsError

# Uploads: 16 MiB multipart parts (in AWS's recommended 8-16 MiB range), four at a time: at most
# 64 MiB held, as s3fs reads a batch of parts before sending it.
PART = 16 << 20
WORKERS = 4  # parts in flight each way
# Downloads from S3: 32 MiB ranged GETs, four at a time, each streamed in 1 MiB chunks into a
# queue of four, so at most ~16 MiB is held whatever the part size. Fewer, larger requests cost
# less per byte everywhere, and much less on stores that copy the whole object to answer each
# ranged read (moto does: 8 MiB ranges cost it twice the CPU of DVC's reads of the same file).
# Other stores read whole PART-sized ranges (fsspec's cat_file).
READ_PART = 32 << 20
CHUNK = 1 << 20
DEPTH = 4  # chunks queued per part
PROBES = 16  # concurrent existence checks
MAX_PARTS = 10_000  # S3's limit on parts in one multipart upload

# Stores whose uploads appear whole or not at all (multipart completion, resumable or block
# uploads): written in place. Any other (ssh, a local directory through DVC, ...) is written to a
# temp name and moved.
ATOMIC_PUT = frozenset({"s3", "gs", "gcs", "azure", "az", "abfs", "oss"})

# The mlopsctl extra that brings each plugin; any other scheme names DVC's own plugin.
EXTRAS = {"s3": "s3", "gs": "gs", "gcs": "gs", "azure": "azure", "az": "azure"}

_CONNECTION_ERRORS = frozenset({
    "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
    "ClientConnectorError", "ServerDisconnectedError", "ProxyConnectionError", "SSLError",
})
_CREDENTIAL_ERRORS = frozenset({
    "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError",
    "DefaultCredentialsError", "ClientAuthenticationError", "TokenRetrievalError",
})


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "local"


def missing_plugin(url: str) -> EnvironmentProblem:
    scheme = _scheme(url)
    extra = EXTRAS.get(scheme)
    hint = (f"pip install 'mlopsctl[{extra}]'" if extra
            else f"pip install dvc-{scheme}  (DVC's plugin for {scheme}:// remotes)")
    return EnvironmentProblem(f"the artifact remote {url} needs DVC's {scheme} support, which is "
                              "not installed", hint=hint)


def credentials_hint(scheme: str, name: str) -> str:
    if scheme == "s3":
        return ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) to a key allowed "
                f"on this bucket, or `dvc remote modify --local {name} profile NAME`")
    if scheme in ("gs", "gcs"):
        return ("set GOOGLE_APPLICATION_CREDENTIALS to a service-account key allowed on this "
                f"bucket, or `dvc remote modify --local {name} credentialpath FILE`")
    if scheme in ("azure", "az"):
        return ("set AZURE_STORAGE_CONNECTION_STRING (or log in with `az login`), or "
                f"`dvc remote modify --local {name} connection_string ...`")
    return f"check the remote's credentials: `dvc remote modify --local {name} ...`"


class CloudStore:
    """One DVC remote, as an fsspec filesystem and the base path of the remote in it."""

    def __init__(self, fs: Any, base: str, url: str, name: str, protocol: str,
                 endpoint: str | None) -> None:
        self.fs = fs  # the fsspec filesystem (s3fs, gcsfs, adlfs, ...)
        self.base = base.rstrip("/")
        self.url = url
        self.name = name
        self.protocol = protocol
        self.endpoint = endpoint
        self._container_checked = False

    def key(self, *parts: str) -> str:
        return "/".join((self.base, *parts))

    def where(self) -> str:
        return self.url + (f" at {self.endpoint}" if self.endpoint else "")

    # --- errors -----------------------------------------------------------------------------

    def problem(self, exc: BaseException, doing: str) -> MlopsError:
        """What went wrong, said so a user knows what to do: never a traceback."""
        if isinstance(exc, MlopsError):
            return exc
        names = {cls.__name__ for cls in type(exc).__mro__}
        detail = str(exc).strip() or type(exc).__name__
        if isinstance(exc, ImportError) or "RemoteMissingDepsError" in names:
            return missing_plugin(self.url)
        if isinstance(exc, PermissionError) or names & _CREDENTIAL_ERRORS:
            return EnvironmentProblem(
                f"the artifact remote {self.where()} refused access while {doing}: {detail}",
                hint=credentials_hint(self.protocol, self.name))
        if names & _CONNECTION_ERRORS or isinstance(exc, (ConnectionError, TimeoutError)):
            where = self.endpoint or self.url
            fix = (f"dvc remote modify --local {self.name} endpointurl URL  (this clone), or "
                   f"mlopsctl init --remote {self.url} --endpoint-url URL --force  (the team's: "
                   "the same store at a new address)"
                   if self.protocol == "s3" else "check the remote's URL: dvc remote list")
            return EnvironmentProblem(
                f"cannot reach the artifact remote {where} while {doing}: {detail}",
                hint=f"check the network and the endpoint; to change it: {fix}")
        return EnvironmentProblem(
            f"the artifact remote {self.where()} failed while {doing}: {detail}",
            hint="check the remote's settings (`dvc remote list`, `dvc config --list`) and "
            "that the store is up")

    @contextlib.contextmanager
    def translated(self, doing: str) -> Iterator[None]:
        """Any error but FileNotFoundError (which callers tell apart) as an EnvironmentProblem."""
        try:
            yield
        except FileNotFoundError:
            raise
        except MlopsError:
            raise
        except Exception as exc:  # boto, aiohttp, gcsfs, adlfs, paramiko: all mean "the store"
            raise self.problem(exc, doing) from None

    def check_container(self) -> None:
        """Raise when the bucket (or base directory) itself is missing, so a missing object is
        told apart from a missing or misnamed store. Asked once per process and store."""
        if self._container_checked:
            return
        with self.translated("checking the bucket"):
            if self.protocol == "s3":
                bucket, prefix, _ = self.fs.split_path(self.base)
                try:
                    self.fs.call_s3("list_objects_v2", Bucket=bucket,
                                    Prefix=f"{prefix}/" if prefix else "", MaxKeys=1)
                except FileNotFoundError:
                    raise EnvironmentProblem(
                        f"the bucket '{bucket}' of artifact remote {self.where()} does not exist",
                        hint=f"create it (e.g. `aws s3 mb s3://{bucket}`) or fix the URL: "
                        "mlopsctl init --remote URL") from None
            elif self.protocol not in ATOMIC_PUT and not self.fs.exists(self.base):
                raise EnvironmentProblem(
                    f"the artifact remote {self.where()} does not exist",
                    hint="create it, or fix the URL: mlopsctl init --remote URL")
        self._container_checked = True

    def probe(self) -> str:
        """Reach the store and its bucket (credentials included), or raise an EnvironmentProblem
        saying what to fix."""
        self.check_container()
        return f"{self.where()} reachable"

    # --- objects ----------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        with self.translated(f"looking for {key}"):
            found = bool(self.fs.exists(key))
        if not found:
            self.check_container()  # a missing bucket is no missing blob
        return found

    def exists_many(self, keys: Iterable[str]) -> list[bool]:
        keys = list(keys)
        if len(keys) <= 1:
            return [self.exists(k) for k in keys]
        with ThreadPoolExecutor(min(PROBES, len(keys)), thread_name_prefix="mlopsctl-head") as ex:
            return list(ex.map(self.exists, keys))

    def upload(self, local: Path, key: str) -> None:
        """Store the file ``local`` as ``key``: whole or not at all."""
        size = local.stat().st_size
        with self.translated(f"uploading {local.name}"):
            try:
                if self.protocol == "s3":
                    # S3 allows 10,000 parts: bigger parts only past 156 GiB.
                    part = max(PART, math.ceil(size / MAX_PARTS))
                    self.fs.put_file(str(local), key, chunksize=part, max_concurrency=WORKERS)
                elif self.protocol in ATOMIC_PUT:
                    self.fs.put_file(str(local), key)
                else:
                    self._moved_into_place(key, lambda tmp: self.fs.put_file(str(local), tmp))
            except FileNotFoundError:
                self.check_container()
                raise
            self.fs.invalidate_cache(key)

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.translated(f"writing {key}"):
            if self.protocol in ATOMIC_PUT:
                self.fs.pipe_file(key, data)
            else:
                self._moved_into_place(key, lambda tmp: self.fs.pipe_file(tmp, data))
            self.fs.invalidate_cache(key)

    def _moved_into_place(self, key: str, write: Callable[[str], object]) -> None:
        tmp = self.key("tmp-mlopsctl", f"{uuid.uuid4().hex}.tmp")
        self.fs.makedirs(self.key("tmp-mlopsctl"), exist_ok=True)
        self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
        try:
            write(tmp)
            self.fs.mv(tmp, key)
        finally:
            with contextlib.suppress(Exception):
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)

    def read_bytes(self, key: str) -> bytes | None:
        """A small object's content, or None when there is none."""
        with self.translated(f"reading {key}"):
            try:
                return bytes(self.fs.cat_file(key))
            except FileNotFoundError:
                self.check_container()
                return None

    def remove(self, key: str) -> None:
        with self.translated(f"removing {key}"), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(key)
        self.fs.invalidate_cache(key)

    def reader(self, key: str) -> PartReader:
        """A reader of ``key`` fetching ``WORKERS`` ranged parts ahead. FileNotFoundError when
        the object is missing (and the bucket is not)."""
        with self.translated(f"opening {key}"):
            try:
                size = int(self.fs.info(key)["size"])
            except FileNotFoundError:
                self.check_container()
                raise
        if self.protocol == "s3":
            return PartReader(lambda a, b: self._s3_range(key, a, b), size, READ_PART, WORKERS)

        def whole_range(start: int, end: int) -> Iterator[bytes]:
            with self.translated(f"reading {key}"):
                try:
                    yield bytes(self.fs.cat_file(key, start=start, end=end))
                except FileNotFoundError:
                    raise self._vanished(key) from None

        return PartReader(whole_range, size, PART, WORKERS)

    def _vanished(self, key: str) -> EnvironmentProblem:
        return EnvironmentProblem(
            f"{key} disappeared from the artifact remote {self.where()} while it was being read",
            hint="run the command again; `mlopsctl verify` checks every stored blob")

    def _s3_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes [start, end) of ``key`` as one ranged GET, read in CHUNK pieces as the consumer
        takes them (the connection waits meanwhile: TCP holds the rest at the server)."""
        from fsspec.asyn import sync

        bucket, path, _ = self.fs.split_path(key)
        with self.translated(f"reading {key}"):
            try:
                response = sync(self.fs.loop, self.fs._call_s3, "get_object", Bucket=bucket,
                                Key=path, Range=f"bytes={start}-{end - 1}")
            except FileNotFoundError:
                raise self._vanished(key) from None
        body = response["Body"]
        left = end - start
        try:
            while left > 0:
                with self.translated(f"reading {key}"):
                    chunk = sync(self.fs.loop, _read_up_to, body, min(CHUNK, left))
                if not chunk:
                    raise EnvironmentProblem(
                        f"the artifact remote {self.where()} ended {key} {left} bytes early",
                        hint="run the command again; `mlopsctl verify` checks every stored blob")
                left -= len(chunk)
                yield chunk
        finally:
            with contextlib.suppress(Exception):
                sync(self.fs.loop, _close, body)


async def _read_up_to(body: Any, n: int) -> bytes:
    """Up to ``n`` bytes of a streaming body, fewer only at its end: one hand-over per chunk
    between the event loop and the reading thread, not one per network read."""
    pieces: list[bytes] = []
    got = 0
    while got < n:
        piece = await body.read(n - got)
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


async def _close(body: Any) -> None:
    result = body.close()
    if inspect.isawaitable(result):
        await result


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


class PartReader:
    """A read-only stream over ``size`` bytes fetched as parallel ranged reads of ``part`` bytes,
    handed out in order. ``fetch(start, end)`` yields the range's bytes in pieces; each range
    runs on a worker thread into a queue of DEPTH pieces, and a new range starts only when the
    oldest is used up, so at most ``workers`` ranges are open and ``workers x DEPTH`` pieces
    held. ``read(n)`` returns n bytes unless the end is reached (the decrypting reader relies on
    that)."""

    def __init__(self, fetch: Callable[[int, int], Iterator[bytes]], size: int, part: int,
                 workers: int) -> None:
        self._fetch = fetch
        self._size = size
        self._part = part
        self._next = 0  # the next offset to ask for
        self._parts: deque[queue.Queue[object]] = deque()
        self._buf = memoryview(b"")
        self._closed = threading.Event()
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="mlopsctl-get")
        for _ in range(max(1, workers)):
            self._submit()

    def _submit(self) -> None:
        if self._next >= self._size:
            return
        start, end = self._next, min(self._next + self._part, self._size)
        self._next = end
        pieces: queue.Queue[object] = queue.Queue(maxsize=DEPTH)
        self._parts.append(pieces)
        self._pool.submit(self._run, start, end, pieces)

    def _run(self, start: int, end: int, pieces: queue.Queue[object]) -> None:
        stream = self._fetch(start, end)
        try:
            for piece in stream:
                if not self._put(pieces, piece):
                    return
            self._put(pieces, _END)
        except BaseException as exc:  # handed to the reader, raised in read()
            self._put(pieces, _Failed(exc))
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def _put(self, pieces: queue.Queue[object], item: object) -> bool:
        while not self._closed.is_set():
            try:
                pieces.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self) -> bool:
        while self._parts:
            item = self._parts[0].get()
            if item is _END:
                self._parts.popleft()
                self._submit()
                continue
            if isinstance(item, _Failed):
                raise item.exc
            assert isinstance(item, bytes)
            self._buf = memoryview(item)
            return True
        return False

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = self._size
        if len(self._buf) >= n or (not self._buf and self._fill() and len(self._buf) >= n):
            out = bytes(self._buf[:n])
            self._buf = self._buf[n:]
            return out
        chunks = bytearray(self._buf)
        self._buf = memoryview(b"")
        while len(chunks) < n and self._fill():
            take = min(n - len(chunks), len(self._buf))
            chunks += self._buf[:take]
            self._buf = self._buf[take:]
        return bytes(chunks)

    def close(self) -> None:
        self._closed.set()  # a worker waiting to hand over a piece gives up
        self._parts.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PartReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(root: Path, name: str, url: str, options: dict[str, str]) -> CloudStore:
    """The store of DVC remote ``name`` at ``url``, configured as DVC would configure it: from
    the system, global, repository and local DVC config. When ``url`` is not the configured URL
    of ``name`` (a remote being switched to), the configured options (they belong to the old
    store) give way to ``options`` alone."""
    probe = CloudStore(None, url, url, name, _scheme(url), options.get("endpointurl"))
    try:
        import logging

        for logger in ("dvc", "dvc_data", "dvc_objects", "botocore", "s3fs", "aiobotocore"):
            logging.getLogger(logger).setLevel(logging.CRITICAL)
        from dvc.config import Config
        from dvc.fs import get_cloud_fs

        dvc_dir = root / ".dvc"
        config = Config(dvc_dir=str(dvc_dir) if dvc_dir.is_dir() else None)
        remotes = {key: dict(value) for key, value in config.get("remote", {}).items()}
        section = dict(remotes.get(name, {}))
        if section.get("url") != url:
            section = {"url": url}
        section.update(options)
        remotes[name] = section
        cls, fs_config, base = get_cloud_fs({**config, "remote": remotes}, name=name)
        dvc_fs = cls(**fs_config)
        fs = dvc_fs.fs
    except MlopsError:
        raise
    except Exception as exc:  # a missing plugin, a config DVC rejects, a bad URL
        raise probe.problem(exc, "reading its configuration") from None
    endpoint = section.get("endpointurl") or None
    return CloudStore(fs, os.fspath(base), url, name, _scheme(url) if "://" in url else "local",
                      str(endpoint) if endpoint else None)
