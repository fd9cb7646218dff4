"""Benchmark of `mlopsctl serve`: predict latency (p50/p95) and throughput at 1 and 4 clients on
a small scikit-learn model, beside a bare uvicorn app that only parses JSON, calls
``model.predict`` and answers, in the same run; then again at 4 clients while the registry
promotes and rolls back (each switch makes the server load or flip versions), and, as the
control, the bare app at 4 clients while the same commands run (it follows nothing: whatever
it loses is the commands' own cost on a shared machine, not a switch's).

    .venv/bin/python benchmarks/serve.py [--requests 2000] [--switches 6] [--model boosting]
                                         [--out FILE]

Each server runs in its own process (uvicorn, one worker, loopback); the clients are threads
of this process on keep-alive ``http.client`` connections, each request one row. Everything
lives in a temporary directory with its own HOME (key, remote), deleted at the end. Targets:
p95 <= 20 ms at 4 clients; mlopsctl's p50 within 1.5x of the bare app's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODEL = "clf"
MODELS = {
    "logistic": "StandardScaler + LogisticRegression (30 features, a 2.6 KiB pickle)",
    # Many small objects: ~18,000 pickle opcodes, 0.05-0.1 s in the guarded loader.
    "boosting": "HistGradientBoostingClassifier, 200 iterations (30 features, a 0.4 MiB pickle)",
}
BARE = '''
import json, pickle, sys, warnings
import numpy as np
import uvicorn

warnings.filterwarnings("ignore", message="X does not have valid feature names")

model = pickle.load(open(sys.argv[2], "rb"))

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    rows = np.asarray(json.loads(body)["instances"], dtype=np.float64)
    out = json.dumps({"predictions": model.predict(rows).tolist()}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": out})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, lifespan="off")
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "mlopsctl", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"mlopsctl {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def estimator(kind: str, c: float) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "boosting":
        return HistGradientBoostingClassifier(max_iter=200, early_stopping=False,
                                              learning_rate=0.05 * c, random_state=0)
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))


def prepare(base: Path, env: dict[str, str], kind: str = "logistic"
            ) -> tuple[Path, list[list[float]], Path]:
    """A registry with two validated versions of a small classifier, both in staging, 0.1.0
    live in production. Returns (repo, rows to send, the 0.1.0 pickle)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    repo = base / "repo"
    repo.mkdir()
    frame = load_breast_cancer(as_frame=True).frame
    train, holdout = train_test_split(frame, test_size=0.3, random_state=0)
    (repo / "data").mkdir()
    train.to_csv(repo / "data" / "train.csv", index=False)
    holdout.to_csv(repo / "data" / "holdout.csv", index=False)
    (repo / ".gitignore").write_text("model.pkl\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "data"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    cli("init", cwd=repo, env=env)
    x, y = train.drop(columns=["target"]), train["target"]
    first = base / "v1.pkl"
    for number, c in (("0.1.0", 0.1), ("0.2.0", 1.0)):
        blob = pickle.dumps(estimator(kind, c).fit(x, y))
        (repo / "model.pkl").write_bytes(blob)
        if number == "0.1.0":
            first.write_bytes(blob)
        cli("bump", MODEL, "--artifact", "model.pkl", "--version", number, "--data",
            "data/train.csv", "--holdout", "data/holdout.csv", "--target", "target",
            "--description", "benchmark", "--intended-use", "benchmarks only", cwd=repo, env=env)
        for stage in ("staging", "production"):
            cli("validate", f"{MODEL}@{number}", "--env", stage, "--latency-runs", "20",
                cwd=repo, env=env)
        cli("promote", MODEL, number, "--to", "staging", cwd=repo, env=env)
    cli("promote", MODEL, "0.1.0", "--to", "production", cwd=repo, env=env)
    rows = holdout.drop(columns=["target"]).head(50).values.tolist()
    return repo, rows, first


def wait_up(port: int, proc: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not come up")


def load(port: int, path: str, rows: list[list[float]], clients: int, per_client: int,
         stop: threading.Event | None = None) -> dict[str, Any]:
    """``clients`` threads send single-row predictions; returns latencies and failures (and,
    under ``samples``, each request's start time and latency)."""
    latencies: list[float] = []
    samples: list[tuple[float, float]] = []
    failures: list[str] = []
    versions: dict[str, int] = {}
    lock = threading.Lock()

    def worker(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[tuple[float, float]] = []
        seen: dict[str, int] = {}
        i = 0
        while (stop is None and i < per_client) or (stop is not None and not stop.is_set()):
            body = json.dumps({"instances": [rows[(offset + i) % len(rows)]]})
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
            except OSError as exc:
                with lock:
                    failures.append(repr(exc))
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                i += 1
                continue
            mine.append((t0, time.perf_counter() - t0))
            if response.status != 200:
                with lock:
                    failures.append(f"{response.status} {data[:200]!r}")
            else:
                version = json.loads(data).get("model_version", "-")
                seen[version] = seen.get(version, 0) + 1
            i += 1
        with lock:
            samples.extend(mine)
            latencies.extend(latency for _, latency in mine)
            for k, v in seen.items():
                versions[k] = versions.get(k, 0) + v

    threads = [threading.Thread(target=worker, args=(n * 7,)) for n in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {**stats(latencies), "clients": clients, "failures": len(failures),
            "failure_samples": failures[:3], "throughput_rps": len(latencies) / elapsed,
            "versions": versions, "samples": samples}


def stats(latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies) or [float("nan")]

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"requests": len(latencies), "p50_ms": pct(0.50), "p95_ms": pct(0.95),
            "max_ms": ordered[-1] * 1000}


def serving(port: int, version: str, timeout: float = 120.0) -> None:
    """Wait until the server's /health says it answers with ``version``."""
    deadline = time.monotonic() + timeout
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.monotonic() < deadline:
        conn.request("GET", "/health")
        if json.loads(conn.getresponse().read()).get("version") == version:
            return
        time.sleep(0.05)
    raise SystemExit(f"the server never switched to {version}")


def tag_written(repo: Path, command: list[str], env: dict[str, str]) -> float:
    """Run ``mlopsctl COMMAND`` and return when its production event tag appeared (the moment
    a following server can see the switch; the command runs on for a while after it)."""
    tags = repo / ".git" / "refs" / "tags"
    before = set(os.listdir(tags))
    seen: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() and not seen:
            if any(n.startswith(f"{MODEL}#production#") for n in set(os.listdir(tags)) - before):
                seen.append(time.perf_counter())
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        cli(*command, cwd=repo, env=env)
    finally:
        done.set()
        watcher.join()
    return seen[0] if seen else time.perf_counter()


def switching(port: int, rows: list[list[float]], repo: Path, env: dict[str, str],
              switches: int, follows: bool = True,
              windows: list[float] | None = None) -> dict[str, Any]:
    """4 clients while the registry promotes 0.2.0 and rolls back, ``switches`` times. A
    switch's window runs from its tag's creation until /health reports the new version
    (``follows``), else for the given durations (the control's windows are the server's); 1 s
    follows each. ``window`` holds the requests started in a window."""
    stop = threading.Event()
    result: dict[str, Any] = {}
    spans: list[tuple[float, float]] = []

    def run_load() -> None:
        result.update(load(port, f"/v1/models/{MODEL}:predict", rows, 4, 0, stop))

    thread = threading.Thread(target=run_load)
    thread.start()
    try:
        for i in range(switches):
            if i % 2 == 0:
                landed = tag_written(repo, ["promote", MODEL, "0.2.0", "--to", "production"],
                                     env)
            else:
                landed = tag_written(repo, ["rollback", MODEL, "--env", "production"], env)
            if follows:
                serving(port, "0.2.0" if i % 2 == 0 else "0.1.0")
            else:
                time.sleep(max(0.0, landed + (windows[i] if windows else 0.0)
                               - time.perf_counter()))
            spans.append((landed, time.perf_counter()))
            time.sleep(1.0)
    finally:
        stop.set()
        thread.join()
    result["switches"] = switches
    result["windows"] = [end - begin for begin, end in spans]
    # Failures are counted over the whole run (the table's "failed" of a window row too).
    result["window"] = stats([latency for begin, latency in result["samples"]
                              if any(a <= begin <= b for a, b in spans)])
    return result


def start(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as fh:  # a file, not a pipe nobody reads: a full pipe blocks the server
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=fh)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU time of a process so far (Linux /proc), robust to a busy machine; with
    ``children``, that of the child processes it has waited for (git, a loading worker)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def measured(proc: subprocess.Popen[bytes], run: Any, *args: Any, **kwargs: Any
             ) -> dict[str, Any]:
    """``run(*args, **kwargs)`` with the server's CPU time per request (its own threads) and,
    apart, the CPU time of the child processes it waited for meanwhile."""
    before, before_children = cpu_seconds(proc.pid), cpu_seconds(proc.pid, children=True)
    result: dict[str, Any] = run(*args, **kwargs)
    result["cpu_ms_per_request"] = (cpu_seconds(proc.pid) - before) * 1000 / max(
        1, result["requests"])
    result["children_cpu_ms"] = (cpu_seconds(proc.pid, children=True) - before_children) * 1000
    return result


def table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    lines = ["| server | clients | requests | failed | p50 ms | p95 ms | max ms | req/s | "
             "server CPU ms/req |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        cpu = r.get("cpu_ms_per_request")
        lines.append(f"| {name} | {r['clients']} | {r['requests']} | {r['failures']} | "
                     f"{r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['max_ms']:.1f} | "
                     f"{r['throughput_rps']:.0f} | {f'{cpu:.2f}' if cpu else '-'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--switches", type=int, default=6)
    parser.add_argument("--model", choices=sorted(MODELS), default="logistic",
                        help="what to serve: a tiny pipeline, or a model whose load takes "
                        "~0.1 s of the loader's time")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results-serve.md")
    opts = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mlopsctl-bench-serve-"))
    env = {**os.environ, "HOME": str(base / "home"), "XDG_CONFIG_HOME": str(base / "home/.c"),
           "XDG_DATA_HOME": str(base / "home/.d"), "DVC_NO_ANALYTICS": "1",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Bench", "GIT_COMMITTER_NAME": "Bench",
           "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_EMAIL": "bench@example.com",
           "OMP_NUM_THREADS": "1"}
    for var in ("MLOPSCTL_KEY", "MLOPSCTL_CONFIG_DIR", "MLOPSCTL_DATA_DIR"):
        env.pop(var, None)
    (base / "home").mkdir()
    servers: list[subprocess.Popen[bytes]] = []
    try:
        print("preparing a registry (two validated versions)...", file=sys.stderr)
        repo, rows, first = prepare(base, env, opts.model)
        bare_port, serve_port = free_port(), free_port()
        (base / "bare.py").write_text(BARE)
        servers.append(start([sys.executable, str(base / "bare.py"), str(bare_port), str(first)],
                             base, env, base / "bare.log"))
        servers.append(start([sys.executable, "-m", "mlopsctl", "serve", MODEL, "--env",
                              "production", "--port", str(serve_port), "--poll", "0.2"],
                             repo, env, base / "serve.log"))
        wait_up(bare_port, servers[0], "/")
        wait_up(serve_port, servers[1], "/health")
        predict = f"/v1/models/{MODEL}:predict"
        load(bare_port, predict, rows, 1, 200)  # warm-up
        load(serve_port, predict, rows, 1, 200)
        results = []
        for clients in (1, 4):
            per = max(1, opts.requests // clients)
            results.append(("bare uvicorn + model.predict",
                            measured(servers[0], load, bare_port, predict, rows, clients, per)))
            results.append(("mlopsctl serve",
                            measured(servers[1], load, serve_port, predict, rows, clients, per)))
        print("switching versions under load...", file=sys.stderr)
        during = measured(servers[1], switching, serve_port, rows, repo, env, opts.switches)
        results.append((f"mlopsctl serve, {opts.switches} switches", during))
        control = measured(servers[0], switching, bare_port, rows, repo, env, opts.switches,
                           follows=False, windows=during["windows"])
        results.append((f"bare app, same {opts.switches} commands (control)", control))
        for name, run in (("mlopsctl serve, while switching", during),
                          ("bare app, same windows (control)", control)):
            span = sum(run["windows"]) or float("nan")
            results.append((name, {**run, **run["window"], "cpu_ms_per_request": None,
                                   "throughput_rps": run["window"]["requests"] / span}))
        load_avg = os.getloadavg()
        ratio_1 = results[1][1]["p50_ms"] / results[0][1]["p50_ms"]
        ratio_4 = results[3][1]["p50_ms"] / results[2][1]["p50_ms"]
        cpu_ratio = sum(r["cpu_ms_per_request"] for _, r in results[1:4:2]) / sum(
            r["cpu_ms_per_request"] for _, r in results[0:4:2])
        text = "\n".join([
            "# `mlopsctl serve` benchmark",
            "",
            f"Generated by `benchmarks/serve.py` on {os.cpu_count()} cores, load average "
            f"{load_avg[0]:.1f} / {load_avg[1]:.1f} / {load_avg[2]:.1f} (1/5/15 min) at the "
            "end: other work was running, so treat absolute figures as pessimistic.",
            f"Model: {MODELS[opts.model]} on breast_cancer, one row per request, keep-alive "
            "connections, server and clients in separate processes.",
            "",
            table(results),
            "",
            f"Overhead of mlopsctl over the bare app: {cpu_ratio:.2f}x in server CPU time per "
            f"request (the figure a busy machine does not distort); in p50 latency "
            f"{ratio_1:.2f}x at 1 client, {ratio_4:.2f}x at 4 clients (target <= 1.5x). "
            "p95 at 4 clients: "
            f"{results[3][1]['p95_ms']:.2f} ms (target <= 20 ms).",
            f"During {opts.switches} switches: {during['failures']} failed requests of "
            f"{during['requests']}; answers by version: {during['versions']}. p95 "
            f"{during['p95_ms']:.2f} ms against {control['p95_ms']:.2f} ms for the bare app "
            "while the same promote/rollback commands ran (the control). While switching "
            "(from the tag written until /health reports the new version: "
            f"{', '.join(f'{w:.2f}' for w in during['windows'])} s): p95 "
            f"{during['window']['p95_ms']:.2f} ms over {during['window']['requests']} requests, "
            f"the bare app in the same windows {control['window']['p95_ms']:.2f} ms. CPU time "
            f"of the server's child processes during the switches: "
            f"{during['children_cpu_ms']:.0f} ms (git; the loading worker when there is one).",
            "",
        ])
        opts.out.write_text(text)
        print(text)
        return 0 if during["failures"] == 0 else 1
    finally:
        for proc in servers:
            stop_server(proc)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
