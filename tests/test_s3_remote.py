"""An S3 artifact remote, for real: moto's S3 server on loopback (one per module, one bucket per
test), reached through DVC's S3 plugin with dummy credentials from the usual AWS variables and
the endpoint recorded by `init --endpoint-url`. Nothing inside this process is mocked: every
request crosses a socket to the server.

Covers the lifecycle (init, bump, fetch, verify, push, pull, gc, remote migrate), stock
`dvc pull` of what mlopsctl stored, and the verdicts on a tampered or missing object and on a
missing plugin, refused credentials, an unreachable endpoint or a missing bucket."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import Result, git, make_repo
from conftest import bump_in as bump
from conftest import ok_in as ok
from conftest import run_in as on

DVC = Path(sys.executable).parent / "dvc"


class S3(NamedTuple):
    endpoint: str
    bucket: str
    client: Any  # a boto3 client: the test's own view of the bucket, beside mlopsctl's

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/models"

    def listing(self, prefix: str = "models/") -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def aws_env(mp: pytest.MonkeyPatch) -> None:
    """Dummy credentials, as a user's would be set; never the instance-metadata lookup (it
    would leave loopback)."""
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_MAX_ATTEMPTS"):
        mp.delenv(var, raising=False)


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    import boto3

    aws_env(monkeypatch)
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    return S3(moto_endpoint, bucket, client)


def md5_of(where: Path, version: str) -> str:
    from mlopsctl.project import Project

    manifest = Project.open(where).manifest("m", version)
    assert manifest is not None
    return manifest.artifact.stored.md5


def object_key(md5: str) -> str:
    return f"models/files/md5/{md5[:2]}/{md5[2:]}"


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.err and "Traceback" not in result.out, result.err


class Team(NamedTuple):
    shared: Path  # the bare git repository
    a: Path  # the clone that made the registry


@pytest.fixture
def team(s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Team:
    monkeypatch.chdir(tmp_path)
    shared = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(shared))
    a = make_repo(tmp_path / "a")
    git(a, "remote", "add", "origin", str(shared))
    ok(a, "init", "--remote", s3.url, "--endpoint-url", s3.endpoint)
    ok(a, "push")
    return Team(shared, a)


def clone(team: Team, name: str) -> Path:
    git(team.a.parent, "clone", "-q", str(team.shared), name)
    return team.a.parent / name


def tag_at(repo: Path, name: str, commit: str, when: int) -> None:
    env = dict(os.environ, GIT_COMMITTER_DATE=f"@{when} +0000")
    subprocess.run(["git", "tag", "-a", name, "-m", "assign", commit], cwd=repo, env=env,
                   check=True, capture_output=True)


# --- the lifecycle through S3 ---------------------------------------------------------------------


@pytest.mark.slow
def test_init_bump_fetch_verify_through_s3_and_stock_dvc_pull_reads_it(
        team: Team, s3: S3, tmp_path: Path, isolated_env: Path) -> None:
    config = git(team.a, "show", "HEAD:.dvc/config")
    assert f"url = {s3.url}" in config and f"endpointurl = {s3.endpoint}" in config
    shown = json.loads(ok(team.a, "init", "--json").out)
    assert shown["remote"] == s3.url and shown["endpoint_url"] == s3.endpoint

    big = os.urandom(33 << 20)  # past two parts: goes up and down in parallel parts
    bump(team.a, "0.1.0", big)
    bump(team.a, "0.2.0", b"small model" * 100)
    md5 = md5_of(team.a, "0.1.0")
    assert s3.listing() == sorted([object_key(md5), object_key(md5_of(team.a, "0.2.0"))])
    head = s3.client.head_object(Bucket=s3.bucket, Key=object_key(md5))
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload: 16 + 16 + 1 MiB
    # Nothing went to the default local remote or DVC's cache; no staged blob stayed behind.
    assert not (isolated_env / ".local" / "share" / "mlopsctl" / "remotes").exists()
    assert not list((team.a / ".dvc").rglob("*.blob"))

    ok(team.a, "fetch", "m@0.1.0", "-o", tmp_path / "big.bin")
    assert (tmp_path / "big.bin").read_bytes() == big
    checked = json.loads(ok(team.a, "verify", "--json").out)
    assert checked["ok"] and [v["ok"] for v in checked["versions"]] == [True, True]
    ok(team.a, "doctor")

    # Stock DVC, in a fresh clone, pulls the very objects mlopsctl stored.
    ok(team.a, "push")
    fresh = clone(team, "fresh")
    pulled = subprocess.run([str(DVC), "pull"], cwd=fresh, capture_output=True, text=True,
                            check=False)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    blob = fresh / ".mlops" / "models" / "m" / "artifacts" / "0.1.0.zst"
    assert blob.read_bytes() == s3.get(object_key(md5))


@pytest.mark.slow
def test_push_pull_and_fetch_across_clones_through_s3(team: Team, s3: S3, tmp_path: Path
                                                      ) -> None:
    bump(team.a, "0.1.0", b"one" * 1000)
    ok(team.a, "push")
    b = clone(team, "b")  # the endpoint came with .dvc/config: nothing to set up
    ok(b, "fetch", "m@0.1.0", "-o", tmp_path / "one.bin")
    assert (tmp_path / "one.bin").read_bytes() == b"one" * 1000

    bump(team.a, "0.2.0", b"two" * 1000)
    ok(team.a, "push")
    ok(b, "pull")
    git(b, "pull", "-q", "--no-rebase")
    ok(b, "fetch", "m@0.2.0", "-o", tmp_path / "two.bin")
    assert (tmp_path / "two.bin").read_bytes() == b"two" * 1000
    assert json.loads(ok(b, "verify", "--json").out)["ok"] is True


def test_push_refuses_a_version_whose_blob_is_gone_from_s3(team: Team, s3: S3) -> None:
    bump(team.a, "0.1.0", b"one")
    s3.client.delete_object(Bucket=s3.bucket, Key=object_key(md5_of(team.a, "0.1.0")))
    refused = on(team.a, "push")
    assert refused.code == 1, refused
    assert "refusing to push" in refused.err and "m@0.1.0" in refused.err
    assert "refs/tags" not in git(team.shared, "for-each-ref")  # nothing was sent
    checked = on(team.a, "check", "--remote", "--json")
    assert checked.code == 1
    doc = json.loads(checked.out)
    assert any(f["check"] == "remote" and "m@0.1.0" in f["message"] for f in doc["findings"])
    assert doc["checked"]["remote_blobs"] == 1  # asked of S3, not skipped as "checked on fetch"


# --- gc on S3 -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_gc_on_s3_keeps_stage_holders_and_slots_records_what_it_removed(team: Team, s3: S3,
                                                                      tmp_path: Path) -> None:
    versions = [f"0.{i}.0" for i in range(1, 6)]
    for version in versions:
        bump(team.a, version, f"model {version}".encode() * 50)
    now = int(time.time())
    commit = {v: git(team.a, "rev-parse", f"m@v{v}^{{commit}}") for v in versions}
    tag_at(team.a, "m#production#1", commit["0.1.0"], now + 10)  # the idle slot after #2
    tag_at(team.a, "m#production#2", commit["0.2.0"], now + 20)
    md5 = {v: md5_of(team.a, v) for v in versions}
    before = s3.listing()

    dry = json.loads(ok(team.a, "gc", "--keep-last", "1", "--dry-run", "--json").out)
    assert [i["version"] for i in dry["removed"]] == ["0.4.0", "0.3.0"]
    kept = {i["version"]: i["reasons"] for i in dry["kept"]}
    assert kept == {"0.5.0": ["latest 1"],
                    "0.2.0": ["holds production", "production green slot (live)"],
                    "0.1.0": ["production blue slot"]}
    assert s3.listing() == before  # a dry run removes nothing

    doc = json.loads(ok(team.a, "gc", "--keep-last", "1", "--json").out)
    assert [i["version"] for i in doc["removed"]] == ["0.4.0", "0.3.0"]
    assert doc["remote"] == f"mlops ({s3.url})" and doc["commit"]
    gone = {object_key(md5[v]) for v in ("0.3.0", "0.4.0")}
    records = {f"models/mlopsctl-collected/{md5[v]}" for v in ("0.3.0", "0.4.0")}
    assert set(s3.listing()) == (set(before) - gone) | records
    record = json.loads(s3.get(f"models/mlopsctl-collected/{md5['0.3.0']}"))
    assert record["model"] == "m" and record["version"] == "0.3.0"

    checked = json.loads(ok(team.a, "verify", "--json").out)
    state = {v["version"]: (v["ok"], v["skipped"]) for v in checked["versions"]}
    assert checked["ok"] and state["0.3.0"] == (True, True) and state["0.5.0"] == (True, False)
    fetched = on(team.a, "fetch", "m@0.3.0", "-o", tmp_path / "x.bin")
    assert fetched.code == 3 and "missing from remote" in fetched.err
    ok(team.a, "push")  # collected versions are no missing blobs
    again = json.loads(ok(team.a, "gc", "--keep-last", "1", "--json").out)
    assert again["removed"] == [] and len(again["already_gone"]) == 2

    # A teammate's clone knows the collected versions from the records in the bucket.
    b = clone(team, "b")
    assert json.loads(ok(b, "verify", "--json").out)["ok"] is True
    checked_b = on(b, "check")  # (the hand-made stage tags are findings of their own)
    assert "[artifacts]" not in checked_b.out and "no DVC pointer" not in checked_b.out


# --- never trust the remote -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_tampered_object_in_s3_fails_fetch_and_verify(team: Team, s3: S3, tmp_path: Path
                                                        ) -> None:
    bump(team.a, "0.1.0", b"genuine model bytes" * 100)
    bump(team.a, "0.2.0", b"other model" * 100)
    key = object_key(md5_of(team.a, "0.1.0"))
    stored = bytearray(s3.get(key))
    stored[len(stored) // 2] ^= 0x01
    s3.put(key, bytes(stored))

    fetched = on(team.a, "fetch", "m@0.1.0", "-o", tmp_path / "m.bin")
    assert fetched.code == 1, fetched
    assert "fails authentication" in fetched.err
    assert not (tmp_path / "m.bin").exists() and not list(tmp_path.glob(".m.bin.*"))
    no_traceback(fetched)
    verified = on(team.a, "verify")
    assert verified.code == 1 and "FAIL m@0.1.0" in verified.out and "ok   m@0.2.0" in verified.out

    # Another version's blob put in its place is refused too: the blob is bound to its version.
    s3.put(key, s3.get(object_key(md5_of(team.a, "0.2.0"))))
    replayed = on(team.a, "fetch", "m@0.1.0", "-o", tmp_path / "m.bin")
    assert replayed.code == 1 and "fails authentication" in replayed.err


def test_a_blob_missing_from_s3_is_lost_not_collected(team: Team, s3: S3, tmp_path: Path) -> None:
    bump(team.a, "0.1.0", b"one")
    s3.client.delete_object(Bucket=s3.bucket, Key=object_key(md5_of(team.a, "0.1.0")))
    fetched = on(team.a, "fetch", "m@0.1.0", "-o", tmp_path / "one.bin")
    assert fetched.code == 3 and "missing from remote" in fetched.err
    verified = on(team.a, "verify")
    assert verified.code == 1 and "FAIL m@0.1.0" in verified.out


# --- errors say what to do ------------------------------------------------------------------------


def test_without_the_s3_plugin_init_and_fetch_say_how_to_install_it(
        s3: S3, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok(repo, "init", "--remote", s3.url, "--endpoint-url", s3.endpoint)
    bump(repo, "0.1.0", b"one")
    with monkeypatch.context() as mp:
        for name in [m for m in sys.modules if m == "dvc_s3" or m.startswith("dvc_s3.")]:
            mp.delitem(sys.modules, name)
        mp.setitem(sys.modules, "dvc_s3", None)  # as if not installed: importing it fails
        fetched = on(repo, "fetch", "m@0.1.0", "-o", "out.bin")
        assert fetched.code == 3, fetched
        assert "pip install 'mlopsctl[s3]'" in fetched.err
        no_traceback(fetched)
        other = make_repo(repo.parent / "other")
        head = git(other, "rev-parse", "HEAD")
        refused = on(other, "init", "--remote", s3.url, "--endpoint-url", s3.endpoint)
        assert refused.code == 3 and "pip install 'mlopsctl[s3]'" in refused.err
        assert git(other, "rev-parse", "HEAD") == head and not (other / ".mlops").exists()


@pytest.mark.slow
def test_refused_credentials_exit_3_with_a_hint(team: Team, s3: S3, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.settings

    bump(team.a, "0.1.0", b"one")
    bump(team.a, "0.2.0", b"two")  # so that gc --keep-last 1 has a blob to remove
    # The server now checks every request's key against its IAM users: "testing" is no user.
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    for args in (("fetch", "m@0.1.0", "-o", str(tmp_path / "one.bin")), ("verify",),
                 ("gc", "--keep-last", "1")):
        result = on(team.a, *args)
        assert result.code == 3, (args, result)
        assert "refused access" in result.err and "AWS_ACCESS_KEY_ID" in result.err, result.err
        no_traceback(result)
    (team.a / "model.bin").write_bytes(b"three")
    bumped = on(team.a, "bump", "m", "--artifact", "model.bin")
    assert bumped.code == 3 and "refused access" in bumped.err
    assert "m@v0.3.0" not in git(team.a, "tag")


@pytest.mark.slow
def test_an_unreachable_endpoint_exits_3_with_a_hint(team: Team, s3: S3, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bump(team.a, "0.1.0", b"one")
    # Nothing listens there. One attempt per request: botocore's retries only add waiting.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    nowhere = f"http://127.0.0.1:{_free_port()}"
    subprocess.run([str(DVC), "remote", "modify", "--local", "mlops", "endpointurl", nowhere],
                   cwd=team.a, check=True, capture_output=True)
    fetched = on(team.a, "fetch", "m@0.1.0", "-o", tmp_path / "one.bin")
    assert fetched.code == 3, fetched
    assert f"cannot reach the artifact remote {nowhere}" in fetched.err
    assert "endpointurl" in fetched.err  # the hint names the setting to fix
    no_traceback(fetched)
    (team.a / "model.bin").write_bytes(b"two")
    bumped = on(team.a, "bump", "m", "--artifact", "model.bin")
    assert bumped.code == 3 and "cannot reach" in bumped.err
    assert "m@v0.2.0" not in git(team.a, "tag")
    doctor = on(team.a, "doctor")
    assert doctor.code != 0 and "cannot reach" in doctor.out + doctor.err


@pytest.mark.slow
def test_a_missing_bucket_exits_3_and_init_writes_nothing(team: Team, s3: S3, tmp_path: Path,
                                                          isolated_env: Path) -> None:
    bump(team.a, "0.1.0", b"one")
    bump(team.a, "0.2.0", b"two")  # so that gc --keep-last 1 has a blob to look for
    for key in s3.listing(""):
        s3.client.delete_object(Bucket=s3.bucket, Key=key)
    s3.client.delete_bucket(Bucket=s3.bucket)
    for args in (("fetch", "m@0.1.0", "-o", str(tmp_path / "one.bin")), ("verify",),
                 ("push",), ("gc", "--keep-last", "1")):
        result = on(team.a, *args)
        assert result.code == 3, (args, result)
        assert f"the bucket '{s3.bucket}'" in result.err and "does not exist" in result.err
        no_traceback(result)

    other = make_repo(tmp_path / "other")
    head = git(other, "rev-parse", "HEAD")
    keys = sorted((isolated_env / ".config" / "mlopsctl" / "keys").glob("*.key"))
    refused = on(other, "init", "--remote", "s3://no-such-bucket/models",
                 "--endpoint-url", s3.endpoint)
    assert refused.code == 3 and "'no-such-bucket'" in refused.err
    assert git(other, "rev-parse", "HEAD") == head and not (other / ".dvc").exists()
    assert sorted((isolated_env / ".config" / "mlopsctl" / "keys").glob("*.key")) == keys


def test_pointing_the_team_at_another_endpoint_needs_force(team: Team, s3: S3, tmp_path: Path
                                                           ) -> None:
    """The same bucket name at another endpoint may be another store: like a new URL, it would
    leave the versions' blobs behind, so it needs --force (here: the same server, by name)."""
    bump(team.a, "0.1.0", b"one")
    head = git(team.a, "rev-parse", "HEAD")
    elsewhere = s3.endpoint.replace("127.0.0.1", "localhost")
    refused = on(team.a, "init", "--remote", s3.url, "--endpoint-url", elsewhere)
    assert refused.code == 2 and "--force" in refused.err
    assert git(team.a, "rev-parse", "HEAD") == head
    ok(team.a, "init", "--remote", s3.url, "--endpoint-url", elsewhere, "--force")
    assert f"endpointurl = {elsewhere}" in git(team.a, "show", "HEAD:.dvc/config")
    ok(team.a, "fetch", "m@0.1.0", "-o", tmp_path / "one.bin")
    assert (tmp_path / "one.bin").read_bytes() == b"one"


