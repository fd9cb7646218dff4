"""The worker process that loads and scores a model: defence in depth behind the loader.

Even a model that got past the allowlist meets a process that holds nothing worth stealing
and cannot do much: an environment with no secrets (no ``MLOPSCTL_KEY``, no cloud or git
credentials, a HOME of its own), its own empty working directory, hard limits on memory, CPU
time and file size, a new session so a timeout kills everything it started, and a reply channel
of its own (a pipe), so a model that prints to stdout cannot garble the answer. The decrypted
artifact reaches it as an inherited file descriptor of an unnamed file: nothing is left on disk
to find, even after ``kill -9`` of either process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from mlopsctl.errors import CheckFailed

# Variables the worker may see; everything else (keys, tokens, git and cloud credentials) stays
# behind. OPENBLAS_* and friends: some machines need them for numpy not to crash.
_PASS_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT", "LD_LIBRARY_PATH")
_PASS_PREFIXES = ("OPENBLAS_", "MKL_", "OMP_", "GOTO")
_REPLY_LIMIT = 16 * 1024 * 1024
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from mlopsctl.worker import main; raise SystemExit(main())")


@dataclass(frozen=True)
class Limits:
    """Hard limits of one worker (``worker:`` in .mlops/config.yaml)."""

    memory_mb: int = 4096  # address space: numpy, scipy, pandas and onnxruntime need ~1.5 GiB
    cpu_seconds: float | None = None  # default: the wall-clock timeout
    file_size_mb: int = 0  # a model never needs to write a file
    open_files: int = 256
    nice: int = 0  # CPU priority, raised for work that must not slow its parent (serve)


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k in _PASS_ENV or k.startswith(_PASS_PREFIXES)}
    env.update(HOME=str(home), TMPDIR=str(home), PYTHONDONTWRITEBYTECODE="1",
               PYTHONHASHSEED="0")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    return env


@contextlib.contextmanager
def unnamed_file() -> Iterator[IO[bytes]]:
    """A temporary file with no name on disk (O_TMPFILE where the filesystem has it, else
    created and unlinked at once): it vanishes with the last process holding it."""
    with tempfile.TemporaryFile(prefix="mlopsctl-artifact-") as fh:
        yield fh


def fd_path(fd: int) -> str:
    """A path that opens the inherited descriptor ``fd`` in the process that uses it."""
    return f"/proc/self/fd/{fd}" if os.path.isdir("/proc/self/fd") else f"/dev/fd/{fd}"


def run_worker(request: dict[str, Any], timeout: float, limits: Limits | None = None,
               artifact: IO[bytes] | None = None, sys_path: Sequence[str] = ()
               ) -> dict[str, Any]:
    """Run one worker request; a crash, a limit or a hang becomes a CheckFailed."""
    limits = limits or Limits()
    home = Path(tempfile.mkdtemp(prefix="mlopsctl-worker-"))
    read_end, write_end = os.pipe()
    fds = [write_end]
    request = dict(request)
    if artifact is not None:
        artifact.flush()
        fds.append(artifact.fileno())
        request["artifact"] = fd_path(artifact.fileno())
    cpu = limits.cpu_seconds or timeout
    request.update(reply_fd=write_end, sys_path=list(sys_path),
                   limits={**asdict(limits), "cpu_seconds": cpu})
    reply: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(read_end, reply), daemon=True)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", _BOOT, _PACKAGE_ROOT], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=home, env=clean_env(home),
            pass_fds=fds, start_new_session=True)
        os.close(write_end)
        write_end = -1
        reader.start()
        try:
            _, err = proc.communicate(json.dumps(request).encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise CheckFailed(f"the model exceeded its time limit of {timeout:g} s "
                              "(it hung or is far too slow)",
                              hint="raise it with --timeout if the model is merely slow") \
                from None
        reader.join(timeout=5)
        return _interpret(proc.returncode, b"".join(reply), err, limits, cpu)
    finally:
        if write_end >= 0:
            os.close(write_end)
        shutil.rmtree(home, ignore_errors=True)


def _drain(fd: int, into: list[bytes]) -> None:
    total = 0
    with os.fdopen(fd, "rb") as fh:
        while chunk := fh.read(65536):
            total += len(chunk)
            if total <= _REPLY_LIMIT:
                into.append(chunk)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


_SIGNALS = {
    signal.SIGXCPU: "exceeded its CPU-time limit of {cpu:g} s",
    signal.SIGXFSZ: "tried to write a file (the worker may write {file_size_mb} MiB)",
    signal.SIGKILL: "was killed (out of memory, or its limit of {memory_mb} MiB)",
}


def _interpret(code: int, raw: bytes, err: bytes, limits: Limits, cpu: float
               ) -> dict[str, Any]:
    if raw:
        try:
            result: dict[str, Any] = json.loads(raw)
            return result
        except ValueError:
            pass
    if code < 0 and -code in _SIGNALS:
        what = _SIGNALS[signal.Signals(-code)].format(cpu=cpu, **asdict(limits))
        raise CheckFailed(f"the model {what} while loading or predicting")
    lines = err.decode(errors="replace").strip().splitlines() or ["no output"]
    raise CheckFailed(f"the model crashed while loading or predicting (exit {code}): "
                      f"{lines[-1][:300]}")
