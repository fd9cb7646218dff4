"""Signed events with real SSH keys: `verify --signatures` accepts only event tags signed by a key
in the pinned allowed-signers file, by a member whose roles grant the event; `should_sign`; the
pin itself."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import git, run

from mlopsctl import manifests as mf
from mlopsctl.errors import CheckFailed, UsageError
from mlopsctl.project import Project
from mlopsctl.signing import pin_allowed_signers, should_sign, verify_signatures

SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
pytestmark = pytest.mark.skipif(not Path(SSH_KEYGEN).exists(), reason="needs ssh-keygen")

SIGNERS = ".mlops/allowed_signers"
# key name -> the principal written in allowed_signers (None: a key nobody listed)
PRINCIPALS = {"ada": "ada@example.com", "dev": "Dev@Example.com", "vic": "vic@example.com",
              "eve": None}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real ed25519 key pairs (private key at the path, public key at path + '.pub')."""
    where = tmp_path_factory.mktemp("keys")
    made = {}
    for name in PRINCIPALS:
        subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", name,
                        "-f", str(where / name)], check=True, capture_output=True)
        made[name] = where / name
    return made


def pub(key: Path) -> str:
    return Path(f"{key}.pub").read_text().strip()


def edit_config(root: Path, **changes: object) -> None:
    path = root / ".mlops" / "config.yaml"
    config = mf.load(path, mf.Config)
    mf.save(path, config.model_copy(update=changes))


@pytest.fixture
def signed(registry: Path, keys: dict[str, Path]) -> Path:
    """A registry with `signing: required`, a pinned allowed-signers file (ada, dev, vic; not
    eve), members ada (admin), dev (developer), vic (viewer), and git set to sign with ada's key
    in the repository's own config (HOME is isolated)."""
    git(registry, "config", "gpg.format", "ssh")
    git(registry, "config", "user.signingkey", f"{keys['ada']}.pub")
    lines = [f"{p} {pub(keys[k])}" for k, p in PRINCIPALS.items() if p]
    (registry / SIGNERS).write_text("\n".join(lines) + "\n")
    access_path = registry / ".mlops" / "access.yaml"
    access = mf.load(access_path, mf.Access)
    access.members += [mf.Member(email="dev@example.com", roles=["developer"]),
                       mf.Member(email="vic@example.com", roles=["viewer"])]
    mf.save(access_path, access)
    pin = hashlib.sha256((registry / SIGNERS).read_bytes()).hexdigest()[:16]
    edit_config(registry, signing="required", allowed_signers=SIGNERS, allowed_signers_hash=pin)
    git(registry, "add", ".mlops")
    git(registry, "commit", "-q", "-m", "signing: allowed signers, members")
    return registry


def tag(root: Path, name: str, key: Path | None, message: str = "event",
        target: str = "HEAD", force: bool = False) -> None:
    """`git tag -s` with ``key`` (the repo's gpg.format is ssh), or `git tag -a` when None."""
    if not message.endswith("\n"):  # else git glues the signature to the message's last line
        message += "\n"
    args = ["-c", f"user.signingkey={key}.pub"] if key else []
    args += ["tag", "-s" if key else "-a", "--cleanup=verbatim", "-m", message]
    git(root, *args, *(["-f"] if force else []), name, target)


def signed_history(root: Path, keys: dict[str, Path]) -> None:
    """A history every check accepts: each event signed by someone allowed to do it."""
    tag(root, "churn@v0.1.0", keys["ada"])
    tag(root, "churn@v0.2.0", keys["dev"])  # developers may register
    tag(root, "churn#staging#1", keys["dev"])  # ... and promote to staging
    tag(root, "churn#production#2", keys["ada"])
    tag(root, "churn#staging#3", keys["dev"],
        "rollback\n\nmlopsctl:\n  event: assign\n  rollback: true\n")  # rollback:staging
    tag(root, "churn#staging!#4", keys["dev"])  # unassign: promote:staging
    tag(root, "old@v1.0.0", keys["ada"])
    tag(root, "old@deprecated", keys["ada"])


def lines_of(out: str) -> dict[str, str]:
    """`verify --signatures` output: tag -> its line."""
    return {line.split()[1]: line for line in out.splitlines() if line[:4] in ("ok  ", "FAIL")}


