"""``refs.edit_tree``: a commit's tree built by rewriting only the directories it touches must
be byte for byte the tree git builds through an index (read-tree, update-index, write-tree)."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

from conftest import git, make_repo

from mlopsctl.gitops import refs


def through_an_index(root: Path, base: str, files: dict[str, bytes], remove: list[str]) -> str:
    env = dict(os.environ, GIT_INDEX_FILE=str(root / ".git" / "test-index"))

    def run(*args: str, data: bytes | None = None) -> str:
        return subprocess.run(["git", *args], cwd=root, env=env, input=data, check=True,
                              capture_output=True).stdout.decode().strip()

    run("read-tree", base)
    lines = []
    for path, content in files.items():
        blob = run("hash-object", "-w", "--stdin", data=content)
        lines.append(f"100644 {blob}\t{path}")
    lines += [f"0 {'0' * 40}\t{path}" for path in remove if path not in files]
    if lines:
        run("update-index", "--add", "--index-info", data=("\n".join(lines) + "\n").encode())
    tree = run("write-tree")
    os.unlink(env["GIT_INDEX_FILE"])
    return tree


def test_edit_tree_matches_an_index(tmp_path: Path) -> None:
    rng = random.Random(3)
    root = make_repo(tmp_path / "r")
    names = ["a", "a-b", "a.b", "b", "a b", "z", "ab", "a0"]
    for _ in range(30):
        base = git(root, "rev-parse", "HEAD")
        existing = git(root, "ls-tree", "-r", "--name-only", base).splitlines()
        files = {}
        for _ in range(rng.randint(0, 4)):
            depth = rng.randint(1, 4)
            path = "/".join(rng.choice(names) for _ in range(depth))
            taken = existing + list(files)
            if any(e.startswith(path + "/") or path.startswith(e + "/") for e in taken):
                continue  # a file where a directory is (or the reverse): not our case
            files[path] = os.urandom(rng.randint(0, 40))
        remove = rng.sample(existing, k=min(len(existing), rng.randint(0, 3)))
        expected = through_an_index(root, base, files, remove)
        assert refs.edit_tree(root, base, files, remove) == expected
        commit = refs.commit_files(root, files, "step", base, remove)
        assert git(root, "rev-parse", f"{commit}^{{tree}}") == expected
        git(root, "reset", "-q", "--hard", commit)


def test_edit_tree_on_an_unborn_branch(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    tree = refs.edit_tree(root, None, {".mlops/config.yaml": b"x: 1\n", "top": b""})
    assert git(root, "ls-tree", "-r", "--name-only", tree).splitlines() == [
        ".mlops/config.yaml", "top"]
