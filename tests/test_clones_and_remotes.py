"""A team's clones and remotes: what a fresh `git clone` of a registry gets, what its commands say,
and how two clones racing through one bare remote get back in step by following the hints.

Real git (a bare repository on disk, `git clone`), real DVC (`dvc pull` from the venv), real
local artifact remotes. The clones share one HOME, so they share the key and the default remote,
as two clones on one machine do."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import Result, git, make_repo
from conftest import bump_in as bump
from conftest import ok_in as ok
from conftest import run_in as on

DVC = Path(sys.executable).parent / "dvc"


class Team(NamedTuple):
    shared: Path  # the bare repository
    a: Path  # the clone that made the registry


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


# --- validation reports reach a fresh clone the way users fetch ---------------------------------


def report(passed: bool, when: str) -> dict[str, object]:
    return {"passed": passed, "validated_at": when, "artifact_sha256": "x", "policy_hash": "y"}


def test_reports_reach_clones_through_pull_and_then_plain_git_fetch(team: Team) -> None:
    from mlopsctl.gitops.notes import merge_note, read_note

    fetch_specs = git(team.a, "config", "--get-all", "remote.origin.fetch").splitlines()
    assert "+refs/notes/mlops*:refs/notes/remotes/origin/mlops*" in fetch_specs  # set by init
    bump(team.a, "0.1.0", b"one")
    commit = git(team.a, "rev-parse", "m@v0.1.0^{commit}")
    merge_note(team.a, commit, "validations", "staging",
               report(False, "2026-01-01T00:00:00+00:00"))
    ok(team.a, "push")

    fresh = clone(team, "fresh")
    assert read_note(fresh, commit) == {}  # `git clone` does not fetch notes
    doctor = on(fresh, "doctor").out
    assert "warn reports: `git fetch origin` does not bring the team's validation reports" \
        in " ".join(doctor.split()), doctor
    assert "mlopsctl pull origin" in doctor
    refused = on(fresh, "promote", "m", "0.1.0", "--to", "staging")
    assert refused.code == 1
    assert "this clone has no validation reports yet" in refused.err
    assert "hint: mlopsctl pull, then retry" in refused.err

    ok(fresh, "pull")
    assert read_note(fresh, commit)["validations"]["staging"]["validated_at"].startswith("2026")
    assert "ok   reports: git fetch brings" in on(fresh, "doctor").out
    assert "+refs/notes/mlops*:refs/notes/remotes/origin/mlops*" in git(
        fresh, "config", "--get-all", "remote.origin.fetch").splitlines()

    # From now on a plain `git fetch` brings teammates' reports; reads merge them in.
    merge_note(team.a, commit, "validations", "production",
               report(True, "2026-01-02T00:00:00+00:00"))
    merge_note(team.a, commit, "validations", "staging",
               report(True, "2026-01-03T00:00:00+00:00"))
    ok(team.a, "push")
    git(fresh, "fetch", "-q")
    doc = read_note(fresh, commit)["validations"]
    assert doc["production"]["passed"] is True and doc["staging"]["passed"] is True
    ok(fresh, "push")  # its own notes ref never moved, so nothing diverged


def test_init_in_a_clone_sets_up_the_notes_fetch(team: Team) -> None:
    fresh = clone(team, "fresh")
    doc = json.loads(ok(fresh, "init", "--json").out)
    assert doc["notes_fetch"] == ["origin"] and doc["commit"] is None  # nothing committed
    again = json.loads(ok(fresh, "init", "--json").out)
    assert again["notes_fetch"] == []  # added once
    assert "refs/notes/mlops" not in git(fresh, "ls-remote", "origin")
    git(fresh, "pull", "-q", "--no-rebase")  # a remote with no notes yet: still fetches fine


# --- status in a new clone: not deployed here is not drift ---------------------------------------


def test_status_in_a_fresh_clone_says_not_deployed_here_and_exits_0(team: Team) -> None:
    bump(team.a, "0.1.0", b"one")
    tag_at(team.a, "m#staging#1", git(team.a, "rev-parse", "m@v0.1.0^{commit}"), 1_900_000_000)
    ok(team.a, "sync")
    ok(team.a, "status")
    ok(team.a, "push")

    fresh = clone(team, "fresh")
    shown = on(fresh, "status")
    assert shown.code == 0, shown
    table = " ".join(shown.out.split())
    assert "not deployed here" in table and "OUT OF SYNC" not in table
    assert "1 deployment(s) not on this machine: `mlopsctl sync` deploys them here" in shown.err
    row = json.loads(on(fresh, "status", "--json").out)[0]
    assert row["deployed_here"] is False
    assert not any("out of sync" in line for line in on(fresh, "doctor").out.splitlines())

    ok(fresh, "sync")
    assert json.loads(ok(fresh, "status", "--json").out)[0]["in_sync"] is True
    (fresh / ".mlops/deploy/staging/m/blue/model.bin").write_bytes(b"tampered")
    drift = on(fresh, "status")  # real drift still fails
    assert drift.code == 1 and "OUT OF SYNC" in drift.out


# --- the artifact remote: per-clone override, refusing to orphan, migrating ---------------------


def test_doctor_hints_the_per_clone_override_which_works(team: Team, tmp_path: Path) -> None:
    from mlopsctl.project import Project

    bump(team.a, "0.1.0", b"one")
    base = Project.open(team.a).remote.local_dir
    assert base is not None
    moved = tmp_path / "moved-store"
    base.rename(moved)
    found = on(team.a, "doctor").out
    line = next(x for x in found.splitlines() if "does not exist" in x)
    assert "init --remote" not in found
    assert "dvc remote modify --local mlops url PATH" in found, line
    config_before = (team.a / ".dvc" / "config").read_text()

    subprocess.run([str(DVC), "remote", "modify", "--local", "mlops", "url", str(moved)],
                   cwd=team.a, check=True, capture_output=True)
    ok(team.a, "verify")
    assert (team.a / ".dvc" / "config").read_text() == config_before  # the team's file as it was
    assert git(team.a, "status", "--porcelain", "--", ".dvc") == ""


def test_init_remote_on_a_registry_with_versions_needs_force(team: Team, tmp_path: Path) -> None:
    bump(team.a, "0.1.0", b"one")
    head = git(team.a, "rev-parse", "HEAD")
    config = (team.a / ".dvc" / "config").read_text()
    other = tmp_path / "other-store"
    refused = on(team.a, "init", "--remote", str(other))
    assert refused.code == 2, refused
    assert "1 version(s) are stored in remote 'mlops'" in refused.err
    assert f"dvc remote modify --local mlops url {other}" in refused.err
    assert f"mlopsctl remote migrate {other}" in refused.err and "--force" in refused.err
    assert git(team.a, "rev-parse", "HEAD") == head
    assert (team.a / ".dvc" / "config").read_text() == config

    forced = json.loads(ok(team.a, "init", "--remote", str(other), "--force", "--json").out)
    assert forced["remote"] == str(other) and forced["commit"]


def test_init_remote_without_versions_needs_no_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    repo = make_repo(tmp_path / "r")
    monkeypatch.chdir(repo)
    ok(repo, "init")
    ok(repo, "init", "--remote", str(tmp_path / "store"))


def test_init_keeps_dvc_analytics_out_of_the_teams_config(team: Team) -> None:
    committed = git(team.a, "show", "HEAD:.dvc/config")
    assert "analytics" not in committed
    local = (team.a / ".dvc" / "config.local").read_text()
    assert "analytics = false" in local.replace("False", "false")
    assert ".dvc/config.local" not in git(team.a, "ls-files")
    dvc_row = next(x for x in on(team.a, "doctor").out.splitlines() if " dvc:" in x)
    assert dvc_row.startswith("ok") and "analytics" not in dvc_row


# --- fetch ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_fetched_files_respect_the_umask(team: Team, tmp_path: Path, umask: int) -> None:
    bump(team.a, "0.1.0", b"one")
    old = os.umask(umask)
    try:
        ok(team.a, "fetch", "m@0.1.0", "-o", tmp_path / "out.bin")
    finally:
        os.umask(old)
    assert ((tmp_path / "out.bin").stat().st_mode & 0o777) == 0o666 & ~umask


def test_fetch_latest_registered_by_gto_says_so(team: Team, tmp_path: Path) -> None:
    bump(team.a, "0.1.0", b"one")
    git(team.a, "commit", "-q", "--allow-empty", "-m", "train v2 (registered with gto)")
    git(team.a, "tag", "-a", "m@v0.2.0", "-m", "Registering artifact m version v0.2.0")
    result = on(team.a, "fetch", "m@latest", "-o", tmp_path / "x.bin")
    assert result.code == 2
    assert ("m@latest resolves to m@0.2.0, which was registered by another tool (gto or a "
            "hand-made tag) without an mlopsctl manifest") in result.err
    assert "hint: the latest version with an artifact is m@0.1.0: mlopsctl fetch m@0.1.0" \
        in result.err
    assert not (tmp_path / "x.bin").exists()


# --- two clones racing: following the hints resolves every conflict ----------------------------


def two_clones(team: Team) -> Path:
    """Clone B of the team's registry, with A's m@0.1.0 and m@0.2.0 in both."""
    bump(team.a, "0.1.0", b"one")
    bump(team.a, "0.2.0", b"two")
    ok(team.a, "push")
    return clone(team, "b")


def follow(where: Path, hint: str) -> list[str]:
    """Run the commands of a `pull` conflict hint in order; return the steps left to re-run."""
    steps = hint.split(": ", 1)[1].split("; then ")
    rerun = []
    for step in steps:
        command = step.split(" (", 1)[0]
        if command.startswith("re-run "):
            rerun.append(command.removeprefix("re-run "))
        elif command.startswith("git "):
            subprocess.run(shlex.split(command), cwd=where, check=True, capture_output=True)
        else:
            assert command.startswith("mlopsctl "), step
            ok(where, *shlex.split(command)[1:])
    return rerun


def hint_of(result: Result) -> str:
    return next(line for line in result.err.splitlines() if line.startswith("hint: "))[6:]


def test_the_same_promotion_in_two_clones_resolves_with_pull_then_push(team: Team) -> None:
    b = two_clones(team)
    c1 = git(team.a, "rev-parse", "m@v0.1.0^{commit}")
    tag_at(team.a, "m#staging#3", c1, 1_900_000_000)  # both promote 0.1.0 at once
    tag_at(b, "m#staging#3", c1, 1_900_000_001)
    ok(team.a, "push")

    rejected = on(b, "push")
    assert rejected.code == 1 and "m#staging#3" in rejected.err
    assert hint_of(rejected).startswith("mlopsctl pull") and "mlopsctl push again" \
        in hint_of(rejected)
    pulled = json.loads(ok(b, "pull", "--json").out)  # exit 0: the same event, theirs taken
    assert pulled["replaced"] == ["m#staging#3"] and pulled["conflicts"] == []
    ok(b, "push")
    assert git(b, "rev-parse", "m#staging#3") == git(team.a, "rev-parse", "m#staging#3")
    assert ok(b, "show", "--json").out == ok(team.a, "show", "--json").out
    assert "nothing to push" in ok(b, "push").err


def test_racing_promotions_of_different_versions_resolve_by_the_hint(team: Team) -> None:
    b = two_clones(team)
    c1 = git(team.a, "rev-parse", "m@v0.1.0^{commit}")
    c2 = git(b, "rev-parse", "m@v0.2.0^{commit}")
    tag_at(team.a, "m#staging#3", c1, 1_900_000_000)
    tag_at(b, "m#staging#3", c2, 1_900_000_001)
    ok(team.a, "push")
    assert on(b, "push").code == 1
    conflict = on(b, "pull")
    assert conflict.code == 1
    hint = hint_of(conflict)
    assert "git tag -d 'm#staging#3'" in hint and "mlopsctl pull origin" in hint

    rerun = follow(b, hint)
    assert rerun == ["mlopsctl promote m 0.2.0 --to staging"]
    tag_at(b, "m#staging#4", c2, 1_900_000_002)  # what the re-run promotion records
    ok(b, "push")
    ok(team.a, "pull")
    for where in (team.a, b):
        assert json.loads(ok(where, "show", "--json").out)["m"]["stage"] == {"staging": "v0.2.0"}


def test_racing_registrations_of_one_version_resolve_by_the_hint(team: Team, tmp_path: Path
                                                                  ) -> None:
    b = two_clones(team)
    bump(team.a, "0.3.0", b"A's three")
    ok(team.a, "push")
    bump(b, "0.3.0", b"B's three")
    rejected = on(b, "push")
    assert rejected.code == 1 and "git pull --no-rebase" in rejected.err
    conflict = on(b, "pull")
    assert conflict.code == 1
    rerun = follow(b, hint_of(conflict))
    assert rerun == ["mlopsctl bump m ..."]
    bump(b, "0.4.0", b"B's three")  # B registers its artifact again, as the next version
    ok(b, "push")
    ok(b, "verify")
    ok(b, "fetch", "m@0.3.0", "-o", tmp_path / "three.bin")
    assert (tmp_path / "three.bin").read_bytes() == b"A's three"
    ok(team.a, "pull")
    git(team.a, "pull", "-q", "--no-rebase", "origin", "main")
    assert ok(team.a, "show", "m", "--json").out == ok(b, "show", "m", "--json").out


# --- remote migrate: every blob copied, verified, then the switch --------------------------------


def store_of(where: Path) -> Path:
    from mlopsctl.project import Project

    base = Project.open(where).remote.local_dir
    assert base is not None
    return base


def objects(base: Path) -> dict[str, bytes]:
    root = base / "files" / "md5"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_remote_migrate_copies_every_blob_verified_then_switches(team: Team, tmp_path: Path
                                                                 ) -> None:
    for i in range(1, 4):
        bump(team.a, f"0.{i}.0", f"model {i}".encode() * 100)
    ok(team.a, "gc", "--keep-last", "2")  # 0.1.0 collected
    old = store_of(team.a)
    before = objects(old)
    new = tmp_path / "new-store"

    doc = json.loads(ok(team.a, "remote", "migrate", str(new), "--json").out)
    assert doc["copied"] == 2 and doc["collected"] == 1 and doc["commit"]
    assert objects(new) == before  # byte for byte
    assert len(list((new / "mlopsctl-collected").iterdir())) == 1
    assert str(new) in git(team.a, "show", "HEAD:.dvc/config")
    assert git(team.a, "status", "--porcelain", "--", ".dvc") == ""

    import shutil

    shutil.rmtree(old)  # the old store can go: everything reads from the new one
    checked = json.loads(ok(team.a, "verify", "--json").out)
    assert checked["ok"] and [v["skipped"] for v in checked["versions"]] == [True, False, False]
    ok(team.a, "fetch", "m@0.3.0", "-o", tmp_path / "three.bin")
    assert (tmp_path / "three.bin").read_bytes() == b"model 3" * 100

    ok(team.a, "push")
    fresh = clone(team, "fresh")
    pulled = subprocess.run([str(DVC), "pull"], cwd=fresh, capture_output=True, text=True,
                            check=False)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    again = json.loads(ok(team.a, "remote", "migrate", str(tmp_path / "third"), "--json").out)
    assert again["copied"] == 2


def test_remote_migrate_stops_before_the_switch_on_a_lost_blob(team: Team, tmp_path: Path
                                                                ) -> None:
    from mlopsctl.project import Project

    bump(team.a, "0.1.0", b"one")
    bump(team.a, "0.2.0", b"two")
    manifest = Project.open(team.a).manifest("m", "0.1.0")
    assert manifest is not None
    Project.open(team.a).remote.object_path(manifest.artifact.stored.md5).unlink()
    head, config = git(team.a, "rev-parse", "HEAD"), (team.a / ".dvc" / "config").read_text()
    result = on(team.a, "remote", "migrate", str(tmp_path / "new"))
    assert result.code == 1, result
    assert "1 version(s) have no blob" in result.err and "m@0.1.0" in result.err
    assert "nothing was migrated" in result.err
    assert git(team.a, "rev-parse", "HEAD") == head
    assert (team.a / ".dvc" / "config").read_text() == config
    assert not (tmp_path / "new").exists()


def test_remote_migrate_refuses_the_same_remote(team: Team) -> None:
    bump(team.a, "0.1.0", b"one")
    same = on(team.a, "remote", "migrate", str(store_of(team.a)))
    assert same.code == 2 and "is the registry's remote already" in same.err


def test_a_report_made_after_git_fetch_pushes_without_a_pull(team: Team) -> None:
    from mlopsctl.gitops.notes import merge_note, read_local_note

    bump(team.a, "0.1.0", b"one")
    commit = git(team.a, "rev-parse", "m@v0.1.0^{commit}")
    merge_note(team.a, commit, "validations", "staging",
               report(True, "2026-01-01T00:00:00+00:00"))
    ok(team.a, "push")
    fresh = clone(team, "fresh")
    ok(fresh, "init")  # sets up the notes fetch; commits nothing
    git(fresh, "fetch", "-q")
    merge_note(fresh, commit, "validations", "production",
               report(True, "2026-01-02T00:00:00+00:00"))  # builds on the fetched notes
    ok(fresh, "push")  # a fast-forward: no rejection, no pull needed
    ok(team.a, "pull")
    assert set(read_local_note(team.a, commit)["validations"]) == {"staging", "production"}
