"""End to end: the `mlopsctl` commands as a user runs them, on real git repositories, a real DVC
remote on local disk and real (small) scikit-learn models. No mocks."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import secrets
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from conftest import chdir, git, isolate, make_repo, run, write

DVC = Path(sys.executable).parent / "dvc"

# --- models and repository helpers ----------------------------------------------------------------


@pytest.fixture(scope="session")
def trained() -> list[bytes]:
    """Three genuinely different pickled scikit-learn models (iris and breast cancer)."""
    from sklearn.datasets import load_breast_cancer, load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris()
    cancer = load_breast_cancer()
    cancer_clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=500))
    return [
        pickle.dumps(LogisticRegression(C=1.0, max_iter=500).fit(iris.data, iris.target)),
        pickle.dumps(LogisticRegression(C=0.1, max_iter=500).fit(iris.data, iris.target)),
        pickle.dumps(cancer_clf.fit(cancer.data, cancer.target)),
    ]




def ok(*args: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
    result = run(*args)
    assert result.code == 0, f"mlopsctl {' '.join(map(str, args))}: {result.err}"
    return result


def tags(repo: Path) -> list[str]:
    return git(repo, "tag", "--list").split()


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5_file(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def dvc_remote_url(repo: Path) -> str:
    from configobj import ConfigObj

    conf = ConfigObj(str(repo / ".dvc" / "config"))
    return str(conf['remote "mlops"']["url"])


def remote_dir(repo: Path) -> Path:
    return Path(os.path.expanduser(dvc_remote_url(repo)))


def manifest_at(repo: Path, model: str, version: str) -> dict:
    """The version manifest as committed at the version's tag."""
    text = git(repo, "show", f"{model}@v{version}:.mlops/models/{model}/versions/{version}.yaml")
    return yaml.safe_load(text)


def pointer(repo: Path, model: str, version: str, rev: str = "HEAD") -> dict:
    text = git(repo, "show", f"{rev}:.mlops/models/{model}/artifacts/{version}.zst.dvc")
    return yaml.safe_load(text)["outs"][0]


def blob_path(repo: Path, model: str, version: str) -> Path:
    md5 = pointer(repo, model, version)["md5"]
    return remote_dir(repo) / "files" / "md5" / md5[:2] / md5[2:]


def tamper(path: Path) -> None:
    """Flip one byte in the middle of a stored blob (objects are read-only: chmod first)."""
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def files_in_commit(repo: Path, rev: str = "HEAD") -> set[str]:
    out = git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "--root", rev)
    return set(out.split())


def key_files(home: Path) -> list[Path]:
    return sorted((home / ".config" / "mlopsctl" / "keys").glob("*.key"))


# --- registries: `mlopsctl init` (and two bumps) run once, then copied for every test ---------

class Snapshot(NamedTuple):
    repo: Path
    home: Path  # the per-user part: the key store and the default artifact remote


@pytest.fixture(scope="session")
def snapshots(tmp_path_factory: pytest.TempPathFactory, trained: list[bytes]
              ) -> dict[str, Snapshot]:
    """A registry right after `mlopsctl init`, and the same after two bumps of churn (0.1.0 holds
    trained[0], 0.2.0 trained[1]), each with the HOME it was made under. Copying one (repository
    and HOME together) gives an independent registry in a fraction of the time `init` takes."""
    base = tmp_path_factory.mktemp("snapshots")
    home = base / "home"
    home.mkdir()
    snaps: dict[str, Snapshot] = {}
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, home)
        build = make_repo(base / "build")
        mp.chdir(build)

        def snap(name: str) -> None:
            dest = base / name
            shutil.copytree(build, dest / "repo", symlinks=True)
            shutil.copytree(home, dest / "home", symlinks=True)
            snaps[name] = Snapshot(dest / "repo", dest / "home")

        ok("init")
        snap("initialized")
        write(build / "model.pkl", trained[0])
        ok("bump", "churn", "--artifact", "model.pkl")
        write(build / "model.pkl", trained[1])
        ok("bump", "churn")
        snap("two_versions")
    return snaps


def restore(snapshot: Snapshot, home: Path, dest: Path) -> Path:
    shutil.copytree(snapshot.repo, dest, symlinks=True)
    shutil.copytree(snapshot.home, home, symlinks=True, dirs_exist_ok=True)
    return dest


