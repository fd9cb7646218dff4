"""Benchmark: one refresh tick of `mlopsctl monitor` at 10, 250 and 1,000 models.

A tick is what the app does on every timer beat when something changed: change detection (the
refs' state), the re-read of what changed (registry tags, validation notes), the dashboard
document, and the overview table's update (only the changed cells), in a real Textual app run
headless. Each measured tick follows one new event (a stage tag written with `git tag -a`), so
every tick has a change to pick up; ticks with nothing to do are timed separately.

Registries are built in one `git fast-import` stream (the CLI would take minutes per thousand
versions): per model three versions (each its own commit, with its manifest, an annotated
`m@vX.Y.Z` tag carrying mlopsctl's YAML block), two stage tags (staging, production) and a
validation report per live version as a git note; `mlopsctl init` runs on top.

    .venv/bin/python benchmarks/monitor.py              # 10, 250, 1000 models, 40 ticks each
    .venv/bin/python benchmarks/monitor.py --models 250 --ticks 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T0 = 1_764_000_000  # fixed dates: tags one second apart
POLICY_HASH = "0" * 16


def _data_block(fields: dict[str, object]) -> str:
    lines = ["mlopsctl:"] + [f"  {k}: {json.dumps(v)}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def _blob(out: list[bytes], text: str) -> None:
    data = text.encode()
    out.append(b"data %d\n" % len(data) + data + b"\n")


def fast_import_stream(models: int) -> bytes:
    """Commits, tags and notes for ``models`` models (3 versions, staging + production)."""
    out: list[bytes] = []
    mark = 0
    when = T0
    ident = "Ada Lovelace <ada@example.com>"
    out.append(b"reset refs/heads/main\n")
    parent: int | None = None
    commits: dict[tuple[int, int], int] = {}
    for i in range(models):
        for j in (1, 2, 3):
            mark += 1
            when += 1
            lineage = f"parent_version: 0.{j - 1}.0\n" if j > 1 else ""
            manifest = (f"schema_version: 1\nmodel: m{i}\nversion: 0.{j}.0\n{lineage}"
                        f"created_at: '2025-11-24T00:00:00Z'\ncreated_by: {ident}\n"
                        f"artifact:\n  path: model.pkl\n  format: pickle\n  sha256: {'a' * 64}\n"
                        f"  size: 1000\n  stored:\n    codec: zstd\n    level: 3\n"
                        f"    cipher: aes-256-gcm\n    size: 900\n    md5: {'b' * 32}\n"
                        f"metrics:\n  accuracy: {0.84 + j / 100:.2f}\n  f1: {0.82 + j / 100:.2f}\n"
                        f"lineage:\n  code_commit: {'c' * 40}\n  data:\n  - path: data/train.csv\n"
                        f"    sha256: {'d' * 64}\n"
                        f"policy_hash: '{POLICY_HASH}'\n")
            out.append(f"commit refs/heads/main\nmark :{mark}\n"
                       f"committer {ident} {when} +0000\n".encode())
            _blob(out, f"register m{i} 0.{j}.0")
            if parent is not None:
                out.append(f"from :{parent}\n".encode())
            out.append(f"M 100644 inline .mlops/models/m{i}/versions/0.{j}.0.yaml\n".encode())
            _blob(out, manifest)
            parent = mark
            commits[(i, j)] = mark
    counter: dict[int, int] = {}
    for i in range(models):
        for j in (1, 2, 3):
            when += 1
            block = _data_block({"schema_version": 1, "event": "register", "actor": ident,
                                 "version": f"0.{j}.0", "policy_hash": POLICY_HASH})
            out.append(f"tag m{i}@v0.{j}.0\nfrom :{commits[(i, j)]}\n"
                       f"tagger {ident} {when} +0000\n".encode())
            _blob(out, f"Register m{i} 0.{j}.0\n\n{block}")
        for n, (env, j, slot) in enumerate((("staging", 3, "green"),
                                            ("production", 2, "blue")), 1):
            when += 1
            counter[i] = n
            block = _data_block({"schema_version": 1, "event": "promote", "actor": ident,
                                 "environment": env, "version": f"0.{j}.0", "slot": slot,
                                 "policy_hash": POLICY_HASH})
            out.append(f"tag m{i}#{env}#{n}\nfrom :{commits[(i, j)]}\n"
                       f"tagger {ident} {when} +0000\n".encode())
            _blob(out, f"Promote m{i} v0.{j}.0 to {env}\n\n{block}")
    # validation reports of the live versions, as git notes
    out.append(f"commit refs/notes/mlops\ncommitter {ident} {when} +0000\n".encode())
    _blob(out, "reports")
    for i in range(models):
        for env, j in (("staging", 3), ("production", 2)):
            note = {"schema_version": 1, "validations": {env: {
                "passed": True, "status": "passed", "environment": env,
                "validated_at": "2025-11-24T00:00:00Z", "policy_hash": POLICY_HASH,
                "metrics": {"accuracy": {"recomputed": 0.835 + j / 100,
                                         "reported": 0.84 + j / 100}},
                "latency": {"p50_ms": 1.0, "p95_ms": 2.0}, "compliance": {"score": 1.0}}}}
            out.append(f"N inline :{commits[(i, j)]}\n".encode())
            _blob(out, json.dumps(note))
    out.append(b"done\n")
    return b"".join(out)


def build(path: Path, models: int, env: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, check=True, env=env)
    subprocess.run(["git", "fast-import", "--quiet", "--done"], cwd=path, check=True, env=env,
                   input=fast_import_stream(models))
    subprocess.run(["git", "checkout", "-q", "main"], cwd=path, check=True, env=env)
    # fast-import leaves every tag loose; a registry that lives a while has them packed (git
    # gc does it), so the benchmark starts there and the ticks add loose tags on top.
    subprocess.run(["git", "pack-refs", "--all"], cwd=path, check=True, env=env)
    subprocess.run([sys.executable, "-m", "mlopsctl", "init"], cwd=path, check=True, env=env,
                   capture_output=True)
    return path


async def measure(root: Path, ticks: int) -> dict[str, object]:
    from mlopsctl.tui.app import MonitorApp

    app = MonitorApp(root, interval=None, scrape=False)
    idle: list[float] = []
    changed: list[float] = []
    cpu: list[float] = []  # CPU time of the tick's thread: what load on the machine cannot inflate
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
        for n in range(ticks):
            t = time.perf_counter()
            app.tick()
            idle.append(time.perf_counter() - t)
            subprocess.run(["git", "tag", "-a", "-m", f"bench {n}", f"bench{n}@v0.1.0", head],
                           cwd=root, check=True)
            await asyncio.sleep(0.15)  # past the racy window: the tick sees a settled change
            t, c = time.perf_counter(), time.thread_time()
            app.tick()
            changed.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
        rows = app.overview_rows()
    return {"ticks": ticks, "rows": rows,
            "changed_p50_ms": statistics.median(changed) * 1e3,
            "changed_p95_ms": _p95(changed) * 1e3,
            "changed_max_ms": max(changed) * 1e3,
            "idle_p95_ms": _p95(idle) * 1e3,
            "cpu_p50_ms": statistics.median(cpu) * 1e3, "cpu_p95_ms": _p95(cpu) * 1e3}


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, action="append")
    parser.add_argument("--ticks", type=int, default=40)
    args = parser.parse_args()
    sizes = args.models or [10, 250, 1000]
    targets = {250: 25.0, 1000: 40.0}
    with tempfile.TemporaryDirectory(prefix="mlopsctl-bench-monitor-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_AUTHOR_NAME": "Ada Lovelace", "GIT_AUTHOR_EMAIL": "ada@example.com",
               "GIT_COMMITTER_NAME": "Ada Lovelace", "GIT_COMMITTER_EMAIL": "ada@example.com"}
        os.environ.update(env)
        print("| models | tags | tick p50 (ms) | tick p95 (ms) | max (ms) | CPU p50 / p95 (ms) "
              "| idle tick p95 (ms) | target p95 |")
        print("|---:|---:|---:|---:|---:|---:|---:|---|")
        for size in sizes:
            root = build(Path(tmp) / f"r{size}", size, env)
            result = asyncio.run(measure(root, args.ticks))
            target = targets.get(size)
            verdict = "-" if target is None else (
                f"≤ {target:.0f} ms: {'met' if result['changed_p95_ms'] <= target else 'MISSED'}")
            print(f"| {size} | {size * 5} | {result['changed_p50_ms']:.1f} | "
                  f"{result['changed_p95_ms']:.1f} | {result['changed_max_ms']:.1f} | "
                  f"{result['cpu_p50_ms']:.1f} / {result['cpu_p95_ms']:.1f} | "
                  f"{result['idle_p95_ms']:.2f} | {verdict} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
