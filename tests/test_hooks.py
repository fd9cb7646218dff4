"""The published pre-commit hooks, run for real by pre-commit (`try-repo`, and an installed
pre-push hook on a real `git push` to a bare remote), and `check --pre-push`."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import git, run

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PRE_COMMIT = BIN / "pre-commit"


def ok(*args: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
    result = run(*args)
    assert result.code == 0, f"mlopsctl {' '.join(map(str, args))}: {result.out}{result.err}"
    return result


@pytest.fixture
def hooks_repo(tmp_path: Path) -> Path:
    """A git repository holding this project's .pre-commit-hooks.yaml, committed (what
    pre-commit clones from the URL users give)."""
    path = tmp_path / "hooks"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    shutil.copy(ROOT / ".pre-commit-hooks.yaml", path / ".pre-commit-hooks.yaml")
    git(path, "add", ".pre-commit-hooks.yaml")
    git(path, "commit", "-q", "-m", "hooks")
    return path


@pytest.fixture
def reg(registry: Path) -> Path:
    (registry / "model.bin").write_bytes(b"weights" * 100)
    ok("bump", "m", "--artifact", "model.bin")
    (registry / "model.bin").unlink()
    return registry


def pre_commit(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
                PRE_COMMIT_HOME=str(cwd.parent / "pre-commit-home"), **env)
    return subprocess.run([str(PRE_COMMIT), *args], cwd=cwd, env=full, capture_output=True,
                          text=True, check=False, timeout=300)


def test_the_manifest_is_valid_and_publishes_both_stages() -> None:
    from pre_commit.clientlib import load_manifest

    hooks = {h["id"]: h for h in load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))}
    assert set(hooks) == {"mlopsctl-check", "mlopsctl-pre-push", "mlopsctl-check-system",
                          "mlopsctl-pre-push-system"}
    assert hooks["mlopsctl-check"]["stages"][0] == "pre-commit"
    assert hooks["mlopsctl-check"]["files"] == r"^\.mlops/"
    assert hooks["mlopsctl-pre-push"]["stages"][0] == "pre-push"
    assert hooks["mlopsctl-check"]["language"] == "python"
    for base in ("mlopsctl-check", "mlopsctl-pre-push"):
        system = hooks[f"{base}-system"]
        assert system["entry"] == hooks[base]["entry"]
        assert system["language"] in ("system", "unsupported")


def test_try_repo_passes_a_healthy_registry_and_fails_a_broken_config(
        reg: Path, hooks_repo: Path) -> None:
    proc = pre_commit("try-repo", str(hooks_repo), "mlopsctl-check-system", "--all-files",
                      cwd=reg)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Passed" in proc.stdout
    config = reg / ".mlops" / "config.yaml"
    config.write_text(config.read_text() + "bogus: 1\n")
    git(reg, "add", ".mlops/config.yaml")
    proc = pre_commit("try-repo", str(hooks_repo), "mlopsctl-check-system", cwd=reg,
                      GITHUB_ACTIONS="true")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Failed" in proc.stdout
    line = len(config.read_text().splitlines())
    assert f".mlops/config.yaml:{line}: [schema] field 'bogus'" in proc.stdout
    assert f"::error file=.mlops/config.yaml,line={line}," in proc.stdout


def test_try_repo_skips_commits_that_do_not_touch_the_registry(reg: Path,
                                                               hooks_repo: Path) -> None:
    (reg / "notes.md").write_text("unrelated\n")
    git(reg, "add", "notes.md")
    proc = pre_commit("try-repo", str(hooks_repo), "mlopsctl-check-system", cwd=reg)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no files to check" in proc.stdout.lower() or "Skipped" in proc.stdout


def _set_signing(repo: Path, mode: str) -> None:
    config = repo / ".mlops" / "config.yaml"
    data = yaml.safe_load(config.read_text())
    data["signing"] = mode
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    git(repo, "commit", "-qam", f"signing: {mode}")


def test_an_installed_pre_push_hook_refuses_unsigned_tags_where_signing_is_required(
        reg: Path, hooks_repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(reg, "remote", "add", "origin", str(remote))
    rev = git(hooks_repo, "rev-parse", "HEAD")
    (reg / ".pre-commit-config.yaml").write_text(
        f"repos:\n- repo: {hooks_repo}\n  rev: {rev}\n"
        "  hooks:\n  - id: mlopsctl-pre-push-system\n")
    git(reg, "add", ".pre-commit-config.yaml")
    git(reg, "commit", "-q", "-m", "pre-commit")
    proc = pre_commit("install", "--hook-type", "pre-push", cwd=reg)
    assert proc.returncode == 0, proc.stderr
    _set_signing(reg, "required")
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
               PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"))
    push = subprocess.run(["git", "push", "--atomic", "origin", "main", "m@v0.1.0"], cwd=reg,
                          env=env, capture_output=True, text=True, check=False, timeout=300)
    assert push.returncode != 0, push.stdout + push.stderr
    assert "[signatures]" in push.stdout + push.stderr
    assert git(remote, "tag", "--list") == ""  # nothing reached the remote
    git(reg, "revert", "--no-edit", "HEAD")  # back to `signing: optional`
    push = subprocess.run(["git", "push", "--atomic", "origin", "main", "m@v0.1.0"], cwd=reg,
                          env=env, capture_output=True, text=True, check=False, timeout=300)
    assert push.returncode == 0, push.stdout + push.stderr
    assert git(remote, "tag", "--list") == "m@v0.1.0"

    # pre-commit runs no pre-push hook for a push of tags alone (a promotion): documented, and
    # the plain git hook the README gives instead does catch it.
    _set_signing(reg, "required")
    commit = git(reg, "rev-parse", "m@v0.1.0^{commit}")
    git(reg, "tag", "-a", "m#staging#2", "-m", "unsigned", commit)
    git(reg, "tag", "-a", "m#staging#3", "-m", "unsigned", commit)
    push = subprocess.run(["git", "push", "origin", "m#staging#2"], cwd=reg, env=env,
                          capture_output=True, text=True, check=False, timeout=300)
    assert push.returncode == 0, push.stdout + push.stderr
    hook = reg / ".git" / "hooks" / "pre-push"
    hook.write_text('#!/bin/sh\nexec mlopsctl check --pre-push --push-remote "$1"\n')
    hook.chmod(0o755)
    push = subprocess.run(["git", "push", "origin", "m#staging#3"], cwd=reg, env=env,
                          capture_output=True, text=True, check=False, timeout=300)
    assert push.returncode != 0
    assert "[signatures]" in push.stdout + push.stderr
    assert "m#staging#3" not in git(remote, "tag", "--list")


def _readme_ci_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"In CI, give the key as the secret `MLOPSCTL_KEY` and run\n`([^`]+)`", text)
    assert match, "README.md lost its CI line"
    return [shlex.split(part) for part in match.group(1).split("&&")]


def test_the_readmes_ci_line_passes_on_a_healthy_registry_after_gc(registry: Path) -> None:
    for version in ("0.1.0", "0.2.0", "0.3.0"):
        (registry / "model.bin").write_bytes(f"weights {version}".encode() * 100)
        ok("bump", "m", "--artifact", "model.bin", "--version", version)
    ok("gc", "--keep-last", "1")
    for command in _readme_ci_commands():
        assert command[0] == "mlopsctl"
        result = run(*command[1:])
        assert result.code == 0, (command, result.out, result.err)


def test_check_pre_push_names_only_the_tags_the_remote_lacks(reg: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    remote = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(reg, "remote", "add", "backup", str(remote))
    git(reg, "push", "-q", "backup", "main", "m@v0.1.0")
    (reg / "model.bin").write_bytes(b"weights 2" * 100)
    ok("bump", "m", "--artifact", "model.bin")
    _set_signing(reg, "required")
    monkeypatch.setenv("PRE_COMMIT_REMOTE_NAME", "backup")
    result = run("check", "--pre-push", "--json")
    assert result.code == 1
    doc = json.loads(result.out)
    assert doc["checked"]["outgoing_tags"] == ["m@v0.2.0"]
    assert [f["check"] for f in doc["findings"]] == ["signatures"]
    assert "allowed-signers" in doc["findings"][0]["message"]
    result = run("check", "--pre-push", "--push-remote", "nowhere")
    assert result.code == 3 and "nowhere" in result.err
