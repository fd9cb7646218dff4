#!/usr/bin/env python3
"""Benchmark of an S3 artifact remote: `mlopsctl bump` and `mlopsctl fetch` of 100 MiB through
moto's S3 server on loopback, beside `dvc add` + `dvc push` and `dvc pull` of the same bytes to
the same server, in the same run (interleaved), and beside the raw transfer floor: s3fs's own
`put_file` / `get_file` of the same number of bytes (what `dvc push` / `dvc pull` call).

    .venv/bin/python benchmarks/s3.py [--runs 5] [--size-mib 100] [--out FILE] [-v] [--keep]

Each command is a whole process (start-up and imports included), timed with
time.perf_counter() around subprocess.run() and, for peak RSS, wrapped in /usr/bin/time -v; the
S3 server is a ThreadedMotoServer in this process, on 127.0.0.1, so every byte crosses a real
socket. Dummy credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; both tools find
the endpoint in their DVC config (`mlopsctl init --endpoint-url`, `dvc remote modify
endpointurl`). Every piece of state lives under benchmarks/.work/s3-run-* (deleted at the end
unless --keep); the 100 MiB artifact is the seeded float32 weights file run.py generates and
caches in benchmarks/.work/cache/. Writes benchmarks/results-s3.md.

Target: bump and fetch no slower than DVC, which neither compresses nor encrypts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import logging
import os
import platform
import shutil
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_suite", HERE / "run.py")
assert _spec and _spec.loader
suite = importlib.util.module_from_spec(_spec)
sys.modules["bench_suite"] = suite
_spec.loader.exec_module(suite)

MiB = 1 << 20
PY, MLOPSCTL, DVC = suite.PY, suite.MLOPSCTL, suite.DVC
_Bench: Any = suite.Bench

# The endpoint's own speed: s3fs with the settings DVC uses (its defaults), no DVC around it.
RAW = r'''
import os, sys, time
import s3fs
fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": os.environ["BENCH_ENDPOINT"]})
op, a, b = sys.argv[1:4]
if op == "put":
    fs.put_file(a, b)
else:
    fs.get_file(a, b)
'''


class S3Bench(_Bench):
    """run.py's Bench, also recording CPU time: the command's own (user + sys of the process
    and its children, from /usr/bin/time -v) and the S3 server's (this process's CPU time over
    the command: the server's threads are all that runs here meanwhile). On a shared machine
    wall time is mostly queueing; CPU time is what the work costs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.client_cpu: dict[str, list[float]] = {}
        self.server_cpu: dict[str, list[float]] = {}
        self._client = self._server = 0.0

    def run(self, argv, cwd, *, rss=False, check=True):
        before = time.process_time()
        result = super().run(argv, cwd, rss=rss, check=check)
        self._server += time.process_time() - before
        if rss and self._rss_file.exists():
            text = self._rss_file.read_text()
            for field in ("User time (seconds)", "System time (seconds)"):
                for line in text.splitlines():
                    if line.strip().startswith(field + ":"):
                        self._client += float(line.rsplit(":", 1)[1])
        return result

    def _one(self, spec, row, i, counted):
        self._client = self._server = 0.0
        procs = super()._one(spec, row, i, counted)
        if counted:
            self.client_cpu.setdefault(row.label, []).append(self._client)
            self.server_cpu.setdefault(row.label, []).append(self._server)
        return procs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs per command (default 5)")
    ap.add_argument("--size-mib", type=int, default=100, help="artifact size (default 100)")
    ap.add_argument("--out", type=Path, default=HERE / "results-s3.md")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    work = HERE / ".work" / f"s3-run-{os.getpid()}"
    work.mkdir(parents=True)
    load_before = suite.load_avg()
    started = time.perf_counter()
    try:
        env = suite.make_env(work / "home")
        env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                   AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                   BENCH_ENDPOINT=endpoint)
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            env.pop(var, None)
        b = S3Bench(work, env, args.verbose)
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        for bucket in ("bench-mlops", "bench-dvc", "bench-raw"):
            s3.create_bucket(Bucket=bucket)
        size = args.size_mib * MiB
        name = "weights-100MiB.f32" if size == 100 * MiB else f"weights-{args.size_mib}MiB.f32"
        cache = HERE / ".work" / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        weights = suite.weights_file(cache, size, name, b)
        sha = suite.sha256_file(weights)
        rows = run_scenarios(b, work, weights, sha, args.runs)
        text = render(b, rows, args, endpoint, load_before, time.perf_counter() - started)
        args.out.write_text(text)
        print(text)
        return 1 if b.problems else 0
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run_scenarios(b, work: Path, weights: Path, sha: str, runs: int):
    Spec = suite.Spec
    raw = work / "raw.py"
    raw.write_text(RAW)
    # mlopsctl: a registry whose artifact remote is the bucket, endpoint recorded by init.
    repo = suite.new_repo(b, work / "mlops-repo")
    b.run([MLOPSCTL, "init", "--remote", "s3://bench-mlops/models", "--endpoint-url",
           b.env["BENCH_ENDPOINT"]], repo)
    suite.link_or_copy(weights, repo / "weights.f32")
    # DVC: its own repo and bucket on the same server; a fresh copy of the bytes (mutated).
    drepo = suite.new_repo(b, work / "dvc-repo")
    b.run([DVC, "init", "-q"], drepo)
    b.run([DVC, "remote", "add", "-d", "s3", "s3://bench-dvc/data"], drepo)
    b.run([DVC, "remote", "modify", "s3", "endpointurl", b.env["BENCH_ENDPOINT"]], drepo)
    b.run([DVC, "config", "core.analytics", "false"], drepo)
    shutil.copyfile(weights, drepo / "weights.f32")

    def mutate(i: int) -> None:  # new content for DVC each run: it hashes, caches, pushes
        fd = os.open(drepo / "weights.f32", os.O_WRONLY)
        try:
            os.pwrite(fd, b"bench-run-%08d" % i, 0)
        finally:
            os.close(fd)

    up = b.measure_set("bump: 100 MiB up to S3", [
        Spec("raw s3fs put_file (the endpoint's speed)",
             lambda i: [[PY, raw, "put", weights, f"bench-raw/up/{i}"]], work, rss=True,
             note="no hashing, compression or encryption"),
        Spec("mlopsctl bump --patch", [[MLOPSCTL, "bump", "model", "--artifact", "weights.f32",
                                        "--patch"]], repo, rss=True,
             note="sha256 + zstd + AES-256-GCM + md5, parallel parts, git commit + tag"),
        Spec("dvc add + dvc push", [[DVC, "add", "-q", "weights.f32"], [DVC, "push", "-q"]],
             drepo, rss=True, setup=mutate, note="md5 + copy into the cache, upload"),
    ], runs, warmup=1)
    tags = suite.git(b, repo, "tag", "-l", "model@v*", "--sort=-v:refname").split()
    version = tags[0].replace("@v", "@", 1) if tags else None

    out_dir = work / "out"
    out_dir.mkdir()
    out = out_dir / "weights.f32"
    raw_out = out_dir / "raw.bin"

    def clear_out(_: int) -> None:
        out.unlink(missing_ok=True)
        raw_out.unlink(missing_ok=True)

    def clear_dvc(_: int) -> None:
        shutil.rmtree(drepo / ".dvc" / "cache", ignore_errors=True)
        (drepo / "weights.f32").unlink(missing_ok=True)

    def same_bytes(path: Path, digest: str | None):
        def check(_: object) -> None:
            if digest and suite.sha256_file(path) != digest:
                raise suite.Failed(f"{path} does not match the original bytes")
            b.checks.append((f"{path.name} after the last run", "sha256 matches the original"))
        return check

    dvc_sha = None
    down_specs = [Spec("raw s3fs get_file (the endpoint's speed)",
                       [[PY, raw, "get", "bench-raw/up/0", raw_out]], work, rss=True,
                       setup=clear_out)]
    if version:
        down_specs.append(Spec(f"mlopsctl fetch {version}", [[MLOPSCTL, "fetch", version, "-o",
                                                             out]], repo, rss=True,
                               setup=clear_out, after=same_bytes(out, sha),
                               note="parallel ranged reads -> AES-GCM + zstd + sha256"))
    down_specs.append(Spec("dvc pull (empty cache)", [[DVC, "pull", "-q"]], drepo, rss=True,
                           setup=clear_dvc, note="download into the cache, copy out"))
    dvc_bytes = drepo / "weights.f32"
    if dvc_bytes.exists():
        dvc_sha = suite.sha256_file(dvc_bytes)
        down_specs[-1].after = same_bytes(dvc_bytes, dvc_sha)
    down = b.measure_set("fetch: 100 MiB down from S3", down_specs, runs, warmup=1)
    return up, down


