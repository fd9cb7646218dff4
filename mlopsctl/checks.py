"""``mlopsctl check``: the fast guard run by pre-commit and CI. Every finding is collected (file,
line and field where there is one); nothing stops at the first.

What is checked:

- every file under ``.mlops/`` parses and validates against its schema (manifests.py);
- the governance pin holds (the same check every writing command runs, Project.require_policy_pin,
  and the allowed-signers pin when one is configured);
- model directories, version files and registry tags have legal names;
- artifact blobs (``<version>.zst``) are git-ignored and each version has its DVC pointer,
  naming the blob its manifest names;
- a version manifest is byte-identical to the copy in the commit its tag points at;
- every stage assignment was made with its gates: recorded by ``promote`` with a passing
  validation, a rollback to a version live there before, or (a tag from ``gto assign`` or written
  by hand) backed by a passing report in the version's git note; and in the order the
  environments require;
- with ``remote=True``, every registered version's blob is in the artifact remote.

Speed: git is asked four times in all (one ``for-each-ref``, one ``notes list``, one
``cat-file --batch`` for every tagged manifest and note, one ``check-ignore``). Parsing YAML is
the expensive part (~0.5 ms a manifest), so a file's verdict is cached under the git directory by
its git blob id and a fingerprint of the schemas: an unchanged file is never parsed twice.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlopsctl import __version__, semver
from mlopsctl import registry as reg
from mlopsctl.errors import MlopsError, UsageError
from mlopsctl.gitops import tags as T
from mlopsctl.gitops.git import GitFailed, git
from mlopsctl.gitops.objects import blob_id, notes_map, read_ids, read_objects, unchanged_ids
from mlopsctl.gitops.refs import TagRecord, read_tags
from mlopsctl.workspace import MLOPS_DIR, NOTES_REF, Workspace

CACHE_FORMAT = 1
MAX_CACHED = 50_000  # verdicts kept before the cache is trimmed to those a run used
NOTE_SECTION = "validations"  # as validation.NOTE_SECTION (not imported: that module is heavy)

_MODEL_FILE = re.compile(r"\.mlops/models/(?P<model>[^/]+)/(?P<rest>.+)")
_VERSION_FILE = re.compile(r"versions/(?P<version>.+)\.yaml")
_POINTER_FILE = re.compile(r"artifacts/(?P<version>.+)\.zst\.dvc")
_BLOB_FILE = re.compile(r"artifacts/(?P<version>.+)\.zst")
_MD5 = re.compile(r"(?m)^\s*-?\s*md5:\s*['\"]?([0-9a-f]{32})")
_SIZE = re.compile(r"(?m)^\s*size:\s*([0-9]+)\s*$")
_SHA = re.compile(r"artifact_sha256:\s*['\"]?([0-9a-f]{64})")
_KEY = re.compile(r"^\s*-?\s*([A-Za-z_][\w-]*):")


@dataclass(frozen=True)
class Finding:
    check: str  # schema, pin, names, artifacts, immutable, gates, tags, remote
    message: str
    file: str | None = None  # repository-relative
    line: int | None = None
    field: str | None = None
    hint: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def where(self) -> str:
        if not self.file:
            return ""
        return self.file + (f":{self.line}" if self.line else "")


@dataclass
class CheckReport:
    root: Path
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    parsed: int = 0  # files parsed this run (the others' verdicts came from the cache)
    tags: int = 0
    blobs_checked: int | None = None  # with remote=True
    outgoing: list[str] | None = None  # with push_remote: the tags the push would send

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "findings": [f.to_json() for f in self.findings],
                "checked": {"files": self.files, "parsed": self.parsed, "tags": self.tags,
                            "remote_blobs": self.blobs_checked, "outgoing_tags": self.outgoing}}


class _Config:
    """A validated config.yaml, rebuilt from the cached ``model_dump`` of the same bytes: the
    attributes the checks (and the pin check) read, without importing pydantic."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)
        self.environments = {name: _Namespace(env)
                             for name, env in (data.get("environments") or {}).items()}


class _Namespace:
    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)


# --- the verdict cache ---------------------------------------------------------------------------


def _fingerprint() -> str:
    """Changes whenever a schema could have: the manifests module's bytes and our version."""
    schemas = Path(__file__).with_name("manifests.py").read_bytes()
    return blob_id(schemas + f"{__version__}:{CACHE_FORMAT}".encode())


