#!/usr/bin/env python3
"""mlopsctl benchmark suite: every command timed as a whole process, side by side with its
baselines (GTO, DVC, raw git, "one-pass floor" scripts, and for `validate` a bare
pandas + scikit-learn script doing the same scoring), in one run.

    .venv/bin/python benchmarks/run.py            # full suite (slow: GTO on 2200 tags, 1 GiB bump)
    .venv/bin/python benchmarks/run.py --quick    # fewer runs, no 1 GiB case

Writes benchmarks/results.md and prints the same tables. Uses only the standard library, the
venv's packages (numpy to generate weights, zstandard + cryptography in the floor scripts,
scikit-learn + pandas for the validate data set, model and bare script) and the
venv's entry points (mlopsctl, gto, dvc). Every piece of state (HOME, the key, the DVC remotes,
the repositories) lives under benchmarks/.work/ (gitignored); generated artifacts are cached in
benchmarks/.work/cache/ between runs.

Timing: time.perf_counter() around subprocess.run(), so each figure includes interpreter start-up
and imports. Peak RSS: /usr/bin/time -v when present (its own overhead is ~1 ms), else a tiny
wrapper reading resource.getrusage(RUSAGE_CHILDREN). Each row gives median, min and max.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_BIN = ROOT / ".venv" / "bin"
if not VENV_BIN.is_dir():  # fall back to the interpreter running this script
    VENV_BIN = Path(sys.executable).parent
PY = str(VENV_BIN / "python")
MLOPSCTL = str(VENV_BIN / "mlopsctl")
GTO = str(VENV_BIN / "gto")
DVC = str(VENV_BIN / "dvc")
GIT = shutil.which("git") or "git"
TIME_BIN = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None

MiB = 1 << 20
PYCACHE = HERE / ".work" / "pycache"
N_MODELS = 200
N_VERSIONS = 10

# ------------------------------------------------------------------------------------------------
# The floors: the least work a one-pass encrypt / decrypt can do with the same primitives as
# mlopsctl's store format (sha256 + zstd level 3, threads=-1, content size in the frame +
# AES-256-GCM over 1 MiB chunks). Written to the work dir and run as their own process.
# ------------------------------------------------------------------------------------------------
FLOOR_SCRIPT = r'''
import hashlib, os, struct, sys
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CHUNK = 1 << 20
READ = 4 << 20

def nonce(i, last):
    return b"\0" * 7 + struct.pack(">IB", i, last)

def encrypt(src, dst):
    key = os.urandom(32)
    aead = AESGCM(key)
    size = os.path.getsize(src)
    sha = hashlib.sha256()
    cctx = zstandard.ZstdCompressor(level=3, threads=-1, write_content_size=True)
    chunker = cctx.chunker(size=size, chunk_size=CHUNK)
    i = 0
    pending = None
    buf = bytearray(READ)
    view = memoryview(buf)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while True:
            n = fin.readinto(buf)
            if not n:
                break
            data = view[:n]
            sha.update(data)
            for out in chunker.compress(data):
                if pending is not None:
                    fout.write(aead.encrypt(nonce(i, 0), pending, None)); i += 1
                pending = out
        for out in chunker.finish():
            if pending is not None:
                fout.write(aead.encrypt(nonce(i, 0), pending, None)); i += 1
            pending = out
        fout.write(aead.encrypt(nonce(i, 1), pending, None))
    with open(dst + ".meta", "w") as fh:
        fh.write(key.hex() + " " + sha.hexdigest() + "\n")

def decrypt(src, dst):
    with open(src + ".meta") as fh:
        key_hex, expected = fh.read().split()
    aead = AESGCM(bytes.fromhex(key_hex))
    dobj = zstandard.ZstdDecompressor().decompressobj()
    sha = hashlib.sha256()
    step = CHUNK + 16
    i = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        current = fin.read(step)
        while True:
            following = fin.read(step)
            plain = aead.decrypt(nonce(i, 0 if following else 1), current, None)
            out = dobj.decompress(plain)
            if out:
                sha.update(out)
                fout.write(out)
            if not following:
                break
            current, i = following, i + 1
    if sha.hexdigest() != expected:
        sys.exit("floor decrypt: sha256 mismatch")

{"encrypt": encrypt, "decrypt": decrypt}[sys.argv[1]](sys.argv[2], sys.argv[3])
'''

RSS_WRAPPER = r'''
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    fh.write("Maximum resident set size (kbytes): %d\n"
             % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)
'''

# ------------------------------------------------------------------------------------------------
# Scenario 5 (validate overhead): the data set + model, and the "bare" script that does the
# scoring work of `mlopsctl validate` without mlopsctl. Both run with the venv's interpreter.
# ------------------------------------------------------------------------------------------------
VALIDATE_DATA_SCRIPT = r'''
import json, pickle, sys
from pathlib import Path
import pandas as pd
from sklearn import metrics as m
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

out, rows, features = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
x, y = make_classification(n_samples=2 * rows, n_features=features, n_informative=12,
                           n_redundant=6, class_sep=1.2, random_state=7)
cols = [f"f{i:02d}" for i in range(features)]
train = pd.DataFrame(x[:rows], columns=cols).assign(target=y[:rows])
hold = pd.DataFrame(x[rows:], columns=cols).assign(target=y[rows:])
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
model.fit(train[cols], train["target"])
pred = model.predict(hold[cols])
train.to_csv(out / "train.csv", index=False)
hold.to_csv(out / "holdout.csv", index=False)
with open(out / "model.pkl", "wb") as fh:
    pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
with open(out / "metrics.json", "w") as fh:  # reported at bump: the policy compares them
    json.dump({"accuracy": m.accuracy_score(hold["target"], pred),
               "f1": m.f1_score(hold["target"], pred)}, fh)
'''

BARE_VALIDATE_SCRIPT = r'''
# What `mlopsctl validate` computes, without mlopsctl: load the pickle, read the CSV, predict,
# the same sklearn metrics (binary: accuracy, precision, recall, f1, ROC AUC from
# predict_proba), then N timed single-row predictions after 10 warm-up calls, and one batch
# predict for throughput -- the same steps, in the same order, as mlopsctl/worker.py.
import json, os, pickle, sys, time
os.environ.setdefault("OMP_NUM_THREADS", "1")  # what mlopsctl gives its worker
import numpy as np
import pandas as pd
from sklearn import metrics as m

model_path, csv_path, target, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with open(model_path, "rb") as fh:
    model = pickle.load(fh)
table = pd.read_csv(csv_path)
y = table[target]
x = table.drop(columns=[target])
pred = model.predict(x)
pos = model.classes_[-1]
kw = {"average": "binary", "pos_label": pos, "zero_division": 0}
out = {"accuracy": float(m.accuracy_score(y, pred)),
       "precision": float(m.precision_score(y, pred, **kw)),
       "recall": float(m.recall_score(y, pred, **kw)),
       "f1": float(m.f1_score(y, pred, **kw)),
       "roc_auc": float(m.roc_auc_score(y == pos, model.predict_proba(x)[:, 1]))}
n = len(x)
rows = [x.iloc[[i % n]] for i in range(min(n, runs))]
for i in range(10):
    model.predict(rows[i % len(rows)])
samples = []
for i in range(runs):
    t0 = time.perf_counter_ns()
    model.predict(rows[i % len(rows)])
    samples.append((time.perf_counter_ns() - t0) / 1e6)
t0 = time.perf_counter()
model.predict(x)
batch = time.perf_counter() - t0
arr = np.array(samples)
out.update(p50_ms=float(np.percentile(arr, 50)), p95_ms=float(np.percentile(arr, 95)),
           max_ms=float(arr.max()), throughput_rps=n / batch if batch > 0 else float("inf"))
print(json.dumps(out))
'''


# ------------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------------
@dataclass
class Row:
    scenario: str
    label: str
    command: str
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + sys of the process and its children
    rss_kb: list[int] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=dict)
    error: str | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu) if self.cpu else None

    @property
    def peak_rss_mib(self) -> float | None:
        return max(self.rss_kb) / 1024 if self.rss_kb else None


class Failed(Exception):
    pass


Argv = Sequence[str | Path]
Steps = Sequence[Argv] | Callable[[int], Sequence[Argv]]
Setup = Callable[[int], None]
After = Callable[[list[subprocess.CompletedProcess[bytes]]], None]


@dataclass
class Spec:
    """One command to time: a sequence of processes (usually one), fixed or built per run."""
    label: str
    steps: Steps
    cwd: Path
    rss: bool = False
    setup: Setup | None = None
    after: After | None = None
    note: str = ""

    def argvs(self, i: int) -> Sequence[Argv]:
        return self.steps(i) if callable(self.steps) else self.steps


class Bench:
    def __init__(self, work: Path, env: dict[str, str], verbose: bool) -> None:
        self.work = work
        self.env = env
        self.verbose = verbose
        self.rows: list[Row] = []
        self.checks: list[tuple[str, str]] = []  # (what, outcome)
        self.targets: list[tuple[str, str, str, str]] = []  # (target, measured, met, scenario)
        self.problems: list[str] = []
        self.loads: dict[str, list[str]] = {}  # scenario -> load averages as its sets started
        self._rss_file = work / "rss.txt"
        self._wrapper = work / "rsswrap.py"
        self._wrapper.write_text(RSS_WRAPPER)

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def run(self, argv: Argv, cwd: Path, *, rss: bool = False, check: bool = True
            ) -> tuple[float, int | None, subprocess.CompletedProcess[bytes], float]:
        """One timed process. Returns (seconds, peak RSS in KiB or None, completed process,
        CPU seconds: user + sys of the process and the children it waited for)."""
        args = [str(a) for a in argv]
        if rss:
            self._rss_file.unlink(missing_ok=True)
            if TIME_BIN:
                args = [TIME_BIN, "-v", "-o", str(self._rss_file), *args]
            else:
                args = [PY, str(self._wrapper), str(self._rss_file), *args]
        cpu0 = _children_cpu()
        t0 = time.perf_counter()
        proc = subprocess.run(args, cwd=cwd, env=self.env, capture_output=True,
                              stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        cpu = _children_cpu() - cpu0
        peak = None
        if rss and self._rss_file.exists():
            text = self._rss_file.read_text()
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
            peak = int(m.group(1)) if m else None
        if check and proc.returncode != 0:
            tail = (proc.stderr or b"").decode(errors="replace").strip().splitlines()[-6:]
            raise Failed(f"`{' '.join(args)}` exited {proc.returncode}: " + " | ".join(tail))
        return seconds, peak, proc, cpu

    def measure(self, scenario: str, label: str, steps: Steps, cwd: Path, runs: int, *,
                warmup: int = 0, rss: bool = False, setup: Setup | None = None,
                after: After | None = None, note: str = "") -> Row:
        """Time ``runs`` runs of one command (or a sequence of processes)."""
        spec = Spec(label, steps, cwd, rss=rss, setup=setup, after=after, note=note)
        return self.measure_set(scenario, [spec], runs, warmup=warmup)[0]

    def measure_set(self, scenario: str, specs: Sequence[Spec], runs: int, *,
                    warmup: int = 0) -> list[Row]:
        """Time several commands round-robin (A B C A B C ...), so that a change in the
        machine's load during the measurement hits all of them alike. ``setup(i)`` runs untimed
        before each run (warm-ups included); ``after`` gets the last run's processes."""
        rows = []
        for spec in specs:
            shown = " && ".join(" ".join(_short(a) for a in st) for st in spec.argvs(0))
            rows.append(Row(scenario, spec.label, shown, note=spec.note))
        self.rows.extend(rows)
        names = ", ".join(spec.label for spec in specs)
        load = load_avg()
        self.loads.setdefault(scenario, []).append(load)
        self.log(f"[{scenario}] (load average {load}) {names}: {warmup} warm-up + {runs} runs"
                 + (" (interleaved)" if len(specs) > 1 else "") + " ...")
        last: dict[int, list[subprocess.CompletedProcess[bytes]]] = {}
        for r in range(warmup + runs):
            for n, (spec, row) in enumerate(zip(specs, rows, strict=True)):
                if row.error:
                    continue
                try:
                    last[n] = self._one(spec, row, r, counted=r >= warmup)
                except Exception as exc:  # record it and go on
                    self._fail(row, exc)
        for n, (spec, row) in enumerate(zip(specs, rows, strict=True)):
            if row.error:
                continue
            try:
                if spec.after and n in last:
                    spec.after(last[n])
            except Exception as exc:  # a failed output check
                self._fail(row, exc)
                continue
            self.log(f"    {row.label}: median {row.median * 1000:.1f} ms "
                     f"(min {min(row.times) * 1000:.1f}, max {max(row.times) * 1000:.1f}), "
                     f"CPU {(row.cpu_median or 0) * 1000:.0f} ms")
        return rows

    def _one(self, spec: Spec, row: Row, i: int,
             counted: bool) -> list[subprocess.CompletedProcess[bytes]]:
        if spec.setup:
            spec.setup(i)
        total, cpu, peak_kb, procs = 0.0, 0.0, 0, []
        argvs = spec.argvs(i)
        for st in argvs:
            seconds, peak, proc, used = self.run(st, spec.cwd, rss=spec.rss)
            total += seconds
            cpu += used
            peak_kb = max(peak_kb, peak or 0)
            procs.append(proc)
            if counted and len(argvs) > 1:
                key = os.path.basename(str(st[0])) + " " + _short(st[1])
                row.steps.setdefault(key, []).append(seconds)
        if counted:
            row.times.append(total)
            row.cpu.append(cpu)
            if spec.rss and peak_kb:
                row.rss_kb.append(peak_kb)
        if self.verbose:
            self.log(f"    {row.label} run {i + 1}: {total * 1000:.1f} ms, CPU {cpu * 1000:.0f} ms"
                     + (f", peak RSS {peak_kb / 1024:.0f} MiB" if spec.rss else "")
                     + ("" if counted else " (warm-up)"))
        return procs

    def _fail(self, row: Row, exc: Exception) -> None:
        row.error = str(exc) if isinstance(exc, Failed) else f"{type(exc).__name__}: {exc}"
        self.problems.append(f"{row.scenario} / {row.label}: {row.error}")
        self.log(f"    {row.label} FAILED: {row.error}")

    def target(self, scenario: str, text: str, measured: str, met: bool | None) -> None:
        verdict = "n/a" if met is None else ("**met**" if met else "**MISSED**")
        self.targets.append((text, measured, verdict, scenario))


