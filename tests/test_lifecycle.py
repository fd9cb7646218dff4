"""The lifecycle GTO users expect (issue 9): `deprecate`, `deregister`, `unassign` write GTO's
own tags, checked against access.yaml, shown by `history`, read identically by `gto`; an
unassignment moves the deploy target. Real registry, real models, real promotions, real gto.

One registry is built per module (three versions of a breast-cancer classifier, 0.1.0 and 0.2.0
validated and promoted to staging, so 0.2.0 is live and 0.1.0 warm) and copied into every test.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from conftest import git, isolate, make_repo, run

MODEL = "clf"
GTO = Path(sys.executable).parent / "gto"
ARTIFACT = "model.pkl"
DEV = {"GIT_AUTHOR_NAME": "Dee Veloper", "GIT_AUTHOR_EMAIL": "dev@example.com",
       "GIT_COMMITTER_NAME": "Dee Veloper", "GIT_COMMITTER_EMAIL": "dev@example.com"}
VIC = {"GIT_AUTHOR_NAME": "Vic Viewer", "GIT_AUTHOR_EMAIL": "vic@example.com",
       "GIT_COMMITTER_NAME": "Vic Viewer", "GIT_COMMITTER_EMAIL": "vic@example.com"}


class Snapshot(NamedTuple):
    repo: Path
    home: Path
    artifacts: dict[str, bytes]


def ok(*args: str) -> str:
    result = run(*args)
    assert result.code == 0, f"mlopsctl {' '.join(args)} -> {result.code}\n{result.err}"
    return result.err + result.out


def build(base: Path) -> Snapshot:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    repo = make_repo(base / "repo")
    frame = load_breast_cancer(as_frame=True).frame
    train, holdout = train_test_split(frame, test_size=0.3, random_state=0)
    (repo / "data").mkdir()
    train.to_csv(repo / "data" / "train.csv", index=False)
    holdout.to_csv(repo / "data" / "holdout.csv", index=False)
    (repo / ".gitignore").write_text(f"{ARTIFACT}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    os.chdir(repo)
    ok("init")
    artifacts = {}
    x, y = train.drop(columns=["target"]), train["target"]
    for number, c in (("0.1.0", 0.05), ("0.2.0", 1.0), ("0.3.0", 10.0)):
        blob = pickle.dumps(make_pipeline(StandardScaler(),
                                          LogisticRegression(C=c, max_iter=2000)).fit(x, y))
        artifacts[number] = blob
        (repo / ARTIFACT).write_bytes(blob)
        ok("bump", MODEL, "--artifact", ARTIFACT, "--data", "data/train.csv",
           "--version", number, "--holdout", "data/holdout.csv", "--target", "target",
           "--description", "flags malignant tumours",
           "--intended-use", "tests only, never a diagnosis", "-m", f"C={c}")
    procs = [subprocess.Popen([sys.executable, "-m", "mlopsctl", "validate", f"{MODEL}@{n}",
                               "--latency-runs", "5"], cwd=repo, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in ("0.1.0", "0.2.0")]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    ok("promote", MODEL, "0.1.0", "--to", "staging")
    ok("promote", MODEL, "0.2.0", "--to", "staging")
    access = repo / ".mlops" / "access.yaml"
    doc = yaml.safe_load(access.read_text())
    doc["members"] += [{"email": "dev@example.com", "roles": ["developer"]},
                       {"email": "vic@example.com", "roles": ["viewer"]}]
    access.write_text(yaml.safe_dump(doc, sort_keys=False))
    git(repo, "commit", "-q", "-m", "team", "--", ".mlops/access.yaml")
    return Snapshot(repo, base / "home", artifacts)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    root = tmp_path_factory.mktemp("lifecycle")
    old = os.getcwd()
    with pytest.MonkeyPatch.context() as mp:
        (root / "home").mkdir()
        isolate(mp, root / "home")
        try:
            return build(root)
        finally:
            os.chdir(old)


@pytest.fixture
def reg(prepared: Snapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Snapshot:
    repo, home = tmp_path / "repo", tmp_path / "home"
    shutil.copytree(prepared.repo, repo, symlinks=True)
    shutil.copytree(prepared.home, home, symlinks=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(repo)
    return Snapshot(repo, home, prepared.artifacts)


def as_user(monkeypatch: pytest.MonkeyPatch, who: dict[str, str]) -> None:
    for key, value in who.items():
        monkeypatch.setenv(key, value)


def tags(repo: Path) -> list[str]:
    return git(repo, "tag", "--list").split()


def tag_data(repo: Path, tag: str) -> dict[str, Any]:
    message = git(repo, "tag", "-l", "--format=%(contents)", tag)
    return yaml.safe_load(message.partition("\n\n")[2])["mlopsctl"]


def gto_reads(repo: Path, *commands: tuple[str, ...]) -> list[Any]:
    """Read-only `gto ... --json` commands, run concurrently (gto takes seconds each)."""
    procs = [subprocess.Popen([str(GTO), *cmd, "--json"], cwd=repo, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for cmd in commands]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        out.append(json.loads(stdout))
    return out


def mine_json(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def assert_gto_agrees(repo: Path, full: bool = True) -> None:
    """`show` (and with ``full``, `show --all` and `history`) as gto reads the same tags."""
    if not full:
        assert mine_json("show") == gto_reads(repo, ("show",))[0]
        return
    show, show_all, history = gto_reads(repo, ("show",), ("show", "-d"), ("history",))
    assert mine_json("show") == show
    assert mine_json("show", "--all") == show_all
    assert mine_json("history") == history


def live_version(repo: Path, env: str = "staging") -> str | None:
    current = repo / ".mlops" / "deploy" / env / MODEL / "current"
    if not current.exists():
        return None
    return "v" + json.loads((current / "slot.json").read_text())["version"]


# --- the scenario ------------------------------------------------------------------------------


def test_prepared_registry_is_what_it_claims(reg: Snapshot) -> None:
    assert mine_json("show")[MODEL] == {"version": "v0.3.0", "registered": True, "active": True,
                                        "stage": {"staging": "v0.2.0"}}
    assert live_version(reg.repo) == "v0.2.0"


# --- unassign -----------------------------------------------------------------------------------


def test_unassign_the_live_version_makes_the_target_follow(reg: Snapshot) -> None:
    before = set(tags(reg.repo))
    out = ok("unassign", MODEL, "--env", "staging", "-m", "bad predictions since 09:00")
    (new,) = set(tags(reg.repo)) - before
    assert new == "clf#staging!#3"  # GTO's counter: one sequence per artifact
    assert git(reg.repo, "rev-list", "-n1", new) == git(reg.repo, "rev-list", "-n1",
                                                          "clf@v0.2.0")
    data = tag_data(reg.repo, new)
    assert data["event"] == "unassign" and data["version"] == "0.2.0"
    assert data["actor"].startswith("Ada Lovelace") and data["environment"] == "staging"
    assert data["message"] == "bad predictions since 09:00"
    # GTO's fold: 0.1.0's assignment is still active, so it serves staging again; say so.
    assert "staging now serves clf v0.1.0" in out and "--all" in out
    assert mine_json("show")[MODEL]["stage"] == {"staging": "v0.1.0"}
    assert live_version(reg.repo) == "v0.1.0"
    assert run("status", "--env", "staging").code == 0  # the target is in sync
    assert_gto_agrees(reg.repo)


def test_unassign_all_leaves_the_environment_empty_and_undeployed(reg: Snapshot) -> None:
    result = json.loads(ok("unassign", MODEL, "--env", "staging", "--all", "--json"))
    assert result["unassigned"] == ["v0.2.0", "v0.1.0"] and result["live"] is None
    assert live_version(reg.repo) is None
    assert gto_reads(reg.repo, ("show",))[0][MODEL]["stage"] == {}
    again = run("unassign", MODEL, "--env", "staging")
    assert again.code == 0 and "nothing to do" in again.err
    ok("promote", MODEL, "0.2.0", "--to", "staging")  # it can come back
    assert live_version(reg.repo) == "v0.2.0"
    assert_gto_agrees(reg.repo, full=False)


def test_unassign_a_warm_version_leaves_the_live_one(reg: Snapshot) -> None:
    ok("unassign", MODEL, "--env", "staging", "--version", "0.1.0")
    assert live_version(reg.repo) == "v0.2.0"
    assert mine_json("show")[MODEL]["stage"] == {"staging": "v0.2.0"}
    assert_gto_agrees(reg.repo, full=False)


@pytest.mark.parametrize("args", [
    ("unassign", MODEL, "--env", "nowhere"),
    ("unassign", MODEL, "--env", "staging", "--version", "0.3.0"),  # never assigned
    ("unassign", MODEL, "--env", "staging", "--version", "0.1.0", "--all"),
    ("unassign", "ghost", "--env", "staging"),
    ("deregister", MODEL),
    ("deregister", f"{MODEL}@9.9.9"),
    ("deregister", f"{MODEL}@latest"),
    ("deprecate", "ghost"),
])
def test_bad_lifecycle_requests_are_usage_errors_and_write_nothing(reg: Snapshot,
                                                                  args: tuple[str, ...]) -> None:
    before = tags(reg.repo)
    result = run(*args)
    assert result.code == 2, result.err
    assert result.err.startswith("error: ")
    assert tags(reg.repo) == before


# --- deregister ---------------------------------------------------------------------------------


def test_deregister_withdraws_a_version_and_latest_falls_back(reg: Snapshot) -> None:
    ok("deregister", f"{MODEL}@0.3.0", "-m", "trained on leaked labels")
    assert "clf@v0.3.0!#3" in tags(reg.repo)
    data = tag_data(reg.repo, "clf@v0.3.0!#3")
    assert data["event"] == "deregister" and data["version"] == "0.3.0"
    assert mine_json("show")[MODEL]["version"] == "v0.2.0"
    assert_gto_agrees(reg.repo)
    again = run("deregister", f"{MODEL}@0.3.0")
    assert again.code == 0 and "already deregistered" in again.err


def test_deregister_refuses_a_version_an_environment_serves(reg: Snapshot) -> None:
    before = tags(reg.repo)
    result = run("deregister", f"{MODEL}@0.1.0")  # warm in staging, its assignment active
    assert result.code == 1
    assert "assigned to staging" in result.err
    assert "mlopsctl unassign clf --env staging --version 0.1.0" in result.err
    assert tags(reg.repo) == before
    ok("unassign", MODEL, "--env", "staging", "--version", "0.1.0")
    ok("deregister", f"{MODEL}@0.1.0")
    assert_gto_agrees(reg.repo, full=False)


# --- deprecate ----------------------------------------------------------------------------------


def test_deprecate_hides_the_model_as_gto_does(reg: Snapshot) -> None:
    out = ok("deprecate", MODEL, "-m", "replaced by clf2")
    assert "clf@deprecated" in tags(reg.repo)
    assert "staging still serves clf v0.2.0" in out  # deprecation does not undeploy
    assert MODEL not in mine_json("show")
    assert mine_json("show", "--all")[MODEL]["active"] is False
    assert tag_data(reg.repo, "clf@deprecated")["message"] == "replaced by clf2"
    assert_gto_agrees(reg.repo)
    again = run("deprecate", MODEL)
    assert again.code == 0 and "already deprecated" in again.err
    assert [t for t in tags(reg.repo) if "deprecated" in t] == ["clf@deprecated"]


def test_a_new_version_revives_a_deprecated_model_and_a_second_deprecation_counts(
        reg: Snapshot) -> None:
    ok("deprecate", MODEL)
    (reg.repo / ARTIFACT).write_bytes(reg.artifacts["0.1.0"])
    ok("bump", MODEL, "--artifact", ARTIFACT, "--patch")
    assert mine_json("show")[MODEL]["active"] is True
    ok("deprecate", MODEL)
    assert "clf@deprecated#3" in tags(reg.repo)  # the plain name is taken: GTO's counter
    assert MODEL not in mine_json("show")
    assert_gto_agrees(reg.repo, full=False)


# --- roles and history ---------------------------------------------------------------------------


def test_roles_are_checked(reg: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    before = tags(reg.repo)
    as_user(monkeypatch, VIC)
    for args in (("deprecate", MODEL), ("deregister", f"{MODEL}@0.3.0"),
                 ("unassign", MODEL, "--env", "staging")):
        result = run(*args)
        assert result.code == 1, result.err
        assert "lacks the permission" in result.err
    as_user(monkeypatch, DEV)  # developers may take staging back, nothing more
    result = run("deprecate", MODEL)
    assert result.code == 1 and "'deprecate'" in result.err
    result = run("unassign", MODEL, "--env", "production")
    assert result.code == 1 and "'unassign:production'" in result.err
    assert tags(reg.repo) == before
    ok("unassign", MODEL, "--env", "staging")
    assert tag_data(reg.repo, "clf#staging!#3")["actor"].startswith("Dee Veloper")


def test_promote_permission_still_allows_unassign_in_older_access_files() -> None:
    from mlopsctl.access import grants

    assert grants(["promote:staging"], "unassign", "staging")
    assert not grants(["promote:staging"], "unassign", "production")
    assert not grants(["unassign"], "promote", "staging")


def test_history_shows_every_lifecycle_event(reg: Snapshot) -> None:
    ok("unassign", MODEL, "--env", "staging", "--version", "0.1.0", "-m", "warm copy unwanted")
    ok("deregister", f"{MODEL}@0.1.0", "-m", "superseded")
    ok("deprecate", MODEL, "-m", "end of life")
    human = ok("history", MODEL)
    for word in ("unassign", "deregister", "deprecate"):
        assert word in human
    events = mine_json("history", MODEL, "--details")
    assert events[0]["event"] == "deprecation"  # a second after the others, so newest
    assert {e["event"] for e in events[1:3]} == {"deregistration", "unassignment"}
    (out,) = [e for e in events if e["event"] == "unassignment"]
    assert out["mlopsctl"]["environment"] == "staging" and out["version"] == "v0.1.0"
    assert [e["mlopsctl"]["message"] for e in events[:3]].count("superseded") == 1
    assert events[0]["mlopsctl"]["message"] == "end of life"
    assert out["mlopsctl"]["message"] == "warm copy unwanted"
    assert_gto_agrees(reg.repo)


def test_the_api_runs_the_same_lifecycle(reg: Snapshot) -> None:
    from mlopsctl import MLOpsManager

    manager = MLOpsManager(reg.repo)
    result = manager.unassign_model(MODEL, "staging")
    assert result["unassigned"] == ["v0.2.0"] and result["live"] == "v0.1.0"
    assert live_version(reg.repo) == "v0.1.0"
    assert manager.deregister_version(MODEL, "0.3.0")["tags"] == ["clf@v0.3.0!#4"]
    assert manager.deprecate_model(MODEL)["still_live"] == {"staging": "v0.1.0"}
    assert MODEL not in manager.list_models()
