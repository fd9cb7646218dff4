"""Concurrency and crash safety of ``bump``: real processes, real git, real flock, no mocks.

Synchronisation without sleeps:

* **Lock barrier.** The test process holds the repository lock (``.git/mlopsctl.lock``, the very
  flock ``bump`` takes before publishing) while it starts the writers, and releases it only once
  every writer has printed "waiting for another mlopsctl process..." -- i.e. once every writer has
  planned its version and sealed its blob. All of them therefore race for the same version
  number, which exercises the lost-race path deterministically. A "free" variant just starts the
  processes together.
* **Kill points.** A ``reference-transaction`` git hook (installed in the test repository, and
  active only when ``MLOPSCTL_TEST_KILL=state:refpattern`` is in the environment of the victim)
  SIGKILLs the ``mlopsctl`` process -- the parent of the git process that runs the hook -- at an
  exact moment: just before the branch moves (the transaction is then aborted), just after the
  branch moved, or just after the version tag was created. Other kills are timed or triggered by
  the staging blob appearing.
* **Hand-made tags.** The same hook, given ``MLOPSCTL_TEST_HANDTAG``, plays a writer that
  bypasses the lock and runs ``git tag -a`` right after ``bump`` moved the branch.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from conftest import cli_subprocess, git, run

from mlopsctl.errors import ConflictError
from mlopsctl.fsio import file_lock
from mlopsctl.gitops import refs
from mlopsctl.project import Project

WAITING = "waiting for another mlopsctl process"
MODEL = "m"
KILLED = -signal.SIGKILL

HOOK = r"""#!/bin/sh
# reference-transaction hook installed by the concurrency and release tests (fault injection):
# MLOPSCTL_TEST_HANDTAG plays a writer bypassing the lock; MLOPSCTL_TEST_KILL=state:refpattern
# SIGKILLs the mlopsctl process (the parent of the git running this hook) at that ref state.
state="$1"
input=$(cat)
if [ -n "$MLOPSCTL_TEST_HANDTAG" ] && [ "$state" = committed ]; then
  # A writer that bypasses mlopsctl's lock tags a commit right after the branch moved:
  # MLOPSCTL_TEST_HANDTAG_AT=old (the commit the branch left) or new (the one it moved to).
  tag=$MLOPSCTL_TEST_HANDTAG
  echo "$input" | while read -r old new ref; do
    [ "$ref" = "$MLOPSCTL_TEST_HANDTAG_ON" ] || continue
    if [ "$MLOPSCTL_TEST_HANDTAG_AT" = old ]; then at=$old; else at=$new; fi
    MLOPSCTL_TEST_HANDTAG= git tag -a "$tag" -m "by hand" "$at" 2>/dev/null || true
  done
fi
[ -n "$MLOPSCTL_TEST_KILL" ] || exit 0
want_state=${MLOPSCTL_TEST_KILL%%:*}
want_ref=${MLOPSCTL_TEST_KILL#*:}
[ "$state" = "$want_state" ] || exit 0
for ref in $(echo "$input" | cut -d' ' -f3); do
  case "$ref" in
    $want_ref)
      # $PPID is git; its parent is the mlopsctl process to kill.
      victim=$(sed -e 's/^.*) //' "/proc/$PPID/stat" | cut -d' ' -f2)
      tr '\0' ' ' < "/proc/$victim/cmdline" | grep -q mlopsctl || exit 0
      kill -KILL "$victim"
      [ "$state" = prepared ] && exit 1
      exit 0;;
  esac
