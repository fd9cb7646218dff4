"""Promotion under concurrency and crashes: real processes, real git, real flock, no mocks.

* Racing promotions from parallel processes on one clone (the repository lock serialises them).
* SIGKILL at each step of a promote (or rollback), then `sync` repairs the target. Exact kill
  points use a ``reference-transaction`` git hook that SIGKILLs the mlopsctl process (the parent
  of the git process running the hook) when the stage tag is about to be / has been created;
  other kills are triggered by what the victim is seen doing (its smoke-test worker running, its
  temporary slot directory appearing).
* Two clones promoting through one bare remote: the counter collision, and the way out.

The registry (two validated versions) is prepared once per module by test_promotion's builder and
copied, repository and HOME together, into each test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import chdir, git, run
from test_concurrency import install_hook
from test_promotion import (
    ARTIFACT,
    MODEL,
    Snapshot,
    copy_snapshot,
    current_slot,
    gto_show,
    live_bytes,
    make_snapshots,
    ok,
    registry_show,
    settle,
    slot_dir,
    stage_tags,
    status_rows,
    tag_data,
)

from mlopsctl.fsio import file_lock


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Snapshot]:
    """'base': 0.1.0, 0.2.0 and 0.3.0 validated for staging, nothing live. 'live': 0.1.0 live in
    staging (blue). 'staged': 0.2.0 live in staging (green), 0.1.0 warm in blue."""
    return make_snapshots(tmp_path_factory.mktemp("prepared"),
                          {"0.1.0": ("staging",), "0.2.0": ("staging",), "0.3.0": ("staging",)},
                          {"live": ("0.1.0",), "staged": ("0.2.0",)})


@pytest.fixture
def use(snapshots: dict[str, Snapshot], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Snapshot]:
    def _use(name: str) -> Snapshot:
        snap = copy_snapshot(snapshots[name], tmp_path / name)
        monkeypatch.setenv("HOME", str(snap.home))
        monkeypatch.chdir(snap.repo)
        return snap
    return _use


def start(*args: str, cwd: Path, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlopsctl", *args], cwd=cwd,
                            env={**os.environ, **(env_extra or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 180) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def holds_open(pid: int, path: Path) -> bool:
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd_dir / fd) == str(path) for fd in os.listdir(fd_dir))
    except OSError:
        return False


def leftovers(repo: Path) -> list[str]:
    """Temporary slot directories (half-written or half-swapped slots) under the deploy root."""
    root = repo / ".mlops" / "deploy"
    return sorted(p.relative_to(root).as_posix() for p in root.glob("*/*/.*")
                  if ".new-" in p.name or ".old-" in p.name)


def assert_consistent(snap: Snapshot, env: str = "staging") -> str:
    """Registry, gto, status and the live slot's bytes agree; returns the live version."""
    shown = registry_show()
    assert gto_show(snap.repo) == shown
    live = shown[MODEL]["stage"][env]
    code, rows = status_rows()
    assert code == 0, rows
    assert rows[env]["live"] == live and rows[env]["in_sync"] and rows[env]["healthy"]
    assert current_slot(snap.repo, env) == rows[env]["live_slot"]
    assert live_bytes(snap.repo, env) == snap.artifacts[live.removeprefix("v")]
    return live


# --- racing promotions ---------------------------------------------------------------------------

N_RACERS = 12


def creator_date(repo: Path, tag: str) -> str:
    return git(repo, "tag", "-l", "--format=%(creatordate:unix)", tag)


