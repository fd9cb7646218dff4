"""``mlopsctl demo``: a narrated tour in a fresh temporary repository.

Trains a small scikit-learn model on a dataset shipped with scikit-learn, then runs the real
commands (in-process, exactly as typed) a new user would: init, bumps, show, history, a
verified fetch, verify, validate, promotion through staging and production (blue-green), a
second release (served over HTTP by `mlopsctl serve`, which switches versions as it goes
out) and a rollback. Keys, the artifact remote and the deploy slots live inside the
demo directory, so the demo leaves nothing in your own configuration.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

MODEL = "cancer-clf"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _train(repo: Path, c: float, max_iter: int) -> dict[str, float]:
    """Fit a logistic regression; write model.pkl, metrics.json and params.json."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = _read_csv(repo / "data" / "train.csv")
    holdout = _read_csv(repo / "data" / "holdout.csv")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
    model.fit(train[0], train[1])
    pred = model.predict(holdout[0])
    metrics = {
        "accuracy": round(float(accuracy_score(holdout[1], pred)), 4),
        "precision": round(float(precision_score(holdout[1], pred)), 4),
        "recall": round(float(recall_score(holdout[1], pred)), 4),
        "f1": round(float(f1_score(holdout[1], pred)), 4),
    }
    (repo / "model.pkl").write_bytes(pickle.dumps(model))
    (repo / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (repo / "params.json").write_text(json.dumps({"C": c, "max_iter": max_iter}) + "\n")
    return metrics


def _read_csv(path: Path):
    import numpy as np

    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, :-1], data[:, -1].astype(int)


def _write_data(repo: Path) -> None:
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    ds = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        ds.data, ds.target, test_size=0.3, random_state=42, stratify=ds.target)
    header = ",".join(f"f{i}" for i in range(ds.data.shape[1])) + ",target"
    (repo / "data").mkdir()
    for name, x, y in (("train", x_train, y_train), ("holdout", x_test, y_test)):
        np.savetxt(repo / "data" / f"{name}.csv", np.column_stack([x, y]), delimiter=",",
                   header=header, comments="", fmt="%.6g")


@contextlib.contextmanager
def _serving(repo: Path) -> Iterator[Callable[..., str]]:
    """``mlopsctl serve`` for production on a free loopback port, on a thread; yields
    ``ask(until=None)``: one prediction for a holdout row, as the answer's text (waiting, with
    ``until``, for the server to answer with that version)."""
    import time
    import urllib.request

    from mlopsctl.project import Project
    from mlopsctl.serving.server import ThreadedServer, follow_registry

    row = _read_csv(repo / "data" / "holdout.csv")[0][:1].tolist()
    service = follow_registry(Project.open(repo), MODEL, "production", interval=0.1)

    with ThreadedServer(service) as server:
        def ask(until: str | None = None) -> str:
            deadline = time.monotonic() + 60
            while True:
                request = urllib.request.Request(
                    f"{server.url}/v1/models/{MODEL}:predict",
                    data=json.dumps({"instances": row}).encode(),
                    headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=10) as response:
                    doc = json.loads(response.read())
                if until is None or doc["model_version"] == until or \
                        time.monotonic() > deadline:
                    return json.dumps({k: doc[k] for k in ("predictions", "model_version")})
                time.sleep(0.1)

        yield ask