def test_endpoint_url_without_an_s3_remote_is_a_usage_error(repo: Path) -> None:
    result = on(repo, "init", "--endpoint-url", "http://127.0.0.1:9")
    assert result.code == 2 and "--endpoint-url goes with --remote s3://" in result.err


# --- moving a team from the local default to S3 ---------------------------------------------------


@pytest.mark.slow
def test_remote_migrate_from_the_local_default_to_s3(s3: S3, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from mlopsctl.project import Project

    monkeypatch.chdir(tmp_path)
    shared = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(shared))
    a = make_repo(tmp_path / "a")
    git(a, "remote", "add", "origin", str(shared))
    ok(a, "init")
    for i in range(1, 4):
        bump(a, f"0.{i}.0", f"model {i}".encode() * 100)
    ok(a, "gc", "--keep-last", "2")  # 0.1.0 collected: its record must come along
    old = Project.open(a).remote.local_dir
    assert old is not None
    objects = {str(p.relative_to(old)): p.read_bytes()
               for p in (old / "files").rglob("*") if p.is_file()}

    missing_bucket = on(a, "remote", "migrate", f"s3://no-such-bucket-{s3.bucket}/m",
                        "--endpoint-url", s3.endpoint)
    assert missing_bucket.code == 3 and "does not exist" in missing_bucket.err
    assert str(old) in (a / ".dvc" / "config").read_text() or "~/" in \
        (a / ".dvc" / "config").read_text()  # not switched

    doc = json.loads(ok(a, "remote", "migrate", s3.url, "--endpoint-url", s3.endpoint,
                        "--json").out)
    assert doc["copied"] == 2 and doc["collected"] == 1 and doc["commit"]
    assert {k: s3.get(f"models/{k}") for k in objects} == objects  # byte for byte
    assert [k for k in s3.listing() if "/mlopsctl-collected/" in k] == \
        [f"models/mlopsctl-collected/{md5_of(a, '0.1.0')}"]
    config = git(a, "show", "HEAD:.dvc/config")
    assert f"url = {s3.url}" in config and f"endpointurl = {s3.endpoint}" in config
    assert git(a, "status", "--porcelain", "--", ".dvc") == ""

    shutil.rmtree(old)  # the old store can go: everything reads from S3 now
    checked = json.loads(ok(a, "verify", "--json").out)
    assert checked["ok"] and [v["skipped"] for v in checked["versions"]] == [True, False, False]
    ok(a, "fetch", "m@0.3.0", "-o", tmp_path / "three.bin")
    assert (tmp_path / "three.bin").read_bytes() == b"model 3" * 100
    ok(a, "push")
    same = on(a, "remote", "migrate", s3.url)
    assert same.code == 2 and "is the registry's remote already" in same.err

    # And back again, S3 to a directory: the same code path, the other way round.
    back = json.loads(ok(a, "remote", "migrate", str(tmp_path / "back"), "--json").out)
    assert back["copied"] == 2 and back["collected"] == 1
    assert (tmp_path / "back" / "mlopsctl-collected" / md5_of(a, "0.1.0")).is_file()
    assert json.loads(ok(a, "verify", "--json").out)["ok"] is True