done
exit 0
"""


# --- helpers -------------------------------------------------------------------------------------


class Writer:
    """``python -m mlopsctl ARGS`` running in the background; stderr is read by a thread that
    signals when the process reports it is waiting for the repository lock (or has ended)."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "mlopsctl", *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err_lines: list[str] = []
        self.out = ""
        self.waiting = threading.Event()
        self._threads = [threading.Thread(target=self._read_err, daemon=True),
                         threading.Thread(target=self._read_out, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err_lines.append(line)
            if WAITING in line:
                self.waiting.set()
        self.waiting.set()  # EOF: stop anyone waiting; they check the process is still alive

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        self.out = self.proc.stdout.read()

    @property
    def err(self) -> str:
        return "".join(self.err_lines)

    def wait_until_waiting_for_lock(self, timeout: float = 60) -> None:
        assert self.waiting.wait(timeout), f"writer never reached the lock: {self.err}"
        assert self.proc.poll() is None, \
            f"writer ended before the lock (rc {self.proc.returncode}): {self.err}"

    def finish(self, timeout: float = 120) -> int:
        rc = self.proc.wait(timeout)
        for t in self._threads:
            t.join(timeout)
        return rc

    def json(self) -> dict:
        return json.loads(self.out)


@contextmanager
def repo_lock(root: Path) -> Iterator[None]:
    """Hold the lock every ``bump`` takes before publishing."""
    with file_lock(root / ".git" / "mlopsctl.lock"):
        yield


def lock_is_free(root: Path) -> bool:
    fd = os.open(root / ".git" / "mlopsctl.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def remote_dir(root: Path) -> Path:
    base = Project.open(root).remote.local_dir
    assert base is not None
    return base


def staging_files(root: Path) -> list[Path]:
    staging = remote_dir(root) / "tmp-mlopsctl"
    return sorted(staging.iterdir()) if staging.is_dir() else []


def remote_objects(root: Path) -> set[str]:
    """md5 names of every object in the local remote."""
    files = remote_dir(root) / "files" / "md5"
    if not files.is_dir():
        return set()
    return {p.parent.name + p.name for p in files.glob("*/*") if p.is_file()}


def version_tags(root: Path) -> list[str]:
    out = git(root, "for-each-ref", "--format=%(refname:strip=2)", f"refs/tags/{MODEL}@v*")
    return out.splitlines()


def manifest_at(root: Path, commit: str, version: str) -> dict | None:
    proc = subprocess.run(
        ["git", "cat-file", "blob", f"{commit}:.mlops/models/{MODEL}/versions/{version}.yaml"],
        cwd=root, capture_output=True, text=True, check=False)
    return yaml.safe_load(proc.stdout) if proc.returncode == 0 else None


def tag_commit(root: Path, tag: str) -> str:
    return git(root, "rev-parse", f"refs/tags/{tag}^{{commit}}")


def branch_commits(root: Path) -> list[str]:
    """The branch's commits, oldest first; asserts the history is linear."""
    lines = git(root, "rev-list", "--reverse", "--parents", "HEAD").splitlines()
    for line in lines:
        assert len(line.split()) <= 2, f"merge commit on the branch: {line}"
    return [line.split()[0] for line in lines]


def assert_fsck_clean(root: Path) -> None:
    proc = subprocess.run(["git", "fsck", "--full", "--strict", "--no-progress"], cwd=root,
                          capture_output=True, text=True, check=False)
    report = [line for line in (proc.stdout + proc.stderr).splitlines()
              if not line.startswith("dangling ")]
    assert proc.returncode == 0 and not report, proc.stdout + proc.stderr


def assert_verify_ok(expect_checked: int | None = None) -> list[dict]:
    result = run("verify", "--json")
    assert result.code == 0, result.out + result.err
    doc = json.loads(result.out)
    assert doc["ok"] is True
    assert all(v["ok"] for v in doc["versions"])
    if expect_checked is not None:
        assert len([v for v in doc["versions"] if not v["skipped"]]) == expect_checked, doc
    return doc["versions"]


def assert_every_tag_backed(root: Path, foreign: tuple[str, ...] = ()) -> dict[str, dict]:
    """The crash-safety invariant: no tag ``m@vX`` (but the ``foreign`` ones made by hand)
    without its manifest in the tagged commit and its blob in the remote. Returns the manifests
    by version."""
    objects = remote_objects(root)
    manifests = {}
    for tag in version_tags(root):
        if tag in foreign:
            continue
        version = tag.split("@v", 1)[1]
        manifest = manifest_at(root, tag_commit(root, tag), version)
        assert manifest is not None, f"tag {tag} exists but its commit has no manifest"
        assert manifest["version"] == version
        assert manifest["artifact"]["stored"]["md5"] in objects, \
            f"tag {tag} exists but its blob is not in the remote"
        manifests[version] = manifest
    return manifests


def staged_deletions(root: Path) -> list[str]:
    status = git(root, "status", "--porcelain", "--untracked-files=no")
    return [line for line in status.splitlines() if line.startswith("D ") and ".mlops" in line]


def write_artifacts(directory: Path, n: int, size: int = 64 * 1024) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = directory / f"a{i}" / "a.bin"
        path.parent.mkdir()
        path.write_bytes(f"artifact {i}\n".encode() + os.urandom(size))
        paths.append(path)
    return paths


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install_hook(root: Path) -> None:
    hook = root / ".git" / "hooks" / "reference-transaction"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(HOOK)
    hook.chmod(0o755)


def start_writers(root: Path, argvs: list[list[str]], barrier: str) -> list[Writer]:
    """Start one writer per argv, all racing for the same version when ``barrier == "lock"``."""
    if barrier == "free":
        return [Writer(*argv, cwd=root) for argv in argvs]
    with repo_lock(root):
        writers = [Writer(*argv, cwd=root) for argv in argvs]
        for w in writers:
            w.wait_until_waiting_for_lock()
    return writers


# --- 1. concurrent automatic bumps ---------------------------------------------------------------

N_WRITERS = 6


@pytest.mark.parametrize("barrier", ["lock", "free"])
def test_concurrent_bumps_get_distinct_versions(registry: Path, tmp_path: Path,
                                                barrier: str) -> None:
    root = registry
    base = branch_commits(root)
    arts = write_artifacts(tmp_path / "arts", N_WRITERS)
    writers = start_writers(root, [["bump", MODEL, "--artifact", str(a), "--json"] for a in arts],
                            barrier)
    codes = [w.finish() for w in writers]
    assert codes == [0] * N_WRITERS, [w.err for w in writers]

    results = [w.json() for w in writers]
    versions = [r["manifest"]["version"] for r in results]
    assert sorted(versions) == [f"0.{i}.0" for i in range(1, N_WRITERS + 1)]
    # Each process registered *its own* artifact under the version it reports.
    for art, r in zip(arts, results, strict=True):
        assert r["manifest"]["artifact"]["sha256"] == sha256(art)
        assert r["tag"] == f"{MODEL}@v{r['manifest']['version']}"

    # Every tag exactly once, on the commit the process reported, with the right manifest.
    tags = version_tags(root)
    assert sorted(tags) == sorted(r["tag"] for r in results)
    assert len(set(tags)) == len(tags) == N_WRITERS
    for r in results:
        version = r["manifest"]["version"]
        assert tag_commit(root, r["tag"]) == r["commit"]
        committed = manifest_at(root, r["commit"], version)
        assert committed is not None
        assert committed["artifact"]["sha256"] == r["manifest"]["artifact"]["sha256"]
        assert committed["artifact"]["stored"]["md5"] == r["manifest"]["artifact"]["stored"]["md5"]
    assert_every_tag_backed(root)

    # Linear history: exactly one commit per version on top of (initial, init), in version order,
    # and each manifest's parent is the previous version.
    commits = branch_commits(root)
    assert commits[: len(base)] == base and len(base) == 2
    by_version = {r["manifest"]["version"]: r for r in results}
    ordered = [by_version[f"0.{i}.0"] for i in range(1, N_WRITERS + 1)]
    assert commits[len(base):] == [r["commit"] for r in ordered]
    for prev, r in zip([None, *ordered[:-1]], ordered, strict=True):
        assert r["manifest"]["parent_version"] == (prev["manifest"]["version"] if prev else None)

    assert_fsck_clean(root)
    assert_verify_ok(expect_checked=N_WRITERS)
    for art, r in zip(arts, results, strict=True):
        out = tmp_path / "fetched" / f"{r['manifest']['version']}.bin"
        out.parent.mkdir(exist_ok=True)
        fetched = run("fetch", f"{MODEL}@{r['manifest']['version']}", "-o", out)
        assert fetched.code == 0, fetched.err
        assert out.read_bytes() == art.read_bytes()

    # Nothing left behind: staging dir empty, one remote object per version, clean work tree.
    assert staging_files(root) == []
    assert remote_objects(root) == {r["manifest"]["artifact"]["stored"]["md5"] for r in results}
    assert git(root, "status", "--porcelain") == ""
    assert not (root / ".git" / "index.lock").exists()


# --- 2. concurrent explicit --version ------------------------------------------------------------

N_EXPLICIT = 4


@pytest.mark.parametrize("barrier", ["lock", "free"])
def test_concurrent_explicit_version_one_winner(registry: Path, tmp_path: Path,
                                                barrier: str) -> None:
    """Exactly one `bump --version 1.0.0` wins. A loser that planned before the winner published
    lost the race under the lock: exit 1 (ConflictError, "registered by another process
    meanwhile"). A loser that only read the tags after the winner's tag existed sees a duplicate
    up front: exit 2 (UsageError, "already has version"). With the lock barrier every writer has
    planned before anyone may publish, so all losers must exit 1; without it either is accepted,
    but the message must match the code. Losers leave no tag, commit, remote object, staging file
    or work-tree file behind."""
    root = registry
    base = branch_commits(root)
    before_objects = remote_objects(root)
    arts = write_artifacts(tmp_path / "arts", N_EXPLICIT, size=1 << 20)
    writers = start_writers(
        root, [["bump", MODEL, "--artifact", str(a), "--version", "1.0.0", "--json"] for a in arts],
        barrier)
    codes = [w.finish() for w in writers]

    winners = [i for i, c in enumerate(codes) if c == 0]
    assert len(winners) == 1, (codes, [w.err for w in writers])
    winner = writers[winners[0]].json()
    losers = [w for i, w in enumerate(writers) if i != winners[0]]
    for w, code in zip(losers, [c for c in codes if c != 0], strict=True):
        if barrier == "lock":
            assert code == 1, w.err
        assert code in (1, 2), w.err
        expected = ("registered by another process meanwhile" if code == 1
                    else "already has version 1.0.0")
        assert expected in w.err
        assert json.loads(w.out)["exit_code"] == code  # --json: only the error object

    assert winner["manifest"]["artifact"]["sha256"] == sha256(arts[winners[0]])
    assert version_tags(root) == [f"{MODEL}@v1.0.0"]
    assert tag_commit(root, f"{MODEL}@v1.0.0") == winner["commit"]
    assert branch_commits(root) == [*base, winner["commit"]]
    assert staging_files(root) == []
    winner_md5 = winner["manifest"]["artifact"]["stored"]["md5"]
    assert remote_objects(root) - before_objects == {winner_md5}
    assert git(root, "status", "--porcelain") == ""
    assert_every_tag_backed(root)
    assert_fsck_clean(root)
    assert_verify_ok(expect_checked=1)
    out = tmp_path / "fetched.bin"
    assert run("fetch", f"{MODEL}@1.0.0", "-o", out).code == 0
    assert out.read_bytes() == arts[winners[0]].read_bytes()

    # Afterwards the duplicate is caught up front: usage error, nothing sealed or written.
    late = cli_subprocess("bump", MODEL, "--artifact", str(arts[0]), "--version", "1.0.0",
                          cwd=root)
    assert late.returncode == 2, late.stderr
    assert "already has version 1.0.0" in late.stderr
    assert branch_commits(root) == [*base, winner["commit"]]
    assert staging_files(root) == []


# --- 3. SIGKILL at various moments ---------------------------------------------------------------

BIG = 32 * 1024 * 1024


@pytest.fixture(scope="module")
def big_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    path.write_bytes(os.urandom(BIG))
    return path


def _start_victim(root: Path, artifact: Path, env_extra: dict[str, str] | None = None) -> Writer:
    env = {**os.environ, **(env_extra or {})}
    return Writer("bump", MODEL, "--artifact", str(artifact), "--json", cwd=root, env=env)


def _kill(w: Writer) -> int:
    w.proc.send_signal(signal.SIGKILL)
    return w.finish()


def _kill_after(root: Path, artifact: Path, seconds: float) -> int:
    w = _start_victim(root, artifact)
    time.sleep(seconds)  # a timed kill: the moment is the point, not synchronisation
    return _kill(w)


def _kill_while_sealing(root: Path, artifact: Path) -> int:
    w = _start_victim(root, artifact)
    deadline = time.monotonic() + 60
    while not any(p.suffix == ".blob" and p.stat().st_size > 0 for p in staging_files(root)):
        assert w.proc.poll() is None, f"bump ended before it was seen sealing: {w.err}"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    return _kill(w)


def _kill_waiting_for_lock(root: Path, artifact: Path) -> int:
    with repo_lock(root):
        w = _start_victim(root, artifact)
        w.wait_until_waiting_for_lock()
        assert any(p.suffix == ".blob" for p in staging_files(root))
        return _kill(w)


def _kill_by_hook(spec: str) -> Callable[[Path, Path], int]:
    def kill(root: Path, artifact: Path) -> int:
        install_hook(root)
        return _start_victim(root, artifact, {"MLOPSCTL_TEST_KILL": spec}).finish()
    return kill


KILL_POINTS: dict[str, Callable[[Path, Path], int]] = {
    "after-50ms": lambda root, art: _kill_after(root, art, 0.05),
    "while-sealing": _kill_while_sealing,
    "sealed-waiting-for-lock": _kill_waiting_for_lock,
    # Under the lock, blob already in the remote; the branch update is aborted.
    "published-before-commit": _kill_by_hook("prepared:refs/heads/*"),
    # Under the lock, the branch has moved; no tag yet.
    "committed-before-tag": _kill_by_hook("committed:refs/heads/*"),
    # Under the lock, the tag exists; the work tree and index are not yet synced.
    "tagged-before-sync": _kill_by_hook(f"committed:refs/tags/{MODEL}@v*"),
}
# Where the kill can leave the index behind HEAD: the few milliseconds between moving the
# branch and updating the index. The next write repairs it (see the test below).
INDEX_BEHIND = {"committed-before-tag"}


def _setup_first_version(root: Path, tmp_path: Path) -> Path:
    small = write_artifacts(tmp_path / "small", 1)[0]
    first = run("bump", MODEL, "--artifact", small)  # in-process: setup, not under test
    assert first.code == 0, first.err
    return small


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_leaves_no_tag_without_data(registry: Path, tmp_path: Path, big_artifact: Path,
                                            point: str) -> None:
    root = registry
    small = _setup_first_version(root, tmp_path)

    assert KILL_POINTS[point](root, big_artifact) == KILLED

    # The invariant: every tag has its manifest in the tagged commit and its blob in the remote.
    manifests = assert_every_tag_backed(root)
    tagged = set(manifests)
    if point == "tagged-before-sync":
        assert tagged == {"0.1.0", "0.2.0"}
        assert manifests["0.2.0"]["artifact"]["sha256"] == sha256(big_artifact)
    else:
        assert tagged == {"0.1.0"}
    assert_verify_ok(expect_checked=len(tagged))
    assert_fsck_clean(root)
    # The kernel released the flock with the process.
    assert lock_is_free(root)
    if point not in INDEX_BEHIND:
        assert staged_deletions(root) == []
        assert git(root, "status", "--porcelain", "--untracked-files=no") == ""

    # The next bump succeeds and takes the next free version.
    nxt = cli_subprocess("bump", MODEL, "--artifact", str(small), "--json", cwd=root)
    assert nxt.returncode == 0, nxt.stderr
    version = json.loads(nxt.stdout)["manifest"]["version"]
    assert version == ("0.3.0" if point == "tagged-before-sync" else "0.2.0")
    manifests = assert_every_tag_backed(root)
    assert set(manifests) == tagged | {version}
    assert_verify_ok(expect_checked=len(tagged) + 1)
    assert_fsck_clean(root)
    out = tmp_path / "next.bin"
    assert run("fetch", f"{MODEL}@{version}", "-o", out).code == 0
    assert out.read_bytes() == small.read_bytes()


@pytest.mark.parametrize("point", ["committed-before-tag", "tagged-before-sync"])
def test_sigkill_after_commit_leaves_no_staged_deletions(registry: Path, tmp_path: Path,
                                                         big_artifact: Path, point: str) -> None:
    """Once tagged, the index is already in line; a kill right after the branch moved may leave
    staged deletions of the registry's files, which the next write repairs."""
    root = registry
    small = _setup_first_version(root, tmp_path)
    assert KILL_POINTS[point](root, big_artifact) == KILLED
    assert_every_tag_backed(root)
    if point not in INDEX_BEHIND:
        assert staged_deletions(root) == []
    nxt = cli_subprocess("bump", MODEL, "--artifact", str(small), cwd=root)
    assert nxt.returncode == 0, nxt.stderr
    assert staged_deletions(root) == []


# --- 4. a tag created behind mlopsctl's back -----------------------------------------------------

HAND_TAG = f"{MODEL}@v0.2.0"


def _bump_with_hand_tag(root: Path, when: str, on: str, *tag_flags: str
                        ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """A writer that bypasses the lock creates ``m@v0.2.0`` (``git tag -a m@v0.2.0 -m x ...``)
    either ``before`` the bump starts or ``during`` it -- right after bump moved the branch for
    0.2.0, before its own ``git tag``. ``on``: ``versioned`` tags the commit that already carries
    m@v0.1.0 (HEAD after the first bump); ``fresh`` tags a commit with no version (a new user
    commit before, bump's own new commit during). Returns the bump's result and the branch
    before it."""
    env = None
    if when == "before":
        if on == "fresh":
            git(root, "commit", "-q", "--allow-empty", "-m", "user work")
        git(root, "tag", *tag_flags, HAND_TAG, "HEAD")
    else:
        install_hook(root)
        env = {**os.environ, "MLOPSCTL_TEST_HANDTAG": HAND_TAG,
               "MLOPSCTL_TEST_HANDTAG_ON": "refs/heads/main",
               "MLOPSCTL_TEST_HANDTAG_AT": "old" if on == "versioned" else "new"}
    base = branch_commits(root)
    small = write_artifacts(root.parent / "hand", 1)[0]
    return cli_subprocess("bump", MODEL, "--artifact", str(small), "--json", cwd=root,
                          env=env), base


def _assert_bump_took_next_free_version(root: Path, result: subprocess.CompletedProcess[str],
                                        base: list[str]) -> None:
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["tag"] == f"{MODEL}@v0.3.0"
    assert sorted(version_tags(root)) == [f"{MODEL}@v0.1.0", HAND_TAG, f"{MODEL}@v0.3.0"]
    assert tag_commit(root, f"{MODEL}@v0.3.0") == doc["commit"]
    # One commit for the new version on the branch; an abandoned 0.2.0 attempt was taken off it.
    assert branch_commits(root) == [*base, doc["commit"]]
    assert manifest_at(root, doc["commit"], "0.3.0") is not None
    assert manifest_at(root, doc["commit"], "0.2.0") is None
    assert set(assert_every_tag_backed(root, foreign=(HAND_TAG,))) >= {"0.1.0", "0.3.0"}
    assert staged_deletions(root) == []
    assert staging_files(root) == []
    assert_fsck_clean(root)


@pytest.mark.parametrize(("when", "on"), [("before", "versioned"), ("before", "fresh"),
                                          ("during", "versioned"), ("during", "fresh")])
def test_hand_made_tag_is_skipped(registry: Path, tmp_path: Path, when: str, on: str) -> None:
    """("before", "versioned") is the literal `git tag -a m@v0.2.0 -m x HEAD` after v0.1.0."""
    root = registry
    _setup_first_version(root, tmp_path)
    result, base = _bump_with_hand_tag(root, when, on, "-a", "-m", "x")
    _assert_bump_took_next_free_version(root, result, base)
    versions = {v["version"]: v for v in assert_verify_ok()}
    assert set(versions) == {"0.1.0", "0.2.0", "0.3.0"}
    # The hand-made tag has no manifest of its own -- skipped, not failed -- except when it
    # landed on bump's abandoned 0.2.0 commit, whose manifest and blob are complete.
    assert versions["0.2.0"]["skipped"] is not (when == "during" and on == "fresh")


def test_lightweight_hand_made_tag_is_skipped(registry: Path, tmp_path: Path) -> None:
    root = registry
    _setup_first_version(root, tmp_path)
    result, base = _bump_with_hand_tag(root, "before", "versioned")  # `git tag m@v0.2.0 HEAD`
    _assert_bump_took_next_free_version(root, result, base)
    assert git(root, "status", "--porcelain") == ""
    assert {v["version"] for v in assert_verify_ok()} == {"0.1.0", "0.3.0"}


# --- 5. the compare-and-swap primitives ----------------------------------------------------------


def test_create_tag_refuses_existing_tag(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    refs.create_tag(repo, "x@v1.0.0", head, "first\n")
    before = git(repo, "rev-parse", "refs/tags/x@v1.0.0")
    with pytest.raises(ConflictError, match="already exists"):
        refs.create_tag(repo, "x@v1.0.0", head, "second\n")
    assert git(repo, "rev-parse", "refs/tags/x@v1.0.0") == before


def test_create_tag_race_has_one_winner(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def attempt(i: int) -> None:
        start.wait()
        try:
            refs.create_tag(repo, "x@v1.0.0", head, f"writer {i}\n")
        except ConflictError:
            outcomes.append("lost")
        else:
            outcomes.append(f"won {i}")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    won = [o for o in outcomes if o.startswith("won")]
    assert len(won) == 1 and outcomes.count("lost") == 7, outcomes
    message = git(repo, "cat-file", "tag", "refs/tags/x@v1.0.0")
    assert f"writer {won[0].split()[1]}" in message


def test_commit_files_with_stale_head_conflicts(repo: Path) -> None:
    stale = git(repo, "rev-parse", "HEAD")
    index = git(repo, "ls-files", "--stage")
    moved = refs.commit_files(repo, {"a.txt": b"a\n"}, "first", stale)
    assert git(repo, "rev-parse", "HEAD") == moved
    with pytest.raises(ConflictError, match="moved"):
        refs.commit_files(repo, {"b.txt": b"b\n"}, "second", stale)
    assert git(repo, "rev-parse", "HEAD") == moved
    assert git(repo, "ls-tree", "--name-only", "HEAD").splitlines() == ["README.md", "a.txt"]
    # No expected head means "the branch must not exist yet": a conflict too.
    with pytest.raises(ConflictError):
        refs.commit_files(repo, {"c.txt": b"c\n"}, "third", None)
    assert git(repo, "rev-parse", "HEAD") == moved
    # The user's index is never touched (commit_files works in a temporary index).
    assert git(repo, "ls-files", "--stage") == index


def test_commit_files_race_has_one_winner(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    results: list[str | None] = []
    start = threading.Barrier(6)

    def attempt(i: int) -> None:
        start.wait()
        try:
            results.append(refs.commit_files(repo, {f"f{i}.txt": b"x\n"}, f"writer {i}", head))
        except ConflictError:
            results.append(None)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    won = [r for r in results if r is not None]
    assert len(results) == 6 and len(won) == 1, results
    assert git(repo, "rev-parse", "HEAD") == won[0]
    assert git(repo, "rev-parse", "HEAD^") == head
