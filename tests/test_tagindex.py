"""The tag index (gitops/tagindex.py): a cache of every tag under the git dir, never the truth.

Every test holds what the registry reads through the index against what it folds from one
`git for-each-ref` (``registry.load_uncached``), after the changes a repository goes through:
tags added, moved, deleted, packed; tags of tags and lightweight tags; deprecations, whose
fold needs commit dates the index reads only then. Then the ways a cache goes wrong: damaged,
from another version, racy stamps, concurrent writers, an unwritable git dir.
"""

from __future__ import annotations

import marshal
import multiprocessing
import os
import random
import subprocess
from pathlib import Path

import pytest
from conftest import git, make_repo

from mlopsctl import registry as reg
from mlopsctl import views
from mlopsctl.gitops import tagindex
from mlopsctl.gitops.tagindex import TagIndex

INDEX = Path(".git") / "mlopsctl" / "tag-index"


def snapshot(r: reg.Registry) -> tuple[object, ...]:
    """Everything a command reads from a registry."""
    models = {}
    for name in r.models:
        state = r.model(name)
        assert state is not None
        models[name] = (
            [(e.tag, e.kind, e.version, e.stage, e.counter, e.commit, e.timestamp, e.date_iso,
              e.author, e.message, e.data) for e in state.events],
            [(v.version, v.commit, v.deregistered, v.registration.tag)
             for v in state.versions.values()],
            {s: e.tag for s, e in state.stages.items()},
            state.deprecated, sorted(state.counters), sorted(state.taken), state.registered)
    return (views.summary(r, include_deprecated=True), list(r.models), r.stage_names,
            [e.tag for e in r.history], models)


def indexed(root: Path) -> tuple[reg.Registry, str]:
    index = TagIndex.open(root, root / ".git", reg.SECTIONS)
    status = index.status
    del index
    return reg.load(root), status


def agree(root: Path) -> str:
    """Assert the index and a plain read agree; return what opening the index took."""
    r, status = indexed(root)
    assert snapshot(r) == snapshot(reg.load_uncached(root))
    return status


def commit(root: Path, n: int, when: int) -> str:
    (root / "f.txt").write_text(f"{n}\n")
    git(root, "add", "f.txt")
    env = dict(os.environ, GIT_AUTHOR_DATE=f"{when} +0000", GIT_COMMITTER_DATE=f"{when} +0000")
    subprocess.run(["git", "commit", "-q", "-m", f"c{n}"], cwd=root, check=True, env=env)
    return git(root, "rev-parse", "HEAD")


def tag(root: Path, name: str, target: str, when: int, message: str = "",
        annotated: bool = True, force: bool = False) -> None:
    env = dict(os.environ, GIT_COMMITTER_DATE=f"{when} +0200")
    flags = (["-a", "-m", message or f"{name}\n\nmlopsctl:\n  event: x\n  actor: ada\n"]
             if annotated else [])
    subprocess.run(["git", "tag", *flags, *(["-f"] if force else []), name, target], cwd=root,
                   check=True, env=env, capture_output=True)


@pytest.fixture
def tags_repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "r")
    commits = [commit(root, i, 1_700_000_000 + i) for i in range(4)]
    for i, model in enumerate(("churn", "fraud", "a-b", "Big/Name")):
        tag(root, f"{model}@v0.1.0", commits[i % 4], 1_700_000_100 + i)
        tag(root, f"{model}#staging#2", commits[i % 4], 1_700_000_200 + i)
    tag(root, "churn@v0.2.0", commits[3], 1_700_000_300)
    tag(root, "not-a-registry-tag", commits[0], 1_700_000_301)
    return root


