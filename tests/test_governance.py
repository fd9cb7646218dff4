"""Governance you can enforce (issue 8): each bypass found by trying the gates as an attacker
would is a test here, on real repositories with real git and real SSH keys.

- one pin over policy rules, trusted types and every environment's gates, requires and
  approvals; a pin edited by hand is caught; an old registry is re-pinned by `policy accept`;
- identity is git's own (a repository-local user.email wins); every write checks a role.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import IDENTITY, git, run

from mlopsctl import promotion
from mlopsctl.project import Project

CONFIG = ".mlops/config.yaml"
POLICY = ".mlops/policy.yaml"


def load(repo: Path, rel: str) -> dict[str, Any]:
    return dict(yaml.safe_load((repo / rel).read_text()))


def save(repo: Path, rel: str, doc: dict[str, Any]) -> None:
    (repo / rel).write_text(yaml.safe_dump(doc, sort_keys=False))


def edit_env(repo: Path, env: str, **changes: Any) -> None:
    config = load(repo, CONFIG)
    config["environments"][env].update(changes)
    save(repo, CONFIG, config)


def pinned(repo: Path) -> str:
    return str(load(repo, CONFIG)["constitutional_hash"])


def governed_hash(repo: Path) -> str:
    return Project.open(repo).policy_hash()


def check(repo: Path) -> tuple[int, list[str]]:
    result = run("policy", "check", "--json")
    return result.code, json.loads(result.out)["problems"]


def doctor_policy(repo: Path) -> tuple[int, dict[str, Any]]:
    result = run("doctor", "--json")
    finding = next(f for f in json.loads(result.out) if f["check"] == "policy pin")
    return result.code, finding


# --- 1. gates belong to the constitution ------------------------------------------------------


@pytest.mark.parametrize("change", [
    {"gates": {"accuracy": {"min": 0.1}}},  # lowered a gate
    {"requires": []},  # production no longer needs staging
    {"approvals": 2},
    {"model_gates": {"clf": {"rmse": {"max": 3.0}}}},
])
def test_changing_gates_requires_or_approvals_is_drift(registry: Path,
                                                       change: dict[str, Any]) -> None:
    assert check(registry) == (0, [])
    edit_env(registry, "production", **change)

    code, problems = check(registry)
    assert code == 1 and any("drifted" in p for p in problems)
    assert doctor_policy(registry)[0] == 1
    assert doctor_policy(registry)[1]["status"] == "fail"
    result = run("promote", "clf", "--to", "production")
    assert result.code == 1 and "drifted" in result.err


def test_trusted_types_are_governed(registry: Path) -> None:
    policy = load(registry, POLICY)
    policy["trusted_types"] = ["sklearn.linear_model.LogisticRegression"]
    save(registry, POLICY, policy)
    code, problems = check(registry)
    assert code == 1 and any("drifted" in p for p in problems)


def test_comments_and_number_spelling_are_not_drift(registry: Path) -> None:
    before = governed_hash(registry)
    with (registry / POLICY).open("a") as fh:
        fh.write("# a reviewer's note\n")
    text = (registry / CONFIG).read_text().replace("min: 0.85", "min: 0.850")
    (registry / CONFIG).write_text(text + "# another note\n")
    assert governed_hash(registry) == before
    assert check(registry) == (0, [])


def test_a_report_is_stale_once_the_gates_change(registry: Path) -> None:
    project = Project.open(registry)
    old = project.policy_hash()
    edit_env(registry, "staging", gates={"accuracy": {"min": 0.99}})
    assert run("policy", "accept", "-m", "stricter staging").code == 0
    project = Project.open(registry)
    new = project.policy_hash()
    assert new != old and project.config.constitutional_hash == new

    class Artifact:
        sha256 = "a" * 64

    class Manifest:
        artifact = Artifact()

    report = {"passed": True, "artifact_sha256": "a" * 64, "policy_hash": old}
    assert promotion.report_is_fresh(report, Manifest(), old)  # type: ignore[arg-type]
    assert not promotion.report_is_fresh(report, Manifest(), new)  # type: ignore[arg-type]


def test_a_hand_typed_pin_is_caught_before_and_after_commit(registry: Path) -> None:
    policy = load(registry, POLICY)
    policy["rules"] = [r for r in policy["rules"] if r["id"] != "accuracy-floor"]
    save(registry, POLICY, policy)
    forged = governed_hash(registry)
    config = (registry / CONFIG).read_text().replace(pinned(registry), forged)
    (registry / CONFIG).write_text(config)  # typed the new hash in by hand

    code, problems = check(registry)
    assert code == 1 and any("edited by hand" in p for p in problems)
    assert doctor_policy(registry)[0] == 1
    assert run("bump", "clf", "--artifact", "nothing.pkl").code == 1

    git(registry, "commit", "-q", "-am", "loosen the policy")  # ... and committed it
    code, problems = check(registry)
    assert code == 1 and any("not by `mlopsctl policy accept`" in p for p in problems)
    assert doctor_policy(registry)[0] == 1

    # `policy accept` is the way: it records an acceptance and the pin is sound again.
    result = run("policy", "accept", "-m", "drop the accuracy rule, reviewed")
    assert result.code == 0, result.err
    assert check(registry) == (0, [])
    assert doctor_policy(registry)[1]["status"] == "ok"


def test_a_registry_of_the_previous_release_is_repinned_by_accept(registry: Path) -> None:
    # The previous release pinned sha256(policy.yaml) alone.
    legacy = hashlib.sha256((registry / POLICY).read_bytes()).hexdigest()[:16]
    text = (registry / CONFIG).read_text().replace(pinned(registry), legacy)
    (registry / CONFIG).write_text(text)
    git(registry, "commit", "-q", "-am", f"mlopsctl: accept policy {legacy}")

    code, problems = check(registry)
    assert code == 1 and any("earlier release" in p for p in problems)
    result = run("promote", "clf", "--to", "staging")
    assert result.code == 1 and "policy accept" in result.err

    assert run("policy", "accept", "-m", "pin the gates").code == 0
    assert check(registry) == (0, [])
    assert pinned(registry) == governed_hash(registry)


def test_model_gates_merge_over_the_environments(registry: Path) -> None:
    edit_env(registry, "staging", model_gates={"reg": {"rmse": {"max": 4.5},
                                                       "r2": {"min": 0.8}}})
    env = Project.open(registry).config.environments["staging"]
    assert env.gates["r2"].min == 0.70  # the default regression gate
    merged = env.gates_for("reg")
    assert merged["rmse"].max == 4.5 and merged["r2"].min == 0.8
    assert merged["accuracy"].min == 0.85
    assert "rmse" not in env.gates_for("clf")


def test_policy_show_lists_the_governed_environments(registry: Path) -> None:
    result = run("policy", "show", "--json")
    doc = json.loads(result.out)
    assert doc["environments"]["production"]["requires"] == ["staging"]
    assert doc["environments"]["staging"]["gates"]["r2"] == {"min": 0.7}
    assert doc["trusted_types"] == []


# --- 2. identity and roles --------------------------------------------------------------------


def no_env_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)


def test_a_repository_local_email_wins_over_the_global_one(
        registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_env_identity(monkeypatch)
    subprocess.run(["git", "config", "--global", "user.name", "Ada Lovelace"], check=True)
    subprocess.run(["git", "config", "--global", "user.email", "ada@example.com"], check=True)
    git(registry, "config", "user.email", "mallory@example.com")  # not a member

    from mlopsctl.gitops.identity import find_identity

    assert find_identity(registry).email == "mallory@example.com"  # type: ignore[union-attr]
    result = run("rollback", "clf", "--env", "staging")
    assert result.code == 1 and "mallory@example.com is not a member" in result.err
    result = run("policy", "accept", "-m", "x")
    assert result.code == 1 and "mallory@example.com" in result.err


@pytest.mark.parametrize("args", [
    ("policy", "accept", "-m", "mine now"),
    ("gc",),
    ("bump", "clf", "--artifact", "model.pkl"),
])
def test_every_write_checks_a_role(registry: Path, monkeypatch: pytest.MonkeyPatch,
                                   args: tuple[str, ...]) -> None:
    (registry / "model.pkl").write_bytes(b"not a model")
    access = load(registry, ".mlops/access.yaml")
    access["members"].append({"email": "vic@example.com", "roles": ["viewer"]})
    save(registry, ".mlops/access.yaml", access)
    git(registry, "commit", "-q", "-am", "vic views")
    if args[0] == "policy":
        edit_env(registry, "staging", approvals=1)  # something for `policy accept` to accept
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "vic@example.com")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "vic@example.com")
    before = git(registry, "rev-parse", "HEAD")

    result = run(*args)
    assert result.code == 1, result
    assert "vic@example.com lacks the permission" in result.err
    assert git(registry, "rev-parse", "HEAD") == before


# --- 3 and 4. approvals and rollback, on a real released classifier ------------------------------
# The registry of the release tests (three versions of a real classifier, validated; 0.1.0 and
# 0.2.0 promoted to staging) is built once for this module.

from test_promotion import (  # noqa: E402
    MODEL,
    Snapshot,
    assert_live,
    commit_as_ada,
    copy_snapshot,
    make_snapshots,
    ok,
    settle,
    tag_data,
)

BOB = {"GIT_AUTHOR_NAME": "Bob Reviewer", "GIT_AUTHOR_EMAIL": "bob@example.com",
       "GIT_COMMITTER_NAME": "Bob Reviewer", "GIT_COMMITTER_EMAIL": "bob@example.com"}


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Snapshot]:
    return make_snapshots(tmp_path_factory.mktemp("released"),
                          {"0.1.0": ("staging", "production"),
                           "0.2.0": ("staging", "production"), "0.3.0": ("staging",)},
                          {"staged": ("0.1.0", "0.2.0")})


@pytest.fixture
def staged(released: dict[str, Snapshot], tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Snapshot:
    snap = copy_snapshot(released["staged"], tmp_path / "staged")
    monkeypatch.setenv("HOME", str(snap.home))
    monkeypatch.chdir(snap.repo)
    return snap


def as_identity(monkeypatch: pytest.MonkeyPatch, who: dict[str, str]) -> None:
    for key, value in who.items():
        monkeypatch.setenv(key, value)


def add_member(repo: Path, email: str, roles: list[str],
               role_defs: dict[str, list[str]] | None = None) -> None:
    access = load(repo, ".mlops/access.yaml")
    access["members"].append({"email": email, "roles": roles})
    access["roles"].update(role_defs or {})
    save(repo, ".mlops/access.yaml", access)
    commit_as_ada(repo, f"access: {email}", ".mlops/access.yaml")


def test_promote_needs_approvals_from_others_holding_approve(
        staged: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = staged.repo
    add_member(repo, "bob@example.com", ["reviewer"],
               {"reviewer": ["approve:production", "show"]})
    add_member(repo, "vic@example.com", ["viewer"])
    edit_env(repo, "production", approvals=1)
    ok("policy", "accept", "-m", "production needs a reviewer")

    refused = run("promote", MODEL, "0.2.0", "--to", "production")
    assert refused.code == 1
    assert "needs 1 approval(s)" in refused.err and "mlopsctl approve" in refused.err

    ok("approve", MODEL, "0.2.0", "--env", "production")  # ada, the promoter: does not count
    refused = run("promote", MODEL, "0.2.0", "--to", "production")
    assert refused.code == 1 and "cannot approve their own release" in refused.err

    as_identity(monkeypatch, {**BOB, "GIT_COMMITTER_EMAIL": "vic@example.com"})
    viewer = run("approve", MODEL, "0.2.0", "--env", "production")
    assert viewer.code == 1 and "approve:production" in viewer.err

    as_identity(monkeypatch, BOB)
    approved = json.loads(ok("approve", MODEL, "0.2.0", "--env", "production", "-m", "LGTM",
                             "--json"))
    assert approved["approver"] == "bob@example.com" and approved["message"] == "LGTM"
    as_identity(monkeypatch, IDENTITY)
    released_ = json.loads(ok("promote", MODEL, "0.2.0", "--to", "production", "--json"))
    assert released_["approvals"] == ["bob@example.com"]
    assert tag_data(repo, released_["tag"])["approvals"] == ["bob@example.com"]
    assert_live(staged, "production", "0.2.0")
    rows = {r["environment"]: r for r in json.loads(ok("status", "--json"))}
    assert rows["production"]["approvals"] == ["bob@example.com"]

    # An approval is for one artifact: 0.1.0 is not approved by Bob's approval of 0.2.0.
    refused = run("promote", MODEL, "0.1.0", "--to", "production")
    assert refused.code == 1 and "has 0" in refused.err


def test_a_second_rollback_walks_back_instead_of_forward(staged: Snapshot) -> None:
    settle()
    ok("promote", MODEL, "0.3.0", "--to", "staging")  # staging: 0.1.0, 0.2.0, 0.3.0
    assert_live(staged, "staging", "0.3.0")
    settle()
    first = json.loads(ok("rollback", MODEL, "--env", "staging", "--json"))
    assert first["version"] == "v0.2.0"
    settle()
    second = json.loads(ok("rollback", MODEL, "--env", "staging", "--json"))
    assert second["version"] == "v0.1.0"  # not 0.3.0 again, the version just rolled back
    assert_live(staged, "staging", "0.1.0")
    settle()
    third = run("rollback", MODEL, "--env", "staging")
    assert third.code == 1 and "no earlier version" in third.err
    assert "promote" in third.err  # says how to go forward instead
    assert_live(staged, "staging", "0.1.0")


def test_live_history_is_an_undo_stack() -> None:
    from mlopsctl import registry as reg
    from mlopsctl.gitops import tags as T

    def event(kind: str, version: str, t: int, rollback: bool = False) -> reg.Event:
        message = "x\n\nmlopsctl:\n  rollback: true\n" if rollback else "x"
        return reg.Event(kind, "m", f"m#prod#{t}", "c", t, "", "", "", message, version=version,
                         stage="prod", counter=t)

    state = reg.ModelState("m", events=[
        event(T.ASSIGN, "v1", 1), event(T.ASSIGN, "v2", 2), event(T.ASSIGN, "v3", 3),
        event(T.ASSIGN, "v2", 4, rollback=True), event(T.ASSIGN, "v4", 5),
        event(T.UNASSIGN, "v1", 6)])
    assert promotion.live_history(state, "prod") == ["v2", "v4"]
    assert promotion.live_history(state, "other") == []