# --- verify --signatures ----------------------------------------------------------------------


def test_all_signed_registry_passes(signed: Path, keys: dict[str, Path]) -> None:
    signed_history(signed, keys)
    tag(signed, "not-an-event", None)  # tags outside the grammar are not checked
    git(signed, "tag", "churn@v9.9.9")  # lightweight: no event for GTO, not checked

    result = run("verify", "--signatures")
    assert result.code == 0, result
    lines = lines_of(result.out)
    assert set(lines) == {"churn@v0.1.0", "churn@v0.2.0", "churn#staging#1",
                          "churn#production#2", "churn#staging#3", "churn#staging!#4",
                          "old@v1.0.0", "old@deprecated"}
    assert all(line.startswith("ok  ") for line in lines.values())
    assert "signed by ada@example.com" in lines["churn#production#2"]
    assert "signed by Dev@Example.com" in lines["churn#staging#1"]  # as allowed_signers says
    assert "8 event tags verified" in result.err


def test_an_empty_registry_passes(signed: Path) -> None:
    result = run("verify", "--signatures")
    assert result.code == 0, result
    assert "0 event tags verified" in result.err


def test_unsigned_tag_fails_and_is_named(signed: Path, keys: dict[str, Path]) -> None:
    signed_history(signed, keys)
    tag(signed, "churn#production#5", None)

    result = run("verify", "--signatures")
    assert result.code == 1
    lines = lines_of(result.out)
    assert lines["churn#production#5"].startswith("FAIL")
    assert "unsigned" in lines["churn#production#5"]
    assert [t for t, line in lines.items() if line.startswith("FAIL")] == ["churn#production#5"]
    assert "churn#production#5" in result.err
    assert "1 of 9 event tags" in result.err


def test_tag_signed_by_a_key_outside_allowed_signers_fails(signed: Path,
                                                           keys: dict[str, Path]) -> None:
    tag(signed, "churn@v0.1.0", keys["ada"])
    tag(signed, "churn@v0.2.0", keys["eve"])  # a good signature, by nobody we know

    result = run("verify", "--signatures")
    assert result.code == 1
    line = lines_of(result.out)["churn@v0.2.0"]
    assert line.startswith("FAIL") and "not in the allowed-signers file" in line
    assert "churn@v0.2.0" in result.err and "churn@v0.1.0" not in result.err

    [check] = [c for c in verify_signatures(Project.open()) if c.tag == "churn@v0.2.0"]
    assert check.ok is False and check.signer is None


def test_signer_whose_role_lacks_the_permission_fails(signed: Path,
                                                      keys: dict[str, Path]) -> None:
    tag(signed, "churn@v0.1.0", keys["ada"])
    tag(signed, "churn#production#1", keys["vic"])  # a viewer promoting to production
    tag(signed, "churn#production#2", keys["dev"])  # a developer: staging only
    tag(signed, "churn#production#3", keys["dev"],
        "rollback\n\nmlopsctl:\n  rollback: true\n")  # rollback:production, not granted either
    tag(signed, "churn@deprecated", keys["dev"])  # deprecation: admins only

    result = run("verify", "--signatures")
    assert result.code == 1
    lines = lines_of(result.out)
    assert lines["churn@v0.1.0"].startswith("ok  ")
    viewer = lines["churn#production#1"]
    assert viewer.startswith("FAIL") and "vic@example.com" in viewer
    assert "viewer" in viewer and "promote:production" in viewer
    assert "promote:production" in lines["churn#production#2"]
    assert "rollback:production" in lines["churn#production#3"]
    assert "'deprecate'" in lines["churn@deprecated"]
    for name in ("churn#production#1", "churn#production#2", "churn#production#3",
                 "churn@deprecated"):
        assert name in result.err

    checks = {c.tag: c for c in verify_signatures(Project.open())}
    assert checks["churn#production#1"].signer == "vic@example.com"
    assert checks["churn#production#2"].signer == "Dev@Example.com"


def test_a_signer_in_allowed_signers_but_not_in_access_fails(signed: Path,
                                                            keys: dict[str, Path]) -> None:
    access_path = signed / ".mlops" / "access.yaml"
    access = mf.load(access_path, mf.Access)
    access.members = [m for m in access.members if m.email != "vic@example.com"]
    mf.save(access_path, access)
    tag(signed, "churn@v0.1.0", keys["vic"])
    result = run("verify", "--signatures")
    assert result.code == 1
    assert "not a member" in lines_of(result.out)["churn@v0.1.0"]


