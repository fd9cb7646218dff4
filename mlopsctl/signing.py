"""Signed events: whether to sign the tags we create, and checking the signatures of every event
tag against a pinned allowed-signers file and the roles in ``.mlops/access.yaml``.

Verification is git's: ``git -c gpg.ssh.allowedSignersFile=F verify-tag --raw <tag object>``, and
the verdict is its exit code alone. (A key that is missing from F still prints a "Good ...
signature" line, followed by "No principal matched", and exits 1: text is never the verdict.)
The output is read only to learn *who* signed (the principal F maps the key to, an email), and
that signer's roles must then grant the event:

- registration ``m@vX``: ``bump``;  deregistration ``m@vX!#N``: ``deregister``;
- assignment ``m#env#N``: ``promote:env``, or ``rollback:env`` when the tag's ``mlopsctl:``
  block says ``rollback: true``; unassignment ``m#env!#N``: ``unassign:env``;
- deprecation ``m@deprecated``: ``deprecate``.

The allowed-signers file is pinned like the policy: ``allowed_signers_hash`` in config.yaml is
sha256(file)[:16], checked before any tag is, and git reads the very bytes that were hashed.
Only SSH signatures are accepted: an OpenPGP or X.509 signature would be judged by the
verifier's own keyring, not by the file in the repository.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlopsctl import manifests as mf
from mlopsctl.errors import CheckFailed, EnvironmentProblem, UsageError
from mlopsctl.gitops import tags as T
from mlopsctl.gitops.git import GitFailed, git, git_text

if TYPE_CHECKING:
    from mlopsctl.project import Project

CONFIG_FILE = ".mlops/config.yaml"
DEFAULT_SIGNERS_FILE = ".mlops/allowed_signers"
MAX_WORKERS = 8

_SSH_ARMOR = "-----BEGIN SSH SIGNATURE-----"
_OTHER_ARMOR = {
    "-----BEGIN PGP SIGNATURE-----": "an OpenPGP",
    "-----BEGIN PGP MESSAGE-----": "an OpenPGP",
    "-----BEGIN SIGNED MESSAGE-----": "an X.509",
}
# ssh-keygen's line on a signature it could verify *and* map to a principal.
_GOOD_FOR = re.compile(r'^Good "[^"]*" signature for (?P<principal>.+?) with \S+ key (?P<fp>\S+)',
                       re.MULTILINE)
_FINGERPRINT = re.compile(r"\bkey (SHA256:[A-Za-z0-9+/=]+)")
_KEY_TYPE = re.compile(r"^(ssh-|ecdsa-|sk-ssh-|sk-ecdsa-)\S+$")

_EVENT_KINDS = (T.REGISTER, T.DEREGISTER, T.ASSIGN, T.UNASSIGN, T.DEPRECATE)
_FIELDS = ("%(refname)", "%(objecttype)", "%(objectname)", "%(*objecttype)", "%(tag)",
           "%(contents:body)", "%(contents:signature)", "%(contents)")
_FORMAT = "%00".join(_FIELDS) + "%00"


@dataclass(frozen=True)
class SignatureCheck:
    tag: str
    ok: bool
    signer: str | None = None  # the principal (email) the allowed-signers file maps the key to
    problem: str = ""


# --- signing what we write ----------------------------------------------------------------------


def signing_key(root: Path | None = None) -> str | None:
    """git's ``user.signingkey`` as seen from ``root`` (cwd by default), or None when unset."""
    try:
        value = git_text(root, "config", "--get", "user.signingkey")
    except GitFailed:
        return None
    return value or None


def should_sign(config: mf.Config, root: Path | None = None) -> bool:
    """Whether tags we create should be signed (``git tag -s``): always when config says
    ``signing: required``; with ``optional``, when git has a ``user.signingkey``; never with
    ``off``."""
    if config.signing == "required":
        return True
    if config.signing == "off":
        return False
    return signing_key(root) is not None


# --- the allowed-signers pin --------------------------------------------------------------------


def signers_hash(content: bytes) -> str:
    """The pin: sha256 of the file's bytes, first 16 hex digits."""
    return hashlib.sha256(content).hexdigest()[:16]


def _inside(project: Project, path: str | os.PathLike[str]) -> Path:
    """``path`` (absolute, or relative to the repository root) resolved; it must lie inside the
    repository, since CI can only read what is committed."""
    root = project.root.resolve()
    full = (root / path).resolve()
    if full != root and root not in full.parents:
        raise UsageError(f"the allowed-signers file must be inside the repository: {path}",
                         hint=f"put it at {DEFAULT_SIGNERS_FILE}")
    return full


