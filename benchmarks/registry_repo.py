"""Build a registry as mlopsctl itself would have written it, at any size, in one `git
fast-import` stream on top of a real `mlopsctl init` (the CLI would take hours at 100,000 tags).

MODELS x VERSIONS versions: each a commit adding its version manifest and DVC pointer (the model
card with the first), and an annotated registration tag `m{i}@v0.{j}.0` carrying the `mlopsctl:`
block; then one `m{i}#STAGE#N` stage tag per model recorded as a promotion with a passing
validation. Model names are zero-padded (`m0007`) so that 1,000 of them sort as gto sorts them.
Refs are packed afterwards, as `git gc` leaves a registry that has lived a while.

Used by `check.py` and `scale.py`; importable from the repository root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_BIN = ROOT / ".venv" / "bin"
if not VENV_BIN.is_dir():
    VENV_BIN = Path(sys.executable).parent
MLOPSCTL = str(VENV_BIN / "mlopsctl")
PYTHON = str(VENV_BIN / "python")
GIT = shutil.which("git") or "git"
WHO = "Bench Mark <bench@example.com>"
SHA_MARK, MD5_MARK = "fedcba9876543210" * 4, "0123456789abcdef" * 2  # filled in per version


def make_env(home: Path, pycache: Path) -> dict[str, str]:
    """An environment with its own HOME, a fixed git identity and warm byte code outside the
    source tree (see README.md, "Byte code")."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "MLOPSCTL_", "DVC_", "GTO_", "XDG_", "GITHUB_"))
           and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "VIRTUAL_ENV")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"), DVC_NO_ANALYTICS="1",
               GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="Bench Mark",
               GIT_AUTHOR_EMAIL="bench@example.com", GIT_COMMITTER_NAME="Bench Mark",
               GIT_COMMITTER_EMAIL="bench@example.com", LC_ALL="C.UTF-8",
               PYTHONPYCACHEPREFIX=str(pycache))
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text("[user]\n\tname = Bench Mark\n\temail = bench@example.com\n"
                                     "[gc]\n\tauto = 0\n")
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "mlopsctl")], env=env,
                   capture_output=True, check=False)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str], input: bytes | None = None,
        ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, input=input, capture_output=True, check=False)
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                         f"{proc.stdout.decode()}{proc.stderr.decode()[-3000:]}")
    return proc


def model_name(i: int, models: int) -> str:
    return f"m{i:0{len(str(models - 1))}d}"


def build(repo: Path, env: dict[str, str], models: int, versions: int,
          stage: str = "staging", pack: bool = True) -> None:
    """The registry described above, in ``repo`` (created)."""
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
    # One manifest rendered by the real schema, then filled in per version: rendering 100,000
    # of them through pydantic would take longer than the rest of the build.
    template = mf.dump(mf.VersionManifest(
        model="MODEL", version="VERSION", parent_version="PARENT",
        created_at="2027-01-15T08:00:00Z", created_by=WHO, message="retrained",
        artifact=mf.ArtifactInfo(path="model.pkl", format="sklearn-pickle", sha256=SHA_MARK,
                                 size=20_000, stored=mf.Stored(
                                     codec="zstd", level=3, cipher="aes-256-gcm",
                                     key_id=key_id, size=9_000, md5=MD5_MARK)),
        metrics={"accuracy": 0.9, "f1": 0.88}, policy_hash=policy_hash,
        lineage=mf.Lineage(code_commit="0" * 40, params={"C": 1.0}))).decode()
    t = 1_800_000_000
    out: list[bytes] = []

    def data(payload: str | bytes) -> None:
        raw = payload.encode() if isinstance(payload, str) else payload
        out.append(b"data %d\n" % len(raw) + raw + b"\n")

    mark, commit_of = 0, {}
    for j in range(1, versions + 1):
        for i in range(models):
            mark, t = mark + 1, t + 1
            model, version = model_name(i, models), f"0.{j}.0"
            sha = hashlib.sha256(f"{model} {version}".encode()).hexdigest()
            md5 = hashlib.md5(f"{model} {version} blob".encode()).hexdigest()
            manifest = (template.replace("MODEL", model).replace("VERSION", version)
                        .replace(SHA_MARK, sha).replace(MD5_MARK, md5))
            parent = f"0.{j - 1}.0" if j > 1 else None
            manifest = (manifest.replace("PARENT", parent) if parent else
                        "".join(line + "\n" for line in manifest.splitlines()
                                if "PARENT" not in line))
            base = f".mlops/models/{model}"
            out.append(b"commit refs/heads/main\nmark :%d\n" % mark)
            out.append(f"author {WHO} {t} +0000\ncommitter {WHO} {t} +0000\n".encode())
            data(f"mlopsctl: register {model} {version}\n")
            out.append(b"from refs/heads/main^0\n" if mark == 1 else b"from :%d\n" % (mark - 1))
            files = [(f"{base}/versions/{version}.yaml", manifest.encode()),
                     (f"{base}/artifacts/{version}.zst.dvc",
                      pointer_text(f"{version}.zst", md5, 9_000 + i))]
            if j == 1:
                files.append((f"{base}/model.yaml", mf.dump(mf.ModelCard(
                    name=model, owner="bench@example.com", description="a benchmark model"))))
            for path, content in files:
                out.append(f"M 644 inline {path}\n".encode())
                data(content)
            commit_of[(i, j)] = mark
            out.append(f"tag {model}@v{version}\nfrom :{mark}\ntagger {WHO} {t} +0000\n".encode())
            data(f"Register {model} v{version}\n\nmlopsctl:\n  schema_version: 1\n"
                 f"  event: register\n  actor: {WHO}\n  model: {model}\n  version: {version}\n"
                 f"  artifact_sha256: {sha}\n  policy_hash: {policy_hash}\n")
    for i in range(models):
        t += 1
        j = 1 + i % versions
        model = model_name(i, models)
        out.append(f"tag {model}#{stage}#{versions + 1}\nfrom :{commit_of[(i, j)]}\n"
                   f"tagger {WHO} {t} +0000\n".encode())
        data(f"Promote {model} v0.{j}.0 to {stage}\n\nmlopsctl:\n  schema_version: 1\n"
             f"  event: promote\n  actor: {WHO}\n  environment: {stage}\n  version: 0.{j}.0\n"
             f"  validation:\n    passed: true\n    compliance: 1.0\n"
             f"  policy_hash: {policy_hash}\n")
    stream = b"".join(out) + b"done\n"
    out.clear()  # the stream holds it all now
    run([GIT, "fast-import", "--quiet", "--done"], repo, env, input=stream)
    run([GIT, "reset", "-q", "--hard", "main"], repo, env)
    if pack:
        run([GIT, "pack-refs", "--all"], repo, env)