def test_tampered_allowed_signers_fails_before_any_tag_is_checked(signed: Path,
                                                                  keys: dict[str, Path]) -> None:
    tag(signed, "churn@v0.1.0", keys["eve"])
    pinned = Project.open().config.allowed_signers_hash
    with (signed / SIGNERS).open("a") as fh:  # eve lets herself in, without re-pinning
        fh.write(f"ada@example.com {pub(keys['eve'])}\n")
    actual = hashlib.sha256((signed / SIGNERS).read_bytes()).hexdigest()[:16]

    result = run("verify", "--signatures")
    assert result.code == 1
    assert result.out == ""  # no tag was looked at
    assert "changed without re-pinning" in result.err
    assert pinned and pinned in result.err and actual in result.err
    result = run("verify", "--signatures", "--json")
    assert result.code == 1
    assert "tags" not in json.loads(result.out)  # only the error object: no tag was looked at
    assert "changed without re-pinning" in json.loads(result.out)["error"]

    # Re-pinning is what makes the new file count (here: eve's tag is then accepted).
    edit_config(signed, allowed_signers_hash=actual)
    assert run("verify", "--signatures").code == 0


def test_json_shape(signed: Path, keys: dict[str, Path]) -> None:
    tag(signed, "churn@v0.1.0", keys["ada"])
    tag(signed, "churn#staging#1", None)
    result = run("verify", "--signatures", "--json")
    assert result.code == 1
    doc = json.loads(result.out)
    assert set(doc) == {"ok", "allowed_signers", "allowed_signers_hash", "tags"}
    assert doc["ok"] is False
    assert doc["allowed_signers"] == SIGNERS
    assert doc["allowed_signers_hash"] == Project.open().config.allowed_signers_hash
    for entry in doc["tags"]:
        assert set(entry) == {"tag", "ok", "signer", "problem"}
    by_tag = {e["tag"]: e for e in doc["tags"]}
    assert by_tag["churn@v0.1.0"] == {"tag": "churn@v0.1.0", "ok": True,
                                      "signer": "ada@example.com", "problem": None}
    assert by_tag["churn#staging#1"] == {"tag": "churn#staging#1", "ok": False,
                                         "signer": None, "problem": "unsigned"}

    git(signed, "tag", "-d", "churn#staging#1")
    doc = json.loads(run("verify", "--signatures", "--json").out)
    assert doc["ok"] is True and [e["tag"] for e in doc["tags"]] == ["churn@v0.1.0"]


def test_a_signed_event_copied_to_another_name_fails(signed: Path,
                                                     keys: dict[str, Path]) -> None:
    tag(signed, "churn#staging#1", keys["dev"])  # dev may promote to staging...
    obj = git(signed, "rev-parse", "refs/tags/churn#staging#1")
    git(signed, "update-ref", "refs/tags/churn#production#2", obj)  # ... not to production
    git(signed, "update-ref", "refs/tags/churn#staging#3", obj)  # nor replay it

    result = run("verify", "--signatures")
    assert result.code == 1
    lines = lines_of(result.out)
    assert lines["churn#staging#1"].startswith("ok  ")
    for name in ("churn#production#2", "churn#staging#3"):
        assert lines[name].startswith("FAIL") and "copied to another name" in lines[name]


def test_a_non_ssh_signature_is_refused(signed: Path) -> None:
    head = git(signed, "rev-parse", "HEAD")
    body = (f"object {head}\ntype commit\ntag churn@v0.1.0\n"
            "tagger Ada Lovelace <ada@example.com> 1700000000 +0000\n\nregister\n"
            "-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEE\n-----END PGP SIGNATURE-----\n")
    obj = subprocess.run(["git", "hash-object", "-t", "tag", "-w", "--stdin"], cwd=signed,
                         input=body, capture_output=True, text=True, check=True).stdout.strip()
    git(signed, "update-ref", "refs/tags/churn@v0.1.0", obj)
    result = run("verify", "--signatures")
    assert result.code == 1
    assert "OpenPGP" in lines_of(result.out)["churn@v0.1.0"]


