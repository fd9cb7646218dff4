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

import hashlib
import os
import struct
from collections.abc import Callable
from typing import BinaryIO, NamedTuple

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
) -> StoredBlob:
    """Stream ``src`` into ``dst`` as an encrypted, compressed blob bound to model@version."""
    import zstandard

    size = os.fstat(src.fileno()).st_size
    salt = os.urandom(16)
    header = _HEADER.pack(MAGIC, CHUNK, salt, key_id.encode().ljust(16, b"\0")[:16])
    aead = _aead(key, salt)
    aad = _aad(header, model, version)
    sha_of_input = hashlib.sha256()
    sha = _Background(sha_of_input.update)
    md5 = hashlib.md5()

    def write(data: bytes) -> None:
        md5.update(data)
        dst.write(data)

    # Hashing the input and md5-ing + writing the output run beside compression and
    # encryption: hashlib and file writes release the GIL, so two cores share the pass.
    sink = _Background(write)
    sink.put(header)
    stored = len(header)
    index = 0
    pending: bytes | None = None

    def seal(chunk: bytes, last: bool, extra: bytes = b"") -> None:
        nonlocal index, stored
        sealed = aead.encrypt(_nonce(index, last), chunk, aad + extra)
        sink.put(sealed)
        stored += len(sealed)
        index += 1

    # Worker threads cost memory each; four keep a 1 GB artifact well under 200 MB of RSS.
    threads = min(os.cpu_count() or 1, 4)
    cctx = zstandard.ZstdCompressor(level=level, threads=threads, write_content_size=True)
    chunker = cctx.chunker(size=size, chunk_size=CHUNK)
    total = 0
    try:
        while data := src.read(READ_BLOCK):
            sha.put(data)
            total += len(data)
            for out in chunker.compress(data):
                if pending is not None:
                    seal(pending, False)
                pending = out
            if progress:
                progress(len(data))
        if total != size:
            raise EnvironmentProblem("the artifact changed size while it was being read")
        for out in chunker.finish():
            if pending is not None:
                seal(pending, False)
            pending = out
        assert pending is not None  # a zstd frame is never empty
        sha.join()
        seal(pending, True, sha_of_input.digest())
        sink.join()
    finally:
        sha.stop()
        sink.stop()
    return StoredBlob(sha_of_input.hexdigest(), total, stored, md5.hexdigest())


class _Background:
    """Run ``consume(item)`` for each item on a worker thread, through a small bounded queue
    (so memory stays constant). ``join`` drains it and re-raises the worker's error."""

    def __init__(self, consume: Callable[[bytes], object]) -> None:
        import queue
        import threading

        self.consume = consume
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
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

    def put(self, item: bytes) -> None:
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


class _HashingSink:
    """Hashes (and writes) restored bytes on a worker thread, beside decryption."""

    def __init__(self, dst: BinaryIO | None) -> None:
        self.sha = hashlib.sha256()
        self.size = 0

        def consume(data: bytes) -> None:
            self.sha.update(data)
            if dst is not None:
                dst.write(data)

        self.worker = _Background(consume)

    def write(self, data: bytes) -> int:
        self.size += len(data)
        self.worker.put(bytes(data))
        return len(data)


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
    Raises IntegrityError unless every chunk authenticates and the sha256 matches."""
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
    sink = _HashingSink(dst)
    writer = zstandard.ZstdDecompressor().stream_writer(
        sink,  # type: ignore[arg-type]  # any object with write() will do
        write_return_read=True,
    )
    step = chunk + TAG_BYTES
    current = src.read(step)
    if not current:
        raise IntegrityError(f"the stored blob of {model}@{version} is truncated (no data)")
    index = 0
    try:
        while True:
            following = src.read(step)
            last = not following
            extra = expected_digest if last else b""
            plain = aead.decrypt(_nonce(index, last), current, aad + extra)
            writer.write(plain)
            if progress:
                progress(len(current))
            if last:
                break
            current, index = following, index + 1
        writer.flush()
        sink.worker.join()
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
        sink.worker.stop()
    digest = sink.sha.hexdigest()
    if digest != expected_sha256 or (expected_size is not None and sink.size != expected_size):
        raise IntegrityError(
            f"{model}@{version}: restored bytes do not match the manifest "
            f"(sha256 {digest[:12]}..., expected {expected_sha256[:12]}...)"
        )
    return digest
