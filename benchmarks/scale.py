"""Benchmark of the registry at scale: 2,200 and 101,000 tags, beside the floors and gto.

Registries are built by `registry_repo.py` as mlopsctl writes them (a manifest, a DVC pointer and
an annotated registration tag per version, one production stage tag per model, refs packed):
200 models x 10 versions (2,200 tags) and 1,000 models x 100 versions (101,000 tags). Then on
each, as whole processes (start-up included), interleaved, median of the runs:

- floors: `git for-each-ref` with the fields a full read needs, and with names and ids only;
- `show --json` cold (the tag index removed before each run: a fresh clone) and warm, with the
  peak RSS of mlopsctl's own process and of the whole process tree (git included);
- `show MODEL --json`, `history MODEL --json`, `history --json`, `status`, `status --json`;
- `gto show --json` (2,200 only: it takes tens of seconds there already);
- the write path on a real scikit-learn model: `bump` (a 2 KiB pickle), `promote` to staging
  and to production (each report already validated, so no validation is timed), `rollback`;
  the same on a registry of 11 tags gives the work that does not depend on the registry, and
  the difference is the registry's share (target: <= 1 s);
- `push` of one new version to a local bare remote holding everything else, and `pull` of it
  into a second clone.

    .venv/bin/python benchmarks/scale.py [--runs 5] [--sizes 2200,101000] [--keep]
                                         [--reuse DIR] [--out benchmarks/results-scale.md]

Building the 101,000-tag registry takes about two minutes; `--keep` keeps the work directory
and `--reuse DIR` times a kept one again (the write path adds versions to it on every run).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from registry_repo import (  # noqa: E402
    GIT,
    MLOPSCTL,
    PYTHON,
    VENV_BIN,
    build,
    make_env,
    model_name,
    run,
)

GTO = str(VENV_BIN / "gto")
SIZES = {2200: (200, 10), 101000: (1000, 100), 11: (1, 10)}
FULL_READ = ("%(refname)%00%(objecttype)%00%(objectname)%00%(*objectname)%00%(*objecttype)"
             "%00%(taggername)%00%(taggeremail)%00%(taggerdate:unix)%00%(taggerdate:raw)"
             "%00%(*committerdate:unix)%00%(contents)%00%(contents:signature)%00")
# mlopsctl in-process, reporting its own peak RSS (the tree's includes git's, which maps packs)
# (the high-water mark of this address space: ru_maxrss would count the benchmark's own memory,
# shared by the fork before exec)
SELF_RSS = ("import sys\n"
            "from mlopsctl.cli import main\n"
            "code = main(sys.argv[1:])\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
            "sys.stderr.write('\\nself-rss-kb %s\\n' % (hwm[0].split()[1] if hwm else '0'))\n"
            "raise SystemExit(code)\n")
INDEX = Path(".git") / "mlopsctl" / "tag-index"


class Timer:
    """Interleaved whole-process runs: wall, CPU (user + sys of the children), peak RSS."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.rows: dict[str, dict[str, list[float]]] = {}

    def one(self, label: str, cmd: list[str], cwd: Path, ok: tuple[int, ...] = (0,),
            before: object = None) -> subprocess.CompletedProcess[bytes]:
        if callable(before):
            before()
        start_cpu = _children_cpu()
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, check=False)
        wall = time.perf_counter() - start
        cpu = _children_cpu() - start_cpu
        if proc.returncode not in ok:
            raise SystemExit(f"{label}: exit {proc.returncode}\n{proc.stdout.decode()[-2000:]}"
                             f"{proc.stderr.decode()[-3000:]}")
        row = self.rows.setdefault(label, {"wall": [], "cpu": [], "rss": []})
        row["wall"].append(wall)
        row["cpu"].append(cpu)
        for line in proc.stderr.decode(errors="replace").splitlines():
            if line.startswith("self-rss-kb "):
                row["rss"].append(int(line.split()[1]) / 1024)
        return proc

    def series(self, specs: list[tuple[str, list[str], object]], cwd: Path, runs: int,
               warmup: int = 1) -> None:
        for i in range(warmup + runs):
            for label, cmd, before in specs:
                self.one(label if i >= warmup else f"(warm-up) {label}", cmd, cwd, before=before)
        for label in list(self.rows):
            if label.startswith("(warm-up)"):
                del self.rows[label]

    def median(self, label: str, what: str = "wall") -> float:
        return statistics.median(self.rows[label][what])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_rss_mib(cmd: list[str], cwd: Path, env: dict[str, str]) -> float | None:
    """Peak RSS of the whole process tree, through /usr/bin/time."""
    if not Path("/usr/bin/time").exists():
        return None
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], cwd=cwd, env=env,
                          capture_output=True, check=False)
    try:
        return int(proc.stderr.decode().strip().splitlines()[-1]) / 1024
    except (ValueError, IndexError):
        return None


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def model_file(path: Path, seed: int) -> None:
    """A small real scikit-learn model and its holdout (validation reads both)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    with open(path / "model.pkl", "wb") as fh:
        pickle.dump(LogisticRegression().fit(x[:300], y[:300]), fh)
    rows = ["a,b,c,d,label"] + [",".join(f"{v:.5f}" for v in r) + f",{t}"
                                for r, t in zip(x[300:], y[300:], strict=True)]
    (path / "holdout.csv").write_text("\n".join(rows) + "\n")


def write_path(t: Timer, repo: Path, runs: int, tag: str) -> None:
    """bump, validate (untimed), promote staging + production, rollback: ``runs`` rounds."""
    mctl = [MLOPSCTL]
    for i in range(runs + 1):
        label = (lambda what: f"{what} [{tag}]") if i else (lambda what: f"(warm-up) {what}")
        model_file(repo, seed=i)
        out = t.one(label("bump"), [*mctl, "bump", "bench", "--artifact", "model.pkl", "--json",
                                    "--holdout", "holdout.csv", "--target", "label",
                                    "--description", "scale benchmark model",
                                    "--intended-use", "benchmarks", "--data", "holdout.csv"],
                    repo)
        version = json.loads(out.stdout)["manifest"]["version"]
        for env in ("staging", "production"):
            run([*mctl, "validate", f"bench@{version}", "--env", env], repo, t.env)
        t.one(label("promote staging"), [*mctl, "promote", "bench", version, "--to", "staging"],
              repo)
        t.one(label("promote production"),
              [*mctl, "promote", "bench", version, "--to", "production"], repo)
        if i:  # production now has an earlier version to go back to
            t.one(label("rollback"), [*mctl, "rollback", "bench", "--env", "production"], repo)
    for label in list(t.rows):
        if label.startswith("(warm-up)"):
            del t.rows[label]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="2200,101000")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--reuse", type=Path, metavar="DIR")
    parser.add_argument("--out", type=Path, default=HERE / "results-scale.md")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.reuse:
        work, args.keep = args.reuse.resolve(), True
    else:
        base = HERE / ".work"
        base.mkdir(exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="scale-", dir=base))
    env = make_env(work / "home", HERE / ".work" / "pycache")
    lines: list[str] = []
    try:
        for size in [11, *sizes]:
            repo = work / f"r{size}"
            if not repo.is_dir():
                t0 = time.perf_counter()
                models, versions = SIZES[size]
                build(repo, env, models, versions, stage="production")
                (repo / ".gitignore").write_text("model.pkl\nholdout.csv\n")
                print(f"built {size} tags in {time.perf_counter() - t0:.0f} s", flush=True)
        t = Timer(env)
        reads: dict[int, dict[str, object]] = {}
        for size in sizes:
            repo = work / f"r{size}"
            runs = args.runs
            model = model_name(7, SIZES[size][0])
            index = repo / INDEX

            def drop(path: Path = index) -> None:  # a cold read: as in a fresh clone
                path.unlink(missing_ok=True)

            inproc = [PYTHON, "-c", SELF_RSS]
            t.series([
                (f"for-each-ref, full fields [{size}]",
                 [GIT, "for-each-ref", f"--format={FULL_READ}", "refs/tags"], None),
                (f"for-each-ref, names and ids [{size}]",
                 [GIT, "for-each-ref", "--format=%(objectname) %(refname)", "refs/tags"],
                 None),
                (f"show --json, cold [{size}]", [*inproc, "show", "--json"], drop),
                (f"show --json, warm [{size}]", [*inproc, "show", "--json"], None),
                (f"show {model} --json [{size}]", [*inproc, "show", model, "--json"], None),
                (f"history {model} --json [{size}]", [*inproc, "history", model, "--json"],
                 None),
                (f"status [{size}]", [*inproc, "status"], None),
                (f"status --json [{size}]", [*inproc, "status", "--json"], None),
            ], repo, runs)
            t.series([(f"history --json [{size}]", [*inproc, "history", "--json"], None)],
                     repo, max(1, runs // 2))
            drop()
            reads[size] = {
                "cold tree": tree_rss_mib([MLOPSCTL, "show", "--json"], repo, env),
                "warm tree": tree_rss_mib([MLOPSCTL, "show", "--json"], repo, env),
            }
            if size <= 2200:
                t.series([(f"gto show --json [{size}]", [GTO, "show", "--json"], None)], repo,
                         2, warmup=0)
        for size in [11, *sizes]:
            write_path(t, work / f"r{size}", args.runs, str(size))
        sync = sync_path(t, work, sizes[-1], env, args.runs)
        lines = report(t, sizes, reads, sync)
        text = "\n".join(lines) + "\n"
        print(text)
        args.out.write_text(text)
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def sync_path(t: Timer, work: Path, size: int, env: dict[str, str], runs: int) -> str:
    """push one new version to a bare remote that has the rest; pull it into a second clone."""
    repo = work / f"r{size}"
    bare = work / f"r{size}.git"
    other = work / f"r{size}-clone"
    if not bare.is_dir():
        run([GIT, "init", "-q", "--bare", "-b", "main", str(bare)], work, env)
        run([GIT, "remote", "add", "origin", str(bare)], repo, env)
        # the generated versions have no blobs (mlopsctl push would rightly refuse them):
        # the bare remote starts with everything through git itself
        t0 = time.perf_counter()
        run([GIT, "push", "-q", "origin", "main", "refs/tags/*:refs/tags/*"], repo, env)
        first = time.perf_counter() - t0
        run([GIT, "pack-refs", "--all"], bare, env)  # as a server's gc leaves them
        run([GIT, "clone", "-q", str(bare), str(other)], work, env)
        run([MLOPSCTL, "pull"], other, env)
    else:
        first = float("nan")
    head = run([GIT, "rev-parse", "HEAD"], repo, env).stdout.decode().strip()
    for i in range(runs):
        model_file(repo, seed=100 + i)
        run([MLOPSCTL, "bump", "pushed", "--artifact", "model.pkl"], repo, env)
        t.one(f"push one new version [{size}]", [MLOPSCTL, "push"], repo)
        t.one(f"pull one new version [{size}]", [MLOPSCTL, "pull"], other)
        # the floors: git itself sending and fetching one new tag between the same repositories
        name = f"floor-{os.getpid()}-{i}@v0.1.0"
        run([GIT, "tag", "-a", "-m", "floor", name, head], repo, env)
        t.one(f"git push of one tag (floor) [{size}]",
              [GIT, "push", "-q", "origin", f"refs/tags/{name}"], repo)
        t.one(f"git fetch of one tag (floor) [{size}]",
              [GIT, "fetch", "-q", "--no-tags", "origin", f"refs/tags/{name}:refs/tags/{name}"],
              other)
    return (f"`git push` of the whole registry to an empty bare remote: {ms(first)}; the bare "
            "remote's refs then packed, as a server's gc leaves them")


def report(t: Timer, sizes: list[int], reads: dict[int, dict[str, object]],
           sync: str) -> list[str]:
    load = os.getloadavg()
    git_version = subprocess.run([GIT, "--version"], capture_output=True, text=True).stdout
    out = [
        "# Registry at scale: results",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"load average at the end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} on "
        f"{os.cpu_count()} CPUs",
        f"- git {git_version.split()[-1]}, python {sys.version.split()[0]}; medians of "
        "interleaved whole-process runs, start-up included",
        "",
        "| command | " + " | ".join(f"{s:,} tags: wall (CPU)" for s in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    labels = dict.fromkeys(label.rsplit(" [", 1)[0] for label in t.rows)
    for base in labels:
        cells = []
        for size in sizes:
            label = f"{base} [{size}]"
            if label not in t.rows:
                cells.append("—")
                continue
            rss = t.rows[label]["rss"]
            extra = f", {statistics.median(rss):.0f} MiB" if rss else ""
            cells.append(f"{ms(t.median(label))} ({ms(t.median(label, 'cpu'))}{extra})")
        if any(c != "—" for c in cells):
            out.append(f"| {base} | " + " | ".join(cells) + " |")
    out += ["", "Peak RSS in the table is mlopsctl's own process (median); whole process tree, "
            "git included:"]
    for size in sizes:
        r = reads[size]
        out.append(f"- {size:,} tags: `show --json` cold {r['cold tree']:.0f} MiB, "
                   f"warm {r['warm tree']:.0f} MiB")
    out += ["", "Write path: the registry's share is the command at N tags minus the same command "
            "on a registry of 11 tags, same run:", ""]
    for what in ("bump", "promote staging", "promote production", "rollback"):
        base = t.median(f"{what} [11]")
        parts = [f"{size:,}: {ms(t.median(f'{what} [{size}]') - base)}" for size in sizes]
        out.append(f"- `{what}`: {ms(base)} at 11 tags; registry share " + ", ".join(parts))
    out += ["", f"- {sync}"]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