def _children_cpu() -> float:
    """User + system seconds of every child waited for so far (one process's CPU is the
    difference around it: what a busy machine's queueing does not inflate as much)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _short(arg: object) -> str:
    """An argument as shown in the results: the venv's entry points by name."""
    s = str(arg)
    prefix = str(VENV_BIN) + "/"
    return s[len(prefix):] if s.startswith(prefix) else s


def ratio(a: Row, b: Row) -> float | None:
    if a.ok and b.ok and b.median > 0:
        return a.median / b.median
    return None


def cpu_ratio(a: Row, b: Row) -> float | None:
    """Ratio of median CPU times (user + sys): less inflated than wall time by a busy machine."""
    if a.ok and b.ok and a.cpu_median is not None and b.cpu_median:
        return a.cpu_median / b.cpu_median
    return None


def fmt_ms(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 0.9995:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def fmt_ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


# ------------------------------------------------------------------------------------------------
# Setting up
# ------------------------------------------------------------------------------------------------
def make_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "MLOPSCTL_", "DVC_", "GTO_", "XDG_"))
           and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "VIRTUAL_ENV")}
    ident = {"GIT_AUTHOR_NAME": "Bench Mark", "GIT_AUTHOR_EMAIL": "bench@example.com",
             "GIT_COMMITTER_NAME": "Bench Mark", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    env.update(ident)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(home / "dvc-site-cache"),
        GIT_CONFIG_NOSYSTEM="1",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        LC_ALL="C.UTF-8",
        COLUMNS="100",
        PYTHONUNBUFFERED="1",
        # Byte code as an installed tool has it, without writing into the source tree: an
        # editable install has no __pycache__ when PYTHONDONTWRITEBYTECODE is set, and would
        # recompile every module on every run. The cache persists under .work/pycache.
        PYTHONPYCACHEPREFIX=str(PYCACHE),
    )
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Bench Mark\n\temail = bench@example.com\n"
        "[init]\n\tdefaultBranch = main\n[gc]\n\tauto = 0\n[advice]\n\tdetachedHead = false\n")
    return env


