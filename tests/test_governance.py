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


def test_a_remembered_good_pin_does_not_hide_a_later_hand_edit(registry: Path) -> None:
    """The provenance verdict is remembered with the commit it was reached at (searching the
    whole history costs seconds at 100,000 commits); commits made since are still searched,
    and a rewritten history is searched whole."""
    project = Project.open(registry)
    assert project.pin_provenance() is None  # remembered at this commit
    remembered = registry / ".git" / "mlopsctl" / "pin-provenance.json"
    assert remembered.is_file()
    (registry / "code.py").write_text("x = 1\n")
    git(registry, "add", "code.py")
    git(registry, "commit", "-q", "-m", "some code")
    assert Project.open(registry).pin_provenance() is None  # only the new commit searched

    policy = load(registry, POLICY)
    policy["rules"] = [r for r in policy["rules"] if r["id"] != "accuracy-floor"]
    save(registry, POLICY, policy)
    config = (registry / CONFIG).read_text().replace(pinned(registry), governed_hash(registry))
    (registry / CONFIG).write_text(config)
    git(registry, "commit", "-q", "-am", "loosen the policy")  # a pin typed in and committed
    problem = Project.open(registry).pin_provenance()
    assert problem is not None and "not by `mlopsctl policy accept`" in problem

    git(registry, "reset", "-q", "--hard", "HEAD~2")  # history rewritten under the verdict
    remembered.write_text(json.dumps({"pin": pinned(registry), "head": "0" * 40}))
    assert Project.open(registry).pin_provenance() is None


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


# --- 5. signing: required — signed reports, trusted events, the trust anchor ---------------------

from test_signing import PRINCIPALS, SIGNERS, edit_config, pub, tag  # noqa: E402
from test_signing import keys as keys  # noqa: E402  (the module-scoped key pairs fixture)


def sign_with(repo: Path, key: Path) -> None:
    git(repo, "config", "gpg.format", "ssh")
    git(repo, "config", "user.signingkey", f"{key}.pub")
    git(repo, "config", "commit.gpgsign", "true")


def signers_line(name: str, keys: dict[str, Path]) -> str:
    return f"{PRINCIPALS[name]} {pub(keys[name])}"


@pytest.fixture
def anchored(repo: Path, keys: dict[str, Path], tmp_path: Path) -> Path:
    """A registry whose every governance commit is signed by ada, the founding admin named in
    a trust anchor outside the repository (tmp_path/anchor); dev is a developer, vic a viewer,
    eve a stranger; `signing: required`."""
    sign_with(repo, keys["ada"])
    assert run("init").code == 0
    (repo / SIGNERS).write_text("".join(signers_line(n, keys) + "\n"
                                        for n in ("ada", "dev", "vic")))
    access = load(repo, ".mlops/access.yaml")
    access["members"] += [{"email": "dev@example.com", "roles": ["developer"]},
                          {"email": "vic@example.com", "roles": ["viewer"]}]
    save(repo, ".mlops/access.yaml", access)
    pin = hashlib.sha256((repo / SIGNERS).read_bytes()).hexdigest()[:16]
    edit_config(repo, signing="required", allowed_signers=SIGNERS, allowed_signers_hash=pin)
    git(repo, "add", ".mlops")
    git(repo, "commit", "-q", "-m", "signing: allowed signers, members")
    (tmp_path / "anchor").write_text(signers_line("ada", keys) + "\n")
    return repo


def verify_anchored(repo: Path, anchor: Path) -> tuple[int, dict[str, Any]]:
    result = run("verify", "--signatures", "--trust-anchor", anchor, "--json")
    return result.code, json.loads(result.out) if result.out else {"err": result.err}


def commit_signed_by(repo: Path, key: Path, message: str, email: str) -> None:
    git(repo, "add", ".mlops")
    git(repo, "-c", f"user.signingkey={key}.pub", "-c", f"user.email={email}", "commit", "-q",
        "-m", message)


def test_an_admin_signed_governance_history_verifies_from_the_anchor(
        anchored: Path, tmp_path: Path) -> None:
    code, doc = verify_anchored(anchored, tmp_path / "anchor")
    assert code == 0, doc
    assert [c["ok"] for c in doc["governance"]] == [True, True]
    assert {c["signer"] for c in doc["governance"]} == {"ada@example.com"}


