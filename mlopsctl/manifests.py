"""Pydantic models for every file under ``.mlops/``, and safe YAML reading and writing.

Files are read with ``yaml.safe_load`` semantics into models with ``extra="forbid"``; a malformed
file is an EnvironmentProblem (exit 3) naming the file, the line and the field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlopsctl.errors import EnvironmentProblem
from mlopsctl.fsio import atomic_write

SCHEMA_VERSION = 1
HEX_MD5 = r"[0-9a-f]{32}"  # an md5 names the blob's path in the remote: nothing else may
MD5 = rf"^{HEX_MD5}$"
SHA256 = r"^[0-9a-f]{64}$"
M = TypeVar("M", bound="Strict")

try:  # libyaml is 10x faster; fall back to pure Python where it is missing
    _Loader: type = yaml.CSafeLoader
    _Dumper: type = yaml.CSafeDumper
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader
    _Dumper = yaml.SafeDumper


class Strict(BaseModel):
    # defer_build: validators are built on first use, not at import (start-up time).
    model_config = ConfigDict(extra="forbid", defer_build=True)


# --- config.yaml -------------------------------------------------------------------------------


class Gate(Strict):
    min: float | None = None
    max: float | None = None


def _staging_gates() -> dict[str, Gate]:
    from mlopsctl.governance import DEFAULT_GATES

    return {name: Gate(**bounds) for name, bounds in DEFAULT_GATES.items()}


class Environment(Strict):
    gates: dict[str, Gate] = Field(default_factory=_staging_gates)
    # Per-model gates, merged over `gates` for that model (e.g. an RMSE bound in its own units).
    model_gates: dict[str, dict[str, Gate]] = Field(default_factory=dict)
    requires: list[str] = Field(default_factory=list)  # environments a version must pass first
    target: Literal["local", "kubernetes"] = "local"
    target_options: dict[str, Any] = Field(default_factory=dict)
    approvals: int = Field(default=0, ge=0)  # distinct approvers (not the promoter) needed
    # `mlopsctl monitor`: the environment's Prometheus text endpoint (e.g. `mlopsctl serve`'s
    # http://127.0.0.1:8000/metrics), and whether an emergency degradation rolls back by itself.
    metrics_url: str | None = None
    auto_rollback: bool = False

    def gates_for(self, model: str) -> dict[str, Gate]:
        """The environment's gates with the model's own gates merged over them."""
        return {**self.gates, **self.model_gates.get(model, {})}


def default_environments() -> dict[str, Environment]:
    return {
        "staging": Environment(),
        "production": Environment(requires=["staging"]),
    }


class PerformanceTargets(Strict):
    response_time_ms: float = 2000.0
    constitutional_compliance: float = 0.95
    model_accuracy: float = 0.85
    availability: float = 0.999
    cost_savings: float = 0.0


class Encryption(Strict):
    cipher: Literal["aes-256-gcm"] = "aes-256-gcm"
    key_id: str | None = None


class Compression(Strict):
    codec: Literal["zstd"] = "zstd"
    level: int = Field(default=3, ge=1, le=22)


class Alerts(Strict):
    degradation: list[float] = Field(default_factory=lambda: [0.05, 0.10, 0.15])


class WorkerLimits(Strict):
    """Hard limits of the process that loads and scores a model (docs/security.md)."""

    memory_mb: int = Field(default=4096, ge=512)  # address space, imports included
    cpu_seconds: float | None = Field(default=None, gt=0)  # default: the command's timeout
    file_size_mb: int = Field(default=0, ge=0)  # a model never needs to write a file


class Config(Strict):
    schema_version: int = SCHEMA_VERSION
    registry_id: str
    remote: str = "mlops"  # the DVC remote's name; its URL lives in .dvc/config
    encryption: Encryption = Field(default_factory=Encryption)
    compression: Compression = Field(default_factory=Compression)
    constitutional_hash: str
    signing: Literal["off", "optional", "required"] = "optional"
    allowed_signers: str | None = None  # path in the repo, for `verify --signatures`
    allowed_signers_hash: str | None = None  # sha256(file)[:16]: the pin
    deploy_root: str = ".mlops/deploy"  # the local target's slots (git-ignored)
    environments: dict[str, Environment] = Field(default_factory=default_environments)
    performance_targets: PerformanceTargets = Field(default_factory=PerformanceTargets)
    alerts: Alerts = Field(default_factory=Alerts)
    worker: WorkerLimits = Field(default_factory=WorkerLimits)


# --- policy.yaml and access.yaml -----------------------------------------------------------------


class Rule(Strict):
    id: str
    description: str = ""
    check: str
    weight: float = Field(default=1.0, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)


class Policy(Strict):
    schema_version: int = SCHEMA_VERSION
    name: str = "constitution"
    rules: list[Rule] = Field(default_factory=list)
    trusted_types: list[str] = Field(default_factory=list)


class Member(Strict):
    email: str
    name: str | None = None
    roles: list[str]
    signing_key: str | None = None


class Access(Strict):
    schema_version: int = SCHEMA_VERSION
    roles: dict[str, list[str]]
    members: list[Member] = Field(default_factory=list)


# --- models and versions ---------------------------------------------------------------------


class Holdout(Strict):
    path: str
    target: str


class ModelCard(Strict):
    schema_version: int = SCHEMA_VERSION
    name: str
    description: str = ""
    owner: str = ""
    task: str = ""
    intended_use: str = ""
    artifact: str = ""
    holdout: Holdout | None = None


class Stored(Strict):
    codec: str
    level: int
    cipher: str
    key_id: str | None = None
    size: int
    md5: str = Field(pattern=MD5)  # DVC's object id in the remote: it names a path there


class ArtifactInfo(Strict):
    path: str  # original file name, relative to the repo when inside it
    format: str
    sha256: str = Field(pattern=SHA256)
    size: int
    stored: Stored


class FileHash(Strict):
    path: str
    sha256: str = Field(pattern=SHA256)
    # a directory: DVC's hash of it ('<md5>.dir')
    md5: str | None = Field(default=None, pattern=rf"^{HEX_MD5}(\.dir)?$")


class Lineage(Strict):
    code_commit: str | None = None
    code_dirty: bool = False
    data: list[FileHash] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)


class VersionManifest(Strict):
    schema_version: int = SCHEMA_VERSION
    model: str
    version: str
    parent_version: str | None = None
    created_at: str
    created_by: str
    message: str = ""
    artifact: ArtifactInfo
    config_file: FileHash | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    policy_hash: str


# --- io ------------------------------------------------------------------------------------------


# YAML aliases share one object, so `a: &a [x, x]`, `b: &b [*a, *a]`, ... stays small when
# loaded and explodes when dumped, validated or hashed (a "billion laughs"): count what the data
# expands to before anything walks it.
MAX_YAML_VALUES = 200_000


def expands_beyond(data: Any, limit: int = MAX_YAML_VALUES) -> bool:
    """Whether ``data``, with every shared reference expanded, holds more than ``limit`` values.
    Stops counting at the limit, so a bomb costs at most ``limit`` steps."""
    stack = [data]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def check_expansion(text: str | bytes, data: Any) -> bool:
    """True when ``data`` (loaded from ``text``) is within MAX_YAML_VALUES; cheap for the
    common case: no alias, no expansion."""
    marker = b"*" if isinstance(text, bytes) else "*"
    return marker not in text or not expands_beyond(data)  # type: ignore[operator]


def parse_yaml(text: str | bytes, model: type[M], source: str) -> M:
    """Parse YAML text into ``model``; EnvironmentProblem names the source, line and field."""
    try:
        data = yaml.load(text, Loader=_Loader)
        if not check_expansion(text, data):
            raise EnvironmentProblem(
                f"{source}: its YAML aliases expand to more than {MAX_YAML_VALUES:,} values "
                "(an alias bomb?)",
                hint=f"write the values out, or restore it with `git checkout -- {source}`")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise EnvironmentProblem(
            f"{source}{where}: not valid YAML ({problem})",
            hint=f"fix the file, or restore it with `git checkout -- {source}`",
        ) from None
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(text, loc)
        where = f":{line}" if line else ""
        raise EnvironmentProblem(
            f"{source}{where}: field '{field}': {err['msg']}",
            hint=f"fix the file, or restore it with `git checkout -- {source}`",
        ) from None


def _line_of(text: str | bytes, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or the deepest existing parent)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    return line_at(node, loc)


def line_at(node: Any, loc: Sequence[Any]) -> int | None:
    """1-based line of the composed YAML ``node`` at ``loc`` (or its deepest existing parent):
    where a pydantic error's location is in the file."""
    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == str(key)), None)
            if nxt is None:
                break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def load(path: Path, model: type[M], source: str | None = None) -> M:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise EnvironmentProblem(f"{source or path} is missing") from None
    return parse_yaml(text, model, source or str(path))


def dump(obj: BaseModel) -> bytes:
    data = obj.model_dump(mode="json", exclude_none=True)
    text: str = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    return text.encode()


def dump_data(data: Any) -> str:
    return str(yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True))


def save(path: Path, obj: BaseModel) -> None:
    atomic_write(path, dump(obj))


def policy_hash(content: bytes) -> str:
    """The constitutional hash: sha256 of policy.yaml's bytes, first 16 hex digits."""
    return hashlib.sha256(content).hexdigest()[:16]