@pytest.fixture
def registry(snapshots: dict[str, Snapshot], isolated_env: Path, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository on which `mlopsctl init` has run, as the current directory."""
    path = restore(snapshots["initialized"], isolated_env, tmp_path / "repo")
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def two_versions(snapshots: dict[str, Snapshot], isolated_env: Path, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry holding churn 0.1.0 (trained[0]) and 0.2.0 (trained[1], the artifact
    model.pkl retrained in place), as the current directory."""
    path = restore(snapshots["two_versions"], isolated_env, tmp_path / "repo")
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """An empty directory, outside the repository, to restore files into."""
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def model_file(registry: Path, trained: list[bytes]) -> Path:
    return write(registry / "model.pkl", trained[0])


# --- init -----------------------------------------------------------------------------------------


def test_init_writes_config_policy_access_and_dvc_and_commits(repo: Path,
                                                             isolated_env: Path) -> None:
    before = head(repo)
    result = run("init")
    assert result.code == 0, result.err

    for name in ("config.yaml", "policy.yaml", "access.yaml"):
        assert (repo / ".mlops" / name).is_file(), name
    config = yaml.safe_load((repo / ".mlops" / "config.yaml").read_text())
    access = yaml.safe_load((repo / ".mlops" / "access.yaml").read_text())
    policy = (repo / ".mlops" / "policy.yaml").read_bytes()
    from mlopsctl.governance import governance_hash

    assert config["constitutional_hash"] == governance_hash(config, yaml.safe_load(policy))
    assert {"email": "ada@example.com", "name": "Ada Lovelace", "roles": ["admin"]} in \
        access["members"]

    from configobj import ConfigObj

    dvc_conf = ConfigObj(str(repo / ".dvc" / "config"))
    assert dvc_conf["core"]["remote"] == "mlops"
    assert "analytics" not in dvc_conf["core"]  # a per-user choice, not the team's config
    local_conf = ConfigObj(str(repo / ".dvc" / "config.local"))
    assert local_conf["core"]["analytics"].lower() == "false"
    assert dvc_conf['remote "mlops"']["url"]
    assert remote_dir(repo).is_dir()

    # committed, on top of the previous HEAD, with nothing left over in the work tree
    assert git(repo, "rev-parse", "HEAD~1") == before
    committed = files_in_commit(repo)
    assert {".mlops/config.yaml", ".mlops/policy.yaml", ".mlops/access.yaml",
            ".dvc/config"} <= committed
    assert git(repo, "status", "--porcelain") == ""

    # the key lives under HOME, private; only its id is in the repository
    keys = key_files(isolated_env)
    assert len(keys) == 1
    key_file = keys[0]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_id = config["encryption"]["key_id"]
    assert key_file.name == f"{key_id}.key"
    key_hex = key_file.read_text().strip()
    assert len(bytes.fromhex(key_hex)) == 32
    assert key_hex not in git(repo, "grep", "-h", "-I", "-e", ".", "HEAD", "--", ".")
    assert key_hex not in (repo / ".dvc" / "config").read_text()


def test_init_is_idempotent(repo: Path, isolated_env: Path) -> None:
    ok("init")
    registry = repo
    before = head(registry)
    config = (registry / ".mlops" / "config.yaml").read_bytes()
    result = run("init")
    assert result.code == 0, result.err
    assert head(registry) == before
    assert (registry / ".mlops" / "config.yaml").read_bytes() == config
    assert len(key_files(isolated_env)) == 1
    assert git(registry, "status", "--porcelain") == ""


def test_init_remote_switches_the_artifact_remote(registry: Path, tmp_path: Path,
                                                  trained: list[bytes]) -> None:
    store = tmp_path / "shared-store"
    before = head(registry)
    ok("init", "--remote", store)
    assert dvc_remote_url(registry) == str(store)
    assert git(registry, "rev-parse", "HEAD~1") == before
    assert ".dvc/config" in files_in_commit(registry)
    assert store.is_dir()

    write(registry / "model.pkl", trained[0])
    ok("bump", "churn", "--artifact", "model.pkl")
    md5 = pointer(registry, "churn", "0.1.0")["md5"]
    assert (store / "files" / "md5" / md5[:2] / md5[2:]).is_file()

    # switching again is one more commit; asking for the same remote is a no-op
    ok("init", "--remote", store)
    assert git(registry, "rev-list", "--count", f"{before}..HEAD") == "2"


def test_init_remote_accepts_a_relative_directory(registry: Path, tmp_path: Path) -> None:
    ok("init", "--remote", "../store")
    assert Path(os.path.normpath(registry / ".dvc" / dvc_remote_url(registry))) == \
        tmp_path / "store"  # DVC's reading of the URL: the directory the user named
    assert not (registry / "store").exists()
    assert (tmp_path / "store").is_dir()
    assert run("doctor").code == 0


def test_init_in_a_repository_without_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              trained: list[bytes]) -> None:
    """The example in `init --help`: git init churn && cd churn && mlopsctl init."""
    fresh = tmp_path / "churn"
    git(tmp_path, "init", "-q", "-b", "main", str(fresh))
    monkeypatch.chdir(fresh)
    ok("init")
    assert git(fresh, "rev-list", "--count", "HEAD") == "1"
    write(fresh / "model.pkl", trained[0])
    ok("bump", "churn", "--artifact", "model.pkl")
    assert tags(fresh) == ["churn@v0.1.0"]


