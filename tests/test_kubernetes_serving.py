"""The kubernetes target's rendered manifests: valid against the Kubernetes schemas
(kubernetes-validate, strict), and their container runs `mlopsctl serve` for real."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from test_kubernetes import MANIFESTS, manifest, plan

from mlopsctl.deploy.kubernetes import render

K8S = kubernetes_validate.latest_version()
STATES = {"two slots": ("v1.0.0", "v1.1.0"), "one slot": ("v1.0.0",), "rolled back":
          ("v1.0.0", "v1.1.0", "v1.0.0")}


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def check(doc: dict[str, Any]) -> None:
    """Strict schema validation; the Argo Rollout's CRD schema is not in the Kubernetes set,
    so its selector and pod template are checked as the Deployment they correspond to."""
    if doc["kind"] == "Rollout":
        doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": doc["metadata"],
               "spec": {k: doc["spec"][k] for k in ("replicas", "selector", "template",
                                                    "revisionHistoryLimit")}}
    kubernetes_validate.validate(doc, K8S, strict=True)


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("strategy", ["argo-rollouts", "deployment"])
def test_rendered_manifests_pass_the_kubernetes_schemas(strategy: str, state: str) -> None:
    text = render(plan(*STATES[state]), MANIFESTS, {"strategy": strategy, "namespace": "ml",
                                                   "image": "reg.example/serve:7"})
    docs = documents(text)
    assert docs
    for doc in docs:
        check(doc)


def test_a_broken_manifest_is_caught_by_the_schema_check() -> None:
    """The check can fail: a port given as text is refused."""
    doc = documents(render(plan("v1.0.0"), MANIFESTS, {"strategy": "deployment"}))[0]
    doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        check(doc)


def test_the_pod_runs_the_server_it_is_rendered_with(tmp_path: Path) -> None:
    """Take the rendered main container, expand its $(VAR)s from its env as Kubernetes does,
    point MODEL_PATH at a real model, run the command, probe it as the kubelet would."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    blob = pickle.dumps(LogisticRegression(max_iter=500).fit(x, y))
    (tmp_path / "model.pkl").write_bytes(blob)
    sha = hashlib.sha256(blob).hexdigest()
    versions = {"1.0.0": manifest("1.0.0").model_copy(update={"artifact": manifest("1.0.0")
                .artifact.model_copy(update={"sha256": sha})})}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    docs = documents(render(plan("v1.0.0"), versions, {"strategy": "deployment", "port": port}))
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    env["MODEL_PATH"] = str(tmp_path / "model.pkl")  # where the init container would write
    command = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], part)
               for part in container["command"]]
    assert command[:3] == ["mlopsctl", "serve", "churn"]
    command = [sys.executable, "-m", "mlopsctl", *command[1:]]
    command[command.index("0.0.0.0")] = "127.0.0.1"  # loopback only, in tests
    proc = subprocess.Popen(command, cwd=tmp_path, env=dict(os.environ), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    probe = container["readinessProbe"]["httpGet"]["path"]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # imports and the first load, on a busy machine
        while True:
            try:
                ready = httpx.get(url + probe, timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert ready.status_code == 200 and ready.json()["version"] == "1.0.0"
        assert httpx.get(url + container["livenessProbe"]["httpGet"]["path"]).json()[
            "status"] == "ok"
        answer = httpx.post(f"{url}/v1/models/churn:predict",
                            json={"instances": x[:3].tolist()}).json()
        assert answer == {**answer, "predictions": [0, 0, 0], "model_version": "1.0.0"}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