def test_a_signer_who_makes_himself_admin_is_refused(anchored: Path, keys: dict[str, Path],
                                                    tmp_path: Path) -> None:
    access = load(anchored, ".mlops/access.yaml")
    for member in access["members"]:
        if member["email"] == "dev@example.com":
            member["roles"] = ["admin"]
    save(anchored, ".mlops/access.yaml", access)
    commit_signed_by(anchored, keys["dev"], "dev is admin now", "dev@example.com")
    tag(anchored, "clf@v0.1.0", keys["dev"])  # ... then acts as one
    tag(anchored, "clf#production#1", keys["dev"])

    code, doc = verify_anchored(anchored, tmp_path / "anchor")
    assert code == 1
    last = doc["governance"][-1]
    assert last["ok"] is False and "not an admin" in last["problem"]
    assert doc["ok"] is False


def test_an_outsider_who_adds_and_repins_her_key_is_refused(anchored: Path,
                                                           keys: dict[str, Path],
                                                           tmp_path: Path) -> None:
    with (anchored / SIGNERS).open("a") as fh:
        fh.write("eve@example.com " + pub(keys["eve"]) + "\n")
    pin = hashlib.sha256((anchored / SIGNERS).read_bytes()).hexdigest()[:16]
    edit_config(anchored, allowed_signers_hash=pin)
    access = load(anchored, ".mlops/access.yaml")
    access["members"].append({"email": "eve@example.com", "roles": ["admin"]})
    save(anchored, ".mlops/access.yaml", access)
    commit_signed_by(anchored, keys["eve"], "welcome eve", "eve@example.com")
    for name in ("clf@v0.1.0", "clf#staging#1", "clf#production#2"):
        tag(anchored, name, keys["eve"])
    assert run("verify", "--signatures").code == 0  # the repository alone vouches for her

    code, doc = verify_anchored(anchored, tmp_path / "anchor")
    assert code == 1
    assert doc["governance"][-1]["ok"] is False


def test_an_unsigned_policy_change_is_refused(anchored: Path, tmp_path: Path) -> None:
    policy = load(anchored, POLICY)
    policy["rules"] = policy["rules"][:1]
    save(anchored, POLICY, policy)
    git(anchored, "add", POLICY)
    git(anchored, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "fewer rules")
    code, doc = verify_anchored(anchored, tmp_path / "anchor")
    assert code == 1 and doc["governance"][-1]["problem"] == "unsigned"


def test_verify_flags_an_actor_who_is_not_the_signer_and_out_of_history_rollbacks(
        anchored: Path, keys: dict[str, Path]) -> None:
    tag(anchored, "clf@v0.1.0", keys["ada"])
    tag(anchored, "clf#staging#1", keys["dev"],
        "Promote\n\nmlopsctl:\n  event: promote\n  actor: Ada Lovelace <ada@example.com>\n")
    tag(anchored, "clf#production#2", keys["ada"],
        "Roll back\n\nmlopsctl:\n  event: rollback\n  rollback: true\n"
        "  actor: Ada Lovelace <ada@example.com>\n")  # never live in production before

    result = run("verify", "--signatures", "--json")
    assert result.code == 1
    checks = {c["tag"]: c for c in json.loads(result.out)["tags"]}
    assert checks["clf@v0.1.0"]["ok"] is True
    assert "is not the signer" in checks["clf#staging#1"]["problem"]
    assert "never live in production" in checks["clf#production#2"]["problem"]


def test_reports_count_only_when_signed_by_a_validator(anchored: Path,
                                                      keys: dict[str, Path]) -> None:
    from mlopsctl.attest import REPORT_NAMESPACE, sign
    from mlopsctl.trust import report_problem

    project = Project.open(anchored)
    forged = {"passed": True, "artifact_sha256": "a" * 64, "policy_hash": pinned(anchored),
              "validated_by": "Dev <dev@example.com>"}
    assert "not validly signed (unsigned)" in str(report_problem(project, forged, "staging"))

    def signed_by(name: str, doc: dict[str, Any]) -> dict[str, Any]:
        git(anchored, "config", "user.signingkey", f"{keys[name]}.pub")
        return {**doc, "signature": sign(anchored, doc, REPORT_NAMESPACE)}

    good = signed_by("dev", forged)
    assert report_problem(project, good, "staging") is None
    tampered = {**good, "passed": True, "artifact_sha256": "b" * 64}
    assert "not validly signed" in str(report_problem(project, tampered, "staging"))
    viewer = signed_by("vic", {**forged, "validated_by": "Vic <vic@example.com>"})
    assert "do not grant validate:staging" in str(report_problem(project, viewer, "staging"))
    impostor = signed_by("ada", forged)  # ada signs a report that names dev
    assert "signed by ada@example.com" in str(report_problem(project, impostor, "staging"))
    stranger = signed_by("eve", forged)
    assert "not in the allowed-signers file" in str(report_problem(project, stranger, "staging"))