class _Cache:
    """Facts about files that validated, by git blob id. Only passing verdicts are kept."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fingerprint = _fingerprint()
        self.entries: dict[str, dict[str, Any]] = {}
        self.tagged: dict[str, str] = {}  # '<commit>:<path>' -> blob id ('' when absent)
        self.used: set[str] = set()
        self.dirty = False
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("fingerprint") == self.fingerprint:
            self.entries = data.get("blobs") or {}
            self.tagged = data.get("tagged") or {}

    def get(self, blob: str) -> dict[str, Any] | None:
        found = self.entries.get(blob)
        if found is not None:
            self.used.add(blob)
        return found

    def put(self, blob: str, facts: dict[str, Any]) -> None:
        self.entries[blob] = facts
        self.used.add(blob)
        self.dirty = True

    def put_tagged(self, spec: str, blob: str | None) -> None:
        self.tagged[spec] = blob or ""
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        from mlopsctl.fsio import atomic_write

        if len(self.entries) > MAX_CACHED and len(self.used) < len(self.entries):
            # Old verdicts of contents long gone: keep what this run needed.
            self.entries = {k: v for k, v in self.entries.items() if k in self.used}
        doc = {"fingerprint": self.fingerprint, "blobs": self.entries, "tagged": self.tagged}
        # A read-only checkout (a mounted repository): then simply no cache.
        with contextlib.suppress(OSError):
            atomic_write(self.path, json.dumps(doc, separators=(",", ":")).encode(),
                         durable=False)


# --- schemas -------------------------------------------------------------------------------------


_TOP_FILES = {".mlops/config.yaml": "config", ".mlops/policy.yaml": "policy",
              ".mlops/access.yaml": "access"}
_SCHEMAS = {"config": "Config", "policy": "Policy", "access": "Access", "card": "ModelCard",
            "manifest": "VersionManifest"}


def _kind_of(rel: str) -> tuple[str, str | None, str | None]:
    """(kind, model, version) of a repository-relative path under .mlops/: config, policy,
    access, card, manifest, pointer, blob, stray (unexpected under models/) or other."""
    if rel in _TOP_FILES:
        return _TOP_FILES[rel], None, None
    match = _MODEL_FILE.fullmatch(rel)
    if match is None:
        return "other", None, None
    model, rest = match["model"], match["rest"]
    if rest == "model.yaml":
        return "card", model, None
    for kind, pattern in (("manifest", _VERSION_FILE), ("pointer", _POINTER_FILE),
                          ("blob", _BLOB_FILE)):
        found = pattern.fullmatch(rest)
        if found:
            return kind, model, found["version"]
    return "stray", model, None


def _schema(kind: str) -> Any:
    """The pydantic model for ``kind`` (imports pydantic: only when a file must be parsed)."""
    from mlopsctl import manifests as mf

    return getattr(mf, _SCHEMAS[kind]) if kind in _SCHEMAS else None


@functools.lru_cache(maxsize=4096)
def _model_of_dir(part: str) -> str | None:
    """The model a ``.mlops/models/<part>`` directory belongs to (Workspace.model_dir's
    inverse), or None for a directory no model name maps to."""
    if T.NAME_RE.fullmatch(part):
        return part
    return T.name_of_path_part(part)


@functools.lru_cache(maxsize=4096)
def _legal_version(text: str) -> bool:
    return semver.is_valid(text) and not text.startswith("v") and str(semver.parse(text)) == text


def _load_yaml(rel: str, content: bytes, out: list[Finding]) -> tuple[Any, bool]:
    """(data, ok): YAML as data; a finding with the line when it does not parse."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(content, Loader=loader), True
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        out.append(Finding("schema", f"not valid YAML ({problem})", rel,
                           mark.line + 1 if mark is not None else None, None,
                           f"fix the file, or restore it with `git checkout -- {rel}`"))
        return None, False


def _validate(rel: str, content: bytes, model: Any, out: list[Finding]) -> Any:
    """The validated object, or None with one finding per schema error."""
    import yaml
    from pydantic import ValidationError

    from mlopsctl.manifests import line_at

    data, ok = _load_yaml(rel, content, out)
    if not ok:
        return None
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as exc:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        node = yaml.compose(content, Loader=loader)
        for err in exc.errors():
            loc = tuple(err["loc"])
            name = ".".join(str(p) for p in loc) or "(top level)"
            out.append(Finding("schema", f"field '{name}': {err['msg']}", rel,
                               line_at(node, loc), name,
                               f"fix the file, or restore it with `git checkout -- {rel}`"))
        return None


def _pointer_facts(rel: str, content: bytes, out: list[Finding]) -> dict[str, Any] | None:
    data, ok = _load_yaml(rel, content, out)
    if not ok:
        return None
    outs = data.get("outs") if isinstance(data, dict) else None
    first = outs[0] if isinstance(outs, list) and len(outs) == 1 else None
    if not isinstance(first, dict) or not re.fullmatch(r"[0-9a-f]{32}", str(first.get("md5"))):
        out.append(Finding("artifacts", "not a DVC pointer with one output and its md5", rel, 1,
                           "outs", f"restore it with `git checkout -- {rel}`"))
        return None
    return {"md5": first["md5"], "size": first.get("size"), "path": first.get("path")}


