"""The artifact pipeline: one streaming pass, constant memory.

    original bytes -> sha256 -> zstd (content size in the frame) -> AES-256-GCM in chunks -> blob

Blob layout: a 44-byte header (magic, chunk size, 16-byte salt, key id), then chunks of
``chunk size`` ciphertext + 16-byte tag, the last one shorter or equal. Each blob has its own key,
HKDF(master key, salt). Chunk nonces follow the STREAM construction: a 32-bit counter and a
last-chunk flag, so reordered, dropped or truncated chunks fail. Every chunk's associated data binds
the header, model and version; the last chunk's also binds the sha256 of the original bytes, so a
blob of v1 cannot be replayed as v2 and an end cut at a chunk boundary is detected.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from mlopsctl.errors import EnvironmentProblem, IntegrityError

MAGIC = b"MLOPSAE1"
CHUNK = 1 << 20
READ_BLOCK = 4 << 20
TAG_BYTES = 16
_HEADER = struct.Struct(">8sI16s16s")
HEADER_BYTES = _HEADER.size

Progress = Callable[[int], None]  # called with bytes processed since the last call


class StoredBlob(NamedTuple):
    sha256: str  # of the original bytes
    size: int
    stored_size: int
    md5: str  # of the stored blob: DVC's object id


def _aead(key: bytes, salt: bytes):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    subkey = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"mlopsctl blob v1").derive(
        key
    )
    return AESGCM(subkey)


def _nonce(index: int, last: bool) -> bytes:
    if index >= 1 << 32:
        raise IntegrityError("artifact too large for one blob (over 4 PiB)")
    return b"\0" * 7 + struct.pack(">IB", index, 1 if last else 0)


def _aad(header: bytes, model: str, version: str) -> bytes:
    return header + model.encode() + b"\0" + version.encode() + b"\0"


# Compression levels up to this one run in a single zstd context on its own thread: it keeps
# pace with the hashing-sealing-writing thread beside it, so the two fill two cores, and zstd's
# own workers would only add CPU (about 40 % more at level 3, for overlapping job windows).
# Slower levels get zstd's workers, which then are the bottleneck worth splitting.
SINGLE_THREAD_MAX_LEVEL = 3
# While sealing, the written blob is flushed to disk every this many bytes (beside the stream),
# so the caller's closing fsync finds little left to write.
WRITE_BEHIND = 16 << 20


def _zstd_workers(level: int) -> int:
    if level <= SINGLE_THREAD_MAX_LEVEL:
        return 0
    # Worker threads cost memory each; four keep a 1 GB artifact well under 200 MB of RSS.
    return min(os.cpu_count() or 1, 4)


def encrypt_file(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    key: bytes,
    key_id: str,
    model: str,
    version: str,
    level: int = 3,
    progress: Progress | None = None,
    write_behind: bool = False,
) -> StoredBlob:
    """Stream ``src`` into ``dst`` as an encrypted, compressed blob bound to model@version.

    Two stages share the pass: this thread reads and compresses; a worker hashes the input,
    seals each chunk and md5-hashes and writes it (hashlib, zstd, AES-GCM and file writes all
    release the GIL). With ``write_behind``, a third thread flushes what is written to disk as
    it goes; the caller still fsyncs at the end. ``progress`` may raise to stop the stream."""
    import zstandard

    size = os.fstat(src.fileno()).st_size
    salt = os.urandom(16)
    header = _HEADER.pack(MAGIC, CHUNK, salt, key_id.encode().ljust(16, b"\0")[:16])
    sealer = _Sealer(_aead(key, salt), _aad(header, model, version), dst,
                     _Flusher(dst) if write_behind else None)
    sealer.write(header)
    stage = _Background(sealer.take, maxsize=8)
    cctx = zstandard.ZstdCompressor(level=level, threads=_zstd_workers(level),
                                    write_content_size=True)
    chunker = cctx.chunker(size=size, chunk_size=CHUNK)
    total = 0
    pending: bytes | None = None
    try:
        while data := src.read(READ_BLOCK):
            stage.put((_INPUT, data))
            total += len(data)
            for out in chunker.compress(data):
                if pending is not None:
                    stage.put((_CHUNK, pending))
                pending = out
            if progress:
                progress(len(data))
        if total != size:
            raise EnvironmentProblem("the artifact changed size while it was being read")
        for out in chunker.finish():
            if pending is not None:
                stage.put((_CHUNK, pending))
            pending = out
        assert pending is not None  # a zstd frame is never empty
        stage.put((_LAST, pending))
        stage.join()
    finally:
        stage.stop()
        sealer.stop()
    return StoredBlob(sealer.sha.hexdigest(), total, sealer.stored, sealer.md5.hexdigest())


def seal_file(artifact: Path, dest: Path, *, key: bytes, key_id: str, model: str, version: str,
              level: int, progress: Progress | None = None) -> StoredBlob:
    """Seal the file ``artifact`` into a new blob at ``dest``, durably: fsynced before this
    returns, so a tag made afterwards never points at data a crash could lose."""
    with open(artifact, "rb") as src, open(dest, "wb") as dst:
        stored = encrypt_file(src, dst, key=key, key_id=key_id, model=model, version=version,
                              level=level, progress=progress, write_behind=True)
        dst.flush()
        os.fsync(dst.fileno())
    return stored


# What the reading thread queues for the sealing one, in order: (kind, bytes).
_INPUT = 0  # a block of the original bytes, for the sha256
_CHUNK = 1  # a chunk of the zstd stream to seal
_LAST = 2  # its last chunk: sealed with the sha256 of the input, so every input block came first


class _Sealer:
    """The worker side of ``encrypt_file``: hashes input blocks, seals chunks in order, and
    md5-hashes and writes what it seals."""

    def __init__(self, aead: Any, aad: bytes, dst: BinaryIO, flusher: _Flusher | None) -> None:
        self.aead, self.aad, self.dst, self.flusher = aead, aad, dst, flusher
        self.sha = hashlib.sha256()
        self.md5 = hashlib.md5()
        self.index = 0
        self.stored = 0
        self.unflushed = 0

    def take(self, item: tuple[int, bytes]) -> None:
        kind, data = item
        if kind == _INPUT:
            self.sha.update(data)
            return
        last = kind == _LAST
        extra = self.sha.digest() if last else b""
        self.write(self.aead.encrypt(_nonce(self.index, last), data, self.aad + extra))
        self.index += 1

    def write(self, sealed: bytes) -> None:
        self.md5.update(sealed)
        self.dst.write(sealed)
        self.stored += len(sealed)
        self.unflushed += len(sealed)
        if self.flusher is not None and self.unflushed >= WRITE_BEHIND:
            self.unflushed = 0
            self.flusher.poke()

    def stop(self) -> None:
        if self.flusher is not None:
            self.flusher.stop()


class _Flusher:
    """Asks the kernel to write the blob out (fdatasync) while the stream goes on, at most one
    request waiting: durability stays the caller's fsync, which then has little left to do."""

    def __init__(self, dst: BinaryIO) -> None:
        import queue
        import threading

        self.dst = dst
        self.requests: queue.Queue[bool] = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.requests.get():
            try:
                os.fdatasync(self.dst.fileno())
            except OSError:
                return  # only a head start on the fsync: the caller's own reports failures

    def poke(self) -> None:
        import queue

        self.dst.flush()  # what the buffered writer still holds (the header)
        with contextlib.suppress(queue.Full):  # one already waiting covers this data too
            self.requests.put_nowait(True)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.requests.put(False)
            self.thread.join()