def test_a_hand_written_note_does_not_release_and_forged_tags_are_not_events(
        anchored: Path, keys: dict[str, Path]) -> None:
    (anchored / "model.pkl").write_bytes(b"junk that is no model")
    assert run("bump", "clf", "--artifact", "model.pkl").code == 0  # signed by ada
    commit = git(anchored, "rev-parse", "clf@v0.1.0^{commit}")
    sha = load(anchored, ".mlops/models/clf/versions/0.1.0.yaml")["artifact"]["sha256"]
    forged = {"validations": {"staging": {"passed": True, "artifact_sha256": sha,
                                          "policy_hash": pinned(anchored)}}}
    subprocess.run(["git", "notes", "--ref=refs/notes/mlops", "add", "-f", "-m",
                    json.dumps(forged), commit], cwd=anchored, check=True)

    result = run("promote", "clf", "0.1.0", "--to", "staging")
    assert result.code == 1
    assert "not validly signed" in result.err and "no passing validation" in result.err
    assert git(anchored, "tag", "-l", "clf#*") == ""

    # An unsigned stage tag made by hand: not an event for status or sync.
    git(anchored, "-c", "tag.gpgsign=false", "tag", "-a", "-m", "forged", "clf#staging#7",
        commit)
    rows = json.loads(run("status", "--json").out)
    assert [r for r in rows if r["environment"] == "staging"] == []
    assert run("sync").code == 0
    assert not (anchored / ".mlops" / "deploy" / "staging" / "clf").exists()
    shown = json.loads(run("show", "--json").out)["clf"]
    assert not shown["stage"].get("staging")
    assert shown["version"] == "v0.1.0"  # the signed registration still counts


def test_verify_release_recomputes_instead_of_trusting_the_note(staged: Snapshot) -> None:
    tags = sorted(git(staged.repo, "tag", "-l", f"{MODEL}#staging#*").split())
    holder = json.loads(ok("verify", "--release", f"{MODEL}#staging", "--json"))
    assert holder["passed"] is True and holder["version"] == "v0.2.0"
    notes_before = git(staged.repo, "rev-parse", "refs/notes/mlops")

    # The note for 0.2.0 still says "passed"; the gates, recomputed, now say otherwise.
    edit_env(staged.repo, "staging", gates={"accuracy": {"min": 0.999}})
    ok("policy", "accept", "-m", "a floor nobody meets")
    result = run("verify", "--release", tags[-1])
    assert result.code == 1 and "fails the gates of staging" in result.err
    assert "FAIL accuracy" in result.out
    assert git(staged.repo, "rev-parse", "refs/notes/mlops") == notes_before  # wrote nothing
    assert run("verify", "--release", "clf@v0.1.0").code == 2


def test_verify_checks_the_live_versions_approvals_and_their_signatures(
        anchored: Path, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    access = load(anchored, ".mlops/access.yaml")
    access["roles"]["reviewer"] = ["approve:production"]
    for member in access["members"]:
        if member["email"] == "dev@example.com":
            member["roles"] = ["developer", "reviewer"]
    save(anchored, ".mlops/access.yaml", access)
    edit_env(anchored, "production", approvals=1)
    git(anchored, "add", ".mlops")
    git(anchored, "commit", "-q", "-m", "production needs a reviewer")
    assert run("policy", "accept", "-m", "approvals: 1").code == 0
    (anchored / "model.pkl").write_bytes(b"junk that is no model")
    assert run("bump", "clf", "--artifact", "model.pkl").code == 0
    commit = git(anchored, "rev-parse", "clf@v0.1.0^{commit}")
    tag(anchored, "clf#production#2", keys["ada"],
        "Promote\n\nmlopsctl:\n  event: promote\n  actor: Ada Lovelace <ada@example.com>\n",
        target=commit)  # made by hand, without an approval

    def problem() -> str | None:
        result = run("verify", "--signatures", "--json")
        return {c["tag"]: c for c in json.loads(result.out)["tags"]}["clf#production#2"][
            "problem"]

    assert "0 of the 1 approval(s)" in str(problem())

    # A hand-written approval in the note, unsigned: still not counted.
    note = {"approvals": {"production": [{"approver": "dev@example.com",
                                          "environment": "production",
                                          "artifact_sha256": load(
                                              anchored, ".mlops/models/clf/versions/0.1.0.yaml"
                                          )["artifact"]["sha256"]}]}}
    subprocess.run(["git", "notes", "--ref=refs/notes/mlops", "add", "-f", "-m",
                    json.dumps(note), commit], cwd=anchored, check=True)
    assert "0 of the 1 approval(s)" in str(problem())

    # Dev approves with his own key: signed, counted (and the live version needs a signed
    # passing report for production as well).
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "dev@example.com")
    git(anchored, "config", "user.signingkey", f"{keys['dev']}.pub")
    put_signed_report(anchored, commit, "production", "Dev <dev@example.com>")
    approved = json.loads(run("approve", "clf", "0.1.0", "--env", "production", "--json").out)
    assert "BEGIN SSH SIGNATURE" in approved["signature"]
    assert problem() is None