def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stamps count as settled at once (as they are a moment after a ref is written)."""
    monkeypatch.setattr(tagindex, "RACY_NS", 0)
    monkeypatch.setattr(tagindex, "COARSE_RACY_NS", 0)


def test_cold_then_hit(tags_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_racy_window(monkeypatch)
    assert agree(tags_repo) == "rebuild"
    assert (tags_repo / INDEX).is_file()
    assert agree(tags_repo) == "hit"
    git(tags_repo, "pack-refs", "--all")
    assert agree(tags_repo) == "refresh"  # every ref moved to packed-refs: nothing read
    assert agree(tags_repo) == "hit"


def test_every_kind_of_change_is_seen(tags_repo: Path) -> None:
    root = tags_repo
    agree(root)
    head = git(root, "rev-parse", "HEAD")
    first = git(root, "rev-list", "--max-parents=0", "HEAD")
    steps = [
        lambda: tag(root, "churn@v0.3.0", head, 1_700_000_400),            # a new loose tag
        lambda: tag(root, "churn#production#5", head, 1_700_000_401),      # a stage event
        lambda: tag(root, "fraud@deprecated", head, 1_700_000_402),        # needs commit dates
        lambda: tag(root, "churn@v0.3.0", first, 1_700_000_403, force=True),  # a moved tag
        lambda: git(root, "pack-refs", "--all"),                           # packed, same ids
        lambda: git(root, "tag", "-d", "churn@v0.1.0"),                    # a packed one deleted
        lambda: tag(root, "a-b@v1.0.0", head, 0, annotated=False),         # lightweight
        lambda: tag(root, "a-b@v2.0.0", "churn@v0.3.0", 1_700_000_404),   # a tag of a tag
        lambda: tag(root, "a-b#prod#9", "HEAD^{tree}", 1_700_000_405),     # a tag of a tree
        lambda: git(root, "tag", "-d", "a-b@v2.0.0"),
        lambda: tag(root, "fraud@v0.1.0!#7", head, 1_700_000_406),         # deregistered
        lambda: tag(root, "Big/Name@deprecated", first, 1_700_000_407),
        lambda: git(root, "pack-refs", "--all"),
    ]
    for step in steps:
        step()
        assert agree(root) in ("refresh", "rebuild")


def test_a_change_reads_only_what_changed(tags_repo: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root = tags_repo
    agree(root)
    read: list[str] = []
    real = tagindex.read_objects

    def counting(root_: Path, git_dir: Path, oids):  # type: ignore[no-untyped-def]
        oids = list(oids)
        read.extend(oids)
        return real(root_, git_dir, oids)

    monkeypatch.setattr(tagindex, "read_objects", counting)
    tag(root, "churn@v0.4.0", git(root, "rev-parse", "HEAD"), 1_700_000_500)
    assert agree(root) == "refresh"
    assert read == [git(root, "rev-parse", "churn@v0.4.0")]


def test_random_histories_agree(tmp_path: Path) -> None:
    """Seeded random changes (names, kinds, same-second ties, shared commits), compared after
    each one, through the index and through a plain read."""
    rng = random.Random(7)
    root = make_repo(tmp_path / "r")
    commits = [commit(root, i, 1_700_000_000 + rng.randint(-5, 5)) for i in range(5)]
    names: list[str] = []
    for _ in range(40):
        model = rng.choice(["m", "n", "m-n", "dir:m"]).replace(":", "=")
        kind = rng.random()
        if names and kind < 0.15:
            git(root, "tag", "-d", names.pop(rng.randrange(len(names))))
        elif kind < 0.2:
            git(root, "pack-refs", "--all")
        else:
            counter = rng.randint(1, 9)
            version = f"v{rng.randint(0, 2)}.{rng.randint(0, 2)}.0"
            stage = rng.choice(["staging", "prod"])
            name = rng.choice([f"{model}@{version}", f"{model}#{stage}#{counter}",
                               f"{model}#{stage}!#{counter}", f"{model}@{version}!#{counter}",
                               f"{model}@deprecated#{counter}"])
            tag(root, name, rng.choice(commits), 1_700_000_000 + rng.randint(0, 4),
                annotated=rng.random() > 0.1, force=True)
            if name not in names:
                names.append(name)
        agree(root)


def test_gto_files_with_the_index(tags_repo: Path) -> None:
    """A model declared in artifacts.yaml is folded again with HEAD's commit."""
    root = tags_repo
    (root / "artifacts.yaml").write_text("churn: {}\nnewone: {}\n")
    git(root, "add", "artifacts.yaml")
    git(root, "commit", "-q", "-m", "declare")
    (root / ".gto").write_text("stages: [staging, production]\n")
    for _ in range(2):
        a, b = reg.load(root, gto_files=True), reg.load_uncached(root, gto_files=True)
        assert snapshot(a) == snapshot(b)
        assert "newone" in a.models


@pytest.mark.parametrize("damage", ["truncate", "flip-header", "flip-section", "garbage",
                                    "empty", "other-format"])