class _Background:
    """Run ``consume(item)`` for each item on a worker thread, through a small bounded queue
    (so memory stays constant). ``join`` drains it and re-raises the worker's error."""

    def __init__(self, consume: Callable[[Any], object], maxsize: int = 4) -> None:
        import queue
        import threading

        self.consume = consume
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.done = False

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.consume(item)
                except BaseException as exc:  # handed to the caller in join()
                    self.error = exc

    def put(self, item: Any) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def stop(self) -> None:
        """End the worker (idempotent), keeping any error for ``join``."""
        if not self.done:
            self.done = True
            self.queue.put(None)
            self.thread.join()

    def join(self) -> None:
        self.stop()
        if self.error is not None:
            raise self.error


def read_header(src: BinaryIO) -> tuple[bytes, int, bytes, str]:
    header = src.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES:
        raise IntegrityError("the stored blob is truncated (no complete header)")
    magic, chunk, salt, kid = _HEADER.unpack(header)
    if magic != MAGIC or not 0 < chunk <= 64 << 20:
        raise IntegrityError("the stored blob is not an mlopsctl artifact (bad header)")
    return header, chunk, salt, kid.rstrip(b"\0").decode(errors="replace")


class _Inflater:
    """Decompresses the opened chunks on a worker thread, handing on pieces of at most CHUNK
    bytes: one chunk of a zstd stream may expand to gigabytes, and memory must not follow."""

    def __init__(self, out: _Background) -> None:
        import queue
        import threading

        self.out = out
        self.chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self.ended = False  # the end marker was taken off the queue
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def read(self, size: int = -1) -> bytes:
        """zstd's source (on the worker thread): the next chunk, b"" at the end."""
        if self.ended:
            return b""
        item = self.chunks.get()
        if item is None:
            self.ended = True
            return b""
        return item

    def _run(self) -> None:
        import zstandard

        try:
            source: Any = self  # any object with read() will do
            for data in zstandard.ZstdDecompressor().read_to_iter(source, read_size=CHUNK,
                                                                   write_size=CHUNK):
                self.out.put(data)
        except BaseException as exc:  # handed to the caller in put() or join()
            self.error = exc
        while not self.ended:  # drain, so that the reading thread never blocks on a full queue
            self.read()

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.chunks.put(chunk)

    def stop(self) -> None:
        """End the worker (idempotent), keeping any error for ``join``."""
        if self.thread.is_alive():
            self.chunks.put(None)
            self.thread.join()

    def join(self) -> None:
        self.stop()
        if self.error is not None:
            raise self.error