# --- the checks -----------------------------------------------------------------------------------


@dataclass
class _Scan:
    ws: Workspace
    report: CheckReport
    cache: _Cache
    config: Any = None  # mf.Config, when it validated
    manifests: dict[tuple[str, str], tuple[str, str, dict[str, Any]]] = field(
        default_factory=dict)  # (model, 'v1.2.0') -> (rel, blob id, facts)
    pointers: dict[tuple[str, str], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    blobs: list[str] = field(default_factory=list)  # .zst files present in the work tree
    index: dict[str, str] = field(default_factory=dict)  # rel -> blob id, files git has as-is
    tag_objects: dict[str, str] = field(default_factory=dict)  # tag name -> tag object id

    def event_data(self, event: reg.Event) -> dict[str, Any]:
        """What the gates check reads from a stage tag's block (cached by tag object: a tag
        object never changes), without parsing YAML for tags seen before."""
        sha = self.tag_objects.get(event.tag)
        key = f"tag:{sha}" if sha else None
        cached = self.cache.get(key) if key else None
        if cached is not None:
            return dict(cached["data"])
        data = event.data if "mlopsctl:" in event.message else {}
        validation = data.get("validation")
        kept = {"event": data.get("event"), "rollback": data.get("rollback") is True,
                "validation": {"passed": validation.get("passed")}
                if isinstance(validation, dict) else None, "recorded": bool(data)}
        if key:
            self.cache.put(key, {"kind": "tag", "data": kept})
        return kept

    @property
    def root(self) -> str:
        return str(self.ws.root)

    def read_quietly(self, rel: str) -> bytes | None:
        try:
            with open(os.path.join(self.root, rel), "rb") as fh:
                return fh.read()
        except OSError:
            return None

    def read(self, rel: str) -> bytes | None:
        try:
            with open(os.path.join(self.root, rel), "rb") as fh:
                return fh.read()
        except OSError as exc:
            self.add(Finding("schema", f"cannot be read: {exc.strerror}", rel))
            return None

    def add(self, finding: Finding) -> None:
        self.report.findings.append(finding)


def _files(ws: Workspace, paths: Sequence[str], deploy_root: str) -> list[str]:
    """Repository-relative files to check: under .mlops/, or those of ``paths`` that are."""
    root = str(ws.root.resolve())
    skip = os.path.normpath(os.path.join(root, deploy_root))
    starts = [os.path.join(root, MLOPS_DIR)] if not paths else \
        [os.path.realpath(p) for p in paths]
    found: set[str] = set()
    for start in starts:
        rel = os.path.relpath(start, root).replace(os.sep, "/")
        if rel.startswith("../") or rel == "..":
            raise UsageError(f"{start} is outside the repository {root}")
        if not (rel == MLOPS_DIR or rel.startswith(MLOPS_DIR + "/")):
            continue  # pre-commit may pass any file: only the registry's are ours
        if os.path.isfile(start):
            found.add(rel)
            continue
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != skip]
            base = os.path.relpath(dirpath, root).replace(os.sep, "/")
            found.update(f"{base}/{name}" for name in filenames)
    return sorted(found)


def _deploy_root(ws: Workspace) -> str:
    match = re.search(r"(?m)^deploy_root:\s*['\"]?([^'\"\n#]+?)['\"]?\s*$",
                      ws.config_path.read_text(errors="replace")) if ws.initialized else None
    return match.group(1) if match else ".mlops/deploy"


def _check_file(scan: _Scan, rel: str) -> None:
    kind, name, version = _kind_of(rel)
    if kind == "other":
        return
    if kind == "stray":
        scan.add(Finding("names", "not a registry file (expected model.yaml, "
                         "versions/X.Y.Z.yaml or artifacts/X.Y.Z.zst.dvc)", rel))
        return
    if name is not None:
        model = _model_of_dir(name)
        if model is None:
            scan.add(Finding("names", f"'{name}' is not a model directory: a GTO name stored "
                             "with every character but lowercase letters, digits, '-' and '_' "
                             "as %XX (Big/Name as %42ig%2F%4Eame)", rel))
            return
        name = model  # keyed by the model's name, as the registry knows it
    if version is not None and not _legal_version(version):
        scan.add(Finding("names", f"'{version}' is not a version (X.Y.Z, SemVer 2.0)", rel))
        return
    if kind == "blob":
        scan.blobs.append(rel)
        return
    blob = scan.index.get(rel)  # unchanged since `git add`: git knows its id without a read
    content = None
    if blob is None:
        content = scan.read(rel)
        if content is None:
            return
        blob = blob_id(content)
    scan.report.files += 1
    facts = _facts(scan, rel, kind, blob, content)
    if kind == "manifest" and name and version:
        # kept even when invalid: the comparison with the tagged copy still says what changed
        scan.manifests[(name, f"v{version}")] = (rel, blob, facts or {})
        if facts is not None:
            _manifest_identity(scan, rel, name, version, facts)
    elif facts is not None and kind == "pointer" and name and version:
        scan.pointers[(name, f"v{version}")] = (rel, facts)