def _setup_hint() -> str:
    return (f"write {DEFAULT_SIGNERS_FILE} with one line per signer, `EMAIL SSH-PUBLIC-KEY` "
            f"(e.g. echo \"you@example.com $(cat ~/.ssh/id_ed25519.pub)\" >> "
            f"{DEFAULT_SIGNERS_FILE}); then set `allowed_signers: {DEFAULT_SIGNERS_FILE}` and "
            f"`allowed_signers_hash: <first 16 hex digits of sha256sum {DEFAULT_SIGNERS_FILE}>` "
            f"in {CONFIG_FILE}, and commit both")


def pin_allowed_signers(project: Project, path: str | os.PathLike[str]) -> str:
    """Check that ``path`` (inside the repository) looks like an allowed-signers file and return
    its pin, the value for ``allowed_signers_hash``. Writes nothing."""
    full = _inside(project, path)
    try:
        content = full.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist", hint=_setup_hint()) from None
    for number, line in enumerate(content.decode("utf-8", errors="replace").splitlines(), 1):
        text = line.strip()
        if text and not text.startswith("#") and not _looks_like_signer(text):
            raise UsageError(f"{path}:{number}: not an allowed-signers line: {text[:60]}",
                             hint="each line is `EMAIL [OPTIONS] KEYTYPE BASE64-KEY [COMMENT]`")
    return signers_hash(content)


def _looks_like_signer(line: str) -> bool:
    words = line.split()
    return any(_KEY_TYPE.match(w) and i + 1 < len(words) and i > 0
               for i, w in enumerate(words))


def load_allowed_signers(project: Project) -> tuple[str, bytes]:
    """(repo-relative path, bytes) of the pinned allowed-signers file. CheckFailed (exit 1) when
    config names none, pins none, or the file's hash differs from the pin."""
    config = project.config
    if not config.allowed_signers:
        raise CheckFailed(f"signature checks need an allowed-signers file, and {CONFIG_FILE} "
                          "names none (allowed_signers is not set)", hint=_setup_hint())
    rel = config.allowed_signers
    full = _inside(project, rel)
    try:
        content = full.read_bytes()
    except FileNotFoundError:
        raise EnvironmentProblem(f"{rel} (allowed_signers in {CONFIG_FILE}) is missing",
                                 hint=f"git checkout -- {rel}, or {_setup_hint()}") from None
    actual = signers_hash(content)
    pinned = config.allowed_signers_hash
    if not pinned:
        raise CheckFailed(f"{rel} is not pinned: {CONFIG_FILE} has no allowed_signers_hash "
                          f"(the file's hash is {actual})",
                          hint=f"review {rel}, then set `allowed_signers_hash: {actual}` in "
                          f"{CONFIG_FILE} and commit")
    if actual != pinned:
        raise CheckFailed(f"the allowed-signers file was changed without re-pinning: {rel} "
                          f"hashes to {actual}, but {CONFIG_FILE} pins {pinned}",
                          hint=f"review the change (git log -p -- {rel}); if it is right, set "
                          f"`allowed_signers_hash: {actual}` in {CONFIG_FILE} and commit, "
                          f"otherwise git checkout -- {rel}")
    return rel, content


# --- event tags ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventTag:
    name: str  # the ref name, without refs/tags/
    tag_sha: str  # the tag object: what is verified (not the name, which could move meanwhile)
    object_name: str  # the name recorded inside the (signed) tag object
    event: T.TagEvent
    body: str  # the message after its first paragraph, signature excluded
    signature: str
    glued: bool = False  # a signature block not on a line of its own: git cannot find it

    @property
    def rollback(self) -> bool:
        from mlopsctl.registry import parse_event_data

        return bool(parse_event_data(self.body).get("rollback") is True)

    def permission(self) -> tuple[str, str | None]:
        """(action, environment) the signer must be allowed."""
        kind = self.event.kind
        if kind == T.REGISTER:
            return "bump", None
        if kind == T.DEREGISTER:
            return "deregister", None
        if kind == T.UNASSIGN and not self.rollback:
            return "unassign", self.event.stage
        if kind in (T.ASSIGN, T.UNASSIGN):
            return ("rollback" if self.rollback else "promote"), self.event.stage
        return "deprecate", None




def event_tags(root: Path, model: str | None = None) -> list[EventTag]:
    """Every annotated tag on a commit whose name is a registry event (the tags the registry
    folds; lightweight and ``@created`` tags are no events), in name order."""
    patterns = T.ref_patterns(model) if model is not None else ["refs/tags"]
    out = git(root, "for-each-ref", f"--format={_FORMAT}", *patterns)
    fields = out.decode("utf-8", errors="replace").split("\0")
    width = len(_FIELDS)
    found = []
    for i in range(0, len(fields) - width + 1, width):
        refname, otype, sha, peeled_type, inner, body, signature, whole = fields[i : i + width]
        name = refname.lstrip("\n").removeprefix("refs/tags/")
        if otype != "tag" or peeled_type != "commit":
            continue
        event = T.parse_tag(name)
        if event is None or event.kind not in _EVENT_KINDS:
            continue
        if model is not None and event.model != model:
            continue
        glued = not signature.strip() and any(a in whole for a in (_SSH_ARMOR, *_OTHER_ARMOR))
        found.append(EventTag(name, sha, inner, event, body, signature, glued))
    return sorted(found, key=lambda t: t.name)


