"""`mlopsctl check`: every finding listed with file, line and field, on real registries (real git,
real DVC pointers, a real local remote); GitHub Actions and GitLab output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, run

from mlopsctl.project import Project


def ok(*args: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
    result = run(*args)
    assert result.code == 0, f"mlopsctl {' '.join(map(str, args))}: {result.out}{result.err}"
    return result


def findings(*args: str) -> tuple[int, list[dict]]:
    result = run("check", "--json", *args)
    assert result.code in (0, 1), result
    doc = json.loads(result.out)
    assert doc["ok"] is (result.code == 0)
    return result.code, doc["findings"]


def tag_at(repo: Path, name: str, target: str, when: int, message: str = "by hand") -> None:
    env = dict(os.environ, GIT_COMMITTER_DATE=f"@{when} +0000")
    subprocess.run(["git", "tag", "-a", name, "-m", message, target], cwd=repo, env=env,
                   check=True, capture_output=True)


def add_report(repo: Path, commit: str, env: str, passed: bool, sha: str) -> None:
    note = {"schema_version": 1, "validations": {env: {"passed": passed,
                                                        "artifact_sha256": sha}}}
    git(repo, "notes", "--ref=refs/notes/mlops", "add", "-f", "-m", json.dumps(note), commit)


@pytest.fixture
def reg(registry: Path) -> Path:
    """A registry with m 0.1.0 and 0.2.0 registered by mlopsctl (healthy)."""
    for version in ("0.1.0", "0.2.0"):
        (registry / "model.bin").write_bytes(f"model {version}".encode() * 50)
        ok("bump", "m", "--artifact", "model.bin", "--version", version)
    (registry / "model.bin").unlink()
    return registry


def sha_of(repo: Path, version: str) -> str:
    manifest = Project.open(repo).manifest("m", version)
    assert manifest is not None
    return manifest.artifact.sha256


def commit_of(repo: Path, version: str) -> str:
    return git(repo, "rev-parse", f"m@v{version}^{{commit}}")


# --- healthy ------------------------------------------------------------------------------------


def test_a_healthy_registry_passes(reg: Path) -> None:
    result = ok("check")
    assert result.out == ""
    assert "ok:" in result.err
    code, found = findings()
    assert (code, found) == (0, [])


# --- files against their schemas --------------------------------------------------------------


def test_a_broken_config_lists_every_error_with_line_and_field(reg: Path) -> None:
    config = reg / ".mlops" / "config.yaml"
    text = config.read_text()
    text = text.replace("signing: optional", "signing: sometimes")
    config.write_text(text + "bogus: 1\n")
    lines = config.read_text().splitlines()
    code, found = findings()
    assert code == 1
    schema = {f["field"]: f for f in found if f["check"] == "schema"}
    assert set(schema) == {"signing", "bogus"}
    assert schema["bogus"]["line"] == len(lines)
    assert lines[schema["signing"]["line"] - 1].startswith("signing:")
    assert all(f["file"] == ".mlops/config.yaml" for f in schema.values())
    result = run("check")
    assert result.code == 1
    assert ".mlops/config.yaml:" in result.out and "'bogus'" in result.out
    assert "'signing'" in result.out


def test_invalid_yaml_names_the_line(reg: Path) -> None:
    card = reg / ".mlops" / "models" / "m" / "model.yaml"
    card.write_text(card.read_text() + "owner: [unclosed\n")
    code, found = findings()
    assert code == 1
    (f,) = [f for f in found if f["check"] == "schema"]
    assert f["file"] == ".mlops/models/m/model.yaml"
    assert "not valid YAML" in f["message"] and f["line"]


def test_a_manifest_with_a_wrong_type_names_the_nested_field(reg: Path) -> None:
    path = reg / ".mlops" / "models" / "m" / "versions" / "0.2.0.yaml"
    text = path.read_text()
    path.write_text(text.replace("  size: ", "  size: big #", 1))
    _code, found = findings()
    fields = {f["field"] for f in found if f["check"] == "schema"}
    assert "artifact.size" in fields
    # the edit is also an edit after the tag
    assert any(f["check"] == "immutable" for f in found)


# --- the pin --------------------------------------------------------------------------------------


def test_a_drifted_policy_is_a_pin_finding(reg: Path) -> None:
    policy = reg / ".mlops" / "policy.yaml"
    policy.write_text(policy.read_text() + "\n# loosened\n")
    policy.write_text(policy.read_text().replace("weight: 1", "weight: 0.5", 1))
    code, found = findings()
    assert code == 1
    (pin,) = [f for f in found if f["check"] == "pin"]
    assert pin["file"] == ".mlops/config.yaml" and pin["field"] == "constitutional_hash"
    assert pin["line"]


# --- immutability ------------------------------------------------------------------------------


def test_a_manifest_edited_after_its_tag_is_named_with_line_and_field(reg: Path) -> None:
    path = reg / ".mlops" / "models" / "m" / "versions" / "0.1.0.yaml"
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("message:"))
    lines[index] = "message: rewritten history"
    path.write_text("\n".join(lines) + "\n")
    git(reg, "commit", "-qam", "tweak a manifest")  # committed or not, the tag is the truth
    code, found = findings()
    assert code == 1
    (f,) = found
    assert f["check"] == "immutable"
    assert (f["file"], f["line"], f["field"]) == (".mlops/models/m/versions/0.1.0.yaml",
                                                  index + 1, "message")
    assert "m@v0.1.0" in f["message"]


def test_a_deleted_manifest_is_a_finding(reg: Path) -> None:
    (reg / ".mlops" / "models" / "m" / "versions" / "0.1.0.yaml").unlink()
    code, found = findings()
    assert code == 1
    by_check = {f["check"]: f["message"] for f in found}
    assert "deleted after its tag" in by_check["immutable"]
    assert "a DVC pointer without a version manifest" in by_check["artifacts"]


# --- artifacts ------------------------------------------------------------------------------------


def test_a_missing_or_wrong_pointer_is_a_finding(reg: Path) -> None:
    arts = reg / ".mlops" / "models" / "m" / "artifacts"
    (arts / "0.1.0.zst.dvc").unlink()
    pointer = arts / "0.2.0.zst.dvc"
    text = pointer.read_text()
    md5 = text.split("md5: ")[1].split()[0]
    pointer.write_text(text.replace(md5, "a" * 32))
    _code, found = findings()
    messages = [f["message"] for f in found if f["check"] == "artifacts"]
    assert any("has no DVC pointer" in m for m in messages)
    assert any("a" * 32 in m for m in messages), found


def test_blobs_not_ignored_or_committed_are_findings(reg: Path) -> None:
    (reg / ".mlops" / ".gitignore").write_text("/deploy/\n")
    code, found = findings()
    assert code == 1
    ignored = [f for f in found if "git-ignored" in f["message"]]
    # one probe per model where no blob is present (where the next fetch would write one)
    assert [f["file"] for f in ignored] == [".mlops/models/m/artifacts/0.1.0.zst"]
    blob = reg / ".mlops" / "models" / "m" / "artifacts" / "0.2.0.zst"
    blob.write_bytes(b"sealed bytes")
    git(reg, "add", str(blob))
    _code, found = findings()
    assert any(f["message"] == "a stored blob is committed to git" for f in found)


# --- names and tags ---------------------------------------------------------------------------


def test_illegal_names_and_stray_files_are_findings(reg: Path) -> None:
    models = reg / ".mlops" / "models"
    (models / "Bad Name").mkdir()
    (models / "Bad Name" / "model.yaml").write_text("name: x\n")
    (models / "m" / "versions" / "1.0.yaml").write_text("x: 1\n")
    (models / "m" / "notes.txt").write_text("scribbles\n")
    (models / "%42ig").mkdir()  # how mlopsctl spells the GTO name 'Big' as a directory
    (models / "%42ig" / "model.yaml").write_text("name: Big\n")
    _code, found = findings()
    names = {f["file"]: f["message"] for f in found if f["check"] == "names"}
    assert set(names) == {".mlops/models/Bad Name/model.yaml",
                          ".mlops/models/m/versions/1.0.yaml", ".mlops/models/m/notes.txt"}
    assert "not a version" in names[".mlops/models/m/versions/1.0.yaml"]


def test_odd_registry_tags_are_findings(reg: Path) -> None:
    head = git(reg, "rev-parse", "HEAD")
    git(reg, "tag", "-a", "m@v1.0", "-m", "not semver", head)
    git(reg, "tag", "-a", "m@created", "-m", "crashes gto", head)
    git(reg, "tag", "m@v3.0.0", head)  # lightweight
    git(reg, "tag", "-a", "release-2024", "-m", "an ordinary tag", head)
    _code, found = findings()
    tags = " ".join(f["message"] for f in found if f["check"] == "tags")
    assert "'m@v1.0'" in tags and "'m@created'" in tags and "'m@v3.0.0'" in tags
    assert "release-2024" not in tags


# --- stage events and their gates ---------------------------------------------------------------


def test_a_stage_tag_by_hand_without_a_report_is_a_finding(reg: Path) -> None:
    assert ok("verify").code == 0  # plain verify says nothing about it
    tag_at(reg, "m#staging#3", commit_of(reg, "0.1.0"), 1_900_000_000)
    code, found = findings()
    assert code == 1
    (f,) = found
    assert f["check"] == "gates" and "m#staging#3" in f["message"]
    assert "no passing validation report for staging" in f["message"]


def test_gto_assign_without_a_report_is_a_finding(reg: Path) -> None:
    gto = Path(sys.executable).parent / "gto"
    proc = subprocess.run([str(gto), "assign", "m", "--version", "v0.2.0", "--stage", "staging"],
                          cwd=reg, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    code, found = findings()
    assert code == 1
    assert [f["check"] for f in found] == ["gates"]
    assert "gto assign" in found[0]["message"]


def test_a_stage_tag_with_a_passing_report_is_fine_and_a_failing_one_is_not(reg: Path) -> None:
    add_report(reg, commit_of(reg, "0.1.0"), "staging", True, sha_of(reg, "0.1.0"))
    add_report(reg, commit_of(reg, "0.2.0"), "staging", False, sha_of(reg, "0.2.0"))
    tag_at(reg, "m#staging#3", commit_of(reg, "0.1.0"), 1_900_000_000)
    assert findings() == (0, [])
    tag_at(reg, "m#staging#4", commit_of(reg, "0.2.0"), 1_900_000_010)
    _code, found = findings()
    assert [f["message"].split(":")[0] for f in found] == ["m#staging#4"]


def test_a_report_for_other_bytes_does_not_count(reg: Path) -> None:
    add_report(reg, commit_of(reg, "0.1.0"), "staging", True, "f" * 64)
    tag_at(reg, "m#staging#3", commit_of(reg, "0.1.0"), 1_900_000_000)
    assert findings()[0] == 1


def test_production_before_staging_and_a_rollback_never_live_are_findings(reg: Path) -> None:
    add_report(reg, commit_of(reg, "0.2.0"), "production", True, sha_of(reg, "0.2.0"))
    tag_at(reg, "m#production#3", commit_of(reg, "0.2.0"), 1_900_000_000)
    rollback = "Roll back\n\nmlopsctl:\n  event: rollback\n  rollback: true\n"
    tag_at(reg, "m#production#4", commit_of(reg, "0.1.0"), 1_900_000_010, rollback)
    _code, found = findings()
    messages = sorted(f["message"] for f in found)
    assert messages[0].startswith("m#production#3: v0.2.0 entered production before staging")
    assert messages[1].startswith("m#production#4: a rollback to v0.1.0, which was never live")


def test_a_stage_on_a_commit_without_a_version_is_a_finding(reg: Path) -> None:
    tag_at(reg, "m#staging#3", git(reg, "rev-parse", "HEAD~2"), 1_900_000_000)
    _code, found = findings()
    assert "has no registered version" in found[0]["message"]


# --- the remote -----------------------------------------------------------------------------


def test_remote_finds_a_blob_missing_from_the_artifact_remote(reg: Path) -> None:
    assert findings("--remote") == (0, [])
    project = Project.open(reg)
    manifest = project.manifest("m", "0.1.0")
    assert manifest is not None
    project.remote.object_path(manifest.artifact.stored.md5).unlink()
    assert findings() == (0, [])  # without --remote the remote is not asked
    _code, found = findings("--remote")
    assert [f["check"] for f in found] == ["remote"]
    assert "m@0.1.0" in found[0]["message"]


# --- paths (pre-commit) and the cache ---------------------------------------------------------


def test_paths_restrict_the_file_checks(reg: Path) -> None:
    card = reg / ".mlops" / "models" / "m" / "model.yaml"
    card.write_text(card.read_text() + "colour: blue\n")
    tag_at(reg, "m#staging#3", commit_of(reg, "0.1.0"), 1_900_000_000)
    code, found = findings(".mlops/config.yaml", "README.md")
    assert (code, found) == (0, [])
    _code, found = findings(str(card))
    assert [f["field"] for f in found] == ["colour"]


def test_unchanged_files_are_not_parsed_twice(reg: Path) -> None:
    first = json.loads(run("check", "--json").out)["checked"]
    second = json.loads(run("check", "--json").out)["checked"]
    assert first["files"] == second["files"] >= 8
    assert second["parsed"] == 0
    card = reg / ".mlops" / "models" / "m" / "model.yaml"
    card.write_text(card.read_text() + "colour: blue\n")
    assert findings()[0] == 1
    assert findings()[0] == 1  # a failing verdict is never cached
    shutil.rmtree(reg / ".git" / "mlopsctl")
    assert json.loads(run("check", "--json").out)["checked"]["parsed"] == first["parsed"]


# --- CI output ---------------------------------------------------------------------------------


def test_the_cache_is_trimmed_to_what_a_run_used(reg: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from mlopsctl import checks

    assert findings() == (0, [])
    path = reg / ".git" / "mlopsctl" / "check-cache.json"
    doc = json.loads(path.read_text())
    doc["blobs"].update({f"{i:040x}": {"kind": "card"} for i in range(20)})
    path.write_text(json.dumps(doc))
    monkeypatch.setattr(checks, "MAX_CACHED", 10)
    card = reg / ".mlops" / "models" / "m" / "model.yaml"
    card.write_text(card.read_text() + "\n")  # a new verdict, so the cache is written
    assert findings() == (0, [])
    kept = json.loads(path.read_text())["blobs"]
    assert not any(key.startswith("0000000000") for key in kept)
    assert len(kept) <= 12


def test_cached_verdicts_never_hide_a_change(reg: Path) -> None:
    assert findings() == (0, [])
    assert findings() == (0, [])  # everything cached now: pin, files, tagged ids, tag blocks
    policy = reg / ".mlops" / "policy.yaml"
    original = policy.read_bytes()
    policy.write_text(policy.read_text().replace("weight: 1", "weight: 0.5", 1))
    assert [f["check"] for f in findings()[1]] == ["pin"]
    policy.write_bytes(original)
    assert findings() == (0, [])
    config = reg / ".mlops" / "config.yaml"
    config.write_text(config.read_text().replace("signing: optional", "signing: maybe"))
    assert [f["field"] for f in findings()[1]] == ["signing"]
    git(reg, "checkout", "--", ".mlops/config.yaml")
    tag_at(reg, "m#staging#3", commit_of(reg, "0.1.0"), 1_900_000_000)
    assert [f["check"] for f in findings()[1]] == ["gates"]


def test_github_actions_annotations_summary_and_outputs(reg: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    assert ok("check").code == 0
    assert "no findings" in summary.read_text() or ":white_check_mark:" in summary.read_text()
    config = reg / ".mlops" / "config.yaml"
    config.write_text(config.read_text() + "bogus: 1\n")
    result = run("check")
    assert result.code == 1
    line = len(config.read_text().splitlines())
    assert (f"::error file=.mlops/config.yaml,line={line},title=mlopsctl schema::"
            "field 'bogus': Extra inputs are not permitted") in result.out
    assert "| .mlops/config.yaml:" in summary.read_text()
    assert outputs.read_text().splitlines()[-2:] == ["ok=false", "findings=1"]
    result = run("check", "--json")  # stdout stays one JSON document; annotations on stderr
    assert json.loads(result.out)["findings"][0]["field"] == "bogus"
    assert "::error file=.mlops/config.yaml," in result.err


def test_gitlab_code_quality_report(reg: Path, tmp_path: Path) -> None:
    config = reg / ".mlops" / "config.yaml"
    config.write_text(config.read_text() + "bogus: 1\n")
    report = tmp_path / "gl-code-quality.json"
    assert run("check", "--codequality", report).code == 1
    (issue,) = json.loads(report.read_text())
    assert issue["location"]["path"] == ".mlops/config.yaml"
    assert issue["location"]["lines"]["begin"] == len(config.read_text().splitlines())
    assert issue["check_name"] == "mlopsctl-schema" and len(issue["fingerprint"]) == 64


def test_outside_a_registry_is_an_environment_error(repo: Path) -> None:
    result = run("check")
    assert result.code == 3
    assert "mlopsctl init" in result.err


# --- check-ref ------------------------------------------------------------------------------------


def test_check_ref_on_a_production_stage_tag_names_stage_and_version(
        reg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tag_at(reg, "m#staging#3", commit_of(reg, "0.2.0"), 1_900_000_000)
    tag_at(reg, "m#production#4", commit_of(reg, "0.2.0"), 1_900_000_010,
           "Promote\n\nmlopsctl:\n  event: promote\n  actor: Grace <grace@example.com>\n")
    outputs, summary = tmp_path / "out", tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    info = json.loads(ok("check-ref", "refs/tags/m#production#4", "--json").out)
    assert (info["event"], info["model"], info["version"], info["stage"], info["counter"]) == \
        ("assign", "m", "v0.2.0", "production", 4)
    assert info["actor"] == "Grace <grace@example.com>"
    assert info["signed"] is False and info["recorded_by_mlopsctl"] is True
    lines = outputs.read_text().splitlines()
    assert {"event=assign", "model=m", "name=m", "version=v0.2.0", "stage=production",
            "signed=false"} <= set(lines)
    assert "**production**" in summary.read_text()
    text = ok("check-ref", "m@v0.1.0").out
    assert "event:        register" in text and "version:      v0.1.0" in text


def test_check_ref_exits_2_for_what_is_not_a_registry_event(reg: Path) -> None:
    head = git(reg, "rev-parse", "HEAD")
    git(reg, "tag", "-a", "release-7", "-m", "ordinary", head)
    git(reg, "tag", "m@v9.0.0", head)  # lightweight: no event
    for ref in ("refs/heads/main", "release-7", "refs/tags/release-7", "m@v9.0.0",
                "m@v8.0.0", "m@created"):
        result = run("check-ref", ref)
        assert result.code == 2, (ref, result)
        assert "hint:" in result.err


def test_check_ref_says_whether_a_tag_is_signed(reg: Path, tmp_path: Path) -> None:
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True,
                   capture_output=True)
    git(reg, "config", "gpg.format", "ssh")
    git(reg, "-c", f"user.signingkey={key}.pub", "tag", "-s", "-m", "signed\n",
        "m#staging#3", commit_of(reg, "0.1.0"))
    info = json.loads(ok("check-ref", "m#staging#3", "--json").out)
    assert info["signed"] is True
    assert info["signature_ok"] is None  # no allowed-signers file pinned: nothing to judge by
    assert json.loads(ok("check-ref", "m@v0.1.0", "--json").out)["signed"] is False