def test_parallel_promotions_are_serialised(use: Callable[[str], Snapshot]) -> None:
    snap = use("base")
    procs = [start("promote", MODEL, ("0.1.0", "0.2.0")[i % 2], "--to", "staging", "--json",
                   cwd=snap.repo) for i in range(N_RACERS)]
    results = [finish(p) for p in procs]
    for code, _, err in results:
        assert code == 0, err
    outputs = [json.loads(out) for _, out, _ in results]
    recorded = sorted(o["tag"] for o in outputs if o["tag"])
    tags = stage_tags(snap.repo)  # by counter
    assert sorted(tags) == recorded  # one tag per call that recorded an event, no more
    counters = [int(t.rsplit("#", 1)[1]) for t in tags]
    assert counters == list(range(1, len(tags) + 1))  # unique, no gaps
    for tag in tags:
        data = tag_data(snap.repo, tag)
        assert data["environment"] == "staging" and data["event"] == "promote"
    shown = registry_show()
    assert gto_show(snap.repo) == shown
    assert leftovers(snap.repo) == []
    # Each version was loaded once: both slots hold one version each, with its bytes.
    for slot in ("blue", "green"):
        held = json.loads((slot_dir(snap.repo, "staging") / slot / "slot.json").read_text())
        assert (slot_dir(snap.repo, "staging") / slot / ARTIFACT).read_bytes() == \
            snap.artifacts[held["version"]]

    last = tags[-1]
    last_version = "v" + tag_data(snap.repo, last)["version"]
    # Each stage event is dated after the previous one (promote waits out the second), so
    # the registry and gto agree with the flip the last promotion made.
    assert shown[MODEL]["stage"]["staging"] == last_version
    assert assert_consistent(snap) == last_version


def test_waiting_promote_of_a_version_made_live_meanwhile_records_nothing(
        use: Callable[[str], Snapshot]) -> None:
    """Two promotes of one version wait for the lock; the second finds it live: no event."""
    snap = use("staged")  # 0.2.0 live, 0.1.0 warm: promoting 0.1.0 is a flip
    lock = snap.repo / ".git" / "mlopsctl.lock"
    with file_lock(lock):
        procs = [start("promote", MODEL, "0.1.0", "--to", "staging", "--json", cwd=snap.repo)
                 for _ in range(2)]
        deadline = time.monotonic() + 60
        while not all(holds_open(p.pid, lock) for p in procs):  # both are waiting for the lock
            assert all(p.poll() is None for p in procs), [finish(p) for p in procs]
            assert time.monotonic() < deadline
            time.sleep(0.01)
    results = [finish(p) for p in procs]
    assert [code for code, _, _ in results] == [0, 0], results
    tags = [json.loads(out)["tag"] for _, out, _ in results]
    assert_consistent(snap)
    new = [t for t in stage_tags(snap.repo) if int(t.rsplit("#", 1)[1]) > 2]
    assert sorted(t for t in tags if t) == new
    assert tags.count(None) == 1, tags
    assert [tag_data(snap.repo, t)["previous_version"] for t in new] == ["0.2.0"]


# --- SIGKILL at each step, then sync -------------------------------------------------------------


def kill_by_hook(repo: Path, spec: str, *args: str) -> None:
    install_hook(repo)
    code, _, err = finish(start(*args, cwd=repo, env_extra={"MLOPSCTL_TEST_KILL": spec}))
    assert code == -signal.SIGKILL, (code, err)


def kill_when(repo: Path, seen: Callable[[subprocess.Popen], bool], *args: str) -> bool:
    """Start ``mlopsctl ARGS`` and SIGKILL it as soon as ``seen(proc)``; False when it finished
    before that was ever seen."""
    proc = start(*args, cwd=repo)
    deadline = time.monotonic() + 120
    while not seen(proc):
        if proc.poll() is not None:
            finish(proc)
            return False
        assert time.monotonic() < deadline
    proc.send_signal(signal.SIGKILL)
    code, _, _ = finish(proc)
    return code == -signal.SIGKILL


def smoke_worker_running(proc: subprocess.Popen) -> bool:
    time.sleep(0.005)
    return any("mlopsctl.worker" in cmdline(c) for c in children(proc.pid))


def sync_repairs(snap: Snapshot, expect_live: str) -> None:
    """After a kill: `status` may say out of sync; `sync` makes it agree, and is idempotent."""
    run("status")  # 0 or 1: either is honest here, as long as sync repairs it
    ok("sync")
    assert assert_consistent(snap) == expect_live
    assert json.loads(ok("sync", "--json")) == {"actions": []}


def test_killed_during_smoke_test(use: Callable[[str], Snapshot]) -> None:
    snap = use("live")
    tags = stage_tags(snap.repo)
    assert kill_when(snap.repo, smoke_worker_running, "promote", MODEL, "0.2.0", "--to",
                     "staging")
    assert stage_tags(snap.repo) == tags
    code, _ = status_rows()
    assert code == 0  # nothing was recorded or flipped: the target still matches
    sync_repairs(snap, "v0.1.0")
    assert leftovers(snap.repo) == []
    with file_lock(snap.repo / ".git" / "mlopsctl.lock", timeout=0):
        pass  # the kill released the repository lock


