"""The streaming artifact pipeline: sha256 -> zstd -> chunked AES-256-GCM, and its failure modes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import zstandard

from mlopsctl.errors import EnvironmentProblem, ExitCode, IntegrityError
from mlopsctl.store.pipeline import (
    CHUNK,
    HEADER_BYTES,
    MAGIC,
    TAG_BYTES,
    StoredBlob,
    decrypt_file,
    encrypt_file,
    read_header,
)

KEY = bytes(range(32))
KID = "k0123456789abcde"  # 16 characters, the size of a real key id
OTHER_KEY = bytes(range(1, 33))
MODEL, VERSION = "churn", "1.0.0"
STEP = CHUNK + TAG_BYTES


class Sealed(NamedTuple):
    data: bytes
    blob: Path
    stored: StoredBlob


def seal(tmp: Path, data: bytes, *, name: str = "blob", key: bytes = KEY, kid: str = KID,
         model: str = MODEL, version: str = VERSION, level: int = 3) -> Sealed:
    src, blob = tmp / f"{name}.src", tmp / f"{name}.blob"
    src.write_bytes(data)
    with src.open("rb") as fin, blob.open("wb") as fout:
        stored = encrypt_file(fin, fout, key=key, key_id=kid, model=model, version=version,
                              level=level)
    return Sealed(data, blob, stored)


def unseal(blob: Path | bytes, tmp: Path, sha256: str, *, to_file: bool = True,
           key: bytes = KEY, kid: str = KID, model: str = MODEL, version: str = VERSION,
           size: int | None = None) -> tuple[str, bytes | None]:
    if isinstance(blob, bytes):
        path = tmp / "altered.blob"
        path.write_bytes(blob)
        blob = path
    out = tmp / "restored"
    with blob.open("rb") as fin:
        if to_file:
            with out.open("wb") as fout:
                digest = decrypt_file(fin, fout, key=key, key_id=kid, model=model,
                                      version=version, expected_sha256=sha256,
                                      expected_size=size)
            return digest, out.read_bytes()
        digest = decrypt_file(fin, None, key=key, key_id=kid, model=model, version=version,
                              expected_sha256=sha256, expected_size=size)
        return digest, None


def chunk_offsets(blob_size: int) -> list[int]:
    return list(range(HEADER_BYTES, blob_size, STEP))


def incompressible_with_compressed_size(target: int) -> bytes:
    """Random bytes whose zstd frame (as the pipeline writes it) is exactly ``target`` bytes."""
    cctx = zstandard.ZstdCompressor(level=3, write_content_size=True)
    n = target
    for _ in range(10):
        data = os.urandom(n)
        size = len(cctx.compress(data))
        if size == target:
            return data
        n -= size - target
    raise AssertionError(f"could not hit a {target}-byte frame")


# --- round trips ---------------------------------------------------------------------------------

SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_incompressible(tmp_path: Path, size: int) -> None:
    sealed = seal(tmp_path, os.urandom(size))
    expected = hashlib.sha256(sealed.data).hexdigest()
    assert sealed.stored.sha256 == expected
    assert sealed.stored.size == size
    digest, restored = unseal(sealed.blob, tmp_path, expected, size=size)
    assert digest == expected
    assert restored == sealed.data


@pytest.mark.parametrize("size", [CHUNK + 1, 3 * CHUNK + 7, 20 * CHUNK])
def test_round_trip_compressible(tmp_path: Path, size: int) -> None:
    data = (b"feature_a,feature_b,label\n0.125,7,1\n" * (size // 36 + 1))[:size]
    sealed = seal(tmp_path, data)
    assert sealed.stored.stored_size < size // 20  # zstd did its job before encryption
    digest, restored = unseal(sealed.blob, tmp_path, sealed.stored.sha256, size=size)
    assert restored == data
    assert digest == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("level", [1, 19])
def test_round_trip_levels(tmp_path: Path, level: int) -> None:
    data = os.urandom(1000) * 50
    sealed = seal(tmp_path, data, level=level)
    assert unseal(sealed.blob, tmp_path, sealed.stored.sha256)[1] == data


@pytest.mark.parametrize(
    ("compressed", "chunks"),
    [(CHUNK - 1, 1), (CHUNK, 1), (CHUNK + 1, 2), (2 * CHUNK, 2), (2 * CHUNK + 1, 3)],
)
def test_round_trip_at_compressed_chunk_boundaries(tmp_path: Path, compressed: int,
                                                   chunks: int) -> None:
    """The compressed stream is what gets chunked: hit its boundaries exactly."""
    data = incompressible_with_compressed_size(compressed)
    sealed = seal(tmp_path, data)
    # header + the compressed stream + one tag per chunk (an empty last chunk would add a tag)
    assert sealed.stored.stored_size == HEADER_BYTES + compressed + chunks * TAG_BYTES
    digest, restored = unseal(sealed.blob, tmp_path, sealed.stored.sha256, size=len(data))
    assert restored == data
    assert digest == sealed.stored.sha256


def test_decrypt_without_destination_only_hashes(tmp_path: Path) -> None:
    sealed = seal(tmp_path, os.urandom(2 * CHUNK + 3))
    digest, restored = unseal(sealed.blob, tmp_path, sealed.stored.sha256, to_file=False)
    assert restored is None
    assert digest == hashlib.sha256(sealed.data).hexdigest()
    assert not (tmp_path / "restored").exists()


def test_stored_blob_metadata_matches_the_file(tmp_path: Path) -> None:
    sealed = seal(tmp_path, os.urandom(3 * CHUNK + 7))
    raw = sealed.blob.read_bytes()
    assert sealed.stored.stored_size == len(raw) == sealed.blob.stat().st_size
    assert sealed.stored.md5 == hashlib.md5(raw).hexdigest()
    assert raw.startswith(MAGIC)
    with sealed.blob.open("rb") as fh:
        _, chunk, salt, kid = read_header(fh)
    assert (chunk, kid, len(salt)) == (CHUNK, KID, 16)
    # header + ceil(compressed / CHUNK) sealed chunks, all full but the last
    assert (len(raw) - HEADER_BYTES) // STEP == 3
    assert 0 < (len(raw) - HEADER_BYTES) % STEP <= STEP


def test_same_input_gives_different_blobs(tmp_path: Path) -> None:
    data = os.urandom(5000)
    one, two = seal(tmp_path, data, name="one"), seal(tmp_path, data, name="two")
    assert one.stored.sha256 == two.stored.sha256
    assert one.stored.md5 != two.stored.md5  # a fresh salt, hence a fresh subkey, per blob
    assert one.blob.read_bytes()[12:28] != two.blob.read_bytes()[12:28]


def test_plaintext_does_not_appear_in_the_blob(tmp_path: Path) -> None:
    secret = os.urandom(64)
    sealed = seal(tmp_path, secret * 3, level=1)
    assert secret not in sealed.blob.read_bytes()


def test_progress_callbacks(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK + 7)
    src, blob = tmp_path / "src", tmp_path / "blob"
    src.write_bytes(data)
    seen: list[int] = []
    with src.open("rb") as fin, blob.open("wb") as fout:
        stored = encrypt_file(fin, fout, key=KEY, key_id=KID, model=MODEL, version=VERSION,
                              progress=seen.append)
    assert sum(seen) == len(data)
    seen.clear()
    with blob.open("rb") as fin:
        decrypt_file(fin, None, key=KEY, key_id=KID, model=MODEL, version=VERSION,
                     expected_sha256=stored.sha256, progress=seen.append)
    assert sum(seen) == stored.stored_size - HEADER_BYTES


def test_write_behind_flushes_the_blob_while_it_streams(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With write_behind, the blob is handed to the disk (fdatasync) as it is written, so the
    caller's closing fsync has little left; without, nothing syncs behind the caller's back."""
    from mlopsctl.store import pipeline

    synced: list[int] = []
    monkeypatch.setattr(pipeline.os, "fdatasync", lambda fd: synced.append(os.fstat(fd).st_size))
    data = os.urandom(3 * pipeline.WRITE_BEHIND + 5)
    src, blob = tmp_path / "src", tmp_path / "blob"
    src.write_bytes(data)
    for write_behind in (False, True):
        synced.clear()
        with src.open("rb") as fin, blob.open("wb") as fout:
            stored = encrypt_file(fin, fout, key=KEY, key_id=KID, model=MODEL, version=VERSION,
                                  write_behind=write_behind)
        assert unseal(blob, tmp_path, stored.sha256)[1] == data
        if write_behind:
            assert synced  # at least once while streaming (requests may coalesce)
            assert all(0 < size < stored.stored_size for size in synced)
        else:
            assert synced == []


