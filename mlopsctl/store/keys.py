"""Encryption keys: 256-bit, kept outside the repository (mode 0600); only an id goes in config.

The id is a fingerprint of the key, so a wrong key is told apart from a tampered blob before a
single byte is decrypted. CI passes the key as ``MLOPSCTL_KEY`` (hex or base64).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from pathlib import Path

from mlopsctl.errors import EnvironmentProblem
from mlopsctl.fsio import atomic_write
from mlopsctl.workspace import user_config_dir

KEY_ENV = "MLOPSCTL_KEY"
KEY_BYTES = 32


def key_id(key: bytes) -> str:
    return "k" + hashlib.sha256(b"mlopsctl key id v1\0" + key).hexdigest()[:15]


def key_file(kid: str) -> Path:
    return user_config_dir() / "keys" / f"{kid}.key"


def create_key() -> str:
    """Create a new key in the user's config dir; return its id."""
    key = secrets.token_bytes(KEY_BYTES)
    kid = key_id(key)
    path = key_file(kid)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, key.hex().encode() + b"\n", mode=0o600)
    return kid


def decode_key(text: str) -> bytes:
    text = text.strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=False)
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != KEY_BYTES:
        raise EnvironmentProblem(
            f"the key must be {KEY_BYTES} bytes written as hex or base64",
            hint=f"export {KEY_ENV} from `mlopsctl key export` on a machine that has the key",
        )
    return raw


def load_key(kid: str) -> bytes:
    """The key with id ``kid``: from $MLOPSCTL_KEY if set, else from the user's key store."""
    if env := os.environ.get(KEY_ENV):
        key = decode_key(env)
        if key_id(key) != kid:
            raise EnvironmentProblem(
                f"{KEY_ENV} holds key {key_id(key)}, but this registry is encrypted with {kid}",
                hint=f"set {KEY_ENV} to the registry's key (`mlopsctl key export` where it exists)",
            )
        return key
    path = key_file(kid)
    try:
        key = decode_key(path.read_text())
    except FileNotFoundError:
        raise EnvironmentProblem(
            f"encryption key {kid} is not on this machine (looked in {path} and ${KEY_ENV})",
            hint=f"on a machine with the key run `mlopsctl key export`, then set {KEY_ENV} here "
            "or `mlopsctl key import`",
        ) from None
    if key_id(key) != kid:
        raise EnvironmentProblem(f"{path} does not hold key {kid} (the file was altered)")
    return key


def import_key(text: str) -> str:
    key = decode_key(text)
    kid = key_id(key)
    path = key_file(kid)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, key.hex().encode() + b"\n", mode=0o600)
    return kid


def has_key(kid: str) -> bool:
    try:
        load_key(kid)
    except EnvironmentProblem:
        return False
    return True
