"""Team sync: `mlopsctl push` / `mlopsctl pull` between two clones of a real bare repository.

Both clones share one HOME, so they share the registry's key and its default local artifact
remote, as two clones on one machine do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import bump_in as bump
from conftest import git, make_repo
from conftest import ok_in as ok
from conftest import run_in as on

from mlopsctl.gitops.notes import merge_note, read_note
from mlopsctl.teamsync import merge_docs


class Team(NamedTuple):
    shared: Path  # the bare repository both clones push to
    a: Path
    b: Path


def commit_of(where: Path, tag: str) -> str:
    return git(where, "rev-parse", f"{tag}^{{commit}}")


def remote_refs(team: Team) -> dict[str, str]:
    out = git(team.shared, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in out.splitlines())


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Team:
    """A registry in clone A, pushed to a bare repository, and clone B of it."""
    monkeypatch.chdir(tmp_path)
    shared = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(shared))
    a = make_repo(tmp_path / "a")
    ok(a, "init")
    git(a, "remote", "add", "origin", str(shared))
    ok(a, "push")
    git(tmp_path, "clone", "-q", str(shared), "b")
    return Team(shared, a, tmp_path / "b")


def test_push_sends_versions_and_pull_brings_them(team: Team, tmp_path: Path) -> None:
    bump(team.a, "0.1.0", b"first model")
    bump(team.a, "0.2.0", b"second model")
    pushed = json.loads(ok(team.a, "push", "--json").out)
    assert pushed["ok"] and pushed["branch"] == "main" and pushed["versions_checked"] == 2
    assert {"refs/heads/main", "refs/tags/m@v0.1.0", "refs/tags/m@v0.2.0"} <= set(
        pushed["updated"])
    refs = remote_refs(team)
    assert refs["refs/heads/main"] == git(team.a, "rev-parse", "HEAD")
    assert commit_of(team.shared, "m@v0.2.0") == commit_of(team.a, "m@v0.2.0")

    again = json.loads(ok(team.a, "push", "--json").out)
    assert again["updated"] == []
    assert "nothing to push" in ok(team.a, "push").err

    pulled = json.loads(ok(team.b, "pull", "--json").out)
    assert pulled["new_tags"] == ["m@v0.1.0", "m@v0.2.0"]
    assert pulled["conflicts"] == []
    assert pulled["branch"] == {"name": "main", "state": "behind"}
    before = git(team.b, "rev-parse", "HEAD")
    human = ok(team.b, "pull")
    assert "0 new registry tags" in human.err and "git pull" in human.err
    assert git(team.b, "rev-parse", "HEAD") == before  # pull never moves the branch

    shown = json.loads(ok(team.b, "show", "--json").out)
    assert shown["m"]["version"] == "v0.2.0"
    ok(team.b, "fetch", "m@0.1.0", "-o", tmp_path / "restored.bin")
    assert (tmp_path / "restored.bin").read_bytes() == b"first model"

    git(team.b, "pull", "-q", "--no-rebase", "origin", "main")
    assert json.loads(ok(team.b, "pull", "--json").out)["branch"]["state"] == "up to date"


def test_notes_travel_both_ways_and_merge(team: Team) -> None:
    bump(team.a, "0.1.0", b"model")
    ok(team.a, "push")
    ok(team.b, "pull")
    git(team.b, "pull", "-q", "--no-rebase", "origin", "main")  # B has A's manifests too
    c = commit_of(team.a, "m@v0.1.0")
    staging = {"validated_at": "2025-01-02T10:00:00+00:00", "passed": True, "by": "a"}
    production = {"validated_at": "2025-01-01T09:00:00+00:00", "passed": True, "by": "b"}
    merge_note(team.a, c, "validations", "staging", staging)
    ok(team.a, "push")
    merge_note(team.b, c, "validations", "production", production)

    rejected = on(team.b, "push")  # the notes moved on at the remote
    assert rejected.code == 1
    assert "the remote has registry events you do not have" in rejected.err
    assert "hint: mlopsctl pull (it says what to do" in rejected.err

    pulled = json.loads(ok(team.b, "pull", "--json").out)
    assert pulled["notes_merged"] == [c]
    assert read_note(team.b, c)["validations"] == {"staging": staging, "production": production}
    assert "refs/notes/mlops-incoming" not in git(team.b, "for-each-ref")
    ok(team.b, "push")  # the merged notes descend from the remote's: a fast-forward
    assert remote_refs(team)["refs/notes/mlops"] == git(team.b, "rev-parse", "refs/notes/mlops")

    assert json.loads(ok(team.a, "pull", "--json").out)["notes_merged"] == [c]
    assert read_note(team.a, c)["validations"] == {"staging": staging, "production": production}

    # Both re-validate staging: the later report wins on either side, whoever pulls.
    later = {"validated_at": "2025-03-01T00:00:00+00:00", "passed": False, "by": "a"}
    earlier = {"validated_at": "2025-02-01T00:00:00+00:00", "passed": True, "by": "b"}
    merge_note(team.a, c, "validations", "staging", later)
    ok(team.a, "push")
    merge_note(team.b, c, "validations", "staging", earlier)
    ok(team.b, "pull")
    assert read_note(team.b, c)["validations"] == {"staging": later, "production": production}
    ok(team.b, "push")
    ok(team.a, "pull")
    assert read_note(team.a, c) == read_note(team.b, c)


def test_rejected_push_leaves_the_remote_alone_and_pull_names_the_conflict(team: Team) -> None:
    bump(team.a, "0.1.0", b"one")
    bump(team.a, "0.2.0", b"two")
    ok(team.a, "push")
    ok(team.b, "pull")
    git(team.b, "pull", "-q", "--no-rebase", "origin", "main")
    c1, c2 = commit_of(team.a, "m@v0.1.0"), commit_of(team.a, "m@v0.2.0")
    # Both promote at once and take the same counter; A gets there first.
    git(team.a, "tag", "-a", "m#staging#3", "-m", "x", c1)
    ok(team.a, "push")
    git(team.b, "tag", "-a", "m#staging#3", "-m", "x", c2)
    bump(team.b, "0.3.0", b"three")  # B's other news: a version, and its commit on main
    before = remote_refs(team)

    result = on(team.b, "push")
    assert result.code == 1
    assert "error: the remote has registry events you do not have" in result.err
    assert "m#staging#3" in result.err
    assert ("hint: mlopsctl pull (it says what to do about any event both sides recorded), "
            "then mlopsctl push again") in result.err
    as_json = on(team.b, "push", "--json")
    assert as_json.code == 1
    assert json.loads(as_json.out)["rejected"] == [
        {"ref": "refs/tags/m#staging#3", "reason": "[rejected] (already exists)"}]
    assert remote_refs(team) == before  # --atomic: nothing of B's arrived
    assert "refs/tags/m@v0.3.0" not in git(team.b, "ls-remote", "origin")
    assert commit_of(team.shared, "m#staging#3") == c1

    git(team.a, "tag", "-a", "m#production#4", "-m", "x", c1)  # more news from A
    ok(team.a, "push")
    conflict = on(team.b, "pull")
    assert conflict.code == 1
    assert "m#staging#3" in conflict.err and c1[:8] in conflict.err and c2[:8] in conflict.err
    assert "git tag -d 'm#staging#3'" in conflict.err
    assert commit_of(team.b, "m#staging#3") == c2  # never overwritten
    assert commit_of(team.b, "m#production#4") == c1  # the rest still arrived
    doc = json.loads(on(team.b, "pull", "--json").out)
    assert doc["ok"] is False
    assert doc["conflicts"] == [{"tag": "m#staging#3", "ours": c2, "theirs": c1}]

    git(team.b, "tag", "-d", "m#staging#3")  # follow the hint
    assert json.loads(ok(team.b, "pull", "--json").out)["new_tags"] == ["m#staging#3"]
    ok(team.b, "push")
    assert commit_of(team.shared, "m@v0.3.0") == commit_of(team.b, "m@v0.3.0")


def test_push_refuses_a_version_whose_blob_is_missing(team: Team) -> None:
    from mlopsctl.project import Project

    bump(team.a, "0.1.0", b"one")
    bump(team.a, "0.2.0", b"two")
    project = Project.open(team.a)
    manifest = project.manifest("m", "0.2.0")
    assert manifest is not None
    project.remote.object_path(manifest.artifact.stored.md5).unlink()
    before = remote_refs(team)

    result = on(team.a, "push")
    assert result.code == 1
    assert "m@0.2.0" in result.err and "m@0.1.0" not in result.err
    assert "missing" in result.err
    assert remote_refs(team) == before


def test_unknown_or_unreachable_remote_exits_3(team: Team, tmp_path: Path) -> None:
    result = on(team.a, "push", "nowhere")
    assert result.code == 3
    assert "no git remote named 'nowhere'" in result.err
    git(team.a, "remote", "add", "gone", str(tmp_path / "no-such-repo.git"))
    for command in ("push", "pull"):
        result = on(team.a, command, "gone")
        assert result.code == 3, result
        assert "could not reach git remote 'gone'" in result.err


def test_merge_docs_combines_sections_and_keeps_the_later_report() -> None:
    old = {"validated_at": "2025-01-01T00:00:00+00:00", "passed": True}
    new = {"validated_at": "2025-01-01T01:00:00+01:00", "passed": False}  # same instant
    newer = {"validated_at": "2025-01-01T00:00:01Z", "passed": False}
    ours = {"schema_version": 1, "validations": {"staging": old}, "failures": {"p": {"x": 1}}}
    theirs = {"schema_version": 1, "validations": {"staging": newer, "production": old}}
    merged = merge_docs(ours, theirs)
    assert merged == {"schema_version": 1, "failures": {"p": {"x": 1}},
                      "validations": {"staging": newer, "production": old}}
    assert merge_docs(theirs, ours) == merged
    # Equal instants: either order gives the same answer, so every clone agrees.
    tie_a = {"validations": {"staging": old}}
    tie_b = {"validations": {"staging": new}}
    assert merge_docs(tie_a, tie_b) == merge_docs(tie_b, tie_a)
    assert merge_docs(ours, {}) == ours


def test_push_sends_only_what_the_remote_lacks(team: Team) -> None:
    """The remote's refs are asked first: tags it has are not named again, and the blob check
    covers the versions being sent (at 100,000 tags neither would fit in a command)."""
    bump(team.a, "0.1.0", b"first model")
    first = json.loads(ok(team.a, "push", "--json").out)
    assert first["versions_checked"] == 1
    bump(team.a, "0.2.0", b"second model")
    second = json.loads(ok(team.a, "push", "--json").out)
    assert second["versions_checked"] == 1  # 0.2.0 only: 0.1.0 is on the remote already
    assert "refs/tags/m@v0.2.0" in second["updated"]
    assert "refs/tags/m@v0.1.0" not in second["updated"]
    assert second["up_to_date"] >= 1
    again = json.loads(ok(team.a, "push", "--json").out)
    assert again["versions_checked"] == 0 and not [
        r for r in again["updated"] if r.startswith("refs/tags/")]


def test_a_push_too_long_for_one_command_goes_in_batches(
        team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlopsctl import teamsync

    monkeypatch.setattr(teamsync, "ARGS_BUDGET", 60)  # about one tag per batch
    for n in range(1, 4):
        bump(team.a, f"0.{n}.0", f"model {n}".encode())
    pushed = json.loads(ok(team.a, "push", "--json").out)
    assert {f"refs/tags/m@v0.{n}.0" for n in range(1, 4)} <= set(pushed["updated"])
    refs = remote_refs(team)
    assert refs["refs/heads/main"] == git(team.a, "rev-parse", "HEAD")
    assert all(f"refs/tags/m@v0.{n}.0" in refs for n in range(1, 4))
    ok(team.b, "pull")
    assert commit_of(team.b, "m@v0.3.0") == commit_of(team.a, "m@v0.3.0")
