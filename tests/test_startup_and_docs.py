"""Start-up cost, help texts, exit codes for bad invocations, and the README staying true to the
CLI and to CI."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_subprocess, run

from mlopsctl import __version__
from mlopsctl.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
HEAVY = ("dvc", "git", "sklearn", "textual", "cryptography", "pandas", "numpy")


# --- start-up -------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["mlopsctl.cli", "mlopsctl"])
def test_import_loads_no_heavy_dependency(module: str, tmp_path: Path) -> None:
    code = (f"import {module}, sys; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_what_bump_needs_before_sealing_imports_light(tmp_path: Path) -> None:
    """bump's head start (key, remote, registry, pipeline, YAML) runs before the slow imports:
    it loads neither pydantic nor the manifest models, nor logging (only DVC's path needs it)."""
    code = ("import sys, mlopsctl.cli, mlopsctl.headstart, mlopsctl.registry, mlopsctl.store.keys,"
            " mlopsctl.store.pipeline, mlopsctl.store.remote, yaml; "
            "print(sorted(m for m in ('pydantic', 'mlopsctl.manifests', 'logging')"
            " if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_help_in_a_subprocess_lists_every_command(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "mlopsctl"
    proc = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    section = proc.stdout.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"^  (\S+)\s", section, re.MULTILINE)
    assert listed == list(COMMANDS)
    for name, (_, summary) in COMMANDS.items():
        assert summary in proc.stdout, name
    assert "Exit codes" in proc.stdout


def test_version_and_module_entry_point(tmp_path: Path) -> None:
    proc = cli_subprocess("--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help_with_examples(command: str) -> None:
    result = run(command, "--help")
    assert result.code == 0, result.err
    assert "Example" in result.out
    assert f"mlopsctl {command}" in result.out


# --- exit codes for bad invocations -------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("frobnicate",),
    ("Show",),
    ("--no-such-option",),
    ("show", "--no-such-option"),
    ("bump",),  # missing MODEL
    ("bump", "churn", "--major", "extra-argument"),
    ("fetch", "churn@1.0.0", "-o"),  # option without its value
])
def test_bad_invocations_exit_2(args: tuple[str, ...], repo: Path) -> None:
    result = run(*args)
    assert result.code == 2, result
    assert result.err.strip()


def test_unknown_command_exits_2_in_a_subprocess(tmp_path: Path) -> None:
    proc = cli_subprocess("frobnicate", cwd=tmp_path)
    assert proc.returncode == 2
    assert "frobnicate" in proc.stderr
    proc = cli_subprocess("show", "--bogus", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--bogus" in proc.stderr


# --- the README ---------------------------------------------------------------------------------


def _commands_in_readme_table() -> set[str]:
    table = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z][a-z-]*)\b", table, re.MULTILINE)) | set(
        re.findall(r"/ `([a-z][a-z-]*)\b", table))


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_is_documented_in_the_readme(command: str) -> None:
    assert command in _commands_in_readme_table()


def _quick_start_commands() -> list[str]:
    match = re.search(r"^## Quick start\n(.*?)^## ", README, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no 'Quick start' section"
    block = re.search(r"^```[a-z]*\n(.*?)^```", match.group(1), re.MULTILINE | re.DOTALL)
    assert block, "the Quick start section has no fenced block"
    return [line.strip() for line in block.group(1).splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _ci_command() -> str:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")
                and not line.startswith(("set ", "cd "))]
    assert len(commands) == 1, commands
    return commands[0]


def test_quick_start_is_two_commands_and_the_second_is_what_ci_runs() -> None:
    commands = _quick_start_commands()
    assert len(commands) == 2, commands
    assert commands[1] == _ci_command()
    assert shlex.split(commands[1])[-3:] == [".venv/bin/python", "-m", "pytest"]
    assert commands[0].endswith("mlopsctl demo")
