"""Writes stay inside the repository, and bad input is an error (exit 1/2/3) that leaves nothing
behind: never a crash (exit 4), never a blob, pointer or file outside the repository.

Real registries: `mlopsctl init` in a temp git repository, versions registered with `bump`, a
stage assigned with an annotated tag (as `gto assign` writes it), the local target driven by
`mlopsctl sync`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import git, run

from mlopsctl.project import Project

BOMB = "".join(
    [f"l0: &l0 [{', '.join(['lol'] * 10)}]\n"]
    + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9)]
)  # 10**9 strings once expanded; a few hundred bytes as text


def ok(*args: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
    result = run(*args)
    assert result.code == 0, f"mlopsctl {' '.join(map(str, args))}: {result.err}"
    return result


def remote_files(repo: Path) -> list[str]:
    base = Project.open(repo).remote.local_dir
    assert base is not None
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


def registered(registry: Path) -> Path:
    (registry / "model.bin").write_bytes(b"a model" * 100)
    ok("bump", "m", "--artifact", "model.bin", "--version", "0.1.0")
    commit = git(registry, "rev-parse", "m@v0.1.0^{commit}")
    subprocess.run(["git", "tag", "-a", "m#staging#1", "-m", "assign", commit], cwd=registry,
                   check=True, capture_output=True)
    return registry


def untouched(repo: Path) -> tuple[str, str, list[str]]:
    return (git(repo, "for-each-ref"), git(repo, "status", "--porcelain", "--ignored"),
            remote_files(repo))


# --- the local target writes only inside the repository ----------------------------------------


def test_a_symlinked_environment_directory_is_refused(registry: Path, tmp_path: Path) -> None:
    registered(registry)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (registry / ".mlops" / "deploy").mkdir(parents=True)
    (registry / ".mlops" / "deploy" / "staging").symlink_to(outside)

    result = run("sync")
    assert result.code == 3, result
    assert "refusing to deploy through the symlink" in result.err
    assert ".mlops/deploy/staging" in result.err and "rm " in result.err
    assert list(outside.iterdir()) == []  # no slot, no artifact copy, no `current`
    assert run("status").code == 3


def test_a_symlinked_model_directory_is_refused_too(registry: Path, tmp_path: Path) -> None:
    registered(registry)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (registry / ".mlops" / "deploy" / "staging").mkdir(parents=True)
    (registry / ".mlops" / "deploy" / "staging" / "m").symlink_to(outside)
    assert run("sync").code == 3
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("where", ["../outside", "/ABS/outside", "deploy/../../outside"])
def test_a_deploy_root_outside_the_repository_is_refused(registry: Path, tmp_path: Path,
                                                         where: str) -> None:
    registered(registry)
    target = tmp_path / "ABS" / "outside" if where.startswith("/") else tmp_path / "outside"
    value = str(target) if where.startswith("/") else where
    config = registry / ".mlops" / "config.yaml"
    config.write_text(config.read_text() + f"deploy_root: {value}\n")
    git(registry, "commit", "-q", "-am", "deploy elsewhere")

    result = run("sync")
    assert result.code == 2, result
    assert "is outside the repository" in result.err and "hint: set deploy_root" in result.err
    assert not target.exists()


def test_sync_in_the_repository_still_works(registry: Path) -> None:
    registered(registry)
    ok("sync")
    live = registry / ".mlops" / "deploy" / "staging" / "m" / "current"
    assert (live / "model.bin").read_bytes() == b"a model" * 100


# --- bad input is an error that leaves nothing behind --------------------------------------------


def test_a_300_character_version_is_a_usage_error(registry: Path) -> None:
    (registry / "model.bin").write_bytes(b"a model")
    before = untouched(registry)
    version = "1.0.0-" + "a" * 294
    result = run("bump", "m", "--artifact", "model.bin", "--version", version)
    assert result.code == 2, result
    assert "--version is 300 characters long; at most 128" in result.err
    assert untouched(registry) == before


def test_a_yaml_alias_bomb_in_params_is_refused_before_any_blob(registry: Path) -> None:
    (registry / "model.bin").write_bytes(b"a model")
    (registry / "params.yaml").write_text(BOMB)
    before = untouched(registry)
    result = run("bump", "m", "--artifact", "model.bin", "--params", "params.yaml")
    assert result.code == 2, result
    assert "params file params.yaml" in result.err and "alias bomb" in result.err
    assert untouched(registry) == before  # no blob, no pointer, no manifest, no tag


def test_ordinary_anchors_in_params_still_work(registry: Path) -> None:
    (registry / "model.bin").write_bytes(b"a model")
    (registry / "params.yaml").write_text("base: &b {lr: 0.1, depth: 3}\nfinal: *b\n")
    ok("bump", "m", "--artifact", "model.bin", "--params", "params.yaml")
    manifest = Project.open(registry).manifest("m", "0.1.0")
    assert manifest is not None and manifest.lineage.params["final"] == {"lr": 0.1, "depth": 3}


def test_a_yaml_alias_bomb_in_the_policy_is_an_environment_error(registry: Path) -> None:
    policy = registry / ".mlops" / "policy.yaml"
    policy.write_text(policy.read_text() + BOMB.replace("l0:", "x-l0:"))
    for args in (("policy", "show", "--json"), ("policy", "show")):
        result = run(*args)
        assert result.code == 3, result
        assert ".mlops/policy.yaml" in result.err and "alias bomb" in result.err


@pytest.mark.parametrize("command", ["sync", "status"])
def test_an_unknown_environment_is_a_usage_error(registry: Path, command: str) -> None:
    registered(registry)
    result = run(command, "--env", "nosuch")
    assert result.code == 2, result
    assert "unknown environment 'nosuch'" in result.err
    assert "staging" in result.err  # the hint lists the known ones
    assert not (registry / ".mlops" / "deploy" / "nosuch").exists()
    assert json.loads(run("status", "--env", "staging", "--json").out)[0]["environment"] \
        == "staging"


def test_a_manifest_whose_md5_is_a_path_names_no_object(registry: Path, tmp_path: Path) -> None:
    """The stored md5 names the blob's path in the remote: a manifest committed and tagged with
    `../..` in it would send fetch, verify and gc outside the remote. The schema takes only 32
    hex digits, and the remote refuses anything else whatever reads it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("not a blob")
    manifest = registry / ".mlops" / "models" / "evil" / "versions" / "0.1.0.yaml"
    registered(registry)
    text = (registry / ".mlops" / "models" / "m" / "versions" / "0.1.0.yaml").read_text()
    md5 = text.split("md5: ", 1)[1].split()[0]
    hostile = text.replace("model: m", "model: evil").replace(
        f"md5: {md5}", f"md5: '{'../' * 12}{str(outside / 'secret').lstrip('/')}'")
    manifest.parent.mkdir(parents=True)
    manifest.write_text(hostile)
    git(registry, "add", str(manifest))
    git(registry, "commit", "-q", "-m", "a hostile manifest")
    git(registry, "tag", "-a", "-m", "by hand", "evil@v0.1.0", "HEAD")
    for args in (["fetch", "evil@0.1.0", "-o", str(tmp_path / "out.bin")],
                 ["verify", "evil@0.1.0"]):
        result = run(*args)
        assert result.code in (1, 3), result
        assert "md5" in result.err, result.err
        assert not (tmp_path / "out.bin").exists()
    assert (outside / "secret").read_text() == "not a blob"
    from mlopsctl.errors import EnvironmentProblem
    from mlopsctl.store.remote import object_id

    with pytest.raises(EnvironmentProblem):
        object_id("../" * 3 + "a" * 29)
    assert object_id("0" * 32) == "0" * 32