def test_init_outside_a_git_repository_is_an_environment_error(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    monkeypatch.chdir(plain)
    result = run("init")
    assert result.code == 3
    assert "hint:" in result.err
    assert not (plain / ".mlops").exists()


def test_init_without_git_identity_is_an_environment_error(repo: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          isolated_env: Path) -> None:
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    assert not (isolated_env / ".gitconfig").exists()
    before = head(repo)
    result = run("init")
    assert result.code == 3
    assert "hint:" in result.err
    assert "git config" in result.err
    assert head(repo) == before
    assert not (repo / ".mlops").exists()


# --- bump -----------------------------------------------------------------------------------------


def test_first_bump_registers_0_1_0_with_tag_manifest_pointer_and_blob(
        registry: Path, model_file: Path, trained: list[bytes]) -> None:
    code_commit = head(registry)
    result = run("bump", "churn", "--artifact", "model.pkl", "-m", "baseline")
    assert result.code == 0, result.err
    assert "churn@v0.1.0" in result.err

    assert tags(registry) == ["churn@v0.1.0"]
    assert git(registry, "cat-file", "-t", "churn@v0.1.0") == "tag"  # annotated
    tagged = git(registry, "rev-parse", "churn@v0.1.0^{commit}")
    assert tagged == head(registry)
    assert git(registry, "rev-parse", f"{tagged}~1") == code_commit
    in_tree = git(registry, "ls-tree", "-r", "--name-only", tagged).split()
    assert ".mlops/models/churn/versions/0.1.0.yaml" in in_tree
    assert ".mlops/models/churn/artifacts/0.1.0.zst.dvc" in in_tree

    m = manifest_at(registry, "churn", "0.1.0")
    assert m["model"] == "churn" and m["version"] == "0.1.0"
    assert m.get("parent_version") is None
    assert m["message"] == "baseline"
    assert m["artifact"]["path"] == "model.pkl"
    assert m["artifact"]["sha256"] == sha256(trained[0])
    assert m["artifact"]["size"] == len(trained[0])
    assert m["lineage"]["code_commit"] == code_commit
    assert m["created_by"] == "Ada Lovelace <ada@example.com>"

    # the encrypted blob is in the remote under DVC's layout, and the pointer describes it
    ptr = pointer(registry, "churn", "0.1.0", tagged)
    blob = remote_dir(registry) / "files" / "md5" / ptr["md5"][:2] / ptr["md5"][2:]
    assert blob.is_file()
    assert md5_file(blob) == ptr["md5"] == m["artifact"]["stored"]["md5"]
    assert blob.stat().st_size == ptr["size"]
    assert trained[0] not in blob.read_bytes()  # stored encrypted, not in the clear

    # the tag message is a human line, then the YAML block mlopsctl reads
    message = git(registry, "tag", "-l", "--format=%(contents)", "churn@v0.1.0")
    title, _, data = message.partition("\n\n")
    assert title.startswith("Register churn v0.1.0")
    assert yaml.safe_load(data)["mlopsctl"]["artifact_sha256"] == sha256(trained[0])
    assert git(registry, "status", "--porcelain", "--untracked-files=no") == ""


def test_bump_version_parts_prerelease_and_explicit_version(registry: Path,
                                                            model_file: Path) -> None:
    ok("bump", "churn", "--artifact", "model.pkl")
    steps = [
        (("--patch",), "0.1.1", "0.1.0"),
        (("--minor",), "0.2.0", "0.1.1"),
        ((), "0.3.0", "0.2.0"),  # minor by default
        (("--version", "1.0.0-rc.1"), "1.0.0-rc.1", "0.3.0"),
        (("--major",), "1.0.0", "1.0.0-rc.1"),  # a prerelease is released by the next bump
        (("--major",), "2.0.0", "1.0.0"),
        (("--version", "2.4.1"), "2.4.1", "2.0.0"),
    ]
    for flags, version, parent in steps:
        result = run("bump", "churn", *flags, "--json")
        assert result.code == 0, (flags, result.err)
        doc = json.loads(result.out)
        assert doc["tag"] == f"churn@v{version}"
        assert doc["manifest"]["version"] == version
        assert doc["manifest"]["parent_version"] == parent
        assert doc["commit"] == git(registry, "rev-parse", f"churn@v{version}^{{commit}}")
        assert manifest_at(registry, "churn", version)["parent_version"] == parent
    assert sorted(tags(registry)) == sorted(
        ["churn@v0.1.0"] + [f"churn@v{v}" for _, v, _ in steps])
    for _, version, _ in steps:
        assert git(registry, "cat-file", "-t", f"churn@v{version}") == "tag"
    shown = json.loads(ok("show", "--json").out)
    assert shown["churn"]["version"] == "v2.4.1"


def test_bump_records_data_params_metrics_and_config_lineage(registry: Path,
                                                             model_file: Path) -> None:
    train = write(registry / "data" / "train.csv", "x,y\n1,0\n2,1\n")
    test = write(registry / "data" / "test.csv", "x,y\n3,1\n")
    write(registry / "params.json", json.dumps({"C": 0.5, "solver": "lbfgs", "max_iter": 200}))
    write(registry / "params.yaml", "C: 2.0\npenalty: l2\nlayers: [8, 4]\n")
    write(registry / "metrics.json", json.dumps({"accuracy": 0.93, "f1": 0.9, "n": 120}))
    write(registry / "metrics.yaml", "accuracy: 0.95\nauc: 0.97\n")
    config = write(registry / "config.yaml", "threshold: 0.4\n")

    ok("bump", "churn", "--artifact", "model.pkl", "--data", "data/train.csv",
       "--data", "data/test.csv", "--params", "params.json", "--metrics", "metrics.json",
       "--config", "config.yaml", "-m", "with lineage")
    m = manifest_at(registry, "churn", "0.1.0")
    assert m["lineage"]["data"] == [
        {"path": "data/train.csv", "sha256": sha256(train.read_bytes())},
        {"path": "data/test.csv", "sha256": sha256(test.read_bytes())},
    ]
    assert m["lineage"]["params"] == {"C": 0.5, "solver": "lbfgs", "max_iter": 200}
    assert m["metrics"] == {"accuracy": 0.93, "f1": 0.9, "n": 120.0}
    assert m["config_file"] == {"path": "config.yaml", "sha256": sha256(config.read_bytes())}

    ok("bump", "churn", "--params", "params.yaml", "--metrics", "metrics.yaml")
    m2 = manifest_at(registry, "churn", "0.2.0")
    assert m2["lineage"]["params"] == {"C": 2.0, "penalty": "l2", "layers": [8, 4]}
    assert m2["metrics"] == {"accuracy": 0.95, "auc": 0.97}
    assert m2["parent_version"] == "0.1.0"
    assert m2["lineage"]["data"] == []

    detail = json.loads(ok("show", "churn", "--json").out)
    assert [v["version"] for v in detail["versions"]] == ["v0.2.0", "v0.1.0"]
    assert detail["versions"][1]["manifest"]["metrics"]["accuracy"] == 0.93


def test_bump_without_artifact_reuses_the_model_cards_path(registry: Path,
                                                          trained: list[bytes]) -> None:
    write(registry / "models" / "clf.pkl", trained[0])
    ok("bump", "clf", "--artifact", "models/clf.pkl")
    write(registry / "models" / "clf.pkl", trained[1])  # retrained in place
    ok("bump", "clf", "--patch")
    m = manifest_at(registry, "clf", "0.1.1")
    assert m["artifact"]["path"] == "models/clf.pkl"
    assert m["artifact"]["sha256"] == sha256(trained[1])

    # ... also from a subdirectory
    with chdir(registry / "models"):
        ok("bump", "clf")
    assert manifest_at(registry, "clf", "0.2.0")["artifact"]["sha256"] == sha256(trained[1])


def test_bump_without_artifact_never_registers_another_file(registry: Path, tmp_path: Path,
                                                           trained: list[bytes]) -> None:
    outside = write(tmp_path / "training-output" / "model.pkl", trained[0])
    ok("bump", "clf", "--artifact", outside)
    write(outside, trained[1])  # retrained where it was
    write(registry / "model.pkl", trained[2])  # an unrelated file that happens to share the name
    result = run("bump", "clf", "--patch")
    if result.code == 0:
        assert manifest_at(registry, "clf", "0.1.1")["artifact"]["sha256"] == sha256(trained[1])
    else:  # refusing is acceptable too, but then with a usage error and nothing written
        assert result.code == 2
        assert tags(registry) == ["clf@v0.1.0"]


def test_bump_never_commits_the_users_staged_or_unstaged_changes(registry: Path,
                                                                 model_file: Path) -> None:
    write(registry / "train.py", "print('v1')\n")
    git(registry, "add", "train.py")
    git(registry, "commit", "-q", "-m", "training script")
    base = head(registry)
    # staged: a new file and a partial edit; unstaged: an edit on top; untracked: a note
    write(registry / "new_feature.py", "x = 1\n")
    git(registry, "add", "new_feature.py")
    write(registry / "train.py", "print('v2')\n")
    git(registry, "add", "train.py")
    write(registry / "train.py", "print('v3, not staged')\n")
    write(registry / "README.md", "project, edited\n")
    write(registry / "notes.txt", "untracked\n")
    status = git(registry, "status", "--porcelain")
    staged = git(registry, "diff", "--cached")
    unstaged = git(registry, "diff")

    ok("bump", "churn", "--artifact", "model.pkl")

    assert git(registry, "status", "--porcelain") == status
    assert git(registry, "diff", "--cached") == staged
    assert git(registry, "diff") == unstaged
    assert (registry / "train.py").read_text() == "print('v3, not staged')\n"
    assert git(registry, "rev-parse", "HEAD~1") == base
    assert files_in_commit(registry) == {
        ".mlops/models/churn/model.yaml",
        ".mlops/models/churn/versions/0.1.0.yaml",
        ".mlops/models/churn/artifacts/0.1.0.zst.dvc",
    }
    assert git(registry, "show", "HEAD:train.py") == "print('v1')"
    assert "new_feature.py" not in git(registry, "ls-tree", "--name-only", "HEAD").split()
    m = manifest_at(registry, "churn", "0.1.0")
    assert m["lineage"]["code_commit"] == base
    assert m["lineage"]["code_dirty"] is True


def test_bump_json_output_parses(registry: Path, model_file: Path, trained: list[bytes]) -> None:
    result = run("bump", "churn", "--artifact", "model.pkl", "--json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["tag"] == "churn@v0.1.0"
    assert doc["commit"] == head(registry)
    assert doc["manifest"]["artifact"]["sha256"] == sha256(trained[0])
    assert doc["manifest"]["artifact"]["stored"]["md5"] == pointer(registry, "churn",
                                                                   "0.1.0")["md5"]


# --- bad input and bad environments -------------------------------------------------------------


def assert_nothing_written(repo: Path, before_head: str, before_tags: list[str]) -> None:
    assert head(repo) == before_head
    assert tags(repo) == before_tags


@pytest.mark.parametrize("name", ["../x", "a b", "A@B", ""])
def test_bump_rejects_bad_model_names(registry: Path, model_file: Path, name: str) -> None:
    before = head(registry), tags(registry)
    result = run("bump", name, "--artifact", "model.pkl")
    assert result.code == 2, result.err
    assert "invalid model name" in result.err
    assert_nothing_written(registry, *before)
    assert not (registry / ".mlops" / "models").exists()
    assert not (registry / ".mlops" / "x").exists()


def test_bump_missing_artifact_is_a_usage_error(registry: Path) -> None:
    before = head(registry), tags(registry)
    result = run("bump", "churn", "--artifact", "nope.pkl")
    assert result.code == 2
    assert "nope.pkl" in result.err
    assert_nothing_written(registry, *before)
    result = run("bump", "churn")  # no artifact at all, and no model card to remember one
    assert result.code == 2
    assert "--artifact" in result.err
    assert_nothing_written(registry, *before)


def test_bump_duplicate_version_is_refused_with_a_hint(registry: Path, model_file: Path) -> None:
    ok("bump", "churn", "--artifact", "model.pkl", "--version", "1.0.0")
    before = head(registry), tags(registry)
    result = run("bump", "churn", "--version", "1.0.0")
    assert result.code == 2
    assert "already has version 1.0.0" in result.err
    assert "hint:" in result.err
    assert_nothing_written(registry, *before)
    result = run("bump", "churn", "--version", "v1.0.0")
    assert result.code == 2
    assert_nothing_written(registry, *before)


@pytest.mark.parametrize("args", [
    ("--version", "1.2"),
    ("--version", "01.2.3"),
    ("--version", "1.2.3.4"),
    ("--version", "1.2.0", "--patch"),
    ("--major", "--version", "3.0.0"),
])
def test_bump_bad_version_arguments_are_usage_errors(registry: Path, model_file: Path,
                                                     args: tuple[str, ...]) -> None:
    before = head(registry), tags(registry)
    result = run("bump", "churn", "--artifact", "model.pkl", *args)
    assert result.code == 2, result.err
    assert_nothing_written(registry, *before)


@pytest.mark.parametrize(("edit", "line", "what"), [
    (lambda lines: lines.__setitem__(2, "remote: mlops: extra"), 3, "not valid YAML"),
    (lambda lines: lines.insert(3, "colour: blue"), 4, "colour"),
    (lambda lines: lines.__setitem__(2, "remote: [mlops"), None, "not valid YAML"),
])
def test_malformed_config_is_an_environment_error_naming_file_and_line(
        registry: Path, model_file: Path, edit, line: int | None, what: str) -> None:  # type: ignore[no-untyped-def]
    config = registry / ".mlops" / "config.yaml"
    lines = config.read_text().splitlines()
    assert lines[2] == "remote: mlops"
    edit(lines)
    config.write_text("\n".join(lines) + "\n")
    before = head(registry), tags(registry)
    for args in (("bump", "churn", "--artifact", "model.pkl"), ("fetch", "churn@latest"),
                 ("verify",)):
        result = run(*args)
        assert result.code == 3, (args, result.err)
        assert ".mlops/config.yaml:" in result.err
        assert what in result.err
        if line is not None:
            assert f".mlops/config.yaml:{line}" in result.err
    assert_nothing_written(registry, *before)


def test_metrics_must_be_numbers(registry: Path, model_file: Path) -> None:
    write(registry / "metrics.json", json.dumps({"accuracy": "high"}))
    write(registry / "bools.yaml", "accuracy: 0.9\npassed: true\n")
    before = head(registry), tags(registry)
    for metrics in ("metrics.json", "bools.yaml", "missing.json"):
        result = run("bump", "churn", "--artifact", "model.pkl", "--metrics", metrics)
        assert result.code == 2, (metrics, result.err)
    assert "accuracy" in run("bump", "churn", "--artifact", "model.pkl", "--metrics",
                             "metrics.json").err
    assert_nothing_written(registry, *before)


def test_bump_before_init_points_at_init(repo: Path, trained: list[bytes]) -> None:
    write(repo / "model.pkl", trained[0])
    before = head(repo), tags(repo)
    result = run("bump", "churn", "--artifact", "model.pkl")
    assert result.code == 3
    assert "hint: mlopsctl init" in result.err
    assert_nothing_written(repo, *before)


def test_bump_on_a_detached_head_is_an_environment_error(registry: Path,
                                                         model_file: Path) -> None:
    git(registry, "checkout", "-q", "--detach")
    before = head(registry), tags(registry)
    result = run("bump", "churn", "--artifact", "model.pkl")
    assert result.code == 3
    assert "detached" in result.err
    assert "hint:" in result.err
    assert_nothing_written(registry, *before)
    assert git(registry, "rev-parse", "main") == before[0]


def test_policy_drift_blocks_bump_but_not_show(registry: Path, model_file: Path) -> None:
    ok("bump", "churn", "--artifact", "model.pkl")
    policy = registry / ".mlops" / "policy.yaml"
    pinned = yaml.safe_load((registry / ".mlops" / "config.yaml").read_text())[
        "constitutional_hash"]
    policy.write_text(policy.read_text().replace("min: 0.85", "min: 0.5", 1))  # loosened
    from mlopsctl.governance import hash_files

    actual = hash_files((registry / ".mlops" / "config.yaml").read_bytes(), policy.read_bytes())
    assert actual != pinned
    before = head(registry), tags(registry)

    result = run("bump", "churn", "--patch")
    assert result.code == 1
    assert pinned in result.err and actual in result.err
    assert_nothing_written(registry, *before)

    shown = run("show", "--json")
    assert shown.code == 0
    assert json.loads(shown.out)["churn"]["version"] == "v0.1.0"
    assert "warning" in shown.err and "drifted" in shown.err


# --- fetch ----------------------------------------------------------------------------------------


def test_fetch_round_trips_bytes(two_versions: Path, tmp_path: Path,
                                 trained: list[bytes]) -> None:
    out = tmp_path / "restored"
    result = run("fetch", "churn@0.1.0", "-o", out / "old.pkl")
    assert result.code == 0, result.err
    assert (out / "old.pkl").read_bytes() == trained[0]
    ok("fetch", "churn@v0.2.0", "-o", out / "new.pkl")
    assert (out / "new.pkl").read_bytes() == trained[1]
    ok("fetch", "churn@latest", "-o", out / "latest.pkl")
    assert (out / "latest.pkl").read_bytes() == trained[1]
    restored = pickle.loads((out / "old.pkl").read_bytes())
    from sklearn.datasets import load_iris

    assert restored.score(*load_iris(return_X_y=True)) > 0.9

    doc = json.loads(ok("fetch", "churn@0.1.0", "-o", out / "again.pkl", "--json").out)
    assert doc == {"model": "churn", "version": "0.1.0", "path": str(out / "again.pkl"),
                   "sha256": sha256(trained[0]), "size": len(trained[0]), "unchanged": False}


def test_fetch_by_environment(two_versions: Path, out_dir: Path, trained: list[bytes]) -> None:
    # a stage assignment as GTO writes it: an annotated tag MODEL#STAGE#N on the version's commit
    git(two_versions, "tag", "-a", "churn#production#1", "-m", "promote",
        "churn@v0.1.0^{commit}")
    ok("fetch", "churn#production", "-o", out_dir / "prod.pkl")
    assert (out_dir / "prod.pkl").read_bytes() == trained[0]
    result = run("fetch", "churn#staging", "-o", out_dir / "staging.pkl")
    assert result.code == 2
    assert not (out_dir / "staging.pkl").exists()


def test_fetch_default_output_is_the_original_name_in_cwd(two_versions: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          trained: list[bytes]) -> None:
    sub = two_versions / "restore-here"
    sub.mkdir()
    monkeypatch.chdir(sub)
    ok("fetch", "churn@0.1.0")
    assert (sub / "model.pkl").read_bytes() == trained[0]
    # -o naming a directory puts the original name inside it
    target = tmp_path / "dir"
    target.mkdir()
    ok("fetch", "churn@0.2.0", "-o", target)
    assert (target / "model.pkl").read_bytes() == trained[1]


def test_fetch_refuses_to_overwrite_a_different_file_unless_forced(two_versions: Path,
                                                                   out_dir: Path,
                                                                   trained: list[bytes]) -> None:
    dest = write(out_dir / "model.pkl", b"my own work")
    result = run("fetch", "churn@0.1.0", "-o", dest)
    assert result.code == 2
    assert "--force" in result.err
    assert dest.read_bytes() == b"my own work"

    ok("fetch", "churn@0.1.0", "-o", dest, "--force")
    assert dest.read_bytes() == trained[0]

    mtime = dest.stat().st_mtime_ns
    result = ok("fetch", "churn@0.1.0", "-o", dest)
    assert "up to date" in result.err
    assert dest.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.pkl"]


def test_fetch_of_a_tampered_blob_fails_and_writes_nothing(two_versions: Path,
                                                           out_dir: Path) -> None:
    tamper(blob_path(two_versions, "churn", "0.1.0"))
    result = run("fetch", "churn@0.1.0", "-o", out_dir / "old.pkl")
    assert result.code == 1
    assert "churn@0.1.0" in result.err
    assert list(out_dir.iterdir()) == []
    ok("fetch", "churn@0.2.0", "-o", out_dir / "new.pkl")  # the other version is intact


def test_a_failed_forced_fetch_keeps_the_existing_file(two_versions: Path, out_dir: Path) -> None:
    dest = write(out_dir / "model.pkl", b"my own work")
    tamper(blob_path(two_versions, "churn", "0.1.0"))
    result = run("fetch", "churn@0.1.0", "-o", dest, "--force")
    assert result.code == 1
    assert dest.read_bytes() == b"my own work"
    assert [p.name for p in out_dir.iterdir()] == ["model.pkl"]


def test_fetch_refuses_a_blob_replayed_from_another_version(two_versions: Path,
                                                            out_dir: Path) -> None:
    """Swapping the stored objects (v0.2.0's valid blob where v0.1.0's should be) is caught:
    every blob is bound to its model and version."""
    old, new = blob_path(two_versions, "churn", "0.1.0"), blob_path(two_versions, "churn",
                                                                    "0.2.0")
    old.chmod(0o644)
    old.write_bytes(new.read_bytes())
    result = run("fetch", "churn@0.1.0", "-o", out_dir / "old.pkl")
    assert result.code == 1
    assert list(out_dir.iterdir()) == []
    result = run("verify", "--json")
    assert result.code == 1
    assert [v["version"] for v in json.loads(result.out)["versions"] if not v["ok"]] == ["0.1.0"]


def test_fetch_of_a_missing_blob_is_an_environment_error(two_versions: Path,
                                                         out_dir: Path) -> None:
    blob_path(two_versions, "churn", "0.1.0").unlink()
    result = run("fetch", "churn@0.1.0", "-o", out_dir / "old.pkl")
    assert result.code == 3
    assert "missing" in result.err
    assert list(out_dir.iterdir()) == []


def test_fetch_with_the_wrong_key_fails_and_writes_nothing(two_versions: Path, out_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("MLOPSCTL_KEY", secrets.token_hex(32))
    result = run("fetch", "churn@0.1.0", "-o", out_dir / "old.pkl")
    assert result.code == 3
    assert "MLOPSCTL_KEY" in result.err
    assert list(out_dir.iterdir()) == []


def test_fetch_with_the_key_in_the_environment_only(two_versions: Path, out_dir: Path,
                                                    isolated_env: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    trained: list[bytes]) -> None:
    exported = ok("key", "export").out.strip()
    for key_file in key_files(isolated_env):
        key_file.unlink()
    missing = run("fetch", "churn@0.1.0", "-o", out_dir / "a.pkl")
    assert missing.code == 3
    assert "hint:" in missing.err
    assert not (out_dir / "a.pkl").exists()

    monkeypatch.setenv("MLOPSCTL_KEY", exported)
    ok("fetch", "churn@0.1.0", "-o", out_dir / "b.pkl")
    assert (out_dir / "b.pkl").read_bytes() == trained[0]


@pytest.mark.parametrize("ref", ["nope@0.1.0", "churn@9.9.9", "churn@1.2", "churn#production",
                                 "Bad@0.1.0"])
def test_fetch_unknown_model_or_version_is_a_usage_error(two_versions: Path, out_dir: Path,
                                                         ref: str) -> None:
    result = run("fetch", ref, "-o", out_dir / "x.pkl")
    assert result.code == 2, result.err
    assert not (out_dir / "x.pkl").exists()


def test_key_export_then_import_restores_access(two_versions: Path, out_dir: Path,
                                                isolated_env: Path, trained: list[bytes]) -> None:
    exported = ok("key", "export").out.strip()
    assert len(bytes.fromhex(exported)) == 32
    saved = write(out_dir.parent / "key.txt", exported + "\n")
    for key_file in key_files(isolated_env):
        key_file.unlink()
    assert run("fetch", "churn@0.1.0", "-o", out_dir / "a.pkl").code == 3

    wrong = write(out_dir.parent / "wrong.txt", secrets.token_hex(32))
    result = run("key", "import", wrong)
    assert result.code == 1
    assert "another registry" in result.err

    ok("key", "import", saved)
    (key_file,) = [k for k in key_files(isolated_env) if k.read_text().strip() == exported]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    ok("fetch", "churn@0.1.0", "-o", out_dir / "a.pkl")
    assert (out_dir / "a.pkl").read_bytes() == trained[0]


def test_global_directory_option(two_versions: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # outside the repository; restored after the test
    result = run("-C", two_versions, "show", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["churn"]["version"] == "v0.2.0"
    assert run("-C", tmp_path / "nowhere", "show").code == 2


# --- another clone on the same machine ------------------------------------------------------------


@pytest.fixture
def clone(two_versions: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(two_versions), str(dest)], check=True)
    return dest


def test_fresh_clone_fetches_an_old_version(clone: Path, monkeypatch: pytest.MonkeyPatch,
                                            trained: list[bytes]) -> None:
    assert dvc_remote_url(clone).startswith("~/")
    monkeypatch.chdir(clone)
    result = run("fetch", "churn@0.1.0", "-o", "old.pkl")
    assert result.code == 0, result.err
    assert (clone / "old.pkl").read_bytes() == trained[0]
    shown = json.loads(ok("show", "--json").out)
    assert shown["churn"]["version"] == "v0.2.0"
    assert ok("verify").code == 0


def test_stock_dvc_pull_fetches_the_encrypted_blob_in_a_clone(clone: Path) -> None:
    target = ".mlops/models/churn/artifacts/0.1.0.zst.dvc"
    proc = subprocess.run([str(DVC), "pull", target], cwd=clone, capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pulled = clone / ".mlops" / "models" / "churn" / "artifacts" / "0.1.0.zst"
    ptr = pointer(clone, "churn", "0.1.0")
    assert md5_file(pulled) == ptr["md5"]
    assert pulled.stat().st_size == ptr["size"]
    assert pulled.read_bytes().startswith(b"MLOPSAE1")
    # the pulled blob is gitignored: nothing new to commit
    assert git(clone, "status", "--porcelain", "--", ".mlops") == ""


# --- verify ---------------------------------------------------------------------------------------


def test_verify_checks_every_version_and_names_the_broken_one(two_versions: Path,
                                                              trained: list[bytes]) -> None:
    write(two_versions / "other.pkl", trained[2])
    ok("bump", "other", "--artifact", "other.pkl")
    result = run("verify")
    assert result.code == 0, result.err
    assert "3 versions verified" in result.err

    tamper(blob_path(two_versions, "churn", "0.2.0"))
    result = run("verify")
    assert result.code == 1
    failing = [line for line in result.out.splitlines() if line.startswith("FAIL")]
    assert len(failing) == 1 and failing[0].startswith("FAIL churn@0.2.0")
    assert "churn@0.1.0" not in result.err and "other@0.1.0" not in result.err
    assert "churn@0.2.0" in result.err

    result = run("verify", "--json")
    assert result.code == 1
    doc = json.loads(result.out)
    assert doc["ok"] is False
    by_version = {(v["model"], v["version"]): v for v in doc["versions"]}
    assert set(by_version) == {("churn", "0.1.0"), ("churn", "0.2.0"), ("other", "0.1.0")}
    for v in doc["versions"]:
        assert set(v) == {"model", "version", "ok", "skipped", "problem"}
    assert [k for k, v in by_version.items() if not v["ok"]] == [("churn", "0.2.0")]
    assert by_version[("churn", "0.2.0")]["problem"]
    assert by_version[("churn", "0.1.0")]["problem"] is None

    assert run("verify", "churn@0.1.0").code == 0
    assert run("verify", "other").code == 0
    assert run("verify", "churn").code == 1


# --- doctor ---------------------------------------------------------------------------------------


def test_doctor_on_a_healthy_registry(two_versions: Path) -> None:
    result = run("doctor")
    assert result.code == 0, result.out + result.err
    result = run("doctor", "--json")
    assert result.code == 0
    findings = {f["check"]: f["status"] for f in json.loads(result.out)}
    assert "fail" not in findings.values()
    for check in ("git identity", "config", "dvc", "remote", "encryption key", "policy pin",
                  "tags"):
        assert findings[check] == "ok", check


def test_doctor_fails_on_policy_drift(two_versions: Path) -> None:
    with (two_versions / ".mlops" / "policy.yaml").open("a") as fh:
        fh.write("rules: []\n")
    result = run("doctor", "--json")
    assert result.code == 1
    failed = [f for f in json.loads(result.out) if f["status"] == "fail"]
    assert [f["check"] for f in failed] == ["policy pin"]


def test_doctor_warns_about_a_hand_made_created_tag(two_versions: Path) -> None:
    git(two_versions, "tag", "-a", "m@created", "-m", "by hand")
    result = run("doctor", "--json")
    assert result.code == 0  # a warning does not fail
    warnings = [f for f in json.loads(result.out) if f["status"] == "warn"]
    assert any("m@created" in f["detail"] for f in warnings)
    assert "m@created" in run("doctor").out


# --- demo -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_runs_the_tour_in_a_relative_dir(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # where a crash log would go
    result = run("demo", "--dir", "d")
    assert result.code == 0, result.out + result.err
    assert os.getcwd() == str(tmp_path)
    demo_repo = tmp_path / "d" / "repo"
    versions = sorted(t for t in tags(demo_repo) if "@v" in t)
    assert versions == ["cancer-clf@v0.1.0", "cancer-clf@v0.2.0", "cancer-clf@v0.3.0"]
    assert (demo_repo / "restored.pkl").is_file()
    assert not list(demo_repo.rglob("*.key"))  # keys live beside the repo, never in it
    # The server answered for 0.2.0, then, after the promotion, for 0.3.0.
    served = result.out.replace("\n", " ")
    assert served.index('"model_version": "0.2.0"') < served.index('"model_version": "0.3.0"')
    # Released twice, then rolled back: production serves 0.2.0 again, staging 0.3.0.
    with chdir(demo_repo):
        shown = json.loads(run("show", "--json").out)
        assert shown["cancer-clf"]["stage"] == {"production": "v0.2.0", "staging": "v0.3.0"}
        assert run("status").code == 0


# --- the Python API -------------------------------------------------------------------------------


def test_python_api_creates_gets_and_fetches_versions(registry: Path, tmp_path: Path,
                                                      trained: list[bytes]) -> None:
    from mlopsctl import MLOpsManager, VersionPolicy

    write(registry / "model.pkl", trained[0])
    config = write(registry / "config.yaml", "threshold: 0.5\n")
    manager = MLOpsManager(registry)
    v1 = manager.create_model_version(model_name="churn", model_path="model.pkl",
                                      config_path="config.yaml",
                                      performance_metrics={"accuracy": 0.91},
                                      version_policy=VersionPolicy.MINOR)
    assert v1.version == "0.1.0"
    assert v1.tag == "churn@v0.1.0"
    assert v1.artifact.sha256 == sha256(trained[0])
    assert v1.metrics == {"accuracy": 0.91}
    assert v1.config_file is not None
    assert v1.config_file.sha256 == sha256(config.read_bytes())

    write(registry / "model.pkl", trained[1])
    v2 = manager.create_model_version(model_name="churn", model_path="model.pkl",
                                      config_path="config.yaml",
                                      performance_metrics={"accuracy": 0.95},
                                      version_policy=VersionPolicy.MAJOR)
    assert v2.version == "1.0.0"
    assert v2.tag == "churn@v1.0.0"
    assert v2.parent_version == "0.1.0"
    assert tags(registry) == ["churn@v0.1.0", "churn@v1.0.0"]

    got = manager.get_model_version("churn", "0.1.0")
    assert got.version == "0.1.0" and got.tag == "churn@v0.1.0"
    assert got.commit == v1.commit
    assert manager.get_model_version("churn").version == "1.0.0"
    assert manager.list_models()["churn"]["version"] == "v1.0.0"

    path = manager.fetch("churn@0.1.0", tmp_path / "old.pkl")
    assert Path(path).read_bytes() == trained[0]
    assert manager.verify() is True