# --- verification -------------------------------------------------------------------------------


def verify_signatures(project: Project, model: str | None = None) -> list[SignatureCheck]:
    """Check every event tag (of ``model``, when given): signed with an SSH key that the pinned
    allowed-signers file maps to a member whose roles grant the event. One SignatureCheck per
    tag, in name order. Raises CheckFailed before any tag is looked at when the file is not set
    up or not pinned, or differs from its pin."""
    from concurrent.futures import ThreadPoolExecutor

    from mlopsctl.access import load_access

    _rel, content = load_allowed_signers(project)
    access = load_access(project)
    tags = event_tags(project.root, model)
    if not tags:
        return []
    with tempfile.TemporaryDirectory(prefix="mlopsctl-signers-") as tmp:
        # git reads the very bytes that were hashed, not a file that could change meanwhile.
        signers = Path(tmp) / "allowed_signers"
        signers.write_bytes(content)
        workers = max(1, min(MAX_WORKERS, len(tags), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda t: _check(project.root, signers, access, t), tags))


def _check(root: Path, signers: Path, access: mf.Access, tag: EventTag) -> SignatureCheck:
    from mlopsctl.access import allowed, is_member, permission, roles_of

    if tag.glued:
        return SignatureCheck(tag.name, False, None,
                              "unverifiable: the signature is glued to the message (signed "
                              "with --cleanup=verbatim and no final newline), git finds none")
    if not tag.signature.strip():
        return SignatureCheck(tag.name, False, None, "unsigned")
    armor = tag.signature.lstrip().splitlines()[0].strip()
    if armor != _SSH_ARMOR:
        kind = _OTHER_ARMOR.get(armor, "a non-SSH")
        return SignatureCheck(tag.name, False, None,
                              f"signed with {kind} signature: only SSH signatures can be checked "
                              "against the allowed-signers file")
    if tag.object_name != tag.name:
        return SignatureCheck(tag.name, False, None,
                              f"the signed tag object is named '{tag.object_name}': a signed "
                              "event copied to another name")
    code, output = _verify_tag(root, signers, tag.tag_sha)
    if code != 0:  # the verdict: git's exit code, never the wording of its output
        return SignatureCheck(tag.name, False, None, _why_bad(output))
    match = _GOOD_FOR.search(output)
    if match is None:
        return SignatureCheck(tag.name, False, None,
                              "git accepted the signature but named no signer: "
                              + _last_line(output))
    principals = [p.strip() for p in match["principal"].split(",") if p.strip()]
    action, env = tag.permission()
    needed = permission(action, env)
    for principal in principals:
        if allowed(access, principal, action, env):
            return SignatureCheck(tag.name, True, principal)
    signer = next((p for p in principals if is_member(access, p)), principals[0])
    if not is_member(access, signer):
        return SignatureCheck(tag.name, False, signer,
                              f"signed by {signer}, who is not a member in .mlops/access.yaml")
    roles = ", ".join(roles_of(access, signer)) or "none"
    return SignatureCheck(tag.name, False, signer,
                          f"signed by {signer}, whose roles ({roles}) do not grant '{needed}'")


def _verify_tag(root: Path, signers: Path, tag_sha: str) -> tuple[int, str]:
    """(exit code, stderr + stdout) of ``git verify-tag --raw`` with ``signers`` as the
    allowed-signers file."""
    env = dict(os.environ, LC_ALL="C", LANG="C", LANGUAGE="C")
    args = ["git", "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-tag", "--raw", tag_sha]
    try:
        proc = subprocess.run(args, cwd=root, capture_output=True, env=env, check=False)
    except FileNotFoundError as exc:
        raise EnvironmentProblem("git is not installed", hint="install git >= 2.34") from exc
    text = proc.stderr.decode(errors="replace") + proc.stdout.decode(errors="replace")
    return proc.returncode, text


def _why_bad(output: str) -> str:
    """A description of a rejected signature, for people (the verdict was the exit code)."""
    fingerprint = _FINGERPRINT.search(output)
    key = f" ({fingerprint.group(1)})" if fingerprint else ""
    if "No principal matched" in output:
        return f"signed by a key{key} that is not in the allowed-signers file"
    return f"bad signature{key}: {_last_line(output)}"


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no output from git verify-tag"
