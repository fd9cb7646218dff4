"""Encryption keys: creation in the user's config dir, MLOPSCTL_KEY, import, and failures."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from mlopsctl.errors import EnvironmentProblem, ExitCode
from mlopsctl.store import keys
from mlopsctl.store.keys import (
    KEY_BYTES,
    KEY_ENV,
    create_key,
    decode_key,
    has_key,
    import_key,
    key_file,
    key_id,
    load_key,
)

KEY = bytes(range(32))
OTHER = bytes(range(100, 132))


def environment_problem(kid: str) -> EnvironmentProblem:
    with pytest.raises(EnvironmentProblem) as info:
        load_key(kid)
    assert info.value.exit_code == ExitCode.ENVIRONMENT == 3
    return info.value


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- key ids -------------------------------------------------------------------------------------


def test_key_id_is_a_fingerprint_of_the_key() -> None:
    kid = key_id(KEY)
    assert kid == key_id(bytes(KEY))
    assert kid != key_id(OTHER)
    assert kid.startswith("k")
    assert len(kid) == 16  # fits the blob header's 16-byte key id field
    int(kid[1:], 16)


# --- create_key ----------------------------------------------------------------------------------


def test_create_key_writes_a_private_file_under_home(isolated_env: Path) -> None:
    kid = create_key()
    path = isolated_env / ".config" / "mlopsctl" / "keys" / f"{kid}.key"
    assert key_file(kid) == path
    assert path.is_file()
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    key = bytes.fromhex(path.read_text().strip())
    assert len(key) == KEY_BYTES
    assert key_id(key) == kid
    assert load_key(kid) == key
    assert has_key(kid)


def test_create_key_makes_a_new_key_each_time() -> None:
    one, two = create_key(), create_key()
    assert one != two
    assert load_key(one) != load_key(two)
    assert sorted(p.name for p in key_file(one).parent.iterdir()) == sorted(
        [f"{one}.key", f"{two}.key"]
    )


def test_config_dir_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    kid = create_key()
    assert key_file(kid) == tmp_path / "xdg" / "mlopsctl" / "keys" / f"{kid}.key"
    assert key_file(kid).is_file()
    monkeypatch.setenv("MLOPSCTL_CONFIG_DIR", str(tmp_path / "cfg"))
    kid2 = create_key()
    assert key_file(kid2) == tmp_path / "cfg" / "keys" / f"{kid2}.key"
    assert has_key(kid2)
    assert not has_key(kid)  # the other store is no longer looked at


# --- MLOPSCTL_KEY --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        bytes.hex,
        lambda k: k.hex().upper(),
        lambda k: f"  {k.hex()}\n",
        lambda k: base64.b64encode(k).decode(),
        lambda k: base64.urlsafe_b64encode(k).decode(),
        lambda k: base64.urlsafe_b64encode(k).decode().rstrip("="),
        lambda k: base64.b64encode(k).decode().rstrip("="),
    ],
    ids=["hex", "HEX", "hex-padded", "base64", "base64url", "base64url-nopad", "base64-nopad"],
)
def test_load_key_from_environment(monkeypatch: pytest.MonkeyPatch, encode) -> None:  # type: ignore[no-untyped-def]
    # A key whose base64 forms hold both '+'/'/' and '-'/'_' characters.
    key = bytes([0xFB, 0xFF, 0xBF] * 10 + [0x3E, 0x3F])
    assert {"+", "/"} <= set(base64.b64encode(key).decode())
    monkeypatch.setenv(KEY_ENV, encode(key))
    assert load_key(key_id(key)) == key
    assert has_key(key_id(key))
    assert not key_file(key_id(key)).exists()  # nothing is written


def test_environment_key_takes_precedence_over_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    kid = import_key(KEY.hex())
    monkeypatch.setenv(KEY_ENV, OTHER.hex())
    err = environment_problem(kid)
    assert key_id(OTHER) in err.message
    assert kid in err.message


def test_environment_key_mismatch_names_both_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, OTHER.hex())
    err = environment_problem(key_id(KEY))
    assert key_id(OTHER) in err.message
    assert key_id(KEY) in err.message
    assert err.hint and KEY_ENV in err.hint
    assert not has_key(key_id(KEY))


def test_empty_environment_variable_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    kid = import_key(KEY.hex())
    monkeypatch.setenv(KEY_ENV, "")
    assert load_key(kid) == KEY


@pytest.mark.parametrize(
    "text",
    [
        "not a key",
        "abc",
        KEY.hex()[:-2],  # 31 bytes
        KEY.hex() + "00",  # 33 bytes
        KEY.hex()[:-1] + "g",  # not hex, and not 32 bytes of base64 either
        base64.b64encode(KEY[:16]).decode(),
        base64.b64encode(KEY + b"\0").decode(),
        "====",
    ],
)
def test_malformed_environment_key(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv(KEY_ENV, text)
    err = environment_problem(key_id(KEY))
    assert "32 bytes" in err.message
    assert err.hint and KEY_ENV in err.hint
    with pytest.raises(EnvironmentProblem):
        decode_key(text)


# --- missing or damaged key files ----------------------------------------------------------------


def test_missing_key(isolated_env: Path) -> None:
    kid = key_id(KEY)
    err = environment_problem(kid)
    assert kid in err.message
    assert str(key_file(kid)) in err.message
    assert err.hint and KEY_ENV in err.hint
    assert "mlopsctl key import" in err.hint
    assert not has_key(kid)


def test_altered_key_file(monkeypatch: pytest.MonkeyPatch) -> None:
    kid = import_key(KEY.hex())
    key_file(kid).write_text(OTHER.hex() + "\n")
    err = environment_problem(kid)
    assert "altered" in err.message
    assert not has_key(kid)


def test_garbage_key_file() -> None:
    kid = import_key(KEY.hex())
    key_file(kid).write_text("garbage\n")
    environment_problem(kid)


# --- import_key ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [KEY.hex(), base64.b64encode(KEY).decode(), base64.urlsafe_b64encode(KEY).decode().rstrip("=")],
    ids=["hex", "base64", "base64url"],
)
def test_import_key_round_trip(text: str) -> None:
    kid = import_key(text)
    assert kid == key_id(KEY)
    path = key_file(kid)
    assert mode(path) == 0o600
    assert path.read_text() == KEY.hex() + "\n"  # always stored as hex, like create_key
    assert load_key(kid) == KEY
    assert import_key(text) == kid  # importing again is harmless
    assert load_key(kid) == KEY


def test_import_created_key_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Export from one machine (its key file) and import on another (a fresh config dir)."""
    kid = create_key()
    exported = key_file(kid).read_text()
    monkeypatch.setenv("MLOPSCTL_CONFIG_DIR", str(tmp_path / "other-machine"))
    assert not has_key(kid)
    assert import_key(exported) == kid
    assert has_key(kid)


def test_import_malformed_key_writes_nothing() -> None:
    with pytest.raises(EnvironmentProblem):
        import_key("not a key")
    assert not (key_file("x").parent).exists()


def test_module_constants() -> None:
    assert keys.KEY_ENV == "MLOPSCTL_KEY"
    assert keys.KEY_BYTES == 32