def test_a_damaged_index_is_rebuilt(tags_repo: Path, damage: str) -> None:
    root = tags_repo
    agree(root)
    path = root / INDEX
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip-header":
        data[-60] ^= 0xFF  # the header sits just before the trailer
    elif damage == "flip-section":
        data[tagindex._PREFIX.size + 3] ^= 0xFF  # inside the first model's section
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif damage == "empty":
        data = bytearray()
    else:
        data[8] ^= 0xFF  # the format number
    path.write_bytes(bytes(data))
    r = reg.load(root)
    assert snapshot(r) == snapshot(reg.load_uncached(root))
    agree(root)


def test_an_index_from_another_fold_is_rebuilt(tags_repo: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    agree(tags_repo)
    monkeypatch.setattr(reg._Sections, "version", "another")
    assert indexed(tags_repo)[1] == "rebuild"


def test_a_racy_ref_is_read_again(tags_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A loose ref rewritten in place within one file-system tick keeps its stamp: the
    index marks such fresh stamps racy and reads those refs again next time."""
    root = tags_repo
    head, first = git(root, "rev-parse", "HEAD"), git(root, "rev-list", "--max-parents=0", "HEAD")
    tag(root, "churn#prod#8", head, 1_700_000_600)
    tag(root, "churn#prod#9", first, 1_700_000_601)
    ref = root / ".git" / "refs" / "tags" / "churn#prod#8"
    other = (root / ".git" / "refs" / "tags" / "churn#prod#9").read_text()
    with pytest.MonkeyPatch.context() as mp:  # a stamp younger than any window: racy
        mp.setattr(tagindex, "RACY_NS", 10**18)
        mp.setattr(tagindex, "COARSE_RACY_NS", 10**18)
        agree(root)
    no_racy_window(monkeypatch)
    st = os.stat(ref)
    with open(ref, "r+") as fh:  # same inode, same size, then the same mtime
        fh.write(other)
    os.utime(ref, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(ref).st_mtime_ns == st.st_mtime_ns and os.stat(ref).st_ino == st.st_ino
    assert agree(root) == "refresh"  # the racy ref was read again, and found changed
    assert agree(root) == "hit"  # its stamp settled: trusted from now on


def test_stamps_are_taken_before_the_refs_are_read(tags_repo: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A tag written while the index is being built is picked up by the next read."""
    root = tags_repo
    real = tagindex._read_packed

    def racing(git_dir: Path) -> dict[str, str]:
        tag(root, "fraud@v9.0.0", git(root, "rev-parse", "HEAD"), 1_700_000_700)
        return real(git_dir)

    monkeypatch.setattr(tagindex, "_read_packed", racing)
    indexed(root)
    monkeypatch.setattr(tagindex, "_read_packed", real)
    assert "fraud@v9.0.0" in {e.tag for e in reg.load(root).history}
    agree(root)


def _hammer(root: str, worker: int) -> None:
    os.chdir(root)
    for i in range(6):
        tag(Path(root), f"w{worker}@v0.{i}.0", "HEAD", 1_700_001_000 + i)
        reg.load(Path(root)).history  # noqa: B018 - reads (and rewrites) the index


@pytest.mark.slow
def test_concurrent_writers_leave_a_right_index(tags_repo: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(str(tags_repo), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    agree(tags_repo)
    assert {f"w{w}" for w in range(3)} <= set(reg.load(tags_repo).models)
    assert not [p for p in (tags_repo / INDEX).parent.iterdir() if p.name != "tag-index"
                and p.name.startswith(".tag-index")]  # no temp files left behind


def test_an_unwritable_git_dir_still_reads(tags_repo: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only clone (a mount, another user's repository): the index stays in memory."""
    def refused(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tagindex.tempfile, "mkstemp", refused)
    assert agree(tags_repo) == "rebuild"
    assert agree(tags_repo) == "rebuild"
    assert not (tags_repo / INDEX).exists()


class _FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, fh: object) -> None:
        self.fh = fh

    def write(self, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    def __getattr__(self, name: str) -> object:
        return getattr(self.fh, name)


def test_a_full_disk_keeps_the_index_in_memory(tags_repo: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing the index fails halfway: what was written and what was not both read back."""
    real = tagindex._Writer.add
    calls = {"n": 0}

    def filling(self, model, raw, data, digest=None):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] >= 3 and self.fh is not None and not isinstance(self.fh, _FullDisk):
            self.fh = _FullDisk(self.fh)
        return real(self, model, raw, data, digest)

    monkeypatch.setattr(tagindex._Writer, "add", filling)
    assert agree(tags_repo) == "rebuild"
    assert not (tags_repo / INDEX).exists()
    assert not list((tags_repo / INDEX.parent).glob(".tag-index.*"))


def test_the_index_lives_in_the_common_git_dir(tags_repo: Path, tmp_path: Path) -> None:
    """A linked worktree shares the tags, so it shares the index."""
    linked = tmp_path / "linked"
    git(tags_repo, "worktree", "add", "-q", str(linked))
    assert snapshot(reg.load(linked)) == snapshot(reg.load_uncached(linked))
    assert (tags_repo / INDEX).is_file()
    assert not (linked / ".git").is_dir()


def test_sections_round_trip_what_they_were_packed_from(tags_repo: Path) -> None:
    index = TagIndex.open(tags_repo, tags_repo / ".git", reg.SECTIONS)
    for model in index.summaries():
        section = index.section(model)
        assert section is not None
        records = reg.SECTIONS.records(section)
        assert reg.SECTIONS.state(model, section) == reg.fold(model, records)
        events = marshal.loads(section)[0]
        assert all(len(e) == 14 for e in events)


def test_sections_are_copied_without_copy_file_range(tags_repo: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the kernel cannot copy between files (an old kernel, another system), a refresh
    reads and writes the unchanged sections instead."""
    agree(tags_repo)

    def unsupported(*args: object) -> int:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(tagindex.os, "copy_file_range", unsupported)
    tag(tags_repo, "fraud@v3.0.0", git(tags_repo, "rev-parse", "HEAD"), 1_700_000_800)
    assert agree(tags_repo) == "refresh"
    tag(tags_repo, "churn@v3.0.0", git(tags_repo, "rev-parse", "HEAD"), 1_700_000_801)
    assert agree(tags_repo) == "refresh"


def test_a_ref_to_a_missing_object_is_never_cached(tags_repo: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A tag whose object is not in the repository (a damaged clone) is no event; an index
    built around it is used but not kept, or the tag would never be read again once the
    object arrives."""
    no_racy_window(monkeypatch)
    agree(tags_repo)
    dangling = tags_repo / ".git" / "refs" / "tags" / "churn@v7.0.0"
    dangling.write_text("1" * 40 + "\n")
    r, status = indexed(tags_repo)
    assert status == "refresh" and "churn@v7.0.0" not in {e.tag for e in r.history}
    assert indexed(tags_repo)[1] == "refresh"  # not kept: looked at again
    dangling.unlink()  # back to the refs the kept index describes
    assert agree(tags_repo) == "hit"


def test_a_fetch_of_many_tags_rebuilds_instead(tags_repo: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """When most tags are new (a first pull), streaming them all once costs less memory than
    refreshing them one model at a time."""
    monkeypatch.setattr(tagindex, "REBUILD_ABOVE", 3)
    agree(tags_repo)
    head = git(tags_repo, "rev-parse", "HEAD")
    for n in range(12):
        tag(tags_repo, f"bulk{n}@v0.1.0", head, 1_700_002_000 + n)
    assert agree(tags_repo) == "rebuild"
    tag(tags_repo, "bulk0@v0.2.0", head, 1_700_002_100)
    assert agree(tags_repo) == "refresh"


def test_a_loose_tag_beside_packed_ones(tags_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """packed-refs unchanged: only the loose refs are compared, the packed ones looked up in its
    text, and its section copied into the new index; every name is still listed."""
    no_racy_window(monkeypatch)
    git(tags_repo, "pack-refs", "--all")
    agree(tags_repo)
    head = git(tags_repo, "rev-parse", "HEAD")
    tag(tags_repo, "churn@v5.0.0", head, 1_700_003_000)  # new, loose
    tag(tags_repo, "fraud@v0.1.0", head, 1_700_003_001, force=True)  # a packed one, shadowed
    assert agree(tags_repo) == "refresh"
    index = TagIndex.open(tags_repo, tags_repo / ".git", reg.SECTIONS)
    assert index.status == "hit"
    listed = set(git(tags_repo, "tag", "-l").split())
    assert set(index.tag_names()) == listed
    git(tags_repo, "tag", "-d", "churn@v5.0.0")  # loose only: packed-refs keeps its stamp
    assert agree(tags_repo) == "refresh"
    assert set(TagIndex.open(tags_repo, tags_repo / ".git", reg.SECTIONS).tag_names()) == \
        listed - {"churn@v5.0.0"}
