"""The worker as defence in depth: what a model that got past the loader (here: a team's own
class, allowed through ``trusted_types``) can see and do inside it. Each class below misbehaves
in ``__setstate__``, which runs while the worker loads the file."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run, write

from mlopsctl.errors import CheckFailed
from mlopsctl.loading.sandbox import Limits, clean_env, fd_path, run_worker, unnamed_file

NAUGHTY = textwrap.dedent('''
    import os, sys, time

    class Base:
        def __init__(self, arg=None):
            self.arg = arg
        def predict(self, x):
            return [0] * len(x)

    class EnvProbe(Base):
        def __setstate__(self, state):
            raise RuntimeError("key=%s cwd=%s files=%s home=%s" % (
                os.environ.get("MLOPSCTL_KEY"), os.getcwd(), os.listdir("."),
                os.environ.get("HOME")))

    class Writer(Base):
        def __setstate__(self, state):
            with open(state["arg"], "w") as fh:
                fh.write("stolen " * 100)

    class Hog(Base):
        def __setstate__(self, state):
            self.block = bytearray(6 * 1024 ** 3)

    class Printer(Base):
        def __setstate__(self, state):
            sys.stdout.write('{"ok": true, "forged": 1}' * 50000)
            sys.stdout.flush()
            self.__dict__.update(state)

    class Spinner(Base):
        def __setstate__(self, state):
            while True:
                pass

    class Sleeper(Base):
        def __setstate__(self, state):
            time.sleep(float(state["arg"]))
            self.__dict__.update(state)
''')


@pytest.fixture(scope="module")
def naughty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    where = tmp_path_factory.mktemp("team")
    write(where / "naughty.py", NAUGHTY)
    sys.path.insert(0, str(where))
    try:
        import naughty as module

        yield where, module
    finally:
        sys.path.remove(str(where))
        sys.modules.pop("naughty", None)


def _run(naughty: tuple[Path, Any], cls: str, arg: Any = None, timeout: float = 60,
         limits: Limits | None = None) -> dict[str, Any]:
    where, module = naughty
    with unnamed_file() as fh:
        fh.write(pickle.dumps(getattr(module, cls)(arg)))
        fh.flush()
        return run_worker({"mode": "smoke", "format": "sklearn-pickle",
                           "trusted_types": [f"naughty.{cls}"]}, timeout, limits,
                          artifact=fh, sys_path=[str(where)])


def test_the_worker_environment_holds_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MLOPSCTL_KEY", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "GIT_DIR"):
        monkeypatch.setenv(var, "s3cret")
    env = clean_env(Path("/nonexistent-home"))
    assert "s3cret" not in env.values()
    assert env["HOME"] == "/nonexistent-home"
    assert env["OMP_NUM_THREADS"] == "1"


def test_a_loaded_model_sees_no_key_an_empty_cwd_and_a_home_of_its_own(
        naughty: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPSCTL_KEY", "s3cret-key-material")
    result = _run(naughty, "EnvProbe")
    assert result["ok"] is False
    error = result["error"]
    assert "key=None" in error and "s3cret" not in error
    assert "files=[]" in error
    cwd = error.split("cwd=")[1].split()[0]
    assert cwd != os.getcwd() and "mlopsctl-worker-" in cwd
    assert not Path(cwd).exists()  # removed after the run


def test_a_model_cannot_write_files(naughty: tuple[Path, Any], tmp_path: Path) -> None:
    marker = tmp_path / "stolen.txt"
    result = _run(naughty, "Writer", str(marker))
    assert result["ok"] is False and "File too large" in result["error"]
    assert not marker.exists() or marker.read_text() == ""


def test_a_memory_hog_meets_the_limit(naughty: tuple[Path, Any]) -> None:
    result = _run(naughty, "Hog", limits=Limits(memory_mb=2048))
    assert result["ok"] is False
    assert "memory limit (2048 MiB" in result["error"]


def test_printing_to_stdout_cannot_forge_or_break_the_reply(naughty: tuple[Path, Any]) -> None:
    result = _run(naughty, "Printer")
    assert result == {"ok": True, "rows": 0, "model_class": "Printer"}


def test_a_spinning_model_meets_the_cpu_limit(naughty: tuple[Path, Any]) -> None:
    with pytest.raises(CheckFailed, match="CPU-time limit of 2 s"):
        _run(naughty, "Spinner", timeout=60, limits=Limits(cpu_seconds=2))


def test_a_hanging_model_is_killed_at_the_time_limit(naughty: tuple[Path, Any]) -> None:
    start = time.monotonic()
    with pytest.raises(CheckFailed, match=r"time limit of 1\.5 s"):
        _run(naughty, "Sleeper", 600, timeout=1.5)
    assert time.monotonic() - start < 30


def test_the_decrypted_artifact_has_no_name_on_disk(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with unnamed_file() as fh:
        fh.write(b"plaintext model bytes")
        fh.flush()
        assert list(tmp_path.iterdir()) == []
        assert Path(fd_path(fh.fileno())).read_bytes() == b"plaintext model bytes"


@pytest.mark.slow
def test_kill_9_during_validation_leaves_no_plaintext_model(
        registry: Path, naughty: tuple[Path, Any], tmp_path: Path) -> None:
    """The parent is killed while the worker holds the model: nothing decrypted remains in the
    temp dir (the old code left the model in mlopsctl-validate-*/)."""
    _, module = naughty
    write(registry / "naughty.py", NAUGHTY)
    model = pickle.dumps(module.Sleeper(8))
    artifact = write(registry / "model.pkl", model)
    assert run("bump", "slow", "--artifact", artifact).code == 0
    policy = registry / ".mlops" / "policy.yaml"
    policy.write_text(policy.read_text().rstrip("\n") + "\ntrusted_types: [naughty.Sleeper]\n")
    assert run("policy", "accept", "-m", "our own class").code == 0, "policy accept failed"
    write(registry / "holdout.csv", "a,y\n1,0\n2,1\n")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    proc = subprocess.Popen([sys.executable, "-m", "mlopsctl", "validate", "slow@0.1.0",
                             "--data", "holdout.csv", "--target", "y"], cwd=registry, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith("mlopsctl-worker-") for p in temp.iterdir()):
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    leftovers = [p for p in temp.rglob("*") if p.is_file() and p.read_bytes() == model]
    assert leftovers == []
