"""Benchmark of `mlopsctl check` (and `check-ref`) on a registry of 200 models and 2,200 tags.

The registry is what mlopsctl itself would have written, built in one `git fast-import` stream on
top of a real `mlopsctl init`: 200 models x 10 versions, each version a commit adding its
manifest and DVC pointer (the model card with the first one), an annotated registration tag
`m{i}@v0.{j}.0` carrying the `mlopsctl:` block, and per model one `m{i}#staging#11` stage tag
recorded as a promotion with a passing validation. So every check has real work to do: 2,000
manifests, 2,000 pointers, 200 cards, 2,200 tags, 2,000 tagged manifests compared, 2,000 blob
paths probed against .gitignore. `check` must exit 0 on it.

Timed, as whole processes (start-up included), interleaved, median of N runs:
- `git for-each-ref refs/tags` with the fields check reads (the I/O floor);
- `mlopsctl check` cold: the verdict cache removed before each run (a fresh CI clone);
- `mlopsctl check` warm: the cache from the previous run (a developer's pre-commit);
- `mlopsctl check .mlops/config.yaml`: what the pre-commit hook runs for a config change;
- `mlopsctl check-ref m007#staging#11 --json`.
Target: warm `check` <= 300 ms.

    .venv/bin/python benchmarks/check.py [--runs 7] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from registry_repo import GIT, MLOPSCTL, build, make_env, run  # noqa: E402

N_MODELS, N_VERSIONS = 200, 10
TARGET_S = 0.300


def measure(specs: list[tuple[str, list[str], int | None]], repo: Path, env: dict[str, str],
            runs: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Interleaved runs (A B C A B C ...) after one warm-up each: wall and CPU (user + sys of
    the process and its children: less disturbed than wall time on a loaded machine)."""
    import resource

    cache = repo / ".git" / "mlopsctl" / "check-cache.json"
    times: dict[str, list[float]] = {name: [] for name, _, _ in specs}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in specs}

    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime
    for attempt in range(runs + 1):
        for name, cmd, expect in specs:
            if "cold" in name:
                cache.unlink(missing_ok=True)
            start, start_cpu = time.perf_counter(), children()
            proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, check=False)
            elapsed, used = time.perf_counter() - start, children() - start_cpu
            if expect is not None and proc.returncode != expect:
                raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stdout.decode()}"
                                 f"{proc.stderr.decode()[-2000:]}")
            if attempt:
                times[name].append(elapsed)
                cpu[name].append(used)
    return {name: times[name] for name in times}, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--reuse", type=Path, metavar="DIR",
                        help="a work directory kept by --keep: time its registry, build none")
    args = parser.parse_args(argv)
    if args.reuse:
        work = args.reuse.resolve()
        args.keep = True
    elif (HERE / ".work").is_dir():
        work = Path(tempfile.mkdtemp(prefix="check-", dir=HERE / ".work"))
    else:
        work = Path(tempfile.mkdtemp(prefix="mlopsctl-check-bench-"))
    try:
        env = make_env(work / "home", HERE / ".work" / "pycache")
        t0 = time.perf_counter()
        repo = work / "registry"
        if not args.reuse:
            build(repo, env, N_MODELS, N_VERSIONS, stage="staging", pack=False)
        ntags = len(run([GIT, "tag", "-l"], repo, env).stdout.split())
        print(f"registry: {N_MODELS} models, {ntags} tags, built in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        fmt = "%(refname)%00%(objectname)%00%(*objectname)%00%(taggername)%00%(contents)"
        specs: list[tuple[str, list[str], int | None]] = [
            ("git for-each-ref (floor)", [GIT, "for-each-ref", f"--format={fmt}", "refs/tags"],
             0),
            ("mlopsctl check (cold: no cache)", [MLOPSCTL, "check"], 0),
            ("mlopsctl check (warm)", [MLOPSCTL, "check"], 0),
            ("mlopsctl check .mlops/config.yaml", [MLOPSCTL, "check", ".mlops/config.yaml"], 0),
            ("mlopsctl check-ref m007#staging#11 --json",
             [MLOPSCTL, "check-ref", "m007#staging#11", "--json"], 0),
        ]
        times, cpu = measure(specs, repo, env, args.runs)
        print("\n| command | wall median | min | max | CPU median |\n|---|---|---|---|---|")
        for name, values in times.items():
            print(f"| {name} | {statistics.median(values) * 1000:.0f} ms | "
                  f"{min(values) * 1000:.0f} ms | {max(values) * 1000:.0f} ms | "
                  f"{statistics.median(cpu[name]) * 1000:.0f} ms |")
        warm = statistics.median(times["mlopsctl check (warm)"])
        verdict = "met" if warm <= TARGET_S else "MISSED"
        print(f"\ntarget: warm `mlopsctl check` median <= {TARGET_S * 1000:.0f} ms: "
              f"{warm * 1000:.0f} ms, {verdict}")
        try:
            load = os.getloadavg()[0]
            print(f"load average at the end: {load:.2f} on {os.cpu_count()} CPUs")
        except OSError:
            pass
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