def git(b: Bench, cwd: Path, *args: str, input: bytes | None = None) -> str:
    proc = subprocess.run([GIT, *args], cwd=cwd, env=b.env, input=input,
                          capture_output=True)
    if proc.returncode != 0:
        raise Failed(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode()


def new_repo(b: Bench, path: Path) -> Path:
    path.mkdir(parents=True)
    git(b, path, "init", "-q", "-b", "main")
    git(b, path, "commit", "-q", "--allow-empty", "-m", "initial commit")
    return path


def weights_file(cache: Path, size: int, name: str, b: Bench) -> Path:
    """Float32 draws from a standard normal (seeded), written once and cached across runs."""
    path = cache / name
    if path.is_file() and path.stat().st_size == size:
        return path
    import numpy as np

    b.log(f"generating {name} ({size / MiB:.0f} MiB of float32 standard-normal weights) ...")
    rng = np.random.default_rng(20240601)
    tmp = path.with_suffix(".tmp")
    left = size
    with open(tmp, "wb") as fh:
        while left:
            n = min(left, 64 * MiB)
            fh.write(rng.standard_normal(n // 4, dtype=np.float32).tobytes())
            left -= n
    os.replace(tmp, path)
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 * MiB):
            h.update(block)
    return h.hexdigest()


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def build_registry_repo(b: Bench, path: Path) -> Path:
    """200 models x 10 versions, each version on its own commit (an annotated ``m{i}@v0.{j}.0``
    tag), plus one annotated ``m{i}#prod#11`` stage tag per model; all in one fast-import stream.
    Tag timestamps increase by one second per tag so the event order is unambiguous."""
    path.mkdir(parents=True)
    git(b, path, "init", "-q", "-b", "main")
    t = 1_700_000_000
    who = "Bench Mark <bench@example.com>"
    out: list[bytes] = []

    def data(payload: str) -> None:
        raw = payload.encode()
        out.append(b"data %d\n" % len(raw) + raw + b"\n")

    mark = 0
    commit_of: dict[tuple[int, int], int] = {}
    for j in range(1, N_VERSIONS + 1):
        for i in range(N_MODELS):
            mark += 1
            t += 1
            out.append(b"commit refs/heads/main\nmark :%d\n" % mark)
            out.append(f"author {who} {t} +0000\ncommitter {who} {t} +0000\n".encode())
            data(f"train m{i} v0.{j}.0\n")
            if mark > 1:
                out.append(b"from :%d\n" % (mark - 1))
            out.append(f"M 644 inline models/m{i}.txt\n".encode())
            data(f"model m{i}\nversion 0.{j}.0\n")
            commit_of[(i, j)] = mark
            out.append(f"tag m{i}@v0.{j}.0\nfrom :{mark}\n"
                       f"tagger {who} {t} +0000\n".encode())
            data(f"Registering artifact m{i} version v0.{j}.0")
    for i in range(N_MODELS):
        t += 1
        j = 1 + i % N_VERSIONS  # the stage points at one of the model's versions
        out.append(f"tag m{i}#prod#{N_VERSIONS + 1}\nfrom :{commit_of[(i, j)]}\n"
                   f"tagger {who} {t} +0000\n".encode())
        data(f"Assigning stage prod to artifact m{i} version v0.{j}.0")
    stream = b"".join(out) + b"done\n"
    proc = subprocess.run([GIT, "fast-import", "--quiet", "--done"], cwd=path, env=b.env,
                          input=stream, capture_output=True)
    if proc.returncode != 0:
        raise Failed(f"git fast-import: {proc.stderr.decode(errors='replace')}")
    git(b, path, "reset", "-q", "--hard", "main")
    return path


def json_diff(a: object, b: object, path: str = "$") -> str | None:
    """The first difference between two JSON values, or None."""
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} {_clip(a)} vs {type(b).__name__} {_clip(b)}"
    if isinstance(a, dict):
        assert isinstance(b, dict)
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        if only_a or only_b:
            return f"{path}: keys only in the first {only_a[:5]}, only in the second {only_b[:5]}" \
                   f" ({len(only_a)} / {len(only_b)})"
        for k in a:
            if d := json_diff(a[k], b[k], f"{path}.{k}"):
                return d
        return None
    if isinstance(a, list):
        assert isinstance(b, list)
        if len(a) != len(b):
            return f"{path}: {len(a)} items vs {len(b)}"
        for n, (x, y) in enumerate(zip(a, b, strict=False)):
            if d := json_diff(x, y, f"{path}[{n}]"):
                return d
        return None
    return None if a == b else f"{path}: {_clip(a)} vs {_clip(b)}"


def _clip(v: object) -> str:
    s = json.dumps(v)
    return s if len(s) < 80 else s[:77] + "..."


def count_diffs(a: object, b: object) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        n = sum(1 for k in keys if a.get(k) != b.get(k))
        return f"{n} of {len(keys)} top-level keys differ"
    if isinstance(a, list) and isinstance(b, list):
        n = sum(1 for x, y in zip(a, b, strict=False) if x != y) + abs(len(a) - len(b))
        return f"{n} of {max(len(a), len(b))} items differ"
    return "values differ"


# ------------------------------------------------------------------------------------------------
# Scenarios
# ------------------------------------------------------------------------------------------------
def scenario_startup(b: Bench, quick: bool) -> None:
    sc = "1. start-up"
    cwd = b.work / "empty"
    cwd.mkdir()
    runs = 5 if quick else 15
    m, g, p = b.measure_set(sc, [Spec("mlopsctl --help", [[MLOPSCTL, "--help"]], cwd),
                                 Spec("gto --help", [[GTO, "--help"]], cwd),
                                 Spec("python -c pass", [[PY, "-c", "pass"]], cwd)],
                            runs, warmup=2)
    r = ratio(g, m)
    m.note = f"gto takes {fmt_ratio(r)} as long; {fmt_ratio(ratio(m, p))} bare python"
    g.note = f"{fmt_ratio(r)} mlopsctl"
    p.note = "interpreter floor"
    b.target(sc, "`mlopsctl --help` median ≤ 100 ms",
             fmt_ms(m.median) if m.ok else "failed", m.median <= 0.100 if m.ok else False)
    b.target(sc, "`mlopsctl --help` ≥ 6× faster than `gto --help`",
             fmt_ratio(r), (r >= 6) if r is not None else False)


def scenario_registry_read(b: Bench, quick: bool) -> None:
    sc = "2. registry read"
    b.log(f"building a registry of {N_MODELS} models x {N_VERSIONS} versions + "
          f"{N_MODELS} stage tags with git fast-import ...")
    t0 = time.perf_counter()
    try:
        repo = build_registry_repo(b, b.work / "registry")
        b.run([MLOPSCTL, "init"], repo)
    except Failed as exc:
        b.problems.append(f"{sc}: setting up: {exc}")
        b.log(f"    FAILED to set up: {exc}")
        return
    ntags = len(git(b, repo, "tag", "-l").split())
    b.log(f"    {ntags} tags in {time.perf_counter() - t0:.1f} s")

    runs, gto_runs = (3, 1) if quick else (7, 2)
    outputs: dict[str, bytes] = {}

    def keep(name: str) -> Callable[[list[subprocess.CompletedProcess[bytes]]], None]:
        def hook(procs: list[subprocess.CompletedProcess[bytes]]) -> None:
            outputs[name] = procs[-1].stdout
        return hook

    fmt = ("%(refname:strip=2)%00%(objectname)%00%(*objectname)%00%(taggername)%00"
           "%(taggeremail)%00%(taggerdate:unix)%00%(contents)")
    raw, ms, mh = b.measure_set(sc, [
        Spec("git for-each-ref (raw, 1 call)",
             [[GIT, "for-each-ref", "refs/tags", f"--format={fmt}"]], repo,
             note="every tag with its commit, tagger, date and message"),
        Spec("mlopsctl show --json", [[MLOPSCTL, "show", "--json"]], repo,
             after=keep("mlopsctl show")),
        Spec("mlopsctl history --json", [[MLOPSCTL, "history", "--json"]], repo,
             after=keep("mlopsctl history")),
    ], runs, warmup=1)
    # GTO takes tens of seconds here: fewer runs, and no warm-up (start-up is warm already).
    gs, gh = b.measure_set(sc, [
        Spec("gto show --json", [[GTO, "show", "--json"]], repo, after=keep("gto show")),
        Spec("gto history --json", [[GTO, "history", "--json"]], repo, after=keep("gto history")),
    ], gto_runs)
    for mine, theirs in ((ms, gs), (mh, gh)):
        r = ratio(theirs, mine)
        mine.note = (f"{fmt_ratio(r)} faster than gto; "
                     f"{fmt_ratio(ratio(mine, raw))} the raw git call")
        theirs.note = f"{fmt_ratio(r)} mlopsctl"
    b.target(sc, "`mlopsctl show --json` median ≤ 300 ms (2000 versions, 200 stages)",
             fmt_ms(ms.median) if ms.ok else "failed", ms.median <= 0.300 if ms.ok else False)
    b.target(sc, "`mlopsctl history --json` (no target given; for reference)",
             fmt_ms(mh.median) if mh.ok else "failed", None)

    for what in ("show", "history"):
        a, g = outputs.get(f"mlopsctl {what}"), outputs.get(f"gto {what}")
        name = f"`mlopsctl {what} --json` == `gto {what} --json` (parsed)"
        if a is None or g is None:
            b.checks.append((name, "not compared (a command failed)"))
            continue
        try:
            ja, jg = json.loads(a), json.loads(g)
        except ValueError as exc:
            b.checks.append((name, f"not compared: invalid JSON ({exc})"))
            continue
        if ja == jg:
            size = len(ja) if isinstance(ja, (dict, list)) else 1
            b.checks.append((name, f"**equal** ({size} entries)"))
        else:
            b.checks.append((name, f"**DIFFERENT**: {count_diffs(ja, jg)}; first difference "
                                   f"(mlopsctl vs gto): {json_diff(ja, jg)}"))
    if (g := outputs.get("gto show")) is not None:
        try:
            jg = json.loads(g)
            prod = sum(1 for v in jg.values() if v.get("stage", {}).get("prod"))
            b.checks.append(("gto sees the generated registry",
                             f"{len(jg)} models, {prod} with a prod stage"))
        except (ValueError, AttributeError) as exc:
            b.checks.append(("gto sees the generated registry", f"unparsable: {exc}"))
    (b.work / "outputs").mkdir(exist_ok=True)
    for name, data in outputs.items():
        (b.work / "outputs" / (name.replace(" ", "-") + ".json")).write_bytes(data)


class ArtifactState:
    """What scenario 3 leaves for scenario 4."""
    bump_repo: Path | None = None
    dvc_repo: Path | None = None
    floor_blob: Path | None = None
    version: str | None = None  # 'model@X.Y.Z' of the last 100 MB version
    sha: str | None = None
    floor_row: Row | None = None


ARTIFACT_TARGET = 1.3  # bump and fetch of 100 MiB against their floors (issue 13)


def scenario_bump(b: Bench, quick: bool, cache: Path, st: ArtifactState) -> None:
    sc = "3. bump"
    size = 100 * MiB
    weights = weights_file(cache, size, "weights-100MiB.f32", b)
    st.sha = sha256_file(weights)
    floor = b.work / "floor.py"
    floor.write_text(FLOOR_SCRIPT)
    runs = 2 if quick else 5

    # mlopsctl: a fresh registry; the artifact is a hard link (no copy) inside the work tree.
    try:
        repo = new_repo(b, b.work / "bump-repo")
        b.run([MLOPSCTL, "init"], repo)
        link_or_copy(weights, repo / "weights.f32")
        st.bump_repo = repo
    except Failed as exc:
        b.problems.append(f"{sc}: setting up mlopsctl repo: {exc}")
        return
    blob = b.work / "floor-blob.bin"

    def rm_blob(_: int) -> None:
        blob.unlink(missing_ok=True)

    fl, bm = b.measure_set(sc, [
        Spec("floor: one-pass encrypt (100 MiB)", [[PY, floor, "encrypt", weights, blob]],
             b.work, rss=True, setup=rm_blob,
             note="sha256 + zstd-3 (threads=-1) + AES-256-GCM 1 MiB chunks"),
        Spec("mlopsctl bump --patch (100 MiB)",
             [[MLOPSCTL, "bump", "model", "--artifact", "weights.f32", "--patch"]], repo,
             rss=True),
    ], runs, warmup=1)
    st.floor_blob, st.floor_row = blob, fl
    if blob.exists():
        fl.note += f"; stored {blob.stat().st_size / MiB:.1f} MiB"
    tags = git(b, repo, "tag", "-l", "model@v*", "--sort=-v:refname").split()
    if bm.ok and tags:
        st.version = tags[0].replace("@v", "@", 1)
        bm.note = f"{len(tags)} versions registered; last {tags[0]}"

    # DVC + GTO: a separate repo with a local DVC remote. Before each run the artifact's first
    # 16 bytes are rewritten (untimed) so that DVC has new content to hash, cache and push.
    dvc_art = None
    try:
        drepo = new_repo(b, b.work / "dvc-repo")
        b.run([DVC, "init", "-q"], drepo)
        b.run([DVC, "remote", "add", "-d", "local", str(b.work / "dvc-remote")], drepo)
        b.run([DVC, "config", "core.analytics", "false"], drepo)
        git(b, drepo, "add", "-A")
        git(b, drepo, "commit", "-q", "-m", "dvc init")
        dvc_art = drepo / "weights.f32"
        shutil.copyfile(weights, dvc_art)
        st.dvc_repo = drepo
    except Failed as exc:
        b.problems.append(f"{sc}: setting up the DVC repo: {exc}")

    if dvc_art is not None:
        art = dvc_art

        def mutate(i: int) -> None:
            fd = os.open(art, os.O_WRONLY)
            try:
                os.pwrite(fd, b"bench-run-%08d" % i, 0)
            finally:
                os.close(fd)

        def workflow(i: int) -> list[list[str]]:
            return [[DVC, "add", "-q", "weights.f32"],
                    [GIT, "add", "weights.f32.dvc", ".gitignore"],
                    [GIT, "commit", "-q", "-m", f"weights run {i}"],
                    [DVC, "push", "-q"],
                    [GTO, "register", "model", "--version", f"v0.0.{i + 1}"]]

        dv = b.measure(sc, "dvc add + git commit + dvc push + gto register (100 MiB)", workflow,
                       drepo, 1 if quick else 3, warmup=1, rss=True, setup=mutate)
        dv.note = f"{fmt_ratio(ratio(dv, bm))} mlopsctl bump"
    r = ratio(bm, fl)
    bm.note = (bm.note + "; " if bm.note else "") + f"{fmt_ratio(r)} the floor" \
        f" (CPU {fmt_ratio(cpu_ratio(bm, fl))})"
    b.target(sc, f"`mlopsctl bump` (100 MiB) ≤ {ARTIFACT_TARGET}× the one-pass floor",
             fmt_ratio(r), (r <= ARTIFACT_TARGET) if r is not None else False)

    if quick:
        b.target(sc, "`mlopsctl bump` peak RSS on a 1 GiB artifact ≤ 200 MB",
                 "skipped (--quick)", None)
        if bm.peak_rss_mib:
            b.target(sc, "`mlopsctl bump` peak RSS on 100 MiB (reference)",
                     f"{bm.peak_rss_mib:.0f} MiB", None)
        return
    big = weights_file(cache, 1 << 30, "weights-1GiB.f32", b)
    (repo / "weights-1g.f32").unlink(missing_ok=True)
    link_or_copy(big, repo / "weights-1g.f32")
    big_blob = b.work / "floor-blob-1g.bin"
    fb = b.measure(sc, "floor: one-pass encrypt (1 GiB)", [[PY, floor, "encrypt", big, big_blob]],
                   b.work, 1, rss=True)
    big_blob.unlink(missing_ok=True)
    Path(str(big_blob) + ".meta").unlink(missing_ok=True)
    bb = b.measure(sc, "mlopsctl bump (1 GiB)",
                   [[MLOPSCTL, "bump", "big", "--artifact", "weights-1g.f32"]], repo, 1, rss=True)
    bb.note = f"{fmt_ratio(ratio(bb, fb))} the floor (CPU {fmt_ratio(cpu_ratio(bb, fb))})"
    peak = bb.peak_rss_mib
    b.target(sc, "`mlopsctl bump` peak RSS on a 1 GiB artifact ≤ 200 MB",
             f"{peak:.0f} MiB ({peak * 1.048576:.0f} MB)" if peak else "failed",
             (peak * MiB <= 200e6) if peak else False)


def scenario_fetch(b: Bench, quick: bool, st: ArtifactState) -> None:
    sc = "4. fetch"
    runs = 2 if quick else 5
    floor = b.work / "floor.py"
    out_dir = b.work / "fetched"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / "weights.f32"

    def rm(path: Path) -> Setup:
        return lambda _: path.unlink(missing_ok=True)

    def verify(path: Path) -> After:
        def check(_: list[subprocess.CompletedProcess[bytes]]) -> None:
            if st.sha and sha256_file(path) != st.sha:
                raise Failed(f"{path} does not match the original artifact")
        return check

    specs = []
    floor_out = out_dir / "floor.f32"
    if st.floor_blob and st.floor_blob.exists():
        specs.append(Spec("floor: one-pass decrypt (100 MiB)",
                          [[PY, floor, "decrypt", st.floor_blob, floor_out]], b.work, rss=True,
                          setup=rm(floor_out), after=verify(floor_out),
                          note="read + AES-256-GCM + zstd + sha256 + write"))
    if st.bump_repo and st.version:
        specs.append(Spec(f"mlopsctl fetch {st.version} (100 MiB)",
                          [[MLOPSCTL, "fetch", st.version, "-o", out]], st.bump_repo, rss=True,
                          setup=rm(out), after=verify(out)))
    rows = b.measure_set(sc, specs, runs, warmup=1) if specs else []
    fl = next((row for row in rows if row.label.startswith("floor")), None)
    if st.bump_repo and st.version:
        fm = rows[-1]
        r = ratio(fm, fl) if fl else None
        rc = cpu_ratio(fm, fl) if fl else None
        fm.note = f"{fmt_ratio(r)} the floor (CPU {fmt_ratio(rc)}); output sha256 checked"
        b.target(sc, f"`mlopsctl fetch` (100 MiB) ≤ {ARTIFACT_TARGET}× the one-pass floor",
                 fmt_ratio(r), (r <= ARTIFACT_TARGET) if r is not None else False)
    else:
        b.target(sc, f"`mlopsctl fetch` (100 MiB) ≤ {ARTIFACT_TARGET}× the one-pass floor",
                 "not run (no version from scenario 3)", False)
        fm = None
    if st.dvc_repo:
        drepo = st.dvc_repo

        def clear(_: int) -> None:
            shutil.rmtree(drepo / ".dvc" / "cache", ignore_errors=True)
            (drepo / "weights.f32").unlink(missing_ok=True)
            out.unlink(missing_ok=True)

        dp = b.measure(sc, "dvc pull + cp (100 MiB, for reference)",
                       [[DVC, "pull", "-q"], ["cp", "weights.f32", out]], drepo,
                       1 if quick else 3, warmup=1, rss=True, setup=clear,
                       note="empty cache each run; no decryption")
        if fm is not None:
            dp.note += f"; {fmt_ratio(ratio(dp, fm))} mlopsctl fetch"


VALIDATE_TARGET = 1.3


def scenario_validate(b: Bench, quick: bool) -> None:
    """`mlopsctl validate` against a bare script doing the same scoring work (scenario 5)."""
    sc = "5. validate"
    rows_n, features = 20_000, 30
    n = 50 if quick else 200  # --latency-runs, and the bare script's N
    runs = 3 if quick else 7
    d = b.work / "validate-data"
    d.mkdir()
    b.log(f"generating a {rows_n} x {features} classification holdout and a fitted "
          "StandardScaler + LogisticRegression ...")
    try:
        gen = b.work / "validate_data.py"
        gen.write_text(VALIDATE_DATA_SCRIPT)
        b.run([PY, gen, d, str(rows_n), str(features)], b.work)
        repo = new_repo(b, b.work / "validate-repo")
        b.run([MLOPSCTL, "init"], repo)
        for name in ("train.csv", "holdout.csv", "model.pkl", "metrics.json"):
            link_or_copy(d / name, repo / name)
        b.run([MLOPSCTL, "bump", "m", "--artifact", "model.pkl", "--metrics", "metrics.json",
               "--data", "train.csv", "-m", "benchmark model"], repo)
        # The default policy asks for a complete model card (1 of 17 weight points); without
        # it compliance is 94% < the 95% staging gate and validate exits 1. Fill it in.
        card = repo / ".mlops" / "models" / "m" / "model.yaml"
        text = card.read_text()
        for key, value in (("description", "benchmark model, StandardScaler + "
                            "LogisticRegression"), ("intended_use", "benchmarking validate")):
            text, k = re.subn(rf"^{key}:.*$", f"{key}: '{value}'", text, flags=re.M)
            if not k:
                text += f"{key}: '{value}'\n"
        card.write_text(text)
        git(b, repo, "add", str(card.relative_to(repo)))
        git(b, repo, "commit", "-q", "-m", "complete the model card")
    except Failed as exc:
        b.problems.append(f"{sc}: setting up: {exc}")
        b.log(f"    FAILED to set up: {exc}")
        return
    holdout_mib = (d / "holdout.csv").stat().st_size / MiB
    bare = b.work / "bare_validate.py"
    bare.write_text(BARE_VALIDATE_SCRIPT)
    req = b.work / "worker-request.json"
    req.write_text(json.dumps({"artifact": str(repo / "model.pkl"), "format": "sklearn-pickle",
                               "holdout": str(repo / "holdout.csv"), "target": "target",
                               "latency_runs": n, "warmup": 10}))
    outputs: dict[str, bytes] = {}

    def keep(name: str) -> After:
        def hook(procs: list[subprocess.CompletedProcess[bytes]]) -> None:
            outputs[name] = procs[-1].stdout
        return hook

    validate = [MLOPSCTL, "validate", "m@0.1.0", "--data", "holdout.csv", "--target", "target",
                "--latency-runs", str(n)]
    # The worker exactly as validate starts it (same request, OMP_NUM_THREADS defaulting to 1),
    # fed from a file through sh (~1 ms): it splits validate's overhead into the part inside
    # the worker and the part in the CLI process.
    worker: list[str | Path] = ["sh", "-c", ': "${OMP_NUM_THREADS:=1}"; export OMP_NUM_THREADS; '
              'exec "$0" -m mlopsctl.worker < "$1"', PY, req]
    pp, hp, br, wk, va = b.measure_set(sc, [
        Spec("python -c pass", [[PY, "-c", "pass"]], repo, note="interpreter start-up"),
        Spec("mlopsctl --help", [[MLOPSCTL, "--help"]], repo,
             note="the CLI's start-up (interpreter + CLI imports)"),
        Spec(f"bare script (N={n})", [[PY, bare, "model.pkl", "holdout.csv", "target", str(n)]],
             repo, rss=True, after=keep("bare"),
             note="pickle.load + pd.read_csv + predict + 5 sklearn metrics + N single-row "
             "predicts after 10 warm-up + 1 batch predict"),
        Spec("python -m mlopsctl.worker (for reference)", [worker], repo, rss=True,
             after=keep("worker"), note="the scoring process alone, same request as validate"),
        Spec(f"mlopsctl validate m@0.1.0 --latency-runs {n}", [validate], repo, rss=True),
    ], runs, warmup=1)
    br.note = f"{holdout_mib:.1f} MiB CSV, {rows_n} rows x {features} features; " + br.note

    # "Plus start-up": validate is a CLI that starts a second interpreter for its worker; the
    # bare script is one process. Primary definition (the target's verdict):
    #     ratio = (validate - mlopsctl --help) / bare        i.e. validate <= 1.3 x bare + help
    # the bare script's own interpreter start-up and imports count as "bare work" (the worker
    # pays them too), and the start-up allowed on top is that of the CLI process. Also shown:
    #     validate / (bare + python -c pass)   (one extra bare interpreter start for the worker)
    #     validate / bare                      (no allowance at all)
    if va.ok and br.ok and hp.ok and pp.ok:
        primary = (va.median - hp.median) / br.median
        extra_interp = va.median / (br.median + pp.median)
        raw = va.median / br.median
        va.note = (f"(validate − --help) / bare = {primary:.2f}×; "
                   f"validate / (bare + python -c pass) = {extra_interp:.2f}×; "
                   f"validate / bare = {raw:.2f}×")
        if wk.ok:
            wk.note += (f"; worker − bare = {fmt_ms(wk.median - br.median)}, "
                        f"validate − worker = {fmt_ms(va.median - wk.median)}")
        b.target(sc, f"`mlopsctl validate` (N={n}) ≤ {VALIDATE_TARGET}× the bare work plus "
                 "start-up, as (validate − `mlopsctl --help`) / bare",
                 f"{primary:.2f}× ({fmt_ms(va.median)} − {fmt_ms(hp.median)} vs "
                 f"{fmt_ms(br.median)})", primary <= VALIDATE_TARGET)
        b.target(sc, "same, stricter reading: validate / (bare + `python -c pass`) "
                 "(for reference)", f"{extra_interp:.2f}×", None)
    else:
        b.target(sc, f"`mlopsctl validate` (N={n}) ≤ {VALIDATE_TARGET}× the bare work plus "
                 "start-up", "failed", False)

    # Same work? The report's recomputed metrics must equal the bare script's (one untimed
    # `validate --json` run, after the timed ones).
    try:
        _, _, proc, _ = b.run([*validate, "--json"], repo)
        report = json.loads(proc.stdout)
        bare_out = json.loads(outputs["bare"])
        mine = {k: v["recomputed"] for k, v in report["metrics"].items()}
        theirs = {k: bare_out[k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc")}
        name = "`mlopsctl validate --json` metrics == bare script's metrics"
        if set(mine) == set(theirs) and all(abs(mine[k] - theirs[k]) <= 1e-12 for k in mine):
            b.checks.append((name, "**equal** (" + ", ".join(f"{k} {v:.4f}"
                                                             for k, v in mine.items()) + ")"))
        else:
            b.checks.append((name, f"**DIFFERENT**: validate {mine} vs bare {theirs}"))
        lat = report["latency"]
        b.checks.append((f"single-row latency over N={n} (validate's worker vs bare script; "
                         "last run of each)",
                         f"p50 {lat['p50_ms']:.2f} vs {bare_out['p50_ms']:.2f} ms, p95 "
                         f"{lat['p95_ms']:.2f} vs {bare_out['p95_ms']:.2f} ms; report status "
                         f"{report['status']}, {report['rows']} rows"))
    except (Failed, KeyError, ValueError, TypeError) as exc:
        b.checks.append(("`mlopsctl validate --json` metrics == bare script's metrics",
                         f"not compared: {exc}"))


# ------------------------------------------------------------------------------------------------
# Reporting
# ------------------------------------------------------------------------------------------------
def tool_versions(env: dict[str, str]) -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
            line = (p.stdout or p.stderr).strip().splitlines()[0]
            return re.sub(r"^\W*(mlopsctl, version|GTO Version:|git version)\s*", "", line)
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"
    return {"mlopsctl": first_line([MLOPSCTL, "--version"]),
            "gto": first_line([GTO, "--version"]),
            "dvc": first_line([DVC, "--version"]),
            "git": first_line([GIT, "--version"]),
            "python": platform.python_version()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def load_avg() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def render(b: Bench, quick: bool, versions: dict[str, str], elapsed: float,
           load_before: str) -> str:
    lines = ["# mlopsctl benchmark results", ""]
    lines.append(f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; "
                 f"mode: {'--quick' if quick else 'full'}; suite wall time {elapsed / 60:.1f} min")
    lines.append(f"- machine: {platform.system()} {platform.release()}, {os.cpu_count()} CPUs "
                 f"({cpu_model()})")
    lines.append(f"- load average (1/5/15 min) at start {load_before}, at end {load_avg()} "
                 "(other work on the machine inflates and scatters the figures)")
    lines.append("- " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    lines.append(f"- peak RSS via {'/usr/bin/time -v' if TIME_BIN else 'getrusage wrapper'}; "
                 "every time is a whole process (start-up included), median of the runs")
    lines += ["", "## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    for text, measured, verdict, _ in b.targets:
        lines.append(f"| {text} | {measured} | {verdict} |")
    scenarios: list[str] = []
    for row in b.rows:
        if row.scenario not in scenarios:
            scenarios.append(row.scenario)
    lines += ["", "## Timings", ""]
    for sc in scenarios:
        lines += [f"### {sc}", "",
                  "| command | runs | median | min | max | CPU (median) | peak RSS | notes |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        if b.loads.get(sc):
            lines[-2:-2] = [f"Load average (1/5/15 min) as each set of runs started: "
                            f"{', '.join(b.loads[sc])}.", ""]
        for row in (r for r in b.rows if r.scenario == sc):
            if row.ok:
                rss = f"{row.peak_rss_mib:.0f} MiB" if row.peak_rss_mib else "—"
                cpu = fmt_ms(row.cpu_median) if row.cpu_median is not None else "—"
                lines.append(f"| `{row.label}` | {len(row.times)} | {fmt_ms(row.median)} | "
                             f"{fmt_ms(min(row.times))} | {fmt_ms(max(row.times))} | {cpu} | "
                             f"{rss} | {row.note} |")
            else:
                err = (row.error or "no runs").replace("|", "\\|")
                lines.append(f"| `{row.label}` | — | — | — | — | — | — | FAILED: {err[:300]} |")
        steps = [r for r in b.rows if r.scenario == sc and r.steps]
        for row in steps:
            parts = ", ".join(f"`{k}` {fmt_ms(statistics.median(v))}" for k, v in row.steps.items())
            lines += ["", f"Step medians of `{row.label}`: {parts}."]
        lines.append("")
    if b.checks:
        lines += ["## Output checks", ""]
        lines += [f"- {what}: {outcome}" for what, outcome in b.checks]
        lines.append("")
    if b.problems:
        lines += ["## Problems", ""]
        lines += [f"- {p}" for p in b.problems]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="fewer runs, GTO once, no 1 GiB case")
    ap.add_argument("--only", metavar="N", default="12345",
                    help="run only these scenarios, e.g. --only 12 (default: all)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--out", type=Path, default=HERE / "results.md", help="results file")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every run")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                    help="first wait up to SECONDS for the 1-minute load average to fall below "
                    "half the CPU count")
    args = ap.parse_args()

    for exe in (PY, MLOPSCTL, GTO, DVC):
        if not os.access(exe, os.X_OK):
            print(f"missing {exe}: install the venv first", file=sys.stderr)
            return 2
    deadline = time.monotonic() + args.wait_idle
    while args.wait_idle and os.getloadavg()[0] > (os.cpu_count() or 1) / 2:
        if time.monotonic() > deadline:
            print(f"load average still {load_avg()}; starting anyway", file=sys.stderr)
            break
        time.sleep(10)
    base = HERE / ".work"
    cache = base / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    env = make_env(work / "home")
    b = Bench(work, env, args.verbose)
    started = time.perf_counter()
    load_before = load_avg()
    b.log(f"work dir {work}")
    b.log("compiling byte code into .work/pycache (cached between runs) ...")
    site = subprocess.run([PY, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          env=env, capture_output=True, text=True).stdout.strip()
    subprocess.run([PY, "-m", "compileall", "-q", "-j", "0", site, str(ROOT / "mlopsctl")],
                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    versions = tool_versions(env)
    st = ArtifactState()
    try:
        if "1" in args.only:
            scenario_startup(b, args.quick)
        if "2" in args.only:
            scenario_registry_read(b, args.quick)
        if "3" in args.only or "4" in args.only:
            scenario_bump(b, args.quick, cache, st)
        if "4" in args.only:
            scenario_fetch(b, args.quick, st)
        if "5" in args.only:
            scenario_validate(b, args.quick)
    except KeyboardInterrupt:
        b.problems.append("interrupted")
    finally:
        text = render(b, args.quick, versions, time.perf_counter() - started, load_before)
        args.out.write_text(text + "\n")
        print(text)
        b.log(f"wrote {args.out}")
        if args.keep:
            b.log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if b.problems else 0


if __name__ == "__main__":
    sys.exit(main())