def _facts(scan: _Scan, rel: str, kind: str, blob: str,
           content: bytes | None) -> dict[str, Any] | None:
    """What later checks need from a valid file (from the cache when the bytes are known)."""
    cached = scan.cache.get(blob)
    if cached is not None and cached.get("kind") == kind:
        if kind == "config":
            scan.config = _Config(cached["config"])
        return cached
    if content is None:
        content = scan.read(rel)
        if content is None:
            return None
    scan.report.parsed += 1
    facts: dict[str, Any] = {"kind": kind}
    if kind == "pointer":
        pointer = _pointer_facts(rel, content, scan.report.findings)
        if pointer is None:
            return None
        facts.update(pointer)
    elif kind in _SCHEMAS:
        obj = _validate(rel, content, _schema(kind), scan.report.findings)
        if obj is None:
            return None
        if kind == "config":
            scan.config = obj
            facts["config"] = obj.model_dump(mode="json")
        if kind == "manifest":
            stored = obj.artifact.stored
            facts.update(model=obj.model, version=obj.version, md5=stored.md5,
                         size=stored.size, sha256=obj.artifact.sha256)
    scan.cache.put(blob, facts)
    return facts


def _manifest_identity(scan: _Scan, rel: str, name: str, version: str,
                       facts: dict[str, Any]) -> None:
    model = T.name_of_path_part(name) or name  # the directory holds the encoded name
    for key, expected in (("model", model), ("version", version)):
        if facts.get(key) != expected:
            scan.add(Finding("names", f"the manifest says {key} '{facts.get(key)}' but lives "
                             f"at {rel}", rel, _line_of_key(scan.read(rel) or b"", key), key))


def _line_of_key(content: bytes, key: str) -> int | None:
    for number, line in enumerate(content.decode(errors="replace").splitlines(), 1):
        if line.startswith(f"{key}:"):
            return number
    return None


def _first_difference(ours: bytes, theirs: bytes) -> tuple[int, str | None]:
    a = ours.decode(errors="replace").splitlines()
    b = theirs.decode(errors="replace").splitlines()
    for number, (x, y) in enumerate(zip(a, b, strict=False), 1):
        if x != y:
            key = _KEY.match(x) or _KEY.match(y)
            return number, key.group(1) if key else None
    return min(len(a), len(b)) + 1, None


def _check_tags(scan: _Scan, names: list[str], records: list[TagRecord]) -> None:
    odd = [n for n in sorted(names) if T.parse_tag(n) is None
           and re.search(r"[@#]", n) and re.match(r"[A-Za-z0-9]", n)]
    for name in odd:
        scan.add(Finding("tags", f"tag '{name}' looks like a registry event but does not parse "
                         "(GTO ignores it)", hint=f"git tag -d {name}  (if it is a mistake)"))
    for r in records:
        if r.name.endswith("@created") or re.search(r"@created#\d+$", r.name):
            scan.add(Finding("tags", f"tag '{r.name}' makes every gto command crash",
                             hint=f"git tag -d {r.name}"))
        elif not r.annotated and T.parse_tag(r.name) is not None:
            scan.add(Finding("tags", f"'{r.name}' is a lightweight tag: GTO and mlopsctl ignore "
                             "it as an event (it still counts for counters)",
                             hint="recreate it as an annotated tag, or delete it"))


def _manifest_rel(model: str, number: str) -> str:
    # Workspace.manifest_path as a string for our own names: thousands of Path objects cost
    # more than the check. Other names (written by GTO) take the workspace's own mapping.
    if T.NAME_RE.fullmatch(model):
        return f"{MLOPS_DIR}/models/{model}/versions/{number}.yaml"
    ws = Workspace(Path("/"))
    return ws.manifest_path(model, number).relative_to("/").as_posix()


def _pointer_rel(model: str, number: str) -> str:
    if T.NAME_RE.fullmatch(model):
        return f"{MLOPS_DIR}/models/{model}/artifacts/{number}.zst.dvc"
    ws = Workspace(Path("/"))
    return ws.pointer_path(model, number).relative_to("/").as_posix()


