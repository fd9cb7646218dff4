"""The hostile corpus (tests/hostile_corpus.py): no file in it may run code, and each must be
refused with an error naming what was refused, when loaded by ``load_model`` and when it goes
through ``mlopsctl validate`` and the smoke test of ``mlopsctl promote``.

Each file is loaded in a child process (a payload that gets through cannot poison this one),
under an address-space limit (the memory bombs fail fast instead of swapping the machine). A
payload's only effect is to create the marker file under the test's tmp_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import run, write
from hostile_corpus import HostileCase, build

pytestmark = pytest.mark.hostile

# Address space of the child loading one file: enough for numpy, scipy, pandas and
# scikit-learn, far below what a memory bomb asks for.
LIMIT = 3 * 2**30
CASE_TIMEOUT = 120
SECRET = "0123456789abcdef" * 4  # shaped like a registry key

# One interpreter imports the loader and the scientific stack once, then forks a child per
# file: the child sets the limits, loads, writes its reply to a file of its own (a payload may
# write to stdout) and reaps whatever the payload spawned; the parent then looks for the marker.
_RUNNER = textwrap.dedent("""
    import json, os, resource, signal, sys, time
    from pathlib import Path
    from mlopsctl.errors import MlopsError
    from mlopsctl.safeload import UnsafeArtifact, load_model
    import numpy, pandas, scipy.stats, sklearn.linear_model, joblib, skops.io

    def load(path, fmt, reply, limit, timeout):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        signal.alarm(timeout)
        try:
            model = load_model(Path(path), fmt)
            out = {"loaded": True, "refused": False, "error": "", "message": "",
                   "type": type(model).__module__ + "." + type(model).__qualname__}
        except BaseException as exc:
            out = {"loaded": False, "error": type(exc).__name__, "message": str(exc)[:2000],
                   "refused": isinstance(exc, (UnsafeArtifact, MlopsError)),
                   "globals": [str(g) for g in getattr(exc, "globals", []) or []]}
        Path(reply).write_text(json.dumps(out))
        try:
            while True:
                os.wait()
        except ChildProcessError:
            pass

    jobs = json.loads(Path(sys.argv[1]).read_text())
    results = {}
    for job in jobs:
        marker, reply = Path(job["marker"]), Path(job["reply"])
        marker.unlink(missing_ok=True)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                load(job["file"], job["format"], reply, job["limit"], job["timeout"])
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        result = json.loads(reply.read_text()) if reply.is_file() else {
            "loaded": False, "refused": False, "message": "",
            "error": f"child died (wait status {status})"}
        result["ran"] = marker.exists()
        result["seconds"] = round(time.monotonic() - started, 2)
        if result["ran"]:
            result["marker_text"] = marker.read_text(errors="replace")[:200]
        marker.unlink(missing_ok=True)
        results[job["name"]] = result
    Path(sys.argv[2]).write_text(json.dumps(results))