# --- any remote DVC reaches: a local directory through DVC's filesystem -------------------------


def test_the_dvc_filesystem_path_serves_gc_and_verify_for_a_local_remote(
        registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlopsctl.project import Project

    monkeypatch.setenv("MLOPSCTL_TRANSPORT", "dvc")
    for i in range(1, 4):
        bump(registry, f"0.{i}.0", f"model {i}".encode() * 100)
    base = Project.open(registry).remote.local_dir
    assert base is not None
    doc = json.loads(ok(registry, "gc", "--keep-last", "2", "--json").out)
    assert [i["version"] for i in doc["removed"]] == ["0.1.0"]
    md5 = md5_of(registry, "0.1.0")
    assert (base / "mlopsctl-collected" / md5).is_file()
    assert not (base / "files" / "md5" / md5[:2] / md5[2:]).exists()
    assert not (base / "tmp-mlopsctl").exists() or not list((base / "tmp-mlopsctl").iterdir())
    assert json.loads(ok(registry, "verify", "--json").out)["ok"] is True
    ok(registry, "fetch", "m@0.3.0", "-o", tmp_path / "three.bin")
    assert (tmp_path / "three.bin").read_bytes() == b"model 3" * 100


# --- the parallel reader ----------------------------------------------------------------------


def test_the_part_reader_keeps_order_bounds_parts_in_flight_and_surfaces_errors() -> None:
    """Ranged reads run in parallel (several at once, never more than the workers), each handed
    over in pieces; the bytes come out in order whatever order the pieces arrive in, and read(n)
    returns n bytes until the end (the decrypting reader relies on that)."""
    import random
    import threading

    from mlopsctl.errors import EnvironmentProblem
    from mlopsctl.store.cloud import PartReader

    data = os.urandom(1_000_003)
    lock = threading.Lock()
    running, peak = 0, 0

    def fetch(start: int, end: int) -> Iterator[bytes]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            for at in range(start, end, 3_000):  # a range arrives in pieces, at its own pace
                time.sleep(random.uniform(0, 0.002))
                yield data[at:min(at + 3_000, end)]
        finally:
            with lock:
                running -= 1

    with PartReader(fetch, len(data), 40_000, 4) as reader:
        out = bytearray()
        sizes = [44, 65_552, 1, 300_000]
        while chunk := reader.read(sizes[len(out) % len(sizes)]):
            assert len(chunk) == sizes[len(out) % len(sizes)] or len(out) + len(chunk) == len(data)
            out += chunk
    assert bytes(out) == data
    assert 1 < peak <= 4

    def broken(start: int, end: int) -> Iterator[bytes]:
        if start >= 30_000:
            raise EnvironmentProblem("the store went away")
        yield data[start:end]

    with PartReader(broken, len(data), 10_000, 2) as reader:
        assert reader.read(30_000) == data[:30_000]
        with pytest.raises(EnvironmentProblem, match="went away"):
            reader.read(10)

    # Closing early (a failed authentication stops reading) ends the workers and their streams.
    with PartReader(fetch, len(data), 40_000, 4) as reader:
        reader.read(50_000)
    assert running == 0
