"""Differential tests against the real `gto` CLI: on the same repository, `mlopsctl show --json`
and `mlopsctl history --json` must print what `gto show --json` and `gto history --json` print,
whether mlopsctl, GTO or a human with `git tag` wrote the tags."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import IDENTITY, chdir, git, make_repo, run

GTO = Path(sys.executable).parent / "gto"

Reads = dict[tuple[str, ...], Any]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment the module's repositories are built in: an isolated HOME and a git
    identity (the function-scoped `isolated_env` is not active for module fixtures)."""
    home = tmp_path_factory.mktemp("gto-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "MLOPSCTL_KEY", "MLOPSCTL_CONFIG_DIR",
                    "MLOPSCTL_DATA_DIR", "MLOPSCTL_TRANSPORT", "GIT_DIR", "GIT_WORK_TREE",
                    "GIT_COMMITTER_DATE", "GIT_AUTHOR_DATE"):
            mp.delenv(var, raising=False)
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("DVC_NO_ANALYTICS", "1")
        for key, value in IDENTITY.items():
            mp.setenv(key, value)
        yield dict(os.environ)


def gto(repo: Path, *args: str) -> str:
    proc = subprocess.run([str(GTO), *args], cwd=repo, capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0, f"gto {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def gto_chains(repo: Path, *chains: Sequence[tuple[str, ...]]) -> None:
    """Run chains of `gto` write commands: each chain in order, the chains concurrently (each
    touches its own model, so their tags and counters are independent)."""
    with ThreadPoolExecutor(len(chains)) as pool:
        futures = [pool.submit(lambda chain=chain: [gto(repo, *cmd) for cmd in chain])
                   for chain in chains]
        for future in futures:
            future.result()


def gto_reads(repo: Path, commands: Sequence[tuple[str, ...]]) -> Reads:
    """Run read-only `gto ... --json` commands concurrently; their parsed outputs by command."""
    procs = {cmd: subprocess.Popen([str(GTO), *cmd, "--json"], cwd=repo, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for cmd in commands}
    out: Reads = {}
    for cmd, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"gto {' '.join(cmd)}: {stderr}"
        out[cmd] = json.loads(stdout)
    return out


def mlopsctl_json(repo: Path, *args: str) -> Any:
    with chdir(repo):
        result = run(*args, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def ok(*args: str) -> None:
    result = run(*args)
    assert result.code == 0, f"mlopsctl {' '.join(args)}: {result.err}"


def models(count: int) -> list[bytes]:
    """Small, distinct pickled scikit-learn models."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    return [pickle.dumps(LogisticRegression(C=0.1 * (i + 1), max_iter=300).fit(x, y))
            for i in range(count)]


# --- a registry mlopsctl wrote, with stages and deprecations from gto ----------------------------

MLOPSCTL_READS = [("show",), ("show", "-d"), ("history",), ("history", "churn"),
                  ("history", "ranker"), ("history", "legacy")]


@pytest.fixture(scope="module")
def mlopsctl_registry(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]
                      ) -> tuple[Path, Reads]:
    repo = make_repo(tmp_path_factory.mktemp("by-mlopsctl") / "repo")
    blobs = models(5)
    with chdir(repo):
        ok("init")
        (repo / "churn.pkl").write_bytes(blobs[0])
        ok("bump", "churn", "--artifact", "churn.pkl", "-m", "baseline")
        (repo / "churn.pkl").write_bytes(blobs[1])
        ok("bump", "churn", "--patch")
        (repo / "fraud.pkl").write_bytes(blobs[2])
        ok("bump", "fraud", "--artifact", "fraud.pkl")
        (repo / "ranker.pkl").write_bytes(blobs[3])
        ok("bump", "ranker", "--artifact", "ranker.pkl")
        ok("bump", "ranker", "--version", "1.0.0-rc.1", "-m", "release candidate")
        (repo / "legacy.pkl").write_bytes(blobs[4])
        ok("bump", "legacy", "--artifact", "legacy.pkl")
        ok("bump", "fraud", "--minor")
    gto_chains(
        repo,
        [("assign", "churn", "--version", "v0.1.1", "--stage", "staging"),
         ("assign", "churn", "--version", "v0.1.0", "--stage", "staging")],  # a rollback
        [("assign", "fraud", "--version", "v0.2.0", "--stage", "production"),
         ("deprecate", "fraud", "v0.1.0")],  # deregister a version
        [("assign", "ranker", "--version", "v1.0.0-rc.1", "--stage", "canary"),
         ("deprecate", "ranker", "v1.0.0-rc.1", "canary")],  # unassign a stage
        [("deprecate", "legacy")],  # deprecate a model
    )
    with chdir(repo):
        ok("bump", "ranker", "--major")  # 1.0.0, the release of the candidate
        ok("bump", "churn")  # 0.2.0, after the stage events
    return repo, gto_reads(repo, MLOPSCTL_READS)


def test_scenario_is_what_it_claims(mlopsctl_registry: tuple[Path, Reads]) -> None:
    """Guards the comparisons below against comparing two empty documents."""
    repo, reads = mlopsctl_registry
    tags = set(git(repo, "tag", "--list").split())
    assert {"churn@v0.1.0", "churn@v0.1.1", "churn@v0.2.0", "ranker@v1.0.0-rc.1",
            "ranker@v1.0.0", "fraud@v0.1.0", "fraud@v0.2.0", "fraud@v0.1.0!",
            "legacy@v0.1.0", "legacy@deprecated"} <= tags
    assert reads[("show",)] == {
        "churn": {"version": "v0.2.0", "registered": True, "active": True,
                  "stage": {"production": None, "staging": "v0.1.0"}},
        "fraud": {"version": "v0.2.0", "registered": True, "active": True,
                  "stage": {"production": "v0.2.0", "staging": None}},
        "ranker": {"version": "v1.0.0", "registered": True, "active": True,
                   "stage": {"production": None, "staging": None}},
    }
    assert reads[("show", "-d")]["legacy"]["active"] is False
    assert len(reads[("history",)]) == 16


def test_show_json_equals_gto(mlopsctl_registry: tuple[Path, Reads]) -> None:
    repo, reads = mlopsctl_registry
    assert mlopsctl_json(repo, "show") == reads[("show",)]


def test_show_all_equals_gto_show_deprecated(mlopsctl_registry: tuple[Path, Reads]) -> None:
    repo, reads = mlopsctl_registry
    assert mlopsctl_json(repo, "show", "--all") == reads[("show", "-d")]


def test_history_json_equals_gto(mlopsctl_registry: tuple[Path, Reads]) -> None:
    repo, reads = mlopsctl_registry
    assert mlopsctl_json(repo, "history") == reads[("history",)]


@pytest.mark.parametrize("model", ["churn", "ranker", "legacy"])
def test_history_of_one_model_equals_gto(mlopsctl_registry: tuple[Path, Reads],
                                         model: str) -> None:
    repo, reads = mlopsctl_registry
    mine = mlopsctl_json(repo, "history", model)
    assert mine == reads[("history", model)]
    assert mine and {e["artifact"] for e in mine} == {model}


# --- a registry GTO (and a human) wrote, never touched by mlopsctl init ---------------------------

GTO_READS = [("show",), ("history",), ("history", "churn")]


@pytest.fixture(scope="module")
def gto_registry(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]
                 ) -> tuple[Path, Reads]:
    repo = make_repo(tmp_path_factory.mktemp("by-gto") / "repo")
    blobs = models(3)

    def commit(n: int) -> None:
        (repo / "model.pkl").write_bytes(blobs[n])
        git(repo, "add", "model.pkl")
        git(repo, "commit", "-q", "-m", f"train {n}")

    shas = []
    for n in range(3):
        commit(n)
        shas.append(git(repo, "rev-parse", "HEAD"))
    gto_chains(  # three models' worth of independent tags, written concurrently
        repo,
        [("register", "churn", shas[0], "--version", "v0.0.1")],
        [("assign", "churn", "--version", "v0.1.0", "--stage", "prod", shas[1])],  # + register
        [("register", "nlp/bert", shas[0], "--version", "v1.2.3-beta.2+build.5")],
    )
    git(repo, "tag", "-a", "churn@v1.0.0", "-m", "x")  # by hand, annotated: an event
    git(repo, "tag", "churn@v9.0.0")  # lightweight: not an event, for anyone
    git(repo, "tag", "-a", "churn#dev#9", "-m", "assigned by hand", "HEAD~2")
    git(repo, "tag", "-a", "release-2024", "-m", "not a registry tag")
    assert not (repo / ".mlops").exists()
    return repo, gto_reads(repo, GTO_READS)


def test_gto_scenario_is_what_it_claims(gto_registry: tuple[Path, Reads]) -> None:
    _, reads = gto_registry
    shown = reads[("show",)]
    assert set(shown) == {"churn", "nlp/bert"}
    assert shown["churn"]["version"] == "v1.0.0"
    assert shown["churn"]["stage"]["prod"] == "v0.1.0"
    assert shown["nlp/bert"]["version"] == "v1.2.3-beta.2+build.5"
    assert all("v9.0.0" not in json.dumps(e) for e in reads[("history",)])


def test_show_of_a_gto_registry_equals_gto(gto_registry: tuple[Path, Reads]) -> None:
    repo, reads = gto_registry
    mine = mlopsctl_json(repo, "show")
    assert mine == reads[("show",)]
    assert mine["churn"]["version"] == "v1.0.0"  # the lightweight m@v9.0.0 is no version


def test_history_of_a_gto_registry_equals_gto(gto_registry: tuple[Path, Reads]) -> None:
    repo, reads = gto_registry
    assert mlopsctl_json(repo, "history") == reads[("history",)]
    assert mlopsctl_json(repo, "history", "churn") == reads[("history", "churn")]


def test_human_readable_show_and_history_of_a_gto_registry(gto_registry: tuple[Path, Reads]
                                                           ) -> None:
    repo, _ = gto_registry
    with chdir(repo):
        shown = run("show")
        detail = run("show", "churn")
        history = run("history")
    assert shown.code == detail.code == history.code == 0
    assert "nlp/bert" in shown.out
    assert "v1.0.0" in detail.out and "v9.0.0" not in detail.out
    assert "v9.0.0" not in history.out


# --- events in the same second --------------------------------------------------------------------

SAME_SECOND_READS = [("show",), ("show", "-d"), ("history",), ("history", "alpha"),
                     ("history", "zeta")]


@pytest.fixture(scope="module")
def same_second_registry(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]
                         ) -> tuple[Path, Reads]:
    """Many registry tags sharing one tagger second (and two timezones): only the tie-breaking
    rules decide the order."""
    repo = make_repo(tmp_path_factory.mktemp("same-second") / "repo")
    blob = models(1)[0]
    with pytest.MonkeyPatch.context() as mp, chdir(repo):
        ok("init")
        (repo / "model.pkl").write_bytes(blob)
        mp.setenv("GIT_COMMITTER_DATE", "2024-05-01T12:00:00+0200")
        ok("bump", "zeta", "--artifact", "model.pkl")
        ok("bump", "alpha", "--artifact", "model.pkl")
        ok("bump", "mid", "--artifact", "model.pkl", "--version", "0.2.0")
        ok("bump", "alpha", "--patch")
        ok("bump", "alpha", "--version", "0.10.0")  # sorts before v0.2.0 as a string
        ok("bump", "alpha", "--version", "0.2.0")
        ok("bump", "mid", "--version", "0.1.0")
        for tag, version in [("alpha#prod#1", "0.1.1"), ("alpha#staging#2", "0.10.0"),
                             ("alpha#prod#10", "0.2.0"), ("alpha#staging#3", "0.1.0"),
                             ("mid#prod#1", "0.1.0"), ("mid#prod#2", "0.2.0"),
                             ("alpha@v0.1.0!#11", "0.1.0"), ("zeta@deprecated", "0.1.0")]:
            model = tag.split("#")[0].split("@")[0]
            git(repo, "tag", "-a", tag, "-m", f"{tag} by hand", f"{model}@v{version}^{{commit}}")
        # the same instant written in another timezone, and a second later in a third one
        mp.setenv("GIT_COMMITTER_DATE", "2024-05-01T10:00:00+0000")
        git(repo, "tag", "-a", "mid#staging#3", "-m", "utc", "mid@v0.2.0^{commit}")
        ok("bump", "omega", "--artifact", "model.pkl")
        mp.setenv("GIT_COMMITTER_DATE", "2024-05-01T05:00:01-0500")
        git(repo, "tag", "-a", "zeta#prod#1", "-m", "new york", "zeta@v0.1.0^{commit}")
        git(repo, "tag", "-a", "omega@deprecated", "-m", "gone", "omega@v0.1.0^{commit}")
    stamps = set(git(repo, "for-each-ref", "--format=%(taggerdate:unix)", "refs/tags").split())
    assert stamps == {"1714557600", "1714557601"}
    return repo, gto_reads(repo, SAME_SECOND_READS)


def test_same_second_show_agrees_with_gto(same_second_registry: tuple[Path, Reads]) -> None:
    repo, reads = same_second_registry
    assert mlopsctl_json(repo, "show") == reads[("show",)]
    assert mlopsctl_json(repo, "show", "--all") == reads[("show", "-d")]


def test_same_second_history_agrees_with_gto(same_second_registry: tuple[Path, Reads]) -> None:
    repo, reads = same_second_registry
    history = reads[("history",)]
    assert len({e["timestamp"] for e in history}) >= 3  # three spellings, two instants
    assert mlopsctl_json(repo, "history") == history
    for model in ("alpha", "zeta"):
        assert mlopsctl_json(repo, "history", model) == reads[("history", model)]


@pytest.fixture(scope="module")
def assign_then_unassign(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]
                         ) -> tuple[Path, Reads]:
    """Stage events within one second, as a script running `gto assign` and then
    `gto deprecate m v1.0.0 prod` produces them: prod assigned then unassigned (counters 1, 2);
    canary assigned, unassigned, assigned again (4, 5, 6); staging only assigned (3)."""
    repo = make_repo(tmp_path_factory.mktemp("tie") / "repo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIT_COMMITTER_DATE", "2024-05-01T12:00:00+0000")
        for tag in ("m@v1.0.0", "m#prod#1", "m#prod!#2", "m#staging#3", "m#canary#4",
                    "m#canary!#5", "m#canary#6"):
            git(repo, "tag", "-a", tag, "-m", tag)
    return repo, gto_reads(repo, [("show",), ("history",)])


def test_same_second_assign_then_unassign_show_agrees(assign_then_unassign: tuple[Path, Reads]
                                                      ) -> None:
    repo, reads = assign_then_unassign
    assert reads[("show",)]["m"]["stage"].get("prod") is None  # unassigned, says GTO
    assert reads[("show",)]["m"]["stage"]["staging"] == "v1.0.0"
    assert mlopsctl_json(repo, "show") == reads[("show",)]


def test_same_second_assign_then_unassign_history_agrees(assign_then_unassign: tuple[Path, Reads]
                                                         ) -> None:
    repo, reads = assign_then_unassign
    assert len(reads[("history",)]) == 7
    assert mlopsctl_json(repo, "history") == reads[("history",)]
