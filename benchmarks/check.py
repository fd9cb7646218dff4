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
- `mlopsctl check-ref m7#staging#11 --json`.
Target: warm `check` <= 300 ms.

    .venv/bin/python benchmarks/check.py [--runs 7] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_BIN = ROOT / ".venv" / "bin"
if not VENV_BIN.is_dir():
    VENV_BIN = Path(sys.executable).parent
MLOPSCTL = str(VENV_BIN / "mlopsctl")
GIT = shutil.which("git") or "git"
N_MODELS, N_VERSIONS = 200, 10
TARGET_S = 0.300


def make_env(home: Path, pycache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "MLOPSCTL_", "DVC_", "GTO_", "XDG_", "GITHUB_"))
           and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "VIRTUAL_ENV")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"), DVC_NO_ANALYTICS="1",
               GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="Bench Mark",
               GIT_AUTHOR_EMAIL="bench@example.com", GIT_COMMITTER_NAME="Bench Mark",
               GIT_COMMITTER_EMAIL="bench@example.com", LC_ALL="C.UTF-8",
               # byte code as an installed copy has it, kept outside the source tree
               PYTHONPYCACHEPREFIX=str(pycache))
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text("[user]\n\tname = Bench Mark\n\temail = bench@example.com\n"
                                     "[gc]\n\tauto = 0\n")
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str], input: bytes | None = None,
        ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, input=input, capture_output=True, check=False)
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                         f"{proc.stdout.decode()}{proc.stderr.decode()}")
    return proc


def build(repo: Path, env: dict[str, str]) -> None:
    sys.path.insert(0, str(ROOT))
    from mlopsctl import manifests as mf
    from mlopsctl.store.remote import pointer_text

    repo.mkdir(parents=True)
    run([GIT, "init", "-q", "-b", "main"], repo, env)
    (repo / "README.md").write_text("bench\n")
    run([GIT, "add", "README.md"], repo, env)
    run([GIT, "commit", "-q", "-m", "initial"], repo, env)
    run([MLOPSCTL, "init"], repo, env)
    config = mf.load(repo / ".mlops" / "config.yaml", mf.Config)
    policy_hash, key_id = config.constitutional_hash, config.encryption.key_id
    who, t = "Bench Mark <bench@example.com>", 1_800_000_000
    out: list[bytes] = []

    def data(payload: str) -> None:
        raw = payload.encode()
        out.append(b"data %d\n" % len(raw) + raw + b"\n")

    mark, commit_of, sha_of = 0, {}, {}
    for j in range(1, N_VERSIONS + 1):
        for i in range(N_MODELS):
            mark, t = mark + 1, t + 1
            model, version = f"m{i}", f"0.{j}.0"
            sha = hashlib.sha256(f"{model} {version}".encode()).hexdigest()
            md5 = hashlib.md5(f"{model} {version} blob".encode()).hexdigest()
            manifest = mf.VersionManifest(
                model=model, version=version, parent_version=f"0.{j - 1}.0" if j > 1 else None,
                created_at="2027-01-15T08:00:00Z", created_by=who, message="retrained",
                artifact=mf.ArtifactInfo(path="model.pkl", format="sklearn-pickle", sha256=sha,
                                         size=20_000 + i, stored=mf.Stored(
                                             codec="zstd", level=3, cipher="aes-256-gcm",
                                             key_id=key_id, size=9_000 + i, md5=md5)),
                metrics={"accuracy": 0.9, "f1": 0.88}, policy_hash=policy_hash,
                lineage=mf.Lineage(code_commit="0" * 40, params={"C": 1.0}))
            base = f".mlops/models/{model}"
            out.append(b"commit refs/heads/main\nmark :%d\n" % mark)
            out.append(f"author {who} {t} +0000\ncommitter {who} {t} +0000\n".encode())
            data(f"mlopsctl: register {model} {version}\n")
            out.append(b"from refs/heads/main^0\n" if mark == 1 else b"from :%d\n" % (mark - 1))
            for path, content in ((f"{base}/versions/{version}.yaml", mf.dump(manifest)),
                                  (f"{base}/artifacts/{version}.zst.dvc",
                                   pointer_text(f"{version}.zst", md5, 9_000 + i))):
                out.append(f"M 644 inline {path}\n".encode())
                out.append(b"data %d\n" % len(content) + content + b"\n")
            if j == 1:
                card = mf.dump(mf.ModelCard(name=model, owner="bench@example.com",
                                            description="a benchmark model"))
                out.append(f"M 644 inline {base}/model.yaml\n".encode())
                out.append(b"data %d\n" % len(card) + card + b"\n")
            commit_of[(i, j)], sha_of[(i, j)] = mark, sha
            out.append(f"tag {model}@v{version}\nfrom :{mark}\ntagger {who} {t} +0000\n".encode())
            data(f"Register {model} v{version}\n\nmlopsctl:\n  schema_version: 1\n"
                 f"  event: register\n  actor: {who}\n  model: {model}\n  version: {version}\n"
                 f"  artifact_sha256: {sha}\n  policy_hash: {policy_hash}\n")
    for i in range(N_MODELS):
        t += 1
        j = 1 + i % N_VERSIONS
        out.append(f"tag m{i}#staging#{N_VERSIONS + 1}\nfrom :{commit_of[(i, j)]}\n"
                   f"tagger {who} {t} +0000\n".encode())
        data(f"Promote m{i} v0.{j}.0 to staging\n\nmlopsctl:\n  schema_version: 1\n"
             f"  event: promote\n  actor: {who}\n  environment: staging\n  version: 0.{j}.0\n"
             f"  validation:\n    passed: true\n    compliance: 1.0\n"
             f"  policy_hash: {policy_hash}\n")
    stream = b"".join(out) + b"done\n"
    run([GIT, "fast-import", "--quiet", "--done"], repo, env, input=stream)
    run([GIT, "reset", "-q", "--hard", "main"], repo, env)


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
        subprocess.run([str(VENV_BIN / "python"), "-m", "compileall", "-q", str(ROOT / "mlopsctl")],
                       env=env, capture_output=True, check=False)
        t0 = time.perf_counter()
        repo = work / "registry"
        if not args.reuse:
            build(repo, env)
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
            ("mlopsctl check-ref m7#staging#11 --json",
             [MLOPSCTL, "check-ref", "m7#staging#11", "--json"], 0),
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
