"""`bump` before it writes (issue 9): conflicting flags are usage errors that write nothing,
`--dry-run` shows the version, lineage and policy forecast and writes nothing, a real bump warns
when the version can never pass, and `--data DIR` is hashed as DVC hashes a directory (checked
against `dvc add` itself)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import git, run, write

DVC = Path(sys.executable).parent / "dvc"


@pytest.fixture
def model_file(registry: Path) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    return write(registry / "model.pkl", pickle.dumps(LogisticRegression(max_iter=300).fit(x, y)))


def remote_files(repo: Path) -> list[str]:
    """Every file in the artifact remote (blobs and staging files alike)."""
    from configobj import ConfigObj

    url = ConfigObj(str(repo / ".dvc" / "config"))['remote "mlops"']["url"]
    root = Path(os.path.expanduser(url)) if url.startswith("~") else (repo / ".dvc" / url)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) \
        if root.exists() else []


def state(repo: Path) -> tuple[str, list[str], str, list[str]]:
    return (git(repo, "rev-parse", "HEAD"), git(repo, "tag", "--list").split(),
            git(repo, "status", "--porcelain", "--untracked-files=all"), remote_files(repo))


def bump_json(*args: str) -> dict:
    result = run("bump", *args, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


# --- conflicting flags ---------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [("--major", "--minor"), ("--minor", "--patch"),
                                   ("--major", "--patch"), ("--patch", "--version", "1.0.0"),
                                   ("--version", "2.0.0", "--minor")])
def test_conflicting_version_flags_exit_2_and_write_nothing(registry: Path, model_file: Path,
                                                            flags: tuple[str, ...]) -> None:
    run("bump", "churn", "--artifact", "model.pkl")  # 0.1.0
    before = state(registry)
    result = run("bump", "churn", *flags)
    assert result.code == 2, result.err
    assert "conflict" in result.err
    assert state(registry) == before


def test_each_version_flag_alone_still_works(registry: Path, model_file: Path) -> None:
    assert bump_json("churn", "--artifact", "model.pkl")["tag"] == "churn@v0.1.0"
    assert bump_json("churn", "--major")["tag"] == "churn@v1.0.0"
    assert bump_json("churn", "--minor")["tag"] == "churn@v1.1.0"
    assert bump_json("churn", "--patch")["tag"] == "churn@v1.1.1"


# --- dry run -------------------------------------------------------------------------------------


def test_dry_run_shows_version_lineage_and_forecast_and_writes_nothing(
        registry: Path, model_file: Path) -> None:
    write(registry / "data" / "train.csv", "x,y\n1,0\n2,1\n")
    run("bump", "churn", "--artifact", "model.pkl")
    before = state(registry)
    plan = bump_json("churn", "--data", "data/train.csv", "--intended-use", "tests only",
                     "--dry-run")
    assert state(registry) == before  # no tag, no commit, no blob, no staging file, no card
    assert plan["dry_run"] is True
    assert (plan["version"], plan["parent_version"], plan["tag"]) == ("0.2.0", "0.1.0",
                                                                      "churn@v0.2.0")
    assert plan["lineage"]["code_commit"] == git(registry, "rev-parse", "HEAD")
    assert plan["lineage"]["data"][0]["path"] == "data/train.csv"
    assert plan["card_changes"] == ["intended_use"]
    rules = {r["id"]: r for r in plan["forecast"]["rules"]}
    assert rules["card-complete"]["result"] == "fail"  # no description yet
    assert "--description TEXT" in rules["card-complete"]["fix"][0]
    assert rules["lineage-recorded"]["result"] == "pass"
    assert rules["artifact-format"]["result"] == "pass"
    assert rules["accuracy-floor"]["result"] == "pending"
    staging = plan["forecast"]["environments"]["staging"]
    assert staging["required"] == 0.95 and staging["can_pass"] is False
    # The same for humans, on stderr; and still nothing written.
    human = run("bump", "churn", "--dry-run")
    assert human.code == 0
    assert "Would register churn v0.2.0" in human.err
    assert "FAIL  lineage-recorded: missing: data" in human.err and "--data PATH" in human.err
    assert "can NEVER pass" in human.err
    assert state(registry) == before


def test_dry_run_refuses_what_bump_refuses(registry: Path, model_file: Path) -> None:
    run("bump", "churn", "--artifact", "model.pkl", "--version", "1.0.0")
    before = state(registry)
    result = run("bump", "churn", "--version", "1.0.0", "--dry-run")
    assert result.code == 2 and "already has version 1.0.0" in result.err
    assert run("bump", "churn", "--artifact", "nope.pkl", "--dry-run").code == 2
    assert state(registry) == before


# --- the warning of a real bump -------------------------------------------------------------------


def test_bump_warns_when_the_version_can_never_pass_and_names_the_flags(
        registry: Path, model_file: Path) -> None:
    result = run("bump", "churn", "--artifact", "model.pkl")
    assert result.code == 0, result.err
    assert "warning: churn v0.1.0 can never pass staging, production" in result.err
    assert "lineage-recorded fails (missing: data)" in result.err
    assert "--data PATH" in result.err
    assert "--intended-use TEXT" in result.err and "mlopsctl card churn" in result.err


def test_a_bump_that_can_pass_has_no_warning(registry: Path, model_file: Path) -> None:
    write(registry / "data" / "train.csv", "x,y\n1,0\n")
    doc = bump_json("churn", "--artifact", "model.pkl", "--data", "data/train.csv",
                    "--description", "iris", "--intended-use", "tests only")
    assert doc["warning"] is None
    result = run("bump", "churn", "--patch")  # lineage is per version: 0.1.1 records no data
    assert result.code == 0, result.err
    assert "warning: churn v0.1.1 can never pass" in result.err and "--data PATH" in result.err
    assert "card-complete" not in result.err  # the card is complete


# --- data directories hashed as DVC hashes them ------------------------------------------------


def test_data_directory_hash_is_dvcs(registry: Path, model_file: Path, tmp_path: Path) -> None:
    files = {"train/a.csv": "x,y\n1,0\n", "train/sub/b.csv": "x,y\n2,1\n",
             "train/z.txt": "notes\n", "train/sub/a b.csv": "x\n3\n"}
    for rel, text in files.items():
        write(registry / "data" / rel, text)
        write(tmp_path / "dvc" / rel, text)
    doc = bump_json("churn", "--artifact", "model.pkl", "--data", "data/train")
    (entry,) = doc["manifest"]["lineage"]["data"]
    assert entry["path"] == "data/train"

    dvc_repo = tmp_path / "dvc"
    subprocess.run([str(DVC), "init", "--no-scm", "-q"], cwd=dvc_repo, check=True)
    subprocess.run([str(DVC), "add", "-q", "train"], cwd=dvc_repo, check=True)
    out = yaml.safe_load((dvc_repo / "train.dvc").read_text())["outs"][0]
    assert entry["md5"] == out["md5"] and entry["md5"].endswith(".dir")
    assert len(entry["sha256"]) == 64
    committed = yaml.safe_load(git(registry, "show",
                                   "churn@v0.1.0:.mlops/models/churn/versions/0.1.0.yaml"))
    assert committed["lineage"]["data"][0]["md5"] == out["md5"]


def test_an_empty_or_missing_data_path_is_a_usage_error(registry: Path, model_file: Path) -> None:
    (registry / "data" / "empty").mkdir(parents=True)
    before = state(registry)
    for path in ("data/empty", "data/nope"):
        result = run("bump", "churn", "--artifact", "model.pkl", "--data", path)
        assert result.code == 2, result.err
    assert state(registry) == before
