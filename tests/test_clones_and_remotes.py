"""A team's clones and remotes: what a fresh `git clone` of a registry gets, what its commands say,
and how two clones racing through one bare remote get back in step by following the hints.

Real git (a bare repository on disk, `git clone`), real DVC (`dvc pull` from the venv), real
local artifact remotes. The clones share one HOME, so they share the key and the default remote,
as two clones on one machine do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import Result, chdir, git, make_repo, run

DVC = Path(sys.executable).parent / "dvc"


class Team(NamedTuple):
    shared: Path  # the bare repository
    a: Path  # the clone that made the registry


def on(where: Path, *args: str | os.PathLike[str]) -> Result:
    with chdir(where):
        return run(*args)


def ok(where: Path, *args: str | os.PathLike[str]) -> Result:
    result = on(where, *args)
    assert result.code == 0, f"mlopsctl {' '.join(map(str, args))} in {where.name}: {result.err}"
    return result


def bump(where: Path, version: str, content: bytes) -> None:
    (where / "model.bin").write_bytes(content)
    ok(where, "bump", "m", "--artifact", "model.bin", "--version", version)


def clone(team: Team, name: str) -> Path:
    dest = team.a.parent / name
    git(team.a.parent, "clone", "-q", str(team.shared), name)
    return dest


def tag_at(repo: Path, name: str, commit: str, when: int) -> None:
    env = dict(os.environ, GIT_COMMITTER_DATE=f"@{when} +0000")
    subprocess.run(["git", "tag", "-a", name, "-m", "assign", commit], cwd=repo, env=env,
                   check=True, capture_output=True)


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Team:
    monkeypatch.chdir(tmp_path)
    shared = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(shared))
    a = make_repo(tmp_path / "a")
    git(a, "remote", "add", "origin", str(shared))
    ok(a, "init")
    ok(a, "push")
    return Team(shared, a)


# --- gc and verify agree; a fresh clone's `dvc pull` works after gc -----------------------------


def test_after_gc_verify_passes_and_a_fresh_clones_dvc_pull_works(team: Team) -> None:
    for i in range(1, 5):
        bump(team.a, f"0.{i}.0", f"model {i}".encode() * 50)
    gone = json.loads(ok(team.a, "gc", "--keep-last", "2", "--json").out)
    assert [i["version"] for i in gone["removed"]] == ["0.2.0", "0.1.0"]
    assert gone["pointers_removed"] == [".mlops/models/m/artifacts/0.1.0.zst.dvc",
                                        ".mlops/models/m/artifacts/0.2.0.zst.dvc"]

    checked = json.loads(ok(team.a, "verify", "--json").out)  # exit 0: collected is no failure
    assert checked["ok"] is True
    state = {v["version"]: (v["ok"], v["skipped"], v["problem"] or "") for v in checked["versions"]}
    assert state["0.4.0"] == (True, False, "") and state["0.3.0"] == (True, False, "")
    for version in ("0.1.0", "0.2.0"):
        assert state[version][:2] == (True, True) and "collected by gc" in state[version][2]
    assert "skip m@0.1.0  collected by gc" in ok(team.a, "verify").out

    ok(team.a, "push")
    fresh = clone(team, "fresh")
    pulled = subprocess.run([str(DVC), "pull"], cwd=fresh, capture_output=True, text=True,
                            check=False)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    artifacts = fresh / ".mlops" / "models" / "m" / "artifacts"
    assert sorted(p.name for p in artifacts.glob("*.zst")) == ["0.3.0.zst", "0.4.0.zst"]
    assert json.loads(ok(fresh, "verify", "--json").out)["ok"] is True
    # The history is whole: the tagged commit still holds the collected version's pointer.
    assert "md5:" in git(fresh, "show", "m@v0.1.0:.mlops/models/m/artifacts/0.1.0.zst.dvc")


def test_a_lost_blob_still_fails_verify(team: Team) -> None:
    from mlopsctl.project import Project

    bump(team.a, "0.1.0", b"one")
    project = Project.open(team.a)
    manifest = project.manifest("m", "0.1.0")
    assert manifest is not None
    project.remote.object_path(manifest.artifact.stored.md5).unlink()  # lost, not collected
    result = on(team.a, "verify")
    assert result.code == 1 and "FAIL m@0.1.0" in result.out


def test_gc_dry_run_names_the_pointers_and_commits_nothing(team: Team) -> None:
    for i in range(1, 4):
        bump(team.a, f"0.{i}.0", f"model {i}".encode())
    head = git(team.a, "rev-parse", "HEAD")
    doc = json.loads(ok(team.a, "gc", "--keep-last", "2", "--dry-run", "--json").out)
    assert doc["pointers_removed"] == [".mlops/models/m/artifacts/0.1.0.zst.dvc"]
    assert doc["commit"] is None and git(team.a, "rev-parse", "HEAD") == head
    assert (team.a / ".mlops/models/m/artifacts/0.1.0.zst.dvc").is_file()