def _tagged_ids(scan: _Scan, registry: reg.Registry, full: bool
                ) -> tuple[dict[tuple[str, str], str], dict[str, str | None]]:
    """Each registered version's manifest as committed at its tag: (key -> spec, spec -> blob
    id), from one ``cat-file --batch-check`` (contents are read only for those that differ)."""
    specs: dict[tuple[str, str], str] = {}
    for state in registry.models.values():
        for entry in state.versions.values():
            key = (state.name, entry.version)
            if full or key in scan.manifests:
                specs[key] = f"{entry.commit}:{_manifest_rel(state.name, entry.number)}"
    # Commits never change, so neither does what they hold: known answers are cached.
    known = scan.cache.tagged
    ids: dict[str, str | None] = {s: known[s] or None for s in specs.values() if s in known}
    fresh = read_ids(scan.ws.root, [s for s in specs.values() if s not in known])
    for spec, blob in fresh.items():
        scan.cache.put_tagged(spec, blob)
    ids.update(fresh)
    return specs, ids


def _check_immutable(scan: _Scan, specs: dict[tuple[str, str], str],
                     ids: dict[str, str | None]) -> None:
    changed: list[tuple[str, str, str, bytes]] = []  # (spec, rel, tag, work-tree bytes)
    for key, spec in specs.items():
        tagged = ids.get(spec)
        here = scan.manifests.get(key)
        rel = spec.split(":", 1)[1]
        tag = f"{key[0]}@{key[1]}"
        if tagged is None:
            if here is not None:
                scan.add(Finding("immutable", f"{tag} is tagged on a commit without this "
                                 "manifest: it was written after the tag", rel, 1))
            continue
        if here is None:
            scan.add(Finding("immutable", f"the manifest of {tag} was deleted after its tag",
                             rel, hint=f"git checkout {tag} -- {rel}"))
        elif here[1] != tagged:
            changed.append((spec, rel, tag, scan.read(rel) or b""))
    originals = read_objects(scan.ws.root, [c[0] for c in changed])
    for spec, rel, tag, content in changed:
        line, key_name = _first_difference(content, originals.get(spec) or b"")
        scan.add(Finding("immutable", f"edited after its tag {tag}: a registered version's "
                         "manifest never changes", rel, line, key_name,
                         f"git checkout {tag} -- {rel}  (register a new version instead)"))


def _check_artifacts(scan: _Scan) -> None:
    root = scan.root
    for key, (rel, _blob, facts) in scan.manifests.items():
        model, version = key
        pointer_rel = _pointer_rel(model, version[1:])
        pointer = scan.pointers.get(key)
        if pointer is None:
            if not os.path.exists(os.path.join(root, pointer_rel)) \
                    and not _collected(scan, facts.get("md5")):
                scan.add(Finding("artifacts", f"{model}@{version} has no DVC pointer "
                                 f"{pointer_rel}: `dvc pull` cannot find its blob", rel,
                                 hint=f"git checkout {model}@{version} -- {pointer_rel}"))
            continue
        if facts and pointer[1].get("md5") != facts.get("md5"):
            scan.add(Finding("artifacts", f"the DVC pointer names blob {pointer[1].get('md5')}, "
                             f"the manifest {facts.get('md5')}", pointer[0], 2, "outs.0.md5",
                             f"git checkout {model}@{version} -- {pointer[0]}"))
    for key, (prel, _facts_p) in scan.pointers.items():
        if key not in scan.manifests:
            manifest_rel = _manifest_rel(key[0], key[1][1:])
            if not os.path.exists(os.path.join(root, manifest_rel)):
                scan.add(Finding("artifacts", f"a DVC pointer without a version manifest "
                                 f"({manifest_rel})", prel))
    _check_ignored(scan)


def _collected(scan: _Scan, md5: str | None) -> bool:
    """Whether gc removed this blob on purpose (its tombstone is in the local remote): gc then
    drops the pointer from the branch too, and that is no finding."""
    from mlopsctl.blobstate import was_collected
    from mlopsctl.store.remote import load_remote

    if not md5 or scan.config is None:
        return False
    try:
        return was_collected(load_remote(scan.ws.root, scan.config.remote), md5)
    except MlopsError:
        return False


def _check_ignored(scan: _Scan) -> None:
    """Stored blobs must be git-ignored, and none may be tracked. Asked of git for every blob
    present, and for one blob path per model (where the next fetch would write it)."""
    probes = set(scan.blobs)
    one_per_model: dict[str, str] = {}
    for model, version in scan.manifests:
        one_per_model.setdefault(model, version)
    probes |= {_pointer_rel(m, v[1:]).removesuffix(".dvc") for m, v in one_per_model.items()}
    if not probes:
        return
    try:
        out = git(scan.ws.root, "check-ignore", "--no-index", "-z", "--stdin",
                  input="\0".join(sorted(probes)).encode() + b"\0")
    except GitFailed as exc:
        if exc.returncode != 1:  # 1: none of them is ignored
            raise
        out = b""
    ignored = set(out.decode().split("\0"))
    for rel in sorted(probes - ignored):
        scan.add(Finding("artifacts", "stored blobs must be git-ignored (they live in the DVC "
                         "remote), and this one is not", rel,
                         hint="add `/models/*/artifacts/*.zst` to .mlops/.gitignore"))
    if scan.blobs:
        tracked = git(scan.ws.root, "ls-files", "-z", "--", *scan.blobs).decode().split("\0")
        for rel in filter(None, tracked):
            scan.add(Finding("artifacts", "a stored blob is committed to git", rel,
                             hint=f"git rm --cached {rel}"))