def test_a_signed_rollback_to_a_never_live_version_does_not_go_live(
        anchored: Path, keys: dict[str, Path]) -> None:
    (anchored / "model.pkl").write_bytes(b"junk that is no model")
    assert run("bump", "clf", "--artifact", "model.pkl").code == 0
    commit = git(anchored, "rev-parse", "clf@v0.1.0^{commit}")
    git(anchored, "-c", "tag.gpgsign=false", "tag", "-a", "-m", "forged", "clf#staging#2",
        commit)  # an unsigned assignment does not make it "live before"
    tag(anchored, "clf#staging#3", keys["dev"],  # dev holds rollback:staging
        "Roll back\n\nmlopsctl:\n  event: rollback\n  rollback: true\n"
        "  actor: Dev <dev@example.com>\n", target=commit)

    rows = json.loads(run("status", "--json").out)
    assert [r for r in rows if r["environment"] == "staging"] == []
    assert run("sync").code == 0
    assert not (anchored / ".mlops" / "deploy" / "staging" / "clf").exists()
    result = run("verify", "--signatures", "--json")
    checks = {c["tag"]: c for c in json.loads(result.out)["tags"]}
    assert "never live in staging" in checks["clf#staging#3"]["problem"]
    assert checks["clf#staging#2"]["problem"] == "unsigned"


def put_signed_report(repo: Path, commit: str, env: str, validator: str,
                      passed: bool = True) -> dict[str, Any]:
    """A report in the note, signed with git's current user.signingkey."""
    from mlopsctl.attest import REPORT_NAMESPACE, signed
    from mlopsctl.gitops.notes import merge_note

    sha = load(repo, ".mlops/models/clf/versions/0.1.0.yaml")["artifact"]["sha256"]
    report = signed(repo, {"passed": passed, "artifact_sha256": sha, "policy_hash": pinned(repo),
                           "validated_by": validator, "environment": env}, REPORT_NAMESPACE)
    merge_note(repo, commit, "validations", env, report)
    return report


def test_verify_checks_the_live_versions_signed_report(anchored: Path,
                                                      keys: dict[str, Path]) -> None:
    (anchored / "model.pkl").write_bytes(b"junk that is no model")
    assert run("bump", "clf", "--artifact", "model.pkl").code == 0
    commit = git(anchored, "rev-parse", "clf@v0.1.0^{commit}")
    tag(anchored, "clf#staging#2", keys["dev"],
        "Promote\n\nmlopsctl:\n  event: promote\n  actor: Dev <dev@example.com>\n",
        target=commit)

    def problem() -> str | None:
        result = run("verify", "--signatures", "--json")
        return {c["tag"]: c for c in json.loads(result.out)["tags"]}["clf#staging#2"]["problem"]

    assert problem() is None  # no report in the notes (not fetched?): nothing to judge
    git(anchored, "config", "user.signingkey", f"{keys['dev']}.pub")
    good = put_signed_report(anchored, commit, "staging", "Dev <dev@example.com>")
    assert problem() is None
    from mlopsctl.gitops.notes import merge_note

    merge_note(anchored, commit, "validations", "staging",
               {k: v for k, v in good.items() if k != "signature"})  # a hand-written copy
    assert "not validly signed" in str(problem())
    put_signed_report(anchored, commit, "staging", "Dev <dev@example.com>", passed=False)
    assert "did not pass" in str(problem())