@pytest.mark.parametrize("direction", ["seal", "restore"])
def test_progress_can_stop_the_stream(tmp_path: Path, direction: str) -> None:
    """An exception from the progress callback ends the pass and its worker threads."""
    import threading

    sealed = seal(tmp_path, os.urandom(12 * CHUNK))
    before = threading.active_count()

    def stop(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        if direction == "seal":
            with (tmp_path / "blob.src").open("rb") as fin, (tmp_path / "again").open("wb") as out:
                encrypt_file(fin, out, key=KEY, key_id=KID, model=MODEL, version=VERSION,
                             progress=stop, write_behind=True)
        else:
            with sealed.blob.open("rb") as fin, (tmp_path / "restored").open("wb") as out:
                decrypt_file(fin, out, key=KEY, key_id=KID, model=MODEL, version=VERSION,
                             expected_sha256=sealed.stored.sha256, progress=stop)
    assert threading.active_count() == before


def test_restored_bytes_reach_the_destination_a_chunk_at_a_time(tmp_path: Path) -> None:
    """64 MiB of zeros compress into one chunk; the decompressor must not hand all of it on at
    once (a thousandfold expansion would otherwise be held in memory whole)."""

    class Sizes:
        def __init__(self) -> None:
            self.largest = 0

        def write(self, data: bytes) -> int:
            self.largest = max(self.largest, len(data))
            return len(data)

    sealed = seal(tmp_path, bytes(64 * CHUNK))
    assert sealed.stored.stored_size < CHUNK  # the whole stream is one chunk
    sink = Sizes()
    with sealed.blob.open("rb") as fin:
        decrypt_file(fin, sink, key=KEY, key_id=KID, model=MODEL,  # type: ignore[arg-type]
                     version=VERSION, expected_sha256=sealed.stored.sha256)
    assert 0 < sink.largest <= CHUNK


# --- tampering and misuse ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def four_chunks(tmp_path_factory: pytest.TempPathFactory) -> Sealed:
    """A blob of four sealed chunks (three full ones and a short last one)."""
    sealed = seal(tmp_path_factory.mktemp("pipeline"), os.urandom(3 * CHUNK + 7))
    assert len(chunk_offsets(sealed.stored.stored_size)) == 4
    return sealed


def flip(raw: bytes, offset: int, mask: int = 0x01) -> bytes:
    return raw[:offset] + bytes([raw[offset] ^ mask]) + raw[offset + 1:]


def assert_integrity_error(blob: bytes, tmp: Path, sealed: Sealed, **kwargs: object) -> str:
    with pytest.raises(IntegrityError) as info:
        unseal(blob, tmp, sealed.stored.sha256, **kwargs)  # type: ignore[arg-type]
    assert info.value.exit_code == ExitCode.FAILED == 1
    return info.value.message


TAMPER_AT = {
    "magic": 0,
    "chunk-size-high": 8,  # chunk size becomes absurd: bad header
    "chunk-size-low": 11,  # chunk size off by one: chunks no longer line up
    "salt": 12 + 7,
    "first-ciphertext-byte": HEADER_BYTES,
    "first-tag": HEADER_BYTES + CHUNK + 3,
    "middle": HEADER_BYTES + STEP + CHUNK // 2,
    "second-last-chunk": HEADER_BYTES + 2 * STEP + 1,
    "last-chunk-data": HEADER_BYTES + 3 * STEP,
    "last-byte": -1,
}


@pytest.mark.parametrize("where", list(TAMPER_AT))
@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_tampering_any_byte_fails(four_chunks: Sealed, tmp_path: Path, where: str,
                                  mask: int) -> None:
    raw = four_chunks.blob.read_bytes()
    offset = TAMPER_AT[where] % len(raw)
    assert_integrity_error(flip(raw, offset, mask), tmp_path, four_chunks)
    assert_integrity_error(flip(raw, offset, mask), tmp_path, four_chunks, to_file=False)


def test_tampered_magic_is_reported_as_not_an_artifact(four_chunks: Sealed, tmp_path: Path) -> None:
    raw = four_chunks.blob.read_bytes()
    assert "bad header" in assert_integrity_error(flip(raw, 0), tmp_path, four_chunks)


def test_tampered_chunk_is_reported_as_failing_authentication(four_chunks: Sealed,
                                                              tmp_path: Path) -> None:
    raw = four_chunks.blob.read_bytes()
    message = assert_integrity_error(flip(raw, HEADER_BYTES + 5), tmp_path, four_chunks)
    assert "fails authentication" in message
    assert f"{MODEL}@{VERSION}" in message


@pytest.mark.parametrize("offset", [28, 35, 43])
def test_changed_key_id_in_header_is_an_environment_problem(four_chunks: Sealed, tmp_path: Path,
                                                            offset: int) -> None:
    raw = four_chunks.blob.read_bytes()
    with pytest.raises(EnvironmentProblem) as info:
        unseal(flip(raw, offset), tmp_path, four_chunks.stored.sha256)
    assert info.value.exit_code == ExitCode.ENVIRONMENT == 3
    assert KID in info.value.message
    assert info.value.hint and "MLOPSCTL_KEY" in info.value.hint


def test_blob_of_another_key_is_an_environment_problem(tmp_path: Path) -> None:
    sealed = seal(tmp_path, b"weights", key=OTHER_KEY, kid="kffffffffffffff0")
    with pytest.raises(EnvironmentProblem) as info:
        unseal(sealed.blob, tmp_path, sealed.stored.sha256)
    assert "kffffffffffffff0" in info.value.message
    assert KID in info.value.message


@pytest.mark.parametrize("size", [10, 3 * CHUNK + 7])
def test_wrong_key_claiming_the_same_id_fails(tmp_path: Path, size: int) -> None:
    sealed = seal(tmp_path, os.urandom(size))
    with pytest.raises(IntegrityError, match="fails authentication"):
        unseal(sealed.blob, tmp_path, sealed.stored.sha256, key=OTHER_KEY)


@pytest.mark.parametrize("size", [10, 2 * CHUNK + 1])
@pytest.mark.parametrize(
    ("model", "version"),
    [(MODEL, "2.0.0"), (MODEL, "1.0.0+build"), ("churn2", VERSION), ("chur", "n\x001.0.0")],
)
def test_replay_as_another_version_or_model_fails(tmp_path: Path, size: int, model: str,
                                                  version: str) -> None:
    sealed = seal(tmp_path, os.urandom(size))
    with pytest.raises(IntegrityError):
        unseal(sealed.blob, tmp_path, sealed.stored.sha256, model=model, version=version)


@pytest.mark.parametrize("size", [0, 10, 2 * CHUNK + 1])
def test_wrong_expected_sha256_fails(tmp_path: Path, size: int) -> None:
    sealed = seal(tmp_path, os.urandom(size))
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(IntegrityError):
        unseal(sealed.blob, tmp_path, wrong)
    with pytest.raises(IntegrityError):
        unseal(sealed.blob, tmp_path, wrong, to_file=False)
    with pytest.raises(IntegrityError):
        unseal(sealed.blob, tmp_path, sealed.stored.sha256[:-2])  # a shortened digest


@pytest.mark.parametrize("bad", ["not-a-digest", "abc"])
def test_malformed_expected_sha256_is_an_integrity_error(tmp_path: Path, bad: str) -> None:
    sealed = seal(tmp_path, b"weights")
    with pytest.raises(IntegrityError):
        unseal(sealed.blob, tmp_path, bad)


def test_wrong_expected_size_fails(tmp_path: Path) -> None:
    sealed = seal(tmp_path, os.urandom(100))
    with pytest.raises(IntegrityError, match="do not match the manifest"):
        unseal(sealed.blob, tmp_path, sealed.stored.sha256, size=101)


@pytest.mark.parametrize(
    "cut",
    [
        "chunk-boundary-1", "chunk-boundary-2", "chunk-boundary-3", "mid-first-chunk",
        "mid-last-chunk", "last-byte", "header-only", "partial-header", "empty",
    ],
)
def test_truncated_blob_fails(four_chunks: Sealed, tmp_path: Path, cut: str) -> None:
    raw = four_chunks.blob.read_bytes()
    length = {
        "chunk-boundary-1": HEADER_BYTES + STEP,
        "chunk-boundary-2": HEADER_BYTES + 2 * STEP,
        "chunk-boundary-3": HEADER_BYTES + 3 * STEP,
        "mid-first-chunk": HEADER_BYTES + CHUNK // 2,
        "mid-last-chunk": HEADER_BYTES + 3 * STEP + 40,
        "last-byte": len(raw) - 1,
        "header-only": HEADER_BYTES,
        "partial-header": 20,
        "empty": 0,
    }[cut]
    assert length < len(raw)
    message = assert_integrity_error(raw[:length], tmp_path, four_chunks)
    if cut in ("header-only", "partial-header", "empty"):
        assert "truncated" in message


def test_truncated_single_chunk_blob_fails(tmp_path: Path) -> None:
    sealed = seal(tmp_path, b"tiny")
    raw = sealed.blob.read_bytes()
    for length in (len(raw) - 1, len(raw) - TAG_BYTES, HEADER_BYTES + 1):
        assert_integrity_error(raw[:length], tmp_path, sealed)


def test_a_failed_restore_leaves_no_worker_thread(four_chunks: Sealed, tmp_path: Path) -> None:
    import threading

    raw = four_chunks.blob.read_bytes()
    before = threading.active_count()
    for blob in (raw[:HEADER_BYTES], flip(raw, HEADER_BYTES + STEP), raw[:-1]):
        assert_integrity_error(blob, tmp_path, four_chunks)
    assert threading.active_count() == before


def _chunks(raw: bytes) -> tuple[bytes, list[bytes]]:
    return raw[:HEADER_BYTES], [raw[o:o + STEP] for o in chunk_offsets(len(raw))]


@pytest.mark.parametrize(
    "edit",
    ["drop-1", "drop-2", "drop-last", "swap-1-2", "swap-0-1", "duplicate-1", "last-moved-first"],
)
def test_reordered_or_dropped_chunks_fail(four_chunks: Sealed, tmp_path: Path, edit: str) -> None:
    header, chunks = _chunks(four_chunks.blob.read_bytes())
    c = list(chunks)
    if edit.startswith("drop-"):
        index = len(c) - 1 if edit == "drop-last" else int(edit[-1])
        del c[index]
    elif edit.startswith("swap-"):
        i, j = int(edit[-3]), int(edit[-1])
        c[i], c[j] = c[j], c[i]
    elif edit == "duplicate-1":
        c.insert(1, c[1])
    else:
        c.insert(0, c.pop())
    assert_integrity_error(header + b"".join(c), tmp_path, four_chunks)


def test_extra_bytes_appended_fail(four_chunks: Sealed, tmp_path: Path) -> None:
    raw = four_chunks.blob.read_bytes()
    assert_integrity_error(raw + b"\0", tmp_path, four_chunks)
    assert_integrity_error(raw + raw[HEADER_BYTES:HEADER_BYTES + STEP], tmp_path, four_chunks)


def test_chunks_of_another_blob_fail(tmp_path: Path) -> None:
    """Same key, same model and version: splicing chunks between blobs is still detected."""
    data = os.urandom(2 * CHUNK + 9)
    one, two = seal(tmp_path, data, name="one"), seal(tmp_path, data, name="two")
    h1, c1 = _chunks(one.blob.read_bytes())
    _, c2 = _chunks(two.blob.read_bytes())
    assert_integrity_error(h1 + c1[0] + c2[1] + c1[2], tmp_path, one)


# --- constant memory, and more than 2 GiB through AES-GCM ----------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, time
    from mlopsctl.store.pipeline import decrypt_file, encrypt_file

    src, blob = sys.argv[1], sys.argv[2]
    key = os.urandom(32)
    start = time.monotonic()
    with open(src, "rb") as fin, open(blob, "wb") as fout:
        stored = encrypt_file(fin, fout, key=key, key_id="kslow", model="big", version="1.0.0")
    middle = time.monotonic()
    with open(blob, "rb") as fin:
        digest = decrypt_file(fin, None, key=key, key_id="kslow", model="big", version="1.0.0",
                              expected_sha256=stored.sha256, expected_size=stored.size)
    end = time.monotonic()

    def peak_rss_mib():
        # VmHWM is this process image's own peak. ru_maxrss is not: Linux carries the parent's
        # peak over fork+exec, so it would report pytest's own size.
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(json.dumps({
        "sha256": stored.sha256, "digest": digest, "size": stored.size,
        "stored_size": stored.stored_size, "blob_size": os.path.getsize(blob),
        "encrypt_s": middle - start, "decrypt_s": end - middle,
        "maxrss_mib": peak_rss_mib(),
    }))
    """
)
# At level 3 encrypt_file compresses in one zstd context; above it, zstd gets up to four worker
# threads, each with ~25 MiB of buffers (measured: 1 worker 67 MiB, 2: 92). 200 MiB is the
# bound; it is a small fraction of the 2-3 GiB streamed, which is what "constant memory" means.
MAX_RSS_MIB = 200
# hashlib.sha256(bytes(3 << 30)).hexdigest(), computed once (it takes seconds).
SHA256_OF_3GIB_OF_ZEROS = "305b66a59d15b252092fbda9d09711230c429f351897cbd430e7b55a35fd3b97"


def _stream_in_child(src: Path, blob: Path) -> dict[str, float | str | int]:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(blob)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, float | str | int] = json.loads(proc.stdout)
    assert result["digest"] == result["sha256"]
    assert result["stored_size"] == result["blob_size"]
    return result


@pytest.mark.slow
def test_constant_memory_3gib_sparse(tmp_path: Path) -> None:
    """3 GiB of zeros (a sparse file) in and out in bounded memory. Zeros compress to almost
    nothing, so this exercises the read/hash/compress and decompress/hash side."""
    size = 3 << 30
    src, blob = tmp_path / "sparse.bin", tmp_path / "sparse.blob"
    try:
        with src.open("wb") as fh:
            fh.truncate(size)
        result = _stream_in_child(src, blob)
        assert result["size"] == size
        assert result["sha256"] == SHA256_OF_3GIB_OF_ZEROS
        assert float(result["maxrss_mib"]) < MAX_RSS_MIB, result
    finally:
        src.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)


@pytest.mark.slow
def test_constant_memory_over_2gib_of_ciphertext(tmp_path: Path) -> None:
    """Over 2 GiB of *incompressible* data, so that over 2 GiB goes through AES-GCM: more than
    cryptography's one-shot AESGCM limit (2**31 - 1 bytes), with bounded memory."""
    size = (2 << 30) + (5 << 20) + 7
    if shutil.disk_usage(tmp_path).free < 3 * size:
        pytest.skip("needs about 5 GiB of free disk space for the source and the blob")
    block = os.urandom(16 << 20)  # repeated further apart than zstd level 3's window
    src, blob = tmp_path / "random.bin", tmp_path / "random.blob"
    sha = hashlib.sha256()
    try:
        with src.open("wb") as fh:
            left = size
            while left:
                piece = block[: min(left, len(block))]
                fh.write(piece)
                sha.update(piece)
                left -= len(piece)
        del block
        start = time.monotonic()
        result = _stream_in_child(src, blob)
        assert time.monotonic() - start < 120
        assert result["size"] == size
        assert result["sha256"] == sha.hexdigest()
        assert int(result["stored_size"]) > 2**31  # really more than 2 GiB through AES-GCM
        assert float(result["maxrss_mib"]) < MAX_RSS_MIB, result
    finally:
        src.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)