def _pin_key(scan: _Scan) -> str | None:
    """What the pin verdict depends on: the governance files' bytes and HEAD (the pin's
    provenance is read from history). None when a file cannot be read."""
    from mlopsctl.gitops.refs import head_commit

    parts = [head_commit(scan.ws.root) or ""]
    signers = getattr(scan.config, "allowed_signers", None)
    for rel in (".mlops/config.yaml", ".mlops/policy.yaml", ".mlops/access.yaml", signers):
        if rel:
            blob = scan.index.get(rel)
            content = None if blob else scan.read_quietly(rel)
            parts.append(blob or (blob_id(content) if content is not None else "-"))
    return "pin:" + blob_id(" ".join(parts).encode())


def _pin(scan: _Scan) -> None:
    """The governance pin (and the allowed-signers pin), through the same public check the
    writing commands run; a passing verdict is cached for the same files and HEAD."""
    if scan.config is None:
        return  # config.yaml is broken: already a finding
    key = _pin_key(scan)
    if key and scan.cache.get(key) is not None:
        return
    before = len(scan.report.findings)
    _run_pin(scan)
    if key and len(scan.report.findings) == before:
        scan.cache.put(key, {"kind": "pin"})


def _run_pin(scan: _Scan) -> None:
    from mlopsctl.project import Project

    project = Project(scan.ws, scan.config)
    try:
        try:
            project.require_policy_pin()
        except (AttributeError, TypeError):  # the pin wants more than the cached config has
            project = Project(scan.ws, _validated_config(scan))
            project.require_policy_pin()
    except MlopsError as exc:
        scan.add(Finding("pin", exc.message, ".mlops/config.yaml",
                         _line_of_key(scan.ws.config_path.read_bytes(), "constitutional_hash"),
                         "constitutional_hash", exc.hint or ""))
    if scan.config.allowed_signers:
        from mlopsctl.signing import load_allowed_signers

        try:
            load_allowed_signers(project)
        except MlopsError as exc:
            scan.add(Finding("pin", exc.message, ".mlops/config.yaml",
                             _line_of_key(scan.ws.config_path.read_bytes(),
                                          "allowed_signers_hash"),
                             "allowed_signers_hash", exc.hint or ""))


def _validated_config(scan: _Scan) -> Any:
    from mlopsctl import manifests as mf

    scan.config = mf.load(scan.ws.config_path, mf.Config, ".mlops/config.yaml")
    return scan.config


def _report_for(note: bytes | None, env: str) -> dict[str, Any] | None:
    if not note:
        return None
    try:
        doc = json.loads(note)
    except ValueError:
        return None
    section = doc.get(NOTE_SECTION) if isinstance(doc, dict) else None
    report = section.get(env) if isinstance(section, dict) else None
    return report if isinstance(report, dict) else None


_NEEDS_REPORT = "needs a report"


def _check_gates(scan: _Scan, registry: reg.Registry) -> None:
    environments = scan.config.environments if scan.config is not None else {}
    verdicts: list[tuple[reg.ModelState, reg.Event, str]] = []
    for state in registry.models.values():
        assigns = sorted((e for e in state.events if e.kind == T.ASSIGN and e.stage),
                         key=lambda e: (e.timestamp, e.counter or 0))
        for i, event in enumerate(assigns):
            problem = _gate_problem(scan, state, event, assigns[:i], environments)
            if problem:
                verdicts.append((state, event, problem))
    # Reports are read only for the stage tags that were not recorded by a passing promotion.
    wanted = {e.commit for _, e, p in verdicts if p == _NEEDS_REPORT}
    notes = {c: b for c, b in notes_map(scan.ws.root, NOTES_REF).items() if c in wanted} \
        if wanted else {}
    contents = read_objects(scan.ws.root, list(notes.values()))
    for state, event, problem in verdicts:
        if problem == _NEEDS_REPORT:
            note = contents.get(notes.get(event.commit, ""))
            problem = _report_problem(scan, state, event, note) or ""
        if problem:
            scan.add(Finding("gates", f"{event.tag}: {problem}",
                             hint=f"mlopsctl validate {state.name}@"
                             f"{(event.version or 'VERSION').removeprefix('v')} "
                             f"--env {event.stage}  (then promote with mlopsctl)"))


