"""Shared fixtures: an isolated environment (HOME, XDG dirs, git identity), temporary git
repositories, and ``run`` to drive the CLI in-process like a user would."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from mlopsctl.cli import main

IDENTITY = {
    "GIT_AUTHOR_NAME": "Ada Lovelace",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Lovelace",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
}


class Result(NamedTuple):
    code: int
    out: str
    err: str


def isolate(mp: pytest.MonkeyPatch, home: Path) -> None:
    """HOME (keys, default remotes, git config) in a temp dir, mlopsctl's variables cleared, a
    fixed git identity. Also for module-scoped builds, with ``pytest.MonkeyPatch.context()``."""
    mp.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "MLOPSCTL_KEY", "MLOPSCTL_CONFIG_DIR",
                "MLOPSCTL_DATA_DIR", "MLOPSCTL_TRANSPORT", "GIT_DIR", "GIT_WORK_TREE"):
        mp.delenv(var, raising=False)
    mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
    mp.setenv("DVC_NO_ANALYTICS", "1")
    for key, value in IDENTITY.items():
        mp.setenv(key, value)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own HOME (keys, default remotes, git config): never the user's."""
    home = tmp_path_factory.mktemp("home")
    isolate(monkeypatch, home)
    return home


def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return path


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("project\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh git repository (one commit) as the current directory."""
    path = make_repo(tmp_path / "repo")
    monkeypatch.chdir(path)
    return path


def run(*args: str | os.PathLike[str]) -> Result:
    """Run the CLI in-process, as `mlopsctl ARGS...` would, capturing its output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def registry(repo: Path) -> Path:
    """A repository on which `mlopsctl init` has run."""
    result = run("init")
    assert result.code == 0, result.err
    return repo


@contextlib.contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def cli_subprocess(*args: str, cwd: Path, env: dict[str, str] | None = None,
                   timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real `python -m mlopsctl` in a subprocess (for races, kills and start-up)."""
    return subprocess.run([sys.executable, "-m", "mlopsctl", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


# --- driving the CLI in a given clone (team, remote and S3 tests) ----------------------------


def run_in(where: Path, *args: str | os.PathLike[str]) -> Result:
    """`mlopsctl ARGS...` run in ``where`` (one of several clones)."""
    with chdir(where):
        return run(*args)


def ok_in(where: Path, *args: str | os.PathLike[str]) -> Result:
    result = run_in(where, *args)
    assert result.code == 0, f"mlopsctl {' '.join(map(str, args))} in {where.name}: {result.err}"
    return result


def bump_in(where: Path, version: str, content: bytes, model: str = "m") -> None:
    """Register ``content`` as ``model`` ``version`` in the clone ``where``."""
    (where / "model.bin").write_bytes(content)
    ok_in(where, "bump", model, "--artifact", "model.bin", "--version", version, "-m", version)
