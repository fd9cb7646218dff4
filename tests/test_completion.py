"""`mlopsctl completion`: click's scripts, driven by a real bash against a real registry."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, run

BIN = Path(sys.executable).parent


@pytest.fixture
def reg(registry: Path) -> Path:
    for version in ("0.1.0", "0.2.0"):
        (registry / "model.bin").write_bytes(f"model {version}".encode() * 20)
        assert run("bump", "churn", "--artifact", "model.bin", "--version", version).code == 0
    commit = git(registry, "rev-parse", "churn@v0.1.0^{commit}")
    git(registry, "tag", "-a", "churn#staging#3", "-m", "by hand", commit)
    return registry


def complete(repo: Path, *words: str) -> list[str]:
    """What bash offers after `words` (the last one being completed), via the real script."""
    script = run("completion", "bash").out
    line = " ".join(f"'{w}'" for w in words)
    program = (f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; COMPREPLY=();\n"
               "_mlopsctl_completion mlopsctl; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", "-c", program], cwd=repo, env=env, capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [x for x in proc.stdout.splitlines() if x]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_models_versions_and_environments(reg: Path) -> None:
    assert complete(reg, "mlopsctl", "che") == ["check", "check-ref"]
    assert complete(reg, "mlopsctl", "show", "") == ["churn"]
    assert complete(reg, "mlopsctl", "fetch", "ch") == ["churn@"]
    assert complete(reg, "mlopsctl", "fetch", "churn@") == ["churn@0.2.0", "churn@0.1.0",
                                                           "churn@latest"]
    assert complete(reg, "mlopsctl", "validate", "churn@0.1") == ["churn@0.1.0"]
    assert complete(reg, "mlopsctl", "fetch", "churn#") == ["churn#staging"]
    assert complete(reg, "mlopsctl", "promote", "churn", "") == ["0.2.0", "0.1.0"]
    assert "--json" in complete(reg, "mlopsctl", "history", "--j")


def test_completion_outside_a_registry_offers_nothing_and_prints_no_error(repo: Path) -> None:
    assert complete(repo, "mlopsctl", "fetch", "ch") == []


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o nosort -F"), ("zsh", "compdef"),
    ("fish", "complete --no-files --command mlopsctl")])
def test_scripts_for_each_shell(shell: str, marker: str) -> None:
    result = run("completion", shell)
    assert result.code == 0
    assert marker in result.out and "_MLOPSCTL_COMPLETE" in result.out


def test_an_unknown_shell_exits_2() -> None:
    result = run("completion", "powershell")
    assert result.code == 2