def _gate_problem(scan: _Scan, state: reg.ModelState, event: reg.Event,
                  earlier: list[reg.Event], environments: dict[str, Any]) -> str | None:
    """What is wrong with one assignment, None, or _NEEDS_REPORT (the note must say)."""
    env, version = event.stage or "", event.version or ""
    if version not in state.versions:
        return f"assigns {env} to commit {event.commit[:12]}, which has no registered version"
    data = scan.event_data(event)
    if data.get("rollback") is True:
        if any(e.stage == env and e.version == version for e in earlier):
            return None
        return f"a rollback to {version}, which was never live in {env}"
    if env not in environments:
        return f"'{env}' is not an environment in .mlops/config.yaml: no gates apply there"
    for required in environments[env].requires:
        if not any(e.stage == required and e.version == version for e in earlier):
            return f"{version} entered {env} before {required}"
    validation = data.get("validation")
    if data.get("event") == "promote" and isinstance(validation, dict) \
            and validation.get("passed") is True:
        return None
    return _NEEDS_REPORT


def _report_problem(scan: _Scan, state: reg.ModelState, event: reg.Event,
                    note: bytes | None) -> str | None:
    env = event.stage or ""
    report = _report_for(note, env)
    sha = _SHA.search(state.versions[event.version or ""].registration.message)
    if report and report.get("passed") is True and \
            (sha is None or report.get("artifact_sha256") == sha.group(1)):
        return None
    recorded = bool(scan.event_data(event).get("recorded"))
    how = "recorded without a passing validation" if recorded \
        else "not recorded by `mlopsctl promote` (gto assign, or a tag by hand)"
    return f"{how}, and no passing validation report for {env} is in the version's note"


def _check_remote(scan: _Scan) -> None:
    from mlopsctl.project import Project
    from mlopsctl.teamsync import missing_blobs

    if scan.config is None:
        return
    project = Project(scan.ws, _validated_config(scan))
    try:
        missing, checked = missing_blobs(project)
    except MlopsError as exc:
        scan.add(Finding("remote", exc.message, hint=exc.hint or ""))
        return
    scan.report.blobs_checked = checked
    for name in missing:
        scan.add(Finding("remote", f"the stored blob of {name} is missing from the artifact "
                         f"remote {project.remote.describe()}",
                         hint="push it from a clone that has it, or deregister the version"))


def _unpushed(root: Path, remote: str, names: set[str]) -> set[str]:
    """Those of ``names`` (tag names) that ``remote`` does not have: one ``git ls-remote``."""
    from mlopsctl.errors import EnvironmentProblem

    try:
        out = git(root, "ls-remote", "--tags", remote).decode(errors="replace")
    except GitFailed as exc:
        raise EnvironmentProblem(f"cannot list the tags of git remote '{remote}': "
                                 f"{exc.stderr.strip()}",
                                 hint="check the remote's name and that it is reachable") from exc
    theirs = {line.split("\t", 1)[1].removeprefix("refs/tags/").removesuffix("^{}")
              for line in out.splitlines() if "\t" in line}
    return names - theirs


def _check_push(scan: _Scan, records: list[Any], remote: str) -> None:
    """Before a push: the registry tags the remote lacks must carry valid signatures, where
    ``signing: required``."""
    from mlopsctl.project import Project
    from mlopsctl.signing import verify_signatures

    events = {r.name for r in records if r.annotated and T.parse_tag(r.name) is not None}
    outgoing = _unpushed(scan.ws.root, remote, events)
    scan.report.outgoing = sorted(outgoing)
    if not outgoing or scan.config is None or scan.config.signing != "required":
        return
    project = Project(scan.ws, _validated_config(scan))
    try:
        checks = verify_signatures(project)
    except MlopsError as exc:
        scan.add(Finding("signatures", exc.message, ".mlops/config.yaml", hint=exc.hint or ""))
        return
    for check in checks:
        if check.tag in outgoing and not check.ok:
            scan.add(Finding("signatures", f"{check.tag} (not yet on {remote}): {check.problem}",
                             hint="sign it (git tag -s) or delete it before pushing"))


