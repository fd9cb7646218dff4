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


# --- names GTO's grammar allows: uppercase, '/', monorepo dir:name -------------------------------

GTO_NAMES = ["folder:artifact", "classification/dvclive:models/nn", "Big/Name"]
NAMED_READS = [("show",)] + [("history", n) for n in GTO_NAMES]


@pytest.fixture(scope="module")
def gto_named(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]
              ) -> tuple[Path, Reads]:
    """Artifacts named as GTO's own tests name them, registered and assigned by gto."""
    repo = make_repo(tmp_path_factory.mktemp("gto-names") / "repo")
    gto_chains(repo, *[[("register", name, "HEAD", "--version", "v0.1.0"),
                        ("assign", name, "--version", "v0.1.0", "--stage", "Prod")]
                       for name in GTO_NAMES])
    tags = git(repo, "tag", "--list")
    assert "folder=artifact@v0.1.0" in tags and "Big/Name#Prod#1" in tags
    return repo, gto_reads(repo, NAMED_READS)


@pytest.mark.parametrize("name", GTO_NAMES)
def test_show_and_history_take_every_name_show_lists(gto_named: tuple[Path, Reads],
                                                     name: str) -> None:
    repo, reads = gto_named
    assert name in reads[("show",)]
    assert mlopsctl_json(repo, "show") == reads[("show",)]
    assert mlopsctl_json(repo, "history", name) == reads[("history", name)]
    detail = mlopsctl_json(repo, "show", name)
    assert detail["model"] == name and detail["latest"] == "v0.1.0"
    assert detail["stages"] == {"Prod": "v0.1.0"}
    with chdir(repo):
        human = run("history", name)
    assert human.code == 0 and name in human.out


def test_an_unknown_but_valid_name_is_unknown_and_a_malformed_one_invalid(
        gto_named: tuple[Path, Reads]) -> None:
    repo, _ = gto_named
    with chdir(repo):
        unknown = run("show", "Other/Name")
        bad = run("history", "bad name")
    assert unknown.code == 2 and "unknown model 'Other/Name'" in unknown.err
    assert bad.code == 2 and "invalid model name 'bad name'" in bad.err


# --- artifacts.yaml and the stages of .gto --------------------------------------------------------


@pytest.fixture(scope="module")
def declared(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]
             ) -> dict[str, tuple[Any, Any]]:
    """Artifacts declared in artifacts.yaml and never tagged (nn), declared and tagged (churn),
    deprecated before the commit that declares it (old, which that commit revives, as GTO has
    it); then a .gto whose stages list drops one used stage and adds an unused one.
    (mlopsctl's answer, gto's answer) for show and show -d in each state."""
    repo = make_repo(tmp_path_factory.mktemp("declared") / "repo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIT_COMMITTER_DATE", "2024-05-01T09:00:00+0000")
        git(repo, "commit", "-q", "--allow-empty", "-m", "train")  # older than every tag
        mp.setenv("GIT_COMMITTER_DATE", "2024-05-01T10:00:00+0000")
        for tag in ("churn@v0.1.0", "churn#staging#1", "churn#prod#2", "old@v1.0.0",
                    "gone@v1.0.0"):
            git(repo, "tag", "-a", tag, "-m", tag)
        mp.setenv("GIT_COMMITTER_DATE", "2024-05-01T10:00:10+0000")
        for tag in ("old@deprecated", "gone@deprecated"):
            git(repo, "tag", "-a", tag, "-m", tag)
        (repo / "artifacts.yaml").write_text("nn:\n  type: model\n  path: models/nn.pkl\n"
                                             "churn: {}\nold: {}\n")
        (repo / "scratch.yaml").write_text("not: [committed\n")  # the work tree is not read
        git(repo, "add", "artifacts.yaml")
        mp.setenv("GIT_COMMITTER_DATE", "2024-05-01T10:00:20+0000")
        git(repo, "commit", "-q", "-m", "declare artifacts")
    out: dict[str, tuple[Any, Any]] = {}
    for state in ("index", "stages"):
        if state == "stages":
            (repo / ".gto").write_text("stages: [dev, prod]\n")
        theirs = gto_reads(repo, [("show",), ("show", "-d")])
        out[state] = ((mlopsctl_json(repo, "show"), mlopsctl_json(repo, "show", "--all")),
                      (theirs[("show",)], theirs[("show", "-d")]))
    return out