def kill_while_filling_the_idle_slot(snap: Snapshot, attempts: int = 3) -> list[str]:
    """Promote 0.3.0 into blue (the idle slot of 'staged') and SIGKILL it the moment its
    temporary slot directory appears; returns the temporary directories the kill left. The
    window is short (a copy and an fsync): when the kill lands later (after the swap, before the
    tag), `sync` repairs and another attempt is made."""
    home = slot_dir(snap.repo, "staging")
    tags = stage_tags(snap.repo)
    for _ in range(attempts):
        assert kill_when(snap.repo, lambda p: any(".blue.new-" in n for n in os.listdir(home)),
                         "promote", MODEL, "0.3.0", "--to", "staging")
        assert stage_tags(snap.repo) == tags  # killed before the stage tag
        assert live_bytes(snap.repo, "staging") == snap.artifacts["0.2.0"]  # never flipped
        left = leftovers(snap.repo)
        if left:
            return left
        ok("sync")
    return []


def test_killed_while_filling_the_idle_slot_then_sync(use: Callable[[str], Snapshot]) -> None:
    snap = use("staged")  # 0.2.0 live in green, 0.1.0 warm in blue: 0.3.0 goes into blue
    left = kill_while_filling_the_idle_slot(snap)
    running = slot_dir(snap.repo, "staging") / f".green.new-{os.getpid()}"  # a live filler's
    running.mkdir()
    actions = json.loads(ok("sync", "--json"))["actions"]
    if left:
        assert any("interrupted fill" in a for a in actions), actions
    assert leftovers(snap.repo) == [f"staging/{MODEL}/{running.name}"], f"killed: {left}"
    running.rmdir()
    assert (slot_dir(snap.repo, "staging") / "blue" / ARTIFACT).read_bytes() == \
        snap.artifacts["0.1.0"]
    sync_repairs(snap, "v0.2.0")


def test_killed_while_filling_the_idle_slot_then_promote(
        use: Callable[[str], Snapshot]) -> None:
    snap = use("staged")
    kill_while_filling_the_idle_slot(snap)
    ok("promote", MODEL, "0.3.0", "--to", "staging")  # sweeps, then fills blue again
    assert leftovers(snap.repo) == []
    assert assert_consistent(snap) == "v0.3.0"
    settle()
    ok("rollback", MODEL, "--env", "staging")
    assert assert_consistent(snap) == "v0.2.0"


def test_killed_after_loading_over_a_warm_slot_before_the_tag(
        use: Callable[[str], Snapshot]) -> None:
    """0.3.0 was loaded over the warm 0.1.0 and smoke-tested; the stage tag is never created."""
    snap = use("staged")
    tags = stage_tags(snap.repo)
    kill_by_hook(snap.repo, f"prepared:refs/tags/{MODEL}#staging#*",
                 "promote", MODEL, "0.3.0", "--to", "staging")
    assert stage_tags(snap.repo) == tags
    assert live_bytes(snap.repo, "staging") == snap.artifacts["0.2.0"]
    code, rows = status_rows()
    assert code == 1 and rows["staging"]["deployed"]["blue"]["version"] == "v0.3.0"
    sync_repairs(snap, "v0.2.0")
    assert (slot_dir(snap.repo, "staging") / "blue" / ARTIFACT).read_bytes() == \
        snap.artifacts["0.1.0"]
    assert leftovers(snap.repo) == []
    ok("rollback", MODEL, "--env", "staging")  # the warm version is really back
    assert assert_consistent(snap) == "v0.1.0"


def test_killed_after_loading_an_empty_slot_before_the_tag(
        use: Callable[[str], Snapshot]) -> None:
    snap = use("live")  # 0.1.0 live in blue; green empty
    tags = stage_tags(snap.repo)
    kill_by_hook(snap.repo, f"prepared:refs/tags/{MODEL}#staging#*",
                 "promote", MODEL, "0.2.0", "--to", "staging")
    assert stage_tags(snap.repo) == tags
    assert live_bytes(snap.repo, "staging") == snap.artifacts["0.1.0"]
    _, rows = status_rows()
    assert rows["staging"]["slots"]["green"] is None
    assert rows["staging"]["deployed"]["green"]["version"] == "v0.2.0"
    sync_repairs(snap, "v0.1.0")