def run_checks(start: Path | None = None, paths: Sequence[str] = (), remote: bool = False,
               push_remote: str | None = None) -> CheckReport:
    """Every check, every finding. With ``paths`` (as pre-commit passes them), only those files
    are checked, plus the pins; without, the whole registry: files, tags, stage events. With
    ``push_remote``, also the signatures of the tags that remote does not have yet."""
    ws = Workspace.find(start)
    ws.require_initialized()
    report = CheckReport(ws.root)
    scan = _Scan(ws, report, _Cache(ws.git_dir / "mlopsctl" / "check-cache.json"))
    full = not paths
    files = _files(ws, paths, _deploy_root(ws))
    scan.index = unchanged_ids(ws.root, MLOPS_DIR)
    if ws.rel(ws.config_path) not in files:
        files.insert(0, ws.rel(ws.config_path))  # needed by the pin and gates checks
    for rel in files:
        _check_file(scan, rel)
    _pin(scan)
    # The tags matter to the whole registry, to manifests, and before a push; a commit that
    # touches only config, policy or cards (the common pre-commit case) needs none of them.
    needs_tags = full or bool(scan.manifests) or bool(push_remote)
    names: list[str] = []
    records: list[TagRecord] = []
    registry = reg.build([])
    if needs_tags:  # through the tag index: warm, nothing but its header is read
        index = reg.open_index(ws.root)
        names = index.tag_names()
        records = sorted((r for m in index.summaries() for r in index.records(m)),
                         key=lambda r: r.name)
        registry = reg.load(ws.root, index=index)
    report.tags = len(names)
    scan.tag_objects = {r.name: r.tag_sha for r in records if r.annotated}
    specs, ids = _tagged_ids(scan, registry, full)
    _check_immutable(scan, specs, ids)
    _check_artifacts(scan)
    if full:
        _check_tags(scan, names, records)
        _check_gates(scan, registry)
    if remote:
        _check_remote(scan)
    if push_remote:
        _check_push(scan, records, push_remote)
    scan.cache.save()
    return report


# --- check-ref: what one pushed tag did -----------------------------------------------------------


def describe_ref(ref: str, start: Path | None = None) -> dict[str, Any]:
    """The registry event a tag records: event, model, version, stage, actor, counter, whether
    it is signed (and, where an allowed-signers file is pinned, whether the signature holds).
    UsageError (exit 2) for a ref that is not a registry event."""
    from mlopsctl.signing import event_tags

    ws = Workspace.find(start)
    name = ref.removeprefix("refs/tags/")
    parsed = T.parse_tag(name)
    hint = "pass a registry tag such as churn@v1.2.0 or churn#production#3 (in CI: the pushed " \
        "ref, e.g. $GITHUB_REF or $CI_COMMIT_TAG)"
    if ref.startswith("refs/") and not ref.startswith("refs/tags/"):
        raise UsageError(f"{ref} is not a tag, so not a registry event", hint=hint)
    if parsed is None or parsed.kind == T.CREATE:
        raise UsageError(f"'{name}' is not a registry event", hint=hint)
    records = read_tags(ws.root, T.ref_patterns(parsed.model))  # the model's tags only
    record = next((r for r in records if r.name == name), None)
    if record is None:
        raise UsageError(f"there is no tag '{name}' in this repository",
                         hint="fetch it first: git fetch origin tag " + name)
    if not record.annotated:
        raise UsageError(f"'{name}' is a lightweight tag: GTO and mlopsctl record no event in it",
                         hint=hint)
    registry = reg.build(records)
    state = registry.model(parsed.model)
    event = next((e for e in (state.events if state else []) if e.tag == name), None)
    data = event.data if event is not None else {}
    version = event.version if event is not None else parsed.version
    signed = next((t for t in event_tags(ws.root, parsed.model) if t.name == name), None)
    out: dict[str, Any] = {
        "ref": f"refs/tags/{name}", "tag": name, "event": parsed.kind, "model": parsed.model,
        "version": version, "stage": parsed.stage, "counter": parsed.counter,
        "commit": record.commit, "actor": data.get("actor")
        or f"{record.tagger_name} <{record.tagger_email}>",
        "tagger": f"{record.tagger_name} <{record.tagger_email}>", "date": record.date_iso,
        "rollback": data.get("rollback") is True, "recorded_by_mlopsctl": bool(data),
        "signed": bool(signed and signed.signature.strip()), "signature_ok": None,
        "signer": None, "signature_problem": None,
        "message": record.message.split("\n", 1)[0].strip(),
    }
    if state is not None and version in state.versions:
        out["active"] = not state.versions[version].deregistered
    _signature(ws, parsed.model, name, out)
    return out


def _signature(ws: Workspace, model: str, name: str, out: dict[str, Any]) -> None:
    """Fill ``signature_ok``/``signer`` when the registry pins an allowed-signers file."""
    from mlopsctl import manifests as mf
    from mlopsctl.project import Project
    from mlopsctl.signing import verify_signatures

    try:
        project = Project(ws, mf.load(ws.config_path, mf.Config, ".mlops/config.yaml"))
    except MlopsError:
        return
    if not project.config.allowed_signers:
        return
    try:
        checks = verify_signatures(project, model)
    except MlopsError as exc:
        out["signature_problem"] = exc.message
        return
    mine = next((c for c in checks if c.tag == name), None)
    if mine is not None:
        out.update(signature_ok=mine.ok, signer=mine.signer,
                   signature_problem=mine.problem or None)
