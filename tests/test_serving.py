"""`mlopsctl serve`: a real uvicorn server on a free loopback port, following a real registry
(three scikit-learn versions, validated, promoted and rolled back with the real commands)."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_promotion import MODEL, RUNS, Snapshot, copy_snapshot, make_snapshots, ok

from mlopsctl.project import Project
from mlopsctl.serving.server import Service, ThreadedServer, follow_registry, pinned_file

PREDICT = f"/v1/models/{MODEL}:predict"


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Snapshot]:
    """'staged': 0.1.0 and 0.2.0 validated for both environments and released to staging."""
    return make_snapshots(tmp_path_factory.mktemp("serving"),
                          {"0.1.0": ("staging", "production"),
                           "0.2.0": ("staging", "production")},
                          {"staged": ("0.1.0", "0.2.0")})


@pytest.fixture
def snap(snapshots: dict[str, Snapshot], tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Snapshot:
    """A private copy of 'staged' with 0.1.0 live in production, as the current directory."""
    copy = copy_snapshot(snapshots["staged"], tmp_path / "staged")
    monkeypatch.setenv("HOME", str(copy.home))
    monkeypatch.chdir(copy.repo)
    ok("promote", MODEL, "0.1.0", "--to", "production")
    return copy


def holdout_rows(snap: Snapshot, n: int = 8) -> tuple[list[str], list[list[float]]]:
    import pandas as pd

    frame = pd.read_csv(snap.repo / "data" / "holdout.csv").drop(columns=["target"])
    return list(frame.columns), frame.head(n).values.tolist()


def expected(snap: Snapshot, number: str, rows: list[list[float]]) -> list[Any]:
    import numpy as np

    model = pickle.loads(snap.artifacts[number])
    import pandas as pd

    columns = holdout_rows(snap)[0]
    return list(model.predict(pd.DataFrame(np.asarray(rows), columns=columns)).tolist())


@contextlib.contextmanager
def serving(snap: Snapshot, env: str = "production", canary: float = 0.0
            ) -> Iterator[tuple[ThreadedServer, httpx.Client]]:
    service = follow_registry(Project.open(snap.repo), MODEL, env, canary=canary, interval=0.05)
    with ThreadedServer(service) as server, httpx.Client(base_url=server.url,
                                                        timeout=30) as client:
        yield server, client


def wait_for(client: httpx.Client, condition: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = client.get("/health").json()
        if condition(doc):
            return doc
        assert time.monotonic() < deadline, f"condition never met; /health: {doc}"
        time.sleep(0.05)


def serving_version(number: str) -> Any:
    return lambda doc: doc["version"] == number and doc["status"] == "ok"


def metric_samples(client: httpx.Client) -> list[Any]:
    text = client.get("/metrics").text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def sample(samples: list[Any], name: str, **labels: str) -> float | None:
    for s in samples:
        if s.name == name and labels.items() <= s.labels.items():
            return float(s.value)
    return None


# --- switching under load ----------------------------------------------------------------------


def test_five_promotions_and_rollbacks_under_load_fail_no_request(snap: Snapshot) -> None:
    _, rows = holdout_rows(snap)
    failures: list[str] = []
    seen: Counter[str] = Counter()
    stop = threading.Event()

    def client_loop(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.post(PREDICT, json={"instances": rows})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                    continue
                doc = response.json()
                if len(doc["predictions"]) != len(rows):
                    failures.append(f"wrong answer {doc}")
                seen[doc["model_version"]] += 1

    with serving(snap) as (server, client):
        wait_for(client, serving_version("0.1.0"))
        threads = [threading.Thread(target=client_loop, args=(server.url,)) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for _ in range(5):
                ok("promote", MODEL, "0.2.0", "--to", "production")
                wait_for(client, serving_version("0.2.0"))
                ok("rollback", MODEL, "--env", "production")
                wait_for(client, serving_version("0.1.0"))
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert failures == []
        assert seen["0.1.0"] > 0 and seen["0.2.0"] > 0, seen
        assert set(seen) == {"0.1.0", "0.2.0"}
        # The final answers come from the version live in the registry, and are its answers.
        final = client.post(PREDICT, json={"instances": rows}).json()
        assert final["model_version"] == "0.1.0"
        assert final["predictions"] == expected(snap, "0.1.0", rows)
        health = client.get("/health").json()
        assert health["switches"] == 10 and "load_failure" not in health
        samples = metric_samples(client)
        for number in ("0.1.0", "0.2.0"):
            assert sample(samples, "mlopsctl_serve_requests_total", version=number,
                          code="200") == seen[number] + (number == "0.1.0")
            assert sample(samples, "mlopsctl_serve_request_seconds_count", version=number)
        assert sample(samples, "mlopsctl_serve_switches_total") == 10


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
        snap: Snapshot, caplog: pytest.LogCaptureFixture) -> None:
    _, rows = holdout_rows(snap)
    ok("promote", MODEL, "0.2.0", "--to", "production")  # 0.1.0 stays warm in the other slot
    manifest = Project.open(snap.repo).manifest("clf", "0.1.0")
    assert manifest is not None
    md5 = manifest.artifact.stored.md5
    (blob,) = [p for p in snap.home.rglob(md5[2:]) if p.parent.name == md5[:2]]
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[-40] ^= 0xFF  # bit rot in the remote: the rollback target no longer verifies
    blob.write_bytes(bytes(data))
    with caplog.at_level("INFO", logger="mlopsctl.serve"), serving(snap) as (_, client):
        wait_for(client, serving_version("0.2.0"))
        ok("rollback", MODEL, "--env", "production")  # a flip: the slot copy is not re-read
        health = wait_for(client, lambda doc: "load_failure" in doc)
        assert health["status"] == "degraded"
        assert health["version"] == "0.2.0" and health["registry_live_version"] == "0.1.0"
        assert health["load_failure"]["version"] == "0.1.0"
        assert "could not fetch the artifact" in health["load_failure"]["reason"]
        for _ in range(20):
            answer = client.post(PREDICT, json={"instances": rows})
            assert answer.status_code == 200
            assert answer.json()["model_version"] == "0.2.0"
        samples = metric_samples(client)
        assert sample(samples, "mlopsctl_serve_load_failures_total", version="0.1.0") == 1
        assert sample(samples, "mlopsctl_serve_healthy") == 0
        assert sample(samples, "mlopsctl_serve_version_info", version="0.2.0", role="live") == 1
        assert client.get(f"/v1/models/{MODEL}").json()["ready"] is True
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("0.1.0 could not be loaded" in m and "still serving 0.2.0" in m for m in logged)


# A team's own class (trusted in the policy) around a fitted model. While a test listens on
# ``port``, a predict on an array (the server's smoke test; validation and promotion predict on
# data frames) sends its process id and then stops holding the GIL -- as a compiled routine that
# never releases it would -- until the test sends a byte.
HELD = textwrap.dedent('''
    import ctypes
    import os
    import socket

    import numpy as np


    class Held:
        def __init__(self, inner, port):
            self.inner, self.port = inner, port
            self.classes_ = inner.classes_
            self.n_features_in_ = inner.n_features_in_

        def predict_proba(self, x):
            return self.inner.predict_proba(x)

        def predict(self, x):
            if isinstance(x, np.ndarray):
                try:
                    conn = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                except OSError:
                    conn = None
                if conn is not None:
                    with conn:
                        conn.settimeout(None)
                        conn.sendall(b"%d\\n" % os.getpid())
                        # A PyDLL call keeps the GIL: every thread of this process stops here.
                        ctypes.PyDLL(None).recv(conn.fileno(), ctypes.create_string_buffer(1),
                                                1, 0)
            return self.inner.predict(x)
''')


def test_a_switch_is_checked_in_another_process_while_the_server_answers(
        snap: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    """The new version's load and smoke test run in the worker: a smoke test that stops its
    whole process (the GIL held) stops the worker, and the server answers meanwhile with the
    old version, then switches once the check is done."""
    _, rows = holdout_rows(snap)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(240)  # a failure to connect fails the test rather than hanging it
    port = listener.getsockname()[1]
    (snap.repo / "team_held.py").write_text(HELD)
    policy = snap.repo / ".mlops" / "policy.yaml"
    policy.write_text(policy.read_text().rstrip("\n") + "\ntrusted_types:\n  - team_held.Held\n")
    ok("policy", "accept", "-m", "trust the Held wrapper")
    monkeypatch.syspath_prepend(str(snap.repo))
    from team_held import Held  # type: ignore[import-not-found]

    inner = pickle.loads(snap.artifacts["0.2.0"])
    (snap.repo / "model.pkl").write_bytes(pickle.dumps(Held(inner, port)))
    sys.modules.pop("team_held", None)
    ok("bump", MODEL, "--artifact", "model.pkl", "--version", "0.4.0", "--data",
       "data/train.csv", "--holdout", "data/holdout.csv", "--target", "target", "-m", "held")
    for env in ("staging", "production"):
        ok("validate", f"{MODEL}@0.4.0", "--env", env, *RUNS)
    ok("promote", MODEL, "0.4.0", "--to", "staging")
    proc, url = start_cli([MODEL, "--env", "production", "--poll", "0.1"], snap.repo)
    held: socket.socket | None = None
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            assert client.post(PREDICT, json={"instances": rows}).json()["model_version"] \
                == "0.1.0"
            ok("promote", MODEL, "0.4.0", "--to", "production")
            held, _ = listener.accept()  # the server's smoke test of 0.4.0 has begun
            pid = int(held.makefile("rb").readline())
            assert pid != proc.pid, "the smoke test ran inside the server"
            # While that process is stopped, the server answers, with the old version.
            answer = client.post(PREDICT, json={"instances": rows})
            assert answer.status_code == 200
            assert answer.json()["model_version"] == "0.1.0"
            health = client.get("/health").json()
            assert health["version"] == "0.1.0" and health["registry_live_version"] == "0.4.0"
            held.sendall(b"x")
            held.close()
            listener.close()  # later predictions find no one listening and just predict
            wait_for(client, serving_version("0.4.0"))
            answer = client.post(PREDICT, json={"instances": rows})
            assert answer.json()["model_version"] == "0.4.0"
            assert answer.json()["predictions"] == expected(snap, "0.2.0", rows)
    finally:
        if held is not None and held.fileno() >= 0:
            held.sendall(b"x")  # never leave a process stopped
            held.close()
        listener.close()
        err = stop_cli(proc)
    assert "now serving 0.4.0 (was 0.1.0)" in err


# --- requests ----------------------------------------------------------------------------------


def test_predictions_kserve_protocol_and_bad_requests(snap: Snapshot) -> None:
    columns, rows = holdout_rows(snap, 3)
    with serving(snap) as (_, client):
        assert client.get(f"/v1/models/{MODEL}").json() == {
            "name": MODEL, "ready": True, "version": "0.1.0"}
        assert client.get("/v1/models").json() == {"models": [MODEL]}
        good = client.post(PREDICT, json={"instances": rows})
        assert good.status_code == 200
        assert good.json()["predictions"] == expected(snap, "0.1.0", rows)
        objects = [dict(zip(columns, row, strict=True)) for row in rows]
        by_name = client.post(PREDICT, json={"instances": objects})
        assert by_name.json()["predictions"] == good.json()["predictions"]

        def refused(status: int, fragment: str, **kwargs: Any) -> None:
            method = kwargs.pop("method", "POST")
            path = kwargs.pop("path", PREDICT)
            response = client.request(method, path, **kwargs)
            assert response.status_code == status, response.text
            assert response.headers["content-type"] == "application/json"
            message = response.json()["error"]
            assert fragment in message
            assert "Traceback" not in response.text

        refused(400, "not JSON", content=b"{instances: [[1, 2]]")
        refused(400, "not JSON", content=b"\xff\xfe\x00garbage")
        refused(400, "must be a JSON object", json=[[1.0] * 30])
        refused(400, 'needs "instances"', json={"inputs": rows})
        refused(400, "non-empty list", json={"instances": []})
        refused(400, "expects 30 features per row, got 3", json={"instances": [[1, 2, 3]]})
        refused(400, "numbers only", json={"instances": [["a"] * 30]})
        refused(400, "numbers only", json={"instances": [[1.0] * 30, [1.0] * 29]})
        refused(400, "flat list", json={"instances": [[[1.0]] * 30]})
        refused(400, "all of one kind", json={"instances": [rows[0], objects[0]]})
        missing = dict(objects[0])
        missing.pop(columns[0])
        missing["colour"] = 1
        refused(400, f"missing {columns[0]}; unknown colour", json={"instances": [missing]})
        refused(422, "refused the input", content=b'{"instances": [[' +
                b",".join([b"NaN"] * 30) + b"]]}")
        refused(413, "over the limit", content=b"[" + b"1," * (3 << 20) + b"1]")
        refused(404, "unknown model 'other'", path="/v1/models/other:predict",
                json={"instances": rows})
        refused(404, "unknown verb ':explain'", path=f"/v1/models/{MODEL}:explain",
                json={"instances": rows})
        refused(405, "use POST", method="GET")
        refused(404, "no such endpoint", method="GET", path="/v2/health/ready")
        # Nothing above hurt the server.
        assert client.post(PREDICT, json={"instances": rows}).status_code == 200
        samples = metric_samples(client)
        assert sample(samples, "mlopsctl_serve_rejected_total", reason="bad_request") == 13
        assert sample(samples, "mlopsctl_serve_rejected_total", reason="unknown_model") == 1
        assert sample(samples, "mlopsctl_serve_errors_total") is None  # no 5xx: availability


def test_feedback_gives_live_accuracy_per_version(snap: Snapshot) -> None:
    _, rows = holdout_rows(snap, 10)
    with serving(snap) as (_, client):
        doc = client.post(PREDICT, json={"instances": rows}).json()
        labels = list(doc["predictions"])
        labels[0] = 1 - labels[0]  # one wrong out of ten
        back = client.post(f"/v1/models/{MODEL}:feedback", json={"id": doc["id"],
                                                                  "labels": labels})
        assert back.status_code == 200, back.text
        assert back.json() == {"model_version": "0.1.0", "labels": 10, "correct": 9,
                               "live_accuracy": 0.9}
        again = client.post(f"/v1/models/{MODEL}:feedback", json={"id": doc["id"],
                                                                   "labels": labels})
        assert again.status_code == 404 and "already" in again.json()["error"]
        short = client.post(PREDICT, json={"instances": rows[:2]}).json()
        wrong = client.post(f"/v1/models/{MODEL}:feedback", json={"id": short["id"],
                                                                   "labels": [1]})
        assert wrong.status_code == 400 and "1 labels for 2" in wrong.json()["error"]
        samples = metric_samples(client)
        assert sample(samples, "mlopsctl_serve_live_accuracy", version="0.1.0") == 0.9
        assert sample(samples, "mlopsctl_serve_feedback_labels_total", version="0.1.0") == 10


def test_canary_sends_its_share_to_the_staging_version(snap: Snapshot) -> None:
    _, rows = holdout_rows(snap, 2)
    with serving(snap, canary=25) as (_, client):
        health = client.get("/health").json()
        assert health["canary"] == {"version": "0.2.0", "percent": 25.0}
        versions = Counter(client.post(PREDICT, json={"instances": rows}).json()["model_version"]
                           for _ in range(200))
        assert versions == {"0.1.0": 150, "0.2.0": 50}
        samples = metric_samples(client)
        assert sample(samples, "mlopsctl_serve_requests_total", version="0.2.0",
                      code="200") == 50
        assert sample(samples, "mlopsctl_serve_version_info", version="0.2.0",
                      role="canary") == 1
        # Once 0.2.0 is promoted, the candidate is the version it replaced (the other slot).
        ok("promote", MODEL, "0.2.0", "--to", "production")
        health = wait_for(client, serving_version("0.2.0"))
        assert health["canary"] == {"version": "0.1.0", "percent": 25.0}


# --- the command -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_cli(args: list[str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlopsctl", "serve", *args, "--port",
                             str(port)], cwd=cwd, env=dict(os.environ), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # imports and the first load, on a busy machine
    while True:
        try:
            httpx.get(f"{url}/health", timeout=1)
            return proc, url
        except httpx.TransportError:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the server never came up"
            time.sleep(0.1)


def stop_cli(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def test_the_serve_command_follows_a_promotion(snap: Snapshot) -> None:
    _, rows = holdout_rows(snap, 2)
    proc, url = start_cli([MODEL, "--env", "production", "--poll", "0.1"], snap.repo)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.post(PREDICT, json={"instances": rows}).json()["model_version"] \
                == "0.1.0"
            ok("promote", MODEL, "0.2.0", "--to", "production")
            wait_for(client, serving_version("0.2.0"))
    finally:
        err = stop_cli(proc)
    assert "now serving 0.2.0 (was 0.1.0)" in err
    assert "Traceback" not in err


def test_the_serve_command_refuses_what_it_cannot_serve(snap: Snapshot) -> None:
    from conftest import run

    unknown = run("serve", "nope", "--env", "production", "--port", "0")
    assert unknown.code == 2 and "unknown model 'nope'" in unknown.err
    no_env = run("serve", MODEL, "--env", "qa", "--port", "0")
    assert no_env.code == 2 and "unknown environment 'qa'" in no_env.err
    alone = run("serve", MODEL, "--env", "production", "--version", "1.0.0")
    assert alone.code == 2 and "go with --artifact" in alone.err
    canary = run("serve", MODEL, "--env", "production", "--canary", "150")
    assert canary.code == 2


def test_a_pinned_artifact_is_checked_against_its_sha256(snap: Snapshot, tmp_path: Path) -> None:
    _, rows = holdout_rows(snap, 2)
    path = tmp_path / "model.pkl"
    path.write_bytes(snap.artifacts["0.2.0"])
    manifest = Project.open(snap.repo).manifest(MODEL, "0.2.0")
    assert manifest is not None
    good = pinned_file(MODEL, "production", "0.2.0", path, "pickle", manifest.artifact.sha256)
    with ThreadedServer(good) as server:
        answer = httpx.post(server.url + PREDICT, json={"instances": rows}).json()
        assert answer["model_version"] == "0.2.0"
        assert answer["predictions"] == expected(snap, "0.2.0", rows)
    bad: Service = pinned_file(MODEL, "production", "0.2.0", path, "pickle", "0" * 64)
    with ThreadedServer(bad) as server:
        health = httpx.get(server.url + "/health")
        assert health.status_code == 503
        assert "is not the expected" in health.json()["load_failure"]["reason"]
        refused = httpx.post(server.url + PREDICT, json={"instances": rows})
        assert refused.status_code == 503 and "no version" in refused.json()["error"]
        assert json.loads(httpx.get(server.url + f"/v1/models/{MODEL}").text)["ready"] is False


@pytest.mark.parametrize("name", ["reduce-os-system-p2", "lr-hidden-scipy-pkl"])
def test_a_hostile_artifact_is_refused_before_the_server_loads_it(name: str,
                                                                 tmp_path: Path) -> None:
    """The worker meets the file first and refuses it; the server reports why and never
    loads it (nothing ran anywhere)."""
    from hostile_corpus import build

    from mlopsctl.fsio import sha256_file

    marker = tmp_path / "pwned"
    (case,) = build(tmp_path / "incoming", marker, names=[name])
    service = pinned_file(MODEL, "production", "0.1.0", case.file, case.format,
                          sha256_file(case.file))
    with ThreadedServer(service) as server:
        health = httpx.get(server.url + "/health")
        assert health.status_code == 503
        reason = health.json()["load_failure"]["reason"]
        assert "refused" in reason and any(n in reason for n in case.refuses), reason
    assert not marker.exists(), f"{name} ran its payload"

