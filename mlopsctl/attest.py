"""Signed documents: validation reports and approvals, signed with the actor's SSH key
(``ssh-keygen -Y sign``) over their canonical JSON, under namespaces of our own, so a signature
made for one purpose (a git tag, a report) is never accepted for another.

Notes are not signed by git (REFERENCE: commits made by ``git notes`` are not signed), so the
signature travels inside the note entry, as ``signature`` beside the signed fields, and anyone
holding the allowed-signers file can check it offline with ``ssh-keygen -Y verify``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsctl.errors import EnvironmentProblem

REPORT_NAMESPACE = "mlopsctl-report"
APPROVAL_NAMESPACE = "mlopsctl-approval"
SIGNATURE_KEY = "signature"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    signer: str | None = None  # the principal the allowed-signers file maps the key to
    problem: str = ""


def canonical_bytes(doc: Mapping[str, Any]) -> bytes:
    """The signed bytes: the document without its signature, as sorted compact JSON."""
    body = {k: v for k, v in doc.items() if k != SIGNATURE_KEY}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _ssh_keygen(args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, LC_ALL="C", LANG="C")
    try:
        return subprocess.run(["ssh-keygen", *args], input=data, capture_output=True, env=env,
                              check=False)
    except FileNotFoundError:
        raise EnvironmentProblem("ssh-keygen is not installed, so nothing can be signed",
                                 hint="install OpenSSH (ssh-keygen >= 8.2)") from None


def sign(root: Path, doc: Mapping[str, Any], namespace: str) -> str:
    """An armored SSH signature of ``doc`` with git's ``user.signingkey``."""
    from mlopsctl.signing import signing_key

    key = signing_key(root)
    if not key:
        raise EnvironmentProblem("signing is required, but git has no user.signingkey",
                                 hint="git config gpg.format ssh && git config user.signingkey "
                                 "~/.ssh/id_ed25519.pub")
    key = os.path.expanduser(key.removeprefix("key::"))
    proc = _ssh_keygen(["-q", "-Y", "sign", "-f", key, "-n", namespace], canonical_bytes(doc))
    if proc.returncode != 0:
        raise EnvironmentProblem(f"ssh-keygen could not sign: "
                                 f"{proc.stderr.decode(errors='replace').strip()}",
                                 hint="check git's user.signingkey (and ssh-agent)")
    return proc.stdout.decode()


def signed(root: Path, doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    return {**doc, SIGNATURE_KEY: sign(root, doc, namespace)}


def verify(doc: Mapping[str, Any], namespace: str, allowed_signers: bytes) -> Verdict:
    """Whether ``doc`` carries a good signature under ``namespace`` by a key the allowed-signers
    content maps to a principal; the verdict is ssh-keygen's exit code."""
    signature = doc.get(SIGNATURE_KEY)
    if not isinstance(signature, str) or "BEGIN SSH SIGNATURE" not in signature:
        return Verdict(False, None, "unsigned")
    data = canonical_bytes(doc)
    with tempfile.TemporaryDirectory(prefix="mlopsctl-attest-") as tmp:
        sig, signers = Path(tmp) / "doc.sig", Path(tmp) / "allowed_signers"
        sig.write_text(signature)
        signers.write_bytes(allowed_signers)
        found = _ssh_keygen(["-Y", "find-principals", "-s", str(sig), "-f", str(signers)], b"")
        principals = found.stdout.decode(errors="replace").split() if found.returncode == 0 \
            else []
        if not principals:
            return Verdict(False, None, "signed by a key that is not in the allowed-signers file")
        for principal in principals:
            check = _ssh_keygen(["-Y", "verify", "-f", str(signers), "-I", principal, "-n",
                                 namespace, "-s", str(sig)], data)
            if check.returncode == 0:
                return Verdict(True, principal)
    return Verdict(False, principals[0], "bad signature (the signed content was changed, or "
                   "it was signed for another purpose)")
