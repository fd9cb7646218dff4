"""`mlopsctl gc`: retention decided from registry state, blobs removed from a real local remote,
tags and manifests untouched."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import git, run

from mlopsctl.blobstate import blob_states, mark_collected
from mlopsctl.project import Project

VERSIONS = [f"0.{i}.0" for i in range(1, 9)]
EXPECTED_GONE = ["0.6.0", "0.5.0", "0.1.0"]  # newest first, as gc lists them
EXPECTED_KEPT = {
    "0.8.0": ["latest 2"],
    "0.7.0": ["latest 2"],
    "0.4.0": ["holds production", "production green slot (live)"],
    "0.3.0": ["production blue slot"],
    "0.2.0": ["holds staging", "staging blue slot (live)"],
}


def ok(*args: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
    result = run(*args)
    assert result.code == 0, f"mlopsctl {' '.join(map(str, args))}: {result.err}"
    return result


def tag_at(repo: Path, name: str, commit: str, when: int) -> None:
    """An annotated event tag with a chosen time (so the events have a definite order)."""
    env = dict(os.environ, GIT_COMMITTER_DATE=f"@{when} +0000")
    subprocess.run(["git", "tag", "-a", name, "-m", "promote", commit], cwd=repo, env=env,
                   check=True, capture_output=True)


def blob(repo: Path, version: str) -> Path:
    project = Project.open(repo)
    manifest = project.manifest("m", version)
    assert manifest is not None
    return project.remote.object_path(manifest.artifact.stored.md5)


def snapshot(repo: Path) -> tuple[str, str, str]:
    return (git(repo, "for-each-ref"), git(repo, "status", "--porcelain", "--ignored"),
            git(repo, "rev-parse", "HEAD"))


@pytest.fixture
def eight(registry: Path) -> Path:
    """m 0.1.0 .. 0.8.0; 0.2.0 in staging; production had 0.3.0, then 0.4.0 (both slots full)."""
    for version in VERSIONS:
        (registry / "model.bin").write_bytes(f"model {version}".encode() * 10)
        ok("bump", "m", "--artifact", "model.bin", "--version", version)
    (registry / "model.bin").unlink()
    now = int(time.time())
    commit = {v: git(registry, "rev-parse", f"m@v{v}^{{commit}}") for v in VERSIONS}
    tag_at(registry, "m#staging#1", commit["0.2.0"], now + 10)
    tag_at(registry, "m#production#2", commit["0.3.0"], now + 20)
    tag_at(registry, "m#production#3", commit["0.4.0"], now + 30)
    shown = json.loads(ok("show", "m", "--json").out)
    assert shown["stages"] == {"production": "v0.4.0", "staging": "v0.2.0"}
    return registry


def test_dry_run_lists_exactly_the_unneeded_versions_and_removes_nothing(eight: Path) -> None:
    before = snapshot(eight)
    doc = json.loads(ok("gc", "--keep-last", "2", "--dry-run", "--json").out)
    assert doc["dry_run"] is True
    assert [i["version"] for i in doc["removed"]] == EXPECTED_GONE
    assert {i["version"]: i["reasons"] for i in doc["kept"]} == EXPECTED_KEPT
    assert doc["freed_bytes"] == sum(blob(eight, v).stat().st_size for v in EXPECTED_GONE)
    assert all(blob(eight, v).is_file() for v in VERSIONS)
    human = ok("gc", "--keep-last", "2", "--dry-run")
    assert "would remove" in human.out and "m@0.5.0" in human.out
    assert "nothing removed" in human.err
    assert all(blob(eight, v).is_file() for v in VERSIONS)
    assert snapshot(eight) == before


def test_gc_removes_exactly_those_blobs_and_nothing_else(eight: Path, tmp_path: Path) -> None:
    before = snapshot(eight)
    doc = json.loads(ok("gc", "--keep-last", "2", "--json").out)
    assert [i["version"] for i in doc["removed"]] == EXPECTED_GONE
    for version in VERSIONS:
        assert blob(eight, version).is_file() == (version not in EXPECTED_GONE), version
    # No tag or manifest changed; one commit on the branch drops the collected pointers.
    tags, status, head = snapshot(eight)
    assert tags.splitlines()[1:] == before[0].splitlines()[1:]  # line 0 is refs/heads/main
    assert status == before[1]
    assert git(eight, "rev-parse", "HEAD~1") == before[2] and doc["commit"] == head
    changed = git(eight, "diff", "--name-status", before[2], head).splitlines()
    assert sorted(changed) == sorted(f"D\t.mlops/models/m/artifacts/{v}.zst.dvc"
                                     for v in EXPECTED_GONE)
    assert doc["pointers_removed"] == sorted(f".mlops/models/m/artifacts/{v}.zst.dvc"
                                             for v in EXPECTED_GONE)

    for version in EXPECTED_KEPT:
        ok("verify", f"m@{version}")
    result = run("fetch", "m@0.5.0", "-o", tmp_path / "old.bin")
    assert result.code == 3
    assert "m@0.5.0 is missing" in result.err and "garbage-collected" in result.err
    assert not (tmp_path / "old.bin").exists()

    project = Project.open(eight)
    states = blob_states(project.ws, project.remote, "m")
    assert {v for v, s in states.items() if s == "collected"} == {f"v{v}" for v in EXPECTED_GONE}
    detail = json.loads(ok("show", "m", "--json").out)
    mark_collected(project.ws, detail)
    assert {v["version"]: v["blob"] for v in detail["versions"]} == {
        f"v{v}": "collected" if v in EXPECTED_GONE else "stored" for v in VERSIONS}

    again = json.loads(ok("gc", "--keep-last", "2", "--json").out)
    assert again["removed"] == []
    assert [i["version"] for i in again["already_gone"]] == EXPECTED_GONE
    assert "nothing to remove" in ok("gc", "--keep-last", "2").err


def test_default_keeps_five_and_bad_keep_last_is_a_usage_error(eight: Path) -> None:
    doc = json.loads(ok("gc", "--dry-run", "--json").out)
    assert [i["version"] for i in doc["removed"]] == ["0.1.0"]
    result = run("gc", "--keep-last", "0")
    assert result.code == 2


def test_a_drifted_policy_stops_gc(eight: Path) -> None:
    policy = eight / ".mlops" / "policy.yaml"
    policy.write_text(policy.read_text().replace("min: 0.85", "min: 0.5", 1))  # loosened
    result = run("gc", "--keep-last", "2")
    assert result.code == 1
    assert "drifted" in result.err
    assert all(blob(eight, v).is_file() for v in VERSIONS)


def test_gc_decides_on_origins_tags_and_push_still_works_after(eight: Path,
                                                                  tmp_path: Path) -> None:
    shared = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(shared))
    git(eight, "remote", "add", "origin", str(shared))
    ok("push")
    teammate = tmp_path / "teammate"
    git(tmp_path, "clone", "-q", str(shared), str(teammate))
    commit = git(teammate, "rev-parse", "m@v0.5.0^{commit}")
    tag_at(teammate, "m#qa#4", commit, int(time.time()) + 40)  # the team put 0.5.0 in qa
    git(teammate, "push", "-q", "origin", "m#qa#4")

    doc = json.loads(ok("gc", "--keep-last", "2", "--json").out)
    assert [i["version"] for i in doc["removed"]] == ["0.6.0", "0.1.0"]
    assert any("m#qa#4" in note for note in doc["notes"])
    assert blob(eight, "0.5.0").is_file()
    ok("push")  # collected versions do not count as missing blobs

    git(eight, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    offline = ok("gc", "--keep-last", "2")
    assert "could not fetch registry tags from origin" in offline.err