""")


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.update(extra)
    return env


def load_all(cases: list[HostileCase], marker: Path, work: Path, **env: str
             ) -> dict[str, dict[str, Any]]:
    """``load_model(case.file, case.format)`` for each case, each in a process of its own;
    name -> {ran, loaded, refused, error, message, globals}."""
    jobs = [{"name": c.name, "file": str(c.file), "format": c.format, "marker": str(marker),
             "reply": str(work / f"{c.name}.reply.json"), "limit": LIMIT,
             "timeout": CASE_TIMEOUT} for c in cases]
    write(work / "jobs.json", json.dumps(jobs))
    out = work / "results.json"
    proc = subprocess.run([sys.executable, "-c", _RUNNER, str(work / "jobs.json"), str(out)],
                          cwd=work, env=_child_env(**env), capture_output=True, text=True,
                          timeout=CASE_TIMEOUT * len(cases) + 60, check=False)
    assert out.is_file(), f"the runner failed (exit {proc.returncode}): {proc.stderr[-3000:]}"
    results: dict[str, dict[str, Any]] = json.loads(out.read_text())
    return results


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[HostileCase]]:
    """The corpus, built once: (marker path, cases)."""
    base = tmp_path_factory.mktemp("hostile")
    marker = base / "pwned"
    return marker, build(base / "files", marker)


@pytest.fixture(scope="module")
def outcomes(corpus: tuple[Path, list[HostileCase]], tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, dict[str, Any]]:
    """What loading each file did (run once for the module)."""
    return load_all(corpus[1], corpus[0], tmp_path_factory.mktemp("runs"))


def _cases() -> list[str]:
    """Case names, without building anything (collection must stay fast)."""
    from hostile_corpus import _BOMBS, _CASES

    return [c[0] for c in _CASES] + [b[0] for b in _BOMBS]


def _case(corpus: tuple[Path, list[HostileCase]], name: str) -> HostileCase:
    return next(c for c in corpus[1] if c.name == name)


def _names_a_refusal(result: dict[str, Any], case: HostileCase) -> bool:
    if not case.refuses:
        return bool(result["message"].strip())
    text = result["message"] + " " + " ".join(result.get("globals", []))
    return any(name in text for name in case.refuses)


# --- (a) every file through load_model ------------------------------------------------------


def test_the_corpus_has_at_least_40_files_across_three_formats(
        corpus: tuple[Path, list[HostileCase]]) -> None:
    cases = corpus[1]
    assert len(cases) >= 40
    assert {c.format for c in cases} == {"sklearn-pickle", "joblib", "skops"}
    assert {"pandas-expr", "scipy-setstate", "ndarraywrapper", "pytesttester"} <= {
        c.route for c in cases}
    assert {c.format for c in cases if c.route == "scipy-setstate"} == {
        "sklearn-pickle", "joblib", "skops"}
    assert all(c.file.is_file() and c.file.stat().st_size > 0 for c in cases)


@pytest.mark.parametrize("name", _cases())
def test_a_hostile_file_is_refused_by_load_model_and_runs_nothing(
        name: str, corpus: tuple[Path, list[HostileCase]],
        outcomes: dict[str, dict[str, Any]]) -> None:
    case = _case(corpus, name)
    result = outcomes[name]

    assert not result["ran"], f"{case.name} ({case.route}) ran its payload: {result}"
    assert not result["loaded"], f"{case.name} loaded as {result.get('type')}"
    assert result["refused"], f"{case.name} failed with {result['error']}, not a refusal: " \
        f"{result['message'][:300]}"
    assert _names_a_refusal(result, case), \
        f"the refusal does not name any of {case.refuses}: {result['message'][:300]}"


def test_a_model_cannot_read_the_registry_key(tmp_path: Path) -> None:
    """The payload copies MLOPSCTL_KEY into the marker: neither may happen."""
    marker = tmp_path / "pwned"
    cases = [c for c in build(tmp_path / "files", marker) if c.route == "env-secret"]

    results = load_all(cases, marker, tmp_path, MLOPSCTL_KEY=SECRET)

    for case in cases:
        result = results[case.name]
        assert SECRET not in result.get("marker_text", ""), \
            f"{case.name} read the registry key"
        assert not result["ran"], f"{case.name} ran its payload"
        assert result["refused"], result


# --- (b) end to end: validate and the smoke test of promote ----------------------------------

# One file per route, each of which ran code in the worker before the loader was rewritten.
E2E = [
    "reduce-os-system-p2", "stack-global-memo", "scipy-setstate-skops", "lr-hidden-scipy-pkl",
    "pandas-expr-joblib", "ndarraywrapper-joblib", "pytesttester-scipy-pkl",
    "env-secret-lr-scipy-joblib", "stdout-fake-reply-scipy-pkl",
]
SMOKE = ["lr-hidden-scipy-pkl", "scipy-setstate-skops", "pandas-expr-joblib",
         "ndarraywrapper-joblib", "pytesttester-scipy-pkl"]


def _iris_holdout(repo: Path) -> Path:
    """Iris as a CSV with columns f0..f3 and y (the hidden-payload models are fitted on it)."""
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    rows = ["f0,f1,f2,f3,y"] + [",".join(f"{v:g}" for v in row) + f",{label}"
                                for row, label in zip(x[::3], y[::3], strict=True)]
    return write(repo / "holdout.csv", "\n".join(rows) + "\n")


def _register(repo: Path, tmp_path: Path, name: str) -> tuple[HostileCase, Path]:
    """Build case ``name`` into the repository (marker under tmp_path), bump it as m@0.1.0."""
    marker = tmp_path / "pwned"
    case = build(repo / "incoming", marker, names=[name])[0]
    result = run("bump", "m", "--artifact", case.file)
    assert result.code == 0, result.err
    assert not marker.exists(), "bump ran the payload"
    _iris_holdout(repo)
    return case, marker


def _mentions(text: str, case: HostileCase) -> bool:
    return any(name in text for name in case.refuses)


@pytest.mark.slow
@pytest.mark.parametrize("name", E2E)
def test_validate_refuses_a_hostile_artifact_with_exit_1_and_runs_nothing(
        name: str, registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case, marker = _register(registry, tmp_path, name)
    key = run("key", "export").out.strip()
    assert len(key) >= 32
    monkeypatch.setenv("MLOPSCTL_KEY", key)  # as in the CI job that validates the model

    result = run("validate", "m@0.1.0", "--latency-runs", "5", "--json", "--data",
                 "holdout.csv", "--target", "y")

    leaked = marker.read_text() if marker.exists() else ""
    assert key not in leaked, "the model read the registry key"
    assert not marker.exists(), f"{name} ran its payload during validate"
    assert result.code == 1, (result.code, result.err)
    report = json.loads(result.out)
    assert report["status"] == "refused", report
    assert report["passed"] is False
    assert _mentions(result.err + json.dumps(report), case), (result.err, report)


def _forge_passing_report(repo: Path) -> None:
    """Record a passing staging report for m@0.1.0, as an earlier validation (or a
    teammate's pushed note) would have: promote then goes straight to the smoke test."""
    from conftest import git

    from mlopsctl.gitops.notes import merge_note

    commit = git(repo, "rev-parse", "m@v0.1.0^{commit}")
    notes = json.loads(git(repo, "notes", "--ref=mlops", "show", commit))
    report = dict(notes["validations"]["staging"], passed=True, status="passed")
    merge_note(repo, commit, "validations", "staging", report)


@pytest.mark.slow
@pytest.mark.parametrize("name", SMOKE)
def test_the_smoke_test_of_promote_refuses_a_hostile_artifact_and_runs_nothing(
        name: str, registry: Path, tmp_path: Path) -> None:
    case, marker = _register(registry, tmp_path, name)
    # A validation report for this artifact and policy (whatever it found), marked passing.
    run("validate", "m@0.1.0", "--latency-runs", "5", "--data", "holdout.csv", "--target", "y")
    marker.unlink(missing_ok=True)
    _forge_passing_report(registry)

    result = run("promote", "m", "0.1.0", "--to", "staging")

    assert not marker.exists(), f"{name} ran its payload during the smoke test"
    assert result.code == 1, (result.code, result.err)
    assert "smoke test" in result.err and "refused" in result.err, result.err
    assert _mentions(result.err, case), result.err
    assert not (registry / ".mlops" / "deploy" / "staging").exists() or not any(
        (registry / ".mlops" / "deploy" / "staging").rglob(case.file.name))


@pytest.mark.slow
def test_a_legitimate_model_that_prints_to_stdout_still_gets_a_report(registry: Path) -> None:
    """A RandomForestClassifier with verbose >= 50 prints joblib's progress to stdout while it
    predicts: no code of its own, and the worker's reply must survive it."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    forest.verbose = 60
    import pickle

    write(registry / "chatty.pkl", pickle.dumps(forest))
    assert run("bump", "chatty", "--artifact", "chatty.pkl").code == 0
    _iris_holdout(registry)

    result = run("validate", "chatty@0.1.0", "--latency-runs", "5", "--json", "--data",
                 "holdout.csv", "--target", "y")

    assert result.code in (0, 1), (result.code, result.err)
    report = json.loads(result.out)
    assert report["model_class"] == "RandomForestClassifier", report
    assert report["metrics"]["accuracy"]["recomputed"] > 0.9


# --- (c) the figure -----------------------------------------------------------------------------


def test_figure_none_of_the_hostile_files_runs(corpus: tuple[Path, list[HostileCase]],
                                               outcomes: dict[str, dict[str, Any]]) -> None:
    cases = corpus[1]
    ran = [f"{c.name} ({c.route})" for c in cases if outcomes[c.name]["ran"]]
    not_refused = [f"{c.name} ({c.route}): {outcomes[c.name]['error'] or 'loaded'}"
                   for c in cases if not outcomes[c.name]["ran"]
                   and (outcomes[c.name]["loaded"] or not outcomes[c.name]["refused"])]
    print(f"\n{len(ran)} of {len(cases)} hostile ones run")
    for line in ran:
        print(f"  ran: {line}")
    for line in not_refused:
        print(f"  not refused: {line}")
    assert ran == [], f"{len(ran)} of {len(cases)} hostile ones run: {ran}"
    assert not_refused == [], f"{len(not_refused)} of {len(cases)} were not refused"
