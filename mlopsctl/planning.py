"""What a ``bump`` would do, before it does it: the version it would take, the lineage it would
record, and which policy rules would fail as things stand (``bump --dry-run``, which writes
nothing); and, after a real bump, whether the new version can ever pass an environment's
compliance gate, with the flag that fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsctl import manifests as mf
from mlopsctl import policy as pol
from mlopsctl import registry as reg
from mlopsctl import versioning as V
from mlopsctl.gitops import refs
from mlopsctl.gitops import tags as T
from mlopsctl.gitops.identity import find_identity
from mlopsctl.lineage import data_hash
from mlopsctl.project import Project

_EPSILON = 1e-9


# --- the forecast ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvForecast:
    env: str
    best: float  # the highest compliance validation could still reach
    required: float | None  # the environment's compliance gate

    @property
    def can_pass(self) -> bool:
        return self.required is None or self.best + _EPSILON >= self.required


@dataclass
class Preview:
    """What ``bump`` would register; nothing of it is written."""

    model: str
    version: str  # '0.2.0'
    tag: str
    parent_version: str | None
    artifact: dict[str, Any]
    lineage: mf.Lineage
    config_file: mf.FileHash | None
    card: mf.ModelCard
    card_changes: list[str]
    forecast: pol.Forecast
    environments: list[EnvForecast] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": True, "model": self.model, "version": self.version, "tag": self.tag,
            "parent_version": self.parent_version, "artifact": self.artifact,
            "lineage": self.lineage.model_dump(mode="json", exclude_none=True),
            "config_file": (self.config_file.model_dump(mode="json")
                            if self.config_file else None),
            "card": self.card.model_dump(mode="json", exclude_none=True),
            "card_changes": self.card_changes,
            "forecast": forecast_json(self.forecast, self.environments, self.model),
        }


def fixes(model: str, outcome: pol.RuleOutcome) -> list[str]:
    """What fixes a failed static rule, as flags of `bump` (or `mlopsctl card`)."""
    missing = outcome.detail.removeprefix("missing: ").split(", ") \
        if outcome.detail.startswith("missing: ") else []
    out = []
    if outcome.check == "card_fields":
        for name in missing:
            flag = f"--{name.replace('_', '-')} TEXT"
            out.append(f"{flag} (or later: mlopsctl card {model} {flag})")
        if not missing:
            out.append(f"mlopsctl card {model} --description TEXT --intended-use TEXT")
    elif outcome.check == "lineage_present":
        for name in missing:
            out.append({"data": "--data PATH (re-register: lineage is immutable)",
                        "params": "--params FILE (re-register: lineage is immutable)",
                        "code_commit": "commit your code first"}.get(name, name))
    elif outcome.check == "allowed_formats":
        out.append("save the model as .skops, .pkl, .joblib or .onnx")
    return out


def environments(project: Project, model: str, fc: pol.Forecast) -> list[EnvForecast]:
    out = []
    for name, env in project.config.environments.items():
        gates = env.gates_for(model)
        gate = gates.get("compliance")
        out.append(EnvForecast(name, fc.best_compliance, gate.min if gate else None))
    return out


def forecast_json(fc: pol.Forecast, envs: list[EnvForecast], model: str) -> dict[str, Any]:
    rules = [{"id": o.id, "check": o.check, "weight": o.weight,
              "result": "pass" if o.passed else "fail", "detail": o.detail,
              "fix": [] if o.passed else fixes(model, o)} for o in fc.judged]
    rules += [{"id": r.id, "check": r.check, "weight": r.weight, "result": "pending",
               "detail": "judged by `validate`", "fix": []} for r in fc.pending]
    return {"rules": rules, "best_compliance": fc.best_compliance,
            "environments": {e.env: {"best_compliance": e.best, "required": e.required,
                                     "can_pass": e.can_pass} for e in envs}}


def never_passes(project: Project, manifest: mf.VersionManifest,
                 card: mf.ModelCard | None) -> str | None:
    """A warning when the version cannot reach an environment's compliance gate as things
    stand, naming what fails and the flag that fixes it; None when it still can."""
    policy = mf.load(project.ws.policy_path, mf.Policy, ".mlops/policy.yaml")
    fc = pol.forecast(policy, manifest, card)
    return warning(manifest.model, manifest.version, fc,
                   environments(project, manifest.model, fc))


def warning(model: str, version: str, fc: pol.Forecast, envs: list[EnvForecast]) -> str | None:
    blocked = [e for e in envs if not e.can_pass]
    if not blocked:
        return None
    need = max(e.required or 0.0 for e in blocked)
    reasons = "; ".join(f"{o.id} fails ({o.detail}): " + " / ".join(fixes(model, o))
                        for o in fc.failed)
    return (f"{model} v{version} can never pass {', '.join(e.env for e in blocked)} as things "
            f"stand: at most {pct(fc.best_compliance)} compliance, {pct(need)} required. "
            f"{reasons}")


def pct(value: float) -> str:
    return f"{value * 100:.3g} %"


def preview(project: Project, req: V.BumpRequest) -> Preview:
    """``bump --dry-run``: every check ``bump`` makes before writing, then what it would write.
    Reads only: no blob, no commit, no tag, no staging file."""
    T.check_name(req.model)
    root = project.root
    project.require_policy_pin()
    project.require_role("bump")
    refs.current_branch(root)
    card = project.card(req.model)
    artifact = V.check_inputs(root, req, card)
    data = [data_hash(root, Path(p)) for p in req.data]
    config = V._file_hash(root, req.config_file, "config file") if req.config_file else None
    version, parent = V._plan(reg.load(root), req)
    lineage = mf.Lineage(code_commit=refs.head_commit(root), code_dirty=V._is_dirty(root),
                         data=data, params=req.params)
    fmt = V.FORMATS.get(artifact.suffix.lower(), "binary")
    size = artifact.stat().st_size
    manifest = mf.VersionManifest(
        model=req.model, version=str(version), parent_version=parent, created_at="",
        created_by="", message=req.message, metrics=req.metrics, lineage=lineage,
        config_file=config, policy_hash=project.config.constitutional_hash,
        # hashes unknown before the stream: placeholders the schema would rightly refuse
        artifact=mf.ArtifactInfo.model_construct(
            path=V._display_path(root, artifact), format=fmt, sha256="", size=size,
            stored=mf.Stored.model_construct(codec="zstd", level=0, cipher="", size=0, md5="")))
    actor = find_identity(root)
    new_card, changes = _card_after(card, req, root, artifact, actor.email if actor else "")
    policy = mf.load(project.ws.policy_path, mf.Policy, ".mlops/policy.yaml")
    fc = pol.forecast(policy, manifest, new_card)
    return Preview(
        model=req.model, version=str(version),
        tag=T.format_tag(T.TagEvent(T.REGISTER, req.model, version.tag)),
        parent_version=parent,
        artifact={"path": V._display_path(root, artifact), "format": fmt, "size": size},
        lineage=lineage, config_file=config, card=new_card, card_changes=changes,
        forecast=fc, environments=environments(project, req.model, fc))


def _card_after(card: mf.ModelCard | None, req: V.BumpRequest, root: Path, artifact: Path,
                owner: str) -> tuple[mf.ModelCard, list[str]]:
    """The card as the bump would leave it (as ``versioning._publish`` builds it), and the
    fields that would change."""
    before = card.model_dump() if card else {}
    new = card.model_copy(deep=True) if card else mf.ModelCard(name=req.model, owner=owner)
    if not new.artifact and V._inside(root, artifact):
        new.artifact = V._display_path(root, artifact)
    for key, value in req.card.items():
        setattr(new, key, value)
    if req.holdout is not None:
        new.holdout = mf.Holdout(path=V._display_path(root, Path(req.holdout)),
                                 target=req.target or "")
    after = new.model_dump()
    changes = [k for k in after if k != "schema_version" and before.get(k) != after[k]]
    return new, changes