def _row(rows, prefix: str):
    return next((r for r in rows if r.label.startswith(prefix)), None)


def render(b, rows, args, endpoint: str, load_before: str,
           elapsed: float) -> str:
    up, down = rows
    versions = suite.tool_versions(b.env)
    import moto

    lines = ["# mlopsctl benchmark: an S3 artifact remote (moto on loopback)", ""]
    lines.append(f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; "
                 f"{args.runs} runs + 1 warm-up per command, interleaved; "
                 f"wall time {elapsed / 60:.1f} min")
    lines.append(f"- machine: {platform.system()} {platform.release()}, {os.cpu_count()} CPUs "
                 f"({suite.cpu_model()}); load average (1/5/15 min) at start {load_before}, "
                 f"at end {suite.load_avg()}")
    lines.append("- " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "gto")
                 + f", moto {moto.__version__} (ThreadedMotoServer at {endpoint.split('//')[1]})")
    lines.append(f"- artifact: {args.size_mib} MiB of seeded float32 weights; every time is a "
                 "whole process, median of the runs; peak RSS via /usr/bin/time -v")
    lines += ["", "## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    for mine, theirs, what in ((_row(up, "mlopsctl"), _row(up, "dvc"), "bump ≤ dvc add + push"),
                               (_row(down, "mlopsctl"), _row(down, "dvc"), "fetch ≤ dvc pull")):
        r = suite.ratio(mine, theirs) if mine and theirs else None
        measured = (f"{suite.fmt_ms(mine.median)} vs {suite.fmt_ms(theirs.median)} "
                    f"({suite.fmt_ratio(r)})") if r is not None else "failed"
        verdict = "n/a" if r is None else ("**met**" if r <= 1.0 else "**MISSED**")
        lines.append(f"| {what} | {measured} | {verdict} |")
    def cpu(figures: dict[str, list[float]], label: str) -> str:
        return suite.fmt_ms(statistics.median(figures[label])) if figures.get(label) else "—"

    for sc_rows in rows:
        lines += ["", f"## {sc_rows[0].scenario}", "",
                  "| command | runs | median | min | max | CPU (command) | CPU (S3 server) "
                  "| peak RSS | notes |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for row in sc_rows:
            if row.ok:
                rss = f"{row.peak_rss_mib:.0f} MiB" if row.peak_rss_mib else "—"
                lines.append(f"| `{row.label}` | {len(row.times)} | {suite.fmt_ms(row.median)} "
                             f"| {suite.fmt_ms(min(row.times))} | {suite.fmt_ms(max(row.times))} "
                             f"| {cpu(b.client_cpu, row.label)} | {cpu(b.server_cpu, row.label)} "
                             f"| {rss} | {row.note} |")
            else:
                err = (row.error or "no runs").replace("|", "\\|")[:300]
                lines.append(f"| `{row.label}` | — | — | — | — | — | — | — | FAILED: {err} |")
        for row in sc_rows:
            if row.steps:
                parts = ", ".join(f"`{k}` {suite.fmt_ms(statistics.median(v))}"
                                  for k, v in row.steps.items())
                lines += ["", f"Step medians of `{row.label}`: {parts}."]
    if b.checks:
        lines += ["", "## Output checks", ""]
        lines += [f"- {what}: {outcome}" for what, outcome in dict(b.checks).items()]
    if b.problems:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in b.problems]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