def test_declared_artifacts_are_shown_as_gto_shows_them(declared: dict[str, tuple[Any, Any]]
                                                        ) -> None:
    mine, theirs = declared["index"]
    assert theirs[0]["nn"] == {"version": None, "stage": {"prod": None, "staging": None},
                               "registered": False, "active": True}
    assert theirs[0]["old"]["active"] is True  # the declaring commit is newer than the deprecation
    assert "gone" not in theirs[0] and theirs[1]["gone"]["active"] is False
    assert mine == theirs


def test_gto_stages_config_lists_stages_as_gto_does(declared: dict[str, tuple[Any, Any]]) -> None:
    mine, theirs = declared["stages"]
    assert theirs[0]["churn"]["stage"] == {"dev": None, "prod": "v0.1.0"}  # staging dropped
    assert list(theirs[0]["churn"]["stage"]) == ["dev", "prod"]  # in the config's order
    assert mine == theirs
    assert list(mine[0]["churn"]["stage"]) == ["dev", "prod"]


def test_declared_only_artifact_in_the_human_views(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "artifacts.yaml").write_text("nn: {}\n")
    git(repo, "add", "artifacts.yaml")
    git(repo, "commit", "-q", "-m", "declare nn")
    with chdir(repo):
        shown = run("show")
        detail = run("show", "nn", "--json")
    assert shown.code == 0 and "nn" in shown.out and "not registered" in shown.out
    assert "None" not in shown.out
    assert detail.code == 0 and json.loads(detail.out)["versions"] == []
    with chdir(repo):
        history, unknown = run("history", "nn", "--json"), run("history", "nosuch")
    assert history.code == 0 and json.loads(history.out) == []  # as `gto history nn`
    assert unknown.code == 2 and "unknown model 'nosuch'" in unknown.err  # gto prints [] here


@pytest.mark.parametrize("content", ["nn:\n", "- a\n", "nn: 5\n", "Bad Name: {}\n"])
def test_a_malformed_artifacts_yaml_is_refused_as_gto_refuses_it(tmp_path: Path,
                                                                 content: str) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "artifacts.yaml").write_text(content)
    git(repo, "add", "artifacts.yaml")
    git(repo, "commit", "-q", "-m", "bad index")
    with chdir(repo):
        result = run("show")
    assert result.code == 3, result.err
    assert "artifacts.yaml" in result.err and "hint:" in result.err
    gto_proc = subprocess.run([str(GTO), "show", "--json"], cwd=repo, capture_output=True,
                              text=True, check=False, timeout=120)
    assert gto_proc.returncode != 0  # gto refuses it too


# --- timestamps: GTO's +00:00, whatever git prints ---------------------------------------------


def _git_printing_utc_as_z(bin_dir: Path) -> Path:
    """A `git` that behaves as git >= 2.45 does: `for-each-ref` prints a UTC iso-strict date as
    `Z`. (The real git here is older and prints `+00:00`.)"""
    import shutil

    real = shutil.which("git")
    shim = bin_dir / "git"
    shim.write_text("#!/bin/bash\nset -o pipefail\n"
                    f'if [ "$1" = for-each-ref ]; then "{real}" "$@" | sed "s/+00:00/Z/g"; '
                    f'else exec "{real}" "$@"; fi\n')
    shim.chmod(0o755)
    return bin_dir