def test_killed_after_the_tag_before_the_flip(use: Callable[[str], Snapshot]) -> None:
    snap = use("live")
    kill_by_hook(snap.repo, f"committed:refs/tags/{MODEL}#staging#*",
                 "promote", MODEL, "0.2.0", "--to", "staging")
    assert registry_show()[MODEL]["stage"]["staging"] == "v0.2.0"
    assert live_bytes(snap.repo, "staging") == snap.artifacts["0.1.0"]  # not flipped yet
    code, rows = status_rows()
    assert code == 1 and not rows["staging"]["in_sync"]
    human = run("status")
    assert human.code == 1 and "mlopsctl sync" in human.err
    sync_repairs(snap, "v0.2.0")
    assert leftovers(snap.repo) == []


def test_rollback_killed_after_the_tag_before_the_flip(use: Callable[[str], Snapshot]) -> None:
    snap = use("staged")
    kill_by_hook(snap.repo, f"committed:refs/tags/{MODEL}#staging#*",
                 "rollback", MODEL, "--env", "staging")
    newest = stage_tags(snap.repo)[-1]
    assert tag_data(snap.repo, newest)["rollback"] is True
    assert registry_show()[MODEL]["stage"]["staging"] == "v0.1.0"
    assert live_bytes(snap.repo, "staging") == snap.artifacts["0.2.0"]
    code, _ = status_rows()
    assert code == 1
    sync_repairs(snap, "v0.1.0")


# --- two clones, one bare remote -----------------------------------------------------------------


def test_two_clones_promote_through_a_shared_remote(use: Callable[[str], Snapshot],
                                                    tmp_path: Path) -> None:
    a = use("base")
    bare = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(a.repo, "remote", "add", "origin", str(bare))
    ok("push")
    b_repo = tmp_path / "clone-b"
    git(tmp_path, "clone", "-q", str(bare), str(b_repo))
    b = Snapshot(b_repo, a.home, a.artifacts)  # same HOME: same key and artifact remote
    with chdir(b.repo):
        ok("pull")  # the notes: B sees A's validation reports

    # Both promote a different version to staging, unaware of each other: the same counter.
    ok("promote", MODEL, "0.1.0", "--to", "staging")
    with chdir(b.repo):
        b_first = json.loads(ok("promote", MODEL, "0.2.0", "--to", "staging", "--json"))
    assert stage_tags(a.repo) == [f"{MODEL}#staging#1"] == [b_first["tag"]]

    ok("push")  # A first: lands
    with chdir(b.repo):
        rejected = run("push", "--json")
        assert rejected.code == 1, rejected.err
        report = json.loads(rejected.out)
        assert report["ok"] is False
        assert f"refs/tags/{MODEL}#staging#1" in [r["ref"] for r in report["rejected"]]
        assert "mlopsctl pull" in rejected.err

        # B: pull names the conflicting tag and leaves it alone; drop it, pull, promote again.
        conflict = run("pull")
        assert conflict.code == 1 and f"git tag -d '{MODEL}#staging#1'" in conflict.err
        git(b.repo, "tag", "-d", f"{MODEL}#staging#1")
        ok("pull")
        assert tag_data(b.repo, f"{MODEL}#staging#1")["version"] == "0.1.0"
        again = json.loads(ok("promote", MODEL, "0.2.0", "--to", "staging", "--json"))
        assert again["tag"] == f"{MODEL}#staging#2" and again["previous"] == "v0.1.0"
        ok("sync")  # B's own target had 0.2.0 where the registry now places 0.1.0
        assert assert_consistent(b) == "v0.2.0"
        ok("push")

    # A third, fresh clone sees one history, and gto reads it the same way.
    c_repo = tmp_path / "clone-c"
    git(tmp_path, "clone", "-q", str(bare), str(c_repo))
    with chdir(c_repo):
        shown = registry_show()
    assert shown[MODEL]["stage"] == {"staging": "v0.2.0"}
    assert gto_show(c_repo) == shown
    assert git(c_repo, "tag", "-l", f"{MODEL}#*").split() == \
        [f"{MODEL}#staging#1", f"{MODEL}#staging#2"]
    # A, after pulling, agrees too, and its target follows the registry after sync.
    ok("pull")
    ok("sync")
    assert assert_consistent(a) == "v0.2.0"