def run_demo(directory: Path | None, say: Callable[[str], None],
             command: Callable[[list[str]], int]) -> Path:
    """Run the tour; ``say`` narrates, ``command`` runs `mlopsctl ARGS` and returns its exit
    code. Returns the demo repository."""
    base = Path(directory).resolve() if directory else \
        Path(tempfile.mkdtemp(prefix="mlopsctl-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    repo = base / "repo"
    if repo.exists():
        raise FileExistsError(f"{repo} already exists: pick an empty --dir")
    os.environ["MLOPSCTL_CONFIG_DIR"] = str(base / "user-config")
    os.environ["MLOPSCTL_DATA_DIR"] = str(base / "user-data")

    def step(args: list[str]) -> None:
        say(f"[bold]$ mlopsctl {shlex.join(args)}[/]")
        code = command(args)
        if code != 0:
            raise RuntimeError(f"`mlopsctl {shlex.join(args)}` exited {code}")

    say(f"[cyan]1. A new project in {repo}, with a model trained on scikit-learn's breast "
        "cancer dataset.[/]")
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "Demo User")
    _git(repo, "config", "user.email", "demo@example.com")
    _write_data(repo)
    (repo / ".gitignore").write_text("model.pkl\nrestored.pkl\nmetrics.json\nparams.json\n")
    metrics = _train(repo, c=0.05, max_iter=200)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "training data and parameters")
    say(f"   trained: {metrics}")
    old = os.getcwd()
    os.chdir(repo)
    try:
        say("[cyan]2. Make it a registry: config, policy, access, DVC remote, encryption key.[/]")
        step(["init"])
        say("[cyan]3. Register the first version with its metrics, params and data lineage.[/]")
        step(["bump", MODEL, "--artifact", "model.pkl", "--metrics", "metrics.json",
              "--params", "params.json", "--data", "data/train.csv",
              "--holdout", "data/holdout.csv", "--target", "target",
              "--description", "Flags malignant tumours from 30 cell-nucleus measurements",
              "--intended-use", "Demonstration only; not for clinical decisions",
              "-m", "baseline logistic regression"])
        say("[cyan]4. Retrain with weaker regularisation and register a minor bump.[/]")
        metrics = _train(repo, c=1.0, max_iter=500)
        say(f"   retrained: {metrics}")
        step(["bump", MODEL, "--minor", "--metrics", "metrics.json", "--params", "params.json",
              "--data", "data/train.csv", "-m", "C=1.0"])
        say("[cyan]5. What the registry holds (read from git tags in one call).[/]")
        step(["show"])
        step(["show", MODEL])
        step(["history", MODEL])
        say("[cyan]6. Restore the first version: decrypted, decompressed and checked by "
            "sha256.[/]")
        step(["fetch", f"{MODEL}@0.1.0", "-o", "restored.pkl"])
        with open("restored.pkl", "rb") as fh:
            restored = pickle.load(fh)
        x, y = _read_csv(repo / "data" / "holdout.csv")
        say(f"   the restored model predicts again: accuracy {restored.score(x, y):.4f}")
        say("[cyan]7. Re-check every stored artifact end to end.[/]")
        step(["verify"])
        say("[cyan]8. Validate for staging: metrics recomputed on the holdout, latency measured, "
            "the policy scored; the report is stored as a git note.[/]")
        step(["validate", f"{MODEL}@0.2.0", "--env", "staging", "--latency-runs", "100"])
        say("[cyan]9. Release 0.2.0: staging first, then production (validated for production "
            "on the way). Each goes into the idle blue/green slot, is smoke-tested, and goes "
            "live with an atomic flip.[/]")
        step(["promote", MODEL, "0.2.0", "--to", "staging"])
        step(["promote", MODEL, "0.2.0", "--to", "production", "-m", "first release"])
        say("[cyan]10. A second release while production is served over HTTP (`mlopsctl serve`, "
            "KServe v1): retrain, register 0.3.0, promote it through both environments, and "
            "watch the server switch versions on its own.[/]")
        with _serving(repo) as ask:
            say(f"   POST /v1/models/{MODEL}:predict -> {ask()}")
            metrics = _train(repo, c=10.0, max_iter=1000)
            say(f"   retrained: {metrics}")
            step(["bump", MODEL, "--minor", "--metrics", "metrics.json", "--params",
                  "params.json", "--data", "data/train.csv", "-m", "C=10"])
            step(["promote", MODEL, "0.3.0", "--to", "staging"])
            step(["promote", MODEL, "0.3.0", "--to", "production", "-m", "second release"])
            say(f"   POST /v1/models/{MODEL}:predict -> {ask(until='0.3.0')}")
        step(["status", MODEL])
        say("[cyan]11. Something is wrong in production: roll back. 0.2.0 is still warm in the "
            "other slot, so this is an instant flip (recorded as its own event).[/]")
        step(["rollback", MODEL, "--env", "production", "-m", "demo: pretend p95 regressed"])
        step(["status", MODEL])
        step(["history", MODEL])
    finally:
        os.chdir(old)
    say(f"[green]Done.[/] The demo repository is {repo}. Its encryption key lives beside it, "
        "not in your own key store; to keep exploring:\n"
        f"   export MLOPSCTL_CONFIG_DIR={base / 'user-config'}\n"
        f"   cd {repo} && mlopsctl status && mlopsctl history   (`gto show` reads it too)")
    say(f"   and watch it live: cd {repo} && mlopsctl monitor   (`?` lists the keys)")
    return repo