def test_a_signature_glued_to_the_message_fails(signed: Path, keys: dict[str, Path]) -> None:
    # git quirk: `tag -s --cleanup=verbatim` with a message lacking its final newline appends
    # the signature to the last line, where neither git nor anything else finds it.
    git(signed, "-c", f"user.signingkey={keys['ada']}.pub", "tag", "-s", "--cleanup=verbatim",
        "-m", "no final newline", "churn@v0.1.0")
    result = run("verify", "--signatures")
    assert result.code == 1
    assert "glued" in lines_of(result.out)["churn@v0.1.0"]


def test_a_model_argument_limits_the_check(signed: Path, keys: dict[str, Path]) -> None:
    tag(signed, "churn@v0.1.0", keys["ada"])
    tag(signed, "other@v0.1.0", None)
    assert run("verify", "--signatures", "churn").code == 0
    assert run("verify", "--signatures", "other").code == 1
    result = run("verify", "--signatures", "churn@0.1.0")
    assert result.code == 2 and "verify --signatures churn" in result.err


def test_bump_signs_its_tag_when_signing_is_required(signed: Path) -> None:
    (signed / "model.bin").write_bytes(b"weights" * 1000)
    assert run("bump", "churn", "--artifact", "model.bin", "-m", "baseline").code == 0
    result = run("verify", "--signatures")
    assert result.code == 0, result
    assert "churn@v0.1.0  signed by ada@example.com" in result.out
    # The signature is not part of the event's message (GTO shows the message without it).
    shown = run("history", "churn", "--json", "--details")
    doc = json.loads(shown.out)[0]
    assert "SIGNATURE" not in doc["message"] and doc["mlopsctl"]["event"] == "register"
    assert run("verify").code == 0  # the artifact check is unchanged by all this


# --- set-up problems ----------------------------------------------------------------------------


def test_no_allowed_signers_configured_exits_1_with_a_how_to(registry: Path) -> None:
    result = run("verify", "--signatures")
    assert result.code == 1
    assert "allowed-signers" in result.err and "allowed_signers" in result.err
    assert "hint:" in result.err and ".mlops/allowed_signers" in result.err
    assert run("verify").code == 0  # without the flag: the artifact check, as before


def test_unpinned_or_missing_allowed_signers(signed: Path) -> None:
    edit_config(signed, allowed_signers_hash=None)
    result = run("verify", "--signatures")
    assert result.code == 1 and "not pinned" in result.err
    edit_config(signed, allowed_signers_hash="0" * 16, allowed_signers=".mlops/nowhere")
    result = run("verify", "--signatures")
    assert result.code == 3 and ".mlops/nowhere" in result.err


def test_pin_allowed_signers(signed: Path, tmp_path: Path) -> None:
    project = Project.open()
    pin = pin_allowed_signers(project, SIGNERS)
    assert pin == project.config.allowed_signers_hash
    assert pin == hashlib.sha256((signed / SIGNERS).read_bytes()).hexdigest()[:16]
    assert pin_allowed_signers(project, signed / SIGNERS) == pin

    outside = tmp_path / "allowed_signers"
    outside.write_bytes((signed / SIGNERS).read_bytes())
    with pytest.raises(UsageError, match="inside the repository"):
        pin_allowed_signers(project, outside)
    (signed / ".mlops" / "bad").write_text("# comment\nada@example.com\n")
    with pytest.raises(UsageError, match="bad:2"):
        pin_allowed_signers(project, ".mlops/bad")


def test_verify_signatures_service_raises_before_checking(registry: Path) -> None:
    with pytest.raises(CheckFailed, match="names none"):
        verify_signatures(Project.open())


# --- should_sign --------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "with_key", "expected"), [
    ("off", False, False), ("off", True, False),
    ("optional", False, False), ("optional", True, True),
    ("required", False, True), ("required", True, True),
])
def test_should_sign(registry: Path, keys: dict[str, Path], mode: str, with_key: bool,
                     expected: bool) -> None:
    if with_key:
        git(registry, "config", "user.signingkey", f"{keys['ada']}.pub")
    config = Project.open().config.model_copy(update={"signing": mode})
    assert should_sign(config) is expected
    assert should_sign(config, registry) is expected
