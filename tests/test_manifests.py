"""Manifest models: strict parsing with file:line:field errors, dump/parse round trips."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from mlopsctl import manifests as mf
from mlopsctl.errors import EnvironmentProblem, ExitCode

SOURCE = ".mlops/config.yaml"
BASE = "registry_id: r-1\nconstitutional_hash: 0123456789abcdef\n"


def problem(text: str | bytes, model: type[mf.Strict] = mf.Config,
            source: str = SOURCE) -> EnvironmentProblem:
    with pytest.raises(EnvironmentProblem) as info:
        mf.parse_yaml(text, model, source)
    assert info.value.exit_code == ExitCode.ENVIRONMENT == 3
    assert info.value.hint and f"git checkout -- {source}" in info.value.hint
    return info.value


# --- malformed YAML ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (BASE + "remote: [a, b\nsigning: off\n", 4),  # unclosed flow sequence
        ("registry_id: r\n\tconstitutional_hash: h\n", 2),  # a tab cannot start a token
        (BASE + "remote: 'unterminated\n", 4),
        ("a: 1\n---\nb: 2\n", 2),  # two documents
        ("a: b: c\n", 1),
    ],
)
def test_malformed_yaml_names_source_and_line(text: str, line: int) -> None:
    err = problem(text)
    assert err.message.startswith(f"{SOURCE}:{line}: not valid YAML")


def test_malformed_yaml_as_bytes() -> None:
    err = problem(b"key: [1, 2\n", source="models/churn/model.yaml")
    assert err.message.startswith("models/churn/model.yaml:2: not valid YAML")


def test_yaml_is_loaded_safely() -> None:
    err = problem(BASE + "remote: !!python/object/apply:os.system ['true']\n")
    assert err.message.startswith(f"{SOURCE}:3: not valid YAML")


# --- schema errors -------------------------------------------------------------------------------


def test_unknown_field_names_field_and_line() -> None:
    err = problem(BASE + "remote: mlops\nbogus_field: 1\n")
    assert err.message.startswith(f"{SOURCE}:4: field 'bogus_field'")
    assert "Extra inputs are not permitted" in err.message


def test_unknown_nested_field() -> None:
    text = BASE + "encryption:\n  cipher: aes-256-gcm\n  keyid: k123\n"
    err = problem(text)
    assert err.message.startswith(f"{SOURCE}:5: field 'encryption.keyid'")


def test_wrong_value_at_nested_path() -> None:
    text = BASE + "compression:\n  level: 99\n"
    err = problem(text)
    assert ":4:" in err.message
    assert "compression.level" in err.message
    assert err.message.startswith(f"{SOURCE}:4: field 'compression.level': ")


def test_wrong_type_deep_in_a_mapping() -> None:
    text = BASE + (
        "environments:\n"
        "  staging:\n"
        "    gates:\n"
        "      accuracy:\n"
        "        min: high\n"
    )
    err = problem(text)
    assert err.message.startswith(f"{SOURCE}:7: field 'environments.staging.gates.accuracy.min'")


def test_wrong_value_in_a_list_item() -> None:
    text = (
        "name: constitution\n"
        "rules:\n"
        "  - id: r1\n"
        "    check: metric\n"
        "  - id: r2\n"
        "    check: metric\n"
        "    weight: 0\n"
    )
    err = problem(text, mf.Policy, ".mlops/policy.yaml")
    assert err.message.startswith(".mlops/policy.yaml:7: field 'rules.1.weight'")


def test_bad_literal() -> None:
    err = problem(BASE + "signing: sometimes\n")
    assert err.message.startswith(f"{SOURCE}:3: field 'signing'")


def test_missing_required_field_points_at_the_mapping() -> None:
    err = problem("registry_id: r-1\n")
    assert err.message.startswith(f"{SOURCE}:1: field 'constitutional_hash'")
    assert "Field required" in err.message


def test_top_level_not_a_mapping() -> None:
    err = problem("- a\n- b\n")
    assert "field '(top level)'" in err.message


def test_empty_file_is_an_empty_mapping() -> None:
    assert mf.parse_yaml("", mf.Policy, "p.yaml") == mf.Policy()
    err = problem("")  # Config has required fields
    assert "field 'registry_id'" in err.message


def test_minimal_config_gets_defaults() -> None:
    config = mf.parse_yaml(BASE, mf.Config, SOURCE)
    assert config.registry_id == "r-1"
    assert config.compression.level == 3
    assert config.encryption.cipher == "aes-256-gcm"
    assert set(config.environments) == {"staging", "production"}
    assert config.environments["production"].requires == ["staging"]


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="missing") as info:
        mf.load(tmp_path / "nope.yaml", mf.Config, ".mlops/nope.yaml")
    assert info.value.exit_code == 3
    assert ".mlops/nope.yaml" in info.value.message


def test_load_names_the_given_source(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(BASE + "compression:\n  level: 0\n")
    with pytest.raises(EnvironmentProblem) as info:
        mf.load(path, mf.Config, SOURCE)
    assert info.value.message.startswith(f"{SOURCE}:4: field 'compression.level'")


# --- round trips ---------------------------------------------------------------------------------


def full_manifest(key_id: str | None = "k0123456789abcde") -> mf.VersionManifest:
    return mf.VersionManifest(
        model="churn",
        version="1.2.0-rc.1+b.5",
        parent_version="1.1.0",
        created_at="2024-05-01T12:34:56Z",
        created_by="Ada Lovelace <ada@example.com>",
        message="retrained on Q1 data\nsecond line: with a colon",
        artifact=mf.ArtifactInfo(
            path="models/churn.pkl",
            format="pickle",
            sha256="a" * 64,
            size=123456789,
            stored=mf.Stored(codec="zstd", level=19, cipher="aes-256-gcm", key_id=key_id,
                             size=23456789, md5="b" * 32),
        ),
        config_file=mf.FileHash(path="params.yaml", sha256="c" * 64),
        metrics={"accuracy": 0.91, "f1": 0.875, "latency_p95_ms": 120.0},
        lineage=mf.Lineage(
            code_commit="d" * 40,
            code_dirty=True,
            data=[mf.FileHash(path="data/train.csv", sha256="e" * 64),
                  mf.FileHash(path="data/ü nicode.csv", sha256="f" * 64)],
            params={"n_estimators": 100, "nested": {"a": [1, 2.5, "x"]}, "flag": None},
        ),
        policy_hash="0123456789abcdef",
    )


def test_version_manifest_round_trip(tmp_path: Path) -> None:
    manifest = full_manifest()
    text = mf.dump(manifest)
    assert isinstance(text, bytes)
    assert mf.parse_yaml(text, mf.VersionManifest, "m.yaml") == manifest
    # Field order follows the model (readable diffs), and it is plain YAML.
    data = yaml.safe_load(text)
    assert list(data)[:3] == ["schema_version", "model", "version"]
    path = tmp_path / "m.yaml"
    mf.save(path, manifest)
    assert path.read_bytes() == text
    assert mf.load(path, mf.VersionManifest) == manifest


def test_minimal_version_manifest_round_trip() -> None:
    manifest = full_manifest().model_copy(
        update={"parent_version": None, "config_file": None, "metrics": {},
                "lineage": mf.Lineage()}
    )
    text = mf.dump(manifest)
    assert b"parent_version" not in text  # None is left out
    assert mf.parse_yaml(text, mf.VersionManifest, "m.yaml") == manifest


def test_version_manifest_without_key_id_round_trips() -> None:
    manifest = full_manifest(key_id=None)
    assert mf.parse_yaml(mf.dump(manifest), mf.VersionManifest, "m.yaml") == manifest


@pytest.mark.parametrize(
    "obj",
    [
        mf.Config(registry_id="r-1", constitutional_hash="0123456789abcdef",
                  encryption=mf.Encryption(key_id="kabc")),
        mf.Policy(rules=[mf.Rule(id="r1", check="metric", weight=2.5,
                                 params={"metric": "accuracy", "min": 0.9})]),
        mf.Access(roles={"admin": ["*"], "dev": ["register"]},
                  members=[mf.Member(email="ada@example.com", roles=["admin"])]),
        mf.ModelCard(name="churn", holdout=mf.Holdout(path="data/holdout.csv", target="y")),
    ],
    ids=lambda o: type(o).__name__,
)
def test_other_models_round_trip(obj: mf.Strict) -> None:
    assert mf.parse_yaml(mf.dump(obj), type(obj), "x.yaml") == obj


def test_dump_data_is_yaml() -> None:
    data = {"b": 1, "a": [1, "two"], "c": {"x": None}}
    text = mf.dump_data(data)
    assert yaml.safe_load(text) == data
    assert text.index("b:") < text.index("a:")  # keys keep their order


# --- policy hash ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content", [b"", b"rules: []\n", "règles: ü\n".encode(), bytes(range(256))]
)
def test_policy_hash_is_sha256_prefix(content: bytes) -> None:
    digest = mf.policy_hash(content)
    assert digest == hashlib.sha256(content).hexdigest()[:16]
    assert len(digest) == 16
    assert int(digest, 16) >= 0


def test_policy_hash_changes_with_content() -> None:
    assert mf.policy_hash(b"rules: []\n") != mf.policy_hash(b"rules: [] \n")