class _HashingSink:
    """Hashes (and writes) restored bytes on a worker thread."""

    def __init__(self, dst: BinaryIO | None) -> None:
        self.sha = hashlib.sha256()
        self.size = 0
        self.dst = dst

    def take(self, data: bytes) -> None:
        self.sha.update(data)
        self.size += len(data)
        if self.dst is not None:
            self.dst.write(data)


def decrypt_file(
    src: BinaryIO,
    dst: BinaryIO | None,
    *,
    key: bytes,
    key_id: str,
    model: str,
    version: str,
    expected_sha256: str,
    expected_size: int | None = None,
    progress: Progress | None = None,
) -> str:
    """Decrypt, decompress and hash ``src`` into ``dst`` (or only hash, when ``dst`` is None).
    Raises IntegrityError unless every chunk authenticates and the sha256 matches.

    Three stages share the pass: this thread reads and opens the chunks, a worker decompresses,
    a second one hashes and writes. ``progress`` may raise to stop the stream."""
    import zstandard
    from cryptography.exceptions import InvalidTag

    header, chunk, salt, blob_kid = read_header(src)
    if blob_kid != key_id:
        raise EnvironmentProblem(
            f"{model}@{version} is encrypted with key {blob_kid}, not {key_id}",
            hint="set MLOPSCTL_KEY to the key this registry was written with",
        )
    try:
        expected_digest = bytes.fromhex(expected_sha256)
    except ValueError:
        raise IntegrityError(f"the manifest of {model}@{version} holds no valid sha256") from None
    aead = _aead(key, salt)
    aad = _aad(header, model, version)
    step = chunk + TAG_BYTES
    current = src.read(step)
    if not current:
        raise IntegrityError(f"the stored blob of {model}@{version} is truncated (no data)")
    sink = _HashingSink(dst)
    writer = _Background(sink.take)
    inflater = _Inflater(writer)
    index = 0
    try:
        while True:
            following = src.read(step)
            last = not following
            extra = expected_digest if last else b""
            inflater.put(aead.decrypt(_nonce(index, last), current, aad + extra))
            if progress:
                progress(len(current))
            if last:
                break
            current, index = following, index + 1
        inflater.join()
        writer.join()
    except InvalidTag:
        raise IntegrityError(
            f"the stored blob of {model}@{version} fails authentication: it was altered, "
            "truncated, or belongs to another version",
            hint="mlopsctl verify  (re-register the version from the original file if needed)",
        ) from None
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"the stored blob of {model}@{version} does not decompress: {exc}") \
            from None
    finally:
        inflater.stop()
        writer.stop()
    digest = sink.sha.hexdigest()
    if digest != expected_sha256 or (expected_size is not None and sink.size != expected_size):
        raise IntegrityError(
            f"{model}@{version}: restored bytes do not match the manifest "
            f"(sha256 {digest[:12]}..., expected {expected_sha256[:12]}...)"
        )
    return digest