def test_history_timestamps_are_formatted_as_gto_writes_them(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """Tags made in UTC (as on every CI runner) read back with GTO's `+00:00`, even from a git
    that prints `Z`."""
    monkeypatch.setenv("TZ", "UTC")
    repo = make_repo(tmp_path / "repo")
    git(repo, "tag", "-a", "churn@v0.1.0", "-m", "in utc")
    git(repo, "tag", "-a", "churn#prod#1", "-m", "in utc")
    theirs = gto_reads(repo, [("history",)])[("history",)]
    assert all(e["timestamp"].endswith("+00:00") for e in theirs)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{_git_printing_utc_as_z(bin_dir)}:{os.environ['PATH']}")
    assert "Z" in git(repo, "for-each-ref", "--format=%(taggerdate:iso-strict)", "refs/tags")
    assert mlopsctl_json(repo, "history") == theirs


# --- a tag of a tag ----------------------------------------------------------------------------


def test_a_tag_of_a_tag_is_read_at_its_commit(tmp_path: Path) -> None:
    """gto registers `m@v2.0.0`, a tag of the tag `m@v1.0.0`, so shows and history agree with
    it on versions; mlopsctl records the commit, where gto prints the inner tag's id."""
    repo = make_repo(tmp_path / "repo")
    git(repo, "tag", "-a", "m@v1.0.0", "-m", "first")
    git(repo, "-c", "advice.nestedTag=false", "tag", "-a", "m@v2.0.0", "-m", "nested",
        "m@v1.0.0")
    reads = gto_reads(repo, [("show",), ("history",)])
    assert mlopsctl_json(repo, "show") == reads[("show",)]
    assert reads[("show",)]["m"]["version"] == "v2.0.0"
    mine = mlopsctl_json(repo, "history")
    commit = git(repo, "rev-parse", "HEAD")
    assert [e["commit"] for e in mine] == [commit, commit]
    inner = git(repo, "rev-parse", "m@v1.0.0")
    theirs = [dict(e, commit=commit if e["commit"] == inner else e["commit"])
              for e in reads[("history",)]]
    assert mine == theirs


# --- writes take GTO's names; paths never leave .mlops/models -------------------------------------

WRITE_NAMES = ["Big/Name", "folder:artifact", "src/models.v2:x", "churn"]


def test_bump_takes_gto_names_maps_dir_name_as_gto_and_keeps_paths_inside(registry: Path,
                                                                          tmp_path: Path) -> None:
    from mlopsctl.deploy.local import LocalTarget

    blobs = models(len(WRITE_NAMES))
    for name, blob in zip(WRITE_NAMES, blobs, strict=True):
        (registry / "model.pkl").write_bytes(blob)
        ok("bump", name, "--artifact", "model.pkl")
    tags = set(git(registry, "tag", "--list").split("\n"))
    assert {"Big/Name@v0.1.0", "folder=artifact@v0.1.0", "src/models.v2=x@v0.1.0",
            "churn@v0.1.0"} <= tags
    files = git(registry, "ls-tree", "-r", "--name-only", "HEAD").split("\n")
    model_files = [f for f in files if f.startswith(".mlops/models/")]
    dirs = {f.split("/")[2] for f in model_files}
    assert dirs == {"%42ig%2F%4Eame", "folder%3Aartifact", "src%2Fmodels%2Ev2%3Ax", "churn"}
    assert all(f.count("/") == 4 or f.endswith("/model.yaml") for f in model_files)
    # GTO's grammar allows '..' in a dir part, git refuses it in a tag: a usage error up front
    before = git(registry, "rev-parse", "HEAD"), git(registry, "tag", "--list")
    refused = run("bump", "../../escape:x", "--artifact", "model.pkl")
    assert refused.code == 2 and "invalid model name" in refused.err
    assert (git(registry, "rev-parse", "HEAD"), git(registry, "tag", "--list")) == before
    assert not list(registry.parent.glob("*escape*")) and not list(registry.glob("*escape*"))
    # gto reads what mlopsctl wrote, under the names given
    assert mlopsctl_json(registry, "show") == gto_reads(registry, [("show",)])[("show",)]
    assert set(mlopsctl_json(registry, "show")) == set(WRITE_NAMES)
    out = tmp_path / "restored.pkl"
    ok("fetch", "src/models.v2:x@0.1.0", "-o", out)
    assert out.read_bytes() == blobs[2]
    # `check` knows the mapping: GTO names' directories are no findings
    checked = run("check", "--json")
    assert [f for f in json.loads(checked.out)["findings"] if f["check"] == "names"] == [], \
        checked.out
    # the local deploy target maps names the same way
    base = tmp_path / "deploy"
    for env, name in [("production", "../../escape:x"), ("Prod/EU", "Big/Name")]:
        assert LocalTarget(base).dir(env, name).resolve().parent.parent == base.resolve()


def test_the_api_lists_declared_artifacts_as_show_does(registry: Path) -> None:
    from mlopsctl.api import MLOpsManager

    (registry / "artifacts.yaml").write_text("nn: {}\n")
    (registry / ".gto").write_text("stages: [prod, dev]\n")
    git(registry, "add", "artifacts.yaml")
    git(registry, "commit", "-q", "-m", "declare nn")
    listed = MLOpsManager(registry).list_models()
    assert listed == mlopsctl_json(registry, "show")
    assert listed == {"nn": {"version": None, "stage": {"prod": None, "dev": None},
                             "registered": False, "active": True}}
    header = next(line for line in run("show").out.splitlines() if "latest" in line).split()
    assert header == ["model", "latest", "prod", "dev"]  # the columns in the config's order
