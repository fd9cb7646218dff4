"""The Python API, for notebooks and pipelines. It calls the same services as the CLI.

    from mlopsctl import MLOpsManager, VersionPolicy
    manager = MLOpsManager()                      # the registry containing the current directory
    v = manager.create_model_version(
        model_name="churn", model_path="model.pkl", config_path="config.json",
        performance_metrics={"accuracy": 0.91}, version_policy=VersionPolicy.MINOR,
        data_paths=["data/train.csv"], holdout="data/holdout.csv", target="churned",
        description="Predicts churn from usage", intended_use="Retention offers only")
    v.version, v.constitutional_compliance_score  # '0.2.0', 1.0 (validated for staging)
    result = manager.deploy_model("churn", v.version)  # staging, then production
    result.deployment_status, result.gate, result.reason

Errors: a gate that says no is not an exception. ``deploy_model``, ``promote_model`` and
``rollback_model`` return a ``DeploymentResult`` whose status is ``REFUSED``, naming the gate
(``policy``, ``access``, ``order``, ``validation``, ``smoke``, ``approval``, ``conflict``) and
why; ``validate_model`` returns the report, passed or not. Exceptions are for misuse and the
environment, all ``mlopsctl.errors.MlopsError`` with a ``message`` and a ``hint``:
``UsageError`` (bad arguments, unknown model or version), ``EnvironmentProblem`` (not a
registry, no key, no git identity, remote unreachable), ``CheckFailed`` from
``create_model_version``, ``set_model_card`` and ``approve_model`` when the policy pin or your
role forbids it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from mlopsctl import manifests as mf
from mlopsctl.errors import CheckFailed, ConflictError, UsageError
from mlopsctl.project import Project


class VersionPolicy(str, Enum):
    """Which part of the version a new registration bumps."""

    MAJOR = "major"
    MINOR = "minor"
    PATCH = "patch"


@dataclass
class MLOpsConfig:
    """How the old system was configured, mapped onto the registry.

    ``storage_root``: a path in (or below) the registry's git repository; the registry is the
    repository containing it (mlopsctl keeps everything in git and the DVC remote, so there is no
    separate storage directory). ``constitutional_hash``: the policy hash you expect; compared
    with the registry's pin and reported (``constitutional_hash_verified``), since the pin itself
    already gates every release. ``performance_targets``: overrides of
    ``.mlops/config.yaml``'s ``performance_targets`` for this process (``response_time_ms``,
    ``constitutional_compliance``, ``model_accuracy``, ``availability``, ``cost_savings``).
    """

    storage_root: str | os.PathLike[str] = "."
    constitutional_hash: str | None = None
    performance_targets: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = set(mf.PerformanceTargets.model_fields)
        unknown = sorted(set(self.performance_targets) - known)
        if unknown:
            raise UsageError(f"unknown performance target(s): {', '.join(unknown)}",
                             hint=f"known targets: {', '.join(sorted(known))}")
        self.performance_targets = {k: float(v) for k, v in self.performance_targets.items()}

    @classmethod
    def load(cls, repo_path: str | os.PathLike[str] = ".") -> MLOpsConfig:
        """The configuration a registry has on disk."""
        project = Project.open(Path(repo_path))
        return cls(storage_root=project.root,
                   constitutional_hash=project.config.constitutional_hash,
                   performance_targets=project.config.performance_targets.model_dump())


class ModelVersion(mf.VersionManifest):
    """A registered version: its manifest, where it lives in git, and its compliance."""

    tag: str | None = None
    commit: str | None = None
    # The policy score: from the version's validation when one ran (compliance_source names
    # the environment), else the best the rules judged at registration still allow.
    constitutional_compliance_score: float | None = None
    compliance_source: str | None = None  # 'validation:staging' | 'forecast'
    validation_passed: bool | None = None

    @property
    def model_id(self) -> str:
        return f"{self.model}@{self.version}"

    @property
    def git_commit_hash(self) -> str | None:
        return self.commit


class DeploymentStatus(str, Enum):
    DEPLOYED = "deployed"  # live where asked (also when it already was)
    ROLLED_BACK = "rolled_back"
    REFUSED = "refused"  # a gate said no: see gate and reason


@dataclass
class DeploymentResult:
    """What a deployment, promotion or rollback did, or which gate refused it and why."""

    model_name: str
    model_version: str
    deployment_status: DeploymentStatus
    environments: list[str] = field(default_factory=list)  # where it is live now
    staging_validation_passed: bool | None = None  # None: staging was not part of it
    production_promotion_success: bool = False
    gate: str | None = None
    reason: str | None = None
    hint: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # promotion.ReleaseResult docs
    constitutional_compliance_score: float | None = None
    constitutional_compliance_verified: bool = False
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    completed_at: datetime | None = None

    @property
    def succeeded(self) -> bool:
        return self.deployment_status is not DeploymentStatus.REFUSED

    @property
    def deployment_id(self) -> str | None:
        """The newest event tag written (``MODEL#ENV#N``), None when nothing was recorded."""
        tags = [e["tag"] for e in self.events if e.get("tag")]
        return tags[-1] if tags else None

    def to_json(self) -> dict[str, Any]:
        doc = dict(self.__dict__)
        doc.update(deployment_status=self.deployment_status.value,
                   started_at=self.started_at.isoformat(),
                   completed_at=self.completed_at.isoformat() if self.completed_at else None,
                   deployment_id=self.deployment_id, succeeded=self.succeeded)
        return doc


def _late_gate(exc: CheckFailed, action: str) -> str:
    """The gate behind a refusal that came after the policy, access and order checks passed
    (promotion checks in that order): the smoke test, approvals, a lost race, else the
    validation gates."""
    if isinstance(exc, ConflictError):
        return "conflict"
    text = exc.message.lower()
    if "smoke test" in text or "crashed" in text:
        return "smoke"
    if "approv" in text:
        return "approval"
    return "validation" if action == "promote" else "check"


def _number(version: str | None) -> str | None:
    return version.removeprefix("v") if version else None


class MLOpsManager:
    """Registry operations on one repository.

    ``MLOpsManager()`` opens the registry containing the current directory;
    ``MLOpsManager("path/to/repo")`` or ``MLOpsManager(MLOpsConfig(storage_root=...))`` another.
    """

    def __init__(self, repo_path: str | os.PathLike[str] | MLOpsConfig | None = None,
                 config: MLOpsConfig | None = None) -> None:
        if isinstance(repo_path, MLOpsConfig):
            config, repo_path = repo_path, None
        self.config = config or MLOpsConfig()
        start = Path(repo_path) if repo_path is not None else Path(self.config.storage_root)
        self.project = Project.open(_existing(start))
        if self.config.performance_targets:
            merged = {**self.project.config.performance_targets.model_dump(),
                      **self.config.performance_targets}
            self.project.config.performance_targets = mf.PerformanceTargets(**merged)
        self.config.performance_targets = self.project.config.performance_targets.model_dump()

    @property
    def root(self) -> Path:
        return self.project.root

    @property
    def constitutional_hash(self) -> str:
        """The policy hash this registry pins."""
        return self.project.config.constitutional_hash

    @property
    def constitutional_hash_verified(self) -> bool:
        """The expected hash (if any) is the pinned one, and the policy matches its pin."""
        expected = self.config.constitutional_hash
        return (expected in (None, self.constitutional_hash)
                and self.project.policy_drift() is None)

    # --- versions ------------------------------------------------------------------------

    def create_model_version(
        self,
        model_name: str,
        model_path: str | os.PathLike[str],
        config_path: str | os.PathLike[str] | None = None,
        performance_metrics: Mapping[str, float] | None = None,
        version_policy: VersionPolicy | str = VersionPolicy.MINOR,
        version: str | None = None,
        params: Mapping[str, Any] | None = None,
        data_paths: Sequence[str | os.PathLike[str]] = (),
        message: str = "",
        metadata: Mapping[str, Any] | None = None,
        holdout: str | os.PathLike[str] | None = None,
        target: str | None = None,
        description: str | None = None,
        intended_use: str | None = None,
        owner: str | None = None,
        validate: bool | None = None,
        validate_env: str = "staging",
    ) -> ModelVersion:
        """Register a new version (what ``mlopsctl bump`` does) and return it.

        Card fields (``description``, ``intended_use``, ``owner``) and the ``holdout`` set with
        its ``target`` column go into the model card. With a holdout known (given or on the
        card) the version is validated for ``validate_env`` right away (``validate=False``
        skips it), so ``constitutional_compliance_score`` is the policy's verdict on recomputed
        metrics; otherwise it is the best score still reachable (static rules judged).
        ``metadata`` is recorded with the params."""
        from mlopsctl.versioning import BumpRequest, bump

        metrics = {}
        for name, value in (performance_metrics or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UsageError(f"metric '{name}' is not a number: {value!r}")
            metrics[str(name)] = float(value)
        card = {k: v for k, v in (("description", description),
                                  ("intended_use", intended_use), ("owner", owner)) if v}
        if holdout is not None and not target:
            raise UsageError("holdout= needs target= (the label column)")
        req = BumpRequest(
            model=model_name,
            artifact=Path(model_path),
            part=None if version else VersionPolicy(version_policy).value,
            version=version,
            metrics=metrics,
            params={**dict(params or {}), **({"metadata": dict(metadata)} if metadata else {})},
            data=[Path(p) for p in data_paths],
            config_file=Path(config_path) if config_path else None,
            message=message,
            card=card,
            holdout=Path(holdout) if holdout is not None else None,
            target=target,
        )
        result = bump(self.project, req)
        found = ModelVersion(**result.manifest.model_dump(), tag=result.tag,
                             commit=result.commit)
        card_now = self.project.card(model_name)
        if validate is None:
            validate = bool(card_now and card_now.holdout)
        if validate:
            report = self.validate_model(model_name, found.version, validate_env)
            found.constitutional_compliance_score = _compliance(report)
            found.compliance_source = f"validation:{validate_env}"
            found.validation_passed = bool(report.get("passed"))
        else:
            found.constitutional_compliance_score = self._forecast(result.manifest, card_now)
            found.compliance_source = "forecast"
        return found

    def _forecast(self, manifest: mf.VersionManifest, card: mf.ModelCard | None) -> float:
        from mlopsctl import policy as pol

        policy = mf.load(self.project.ws.policy_path, mf.Policy, ".mlops/policy.yaml")
        return pol.forecast(policy, manifest, card).best_compliance

    def get_model_version(self, model_name: str, version: str = "latest") -> ModelVersion:
        """A registered version's manifest (``version`` may be 'latest' or an environment
        given as '#staging')."""
        from mlopsctl import registry as reg
        from mlopsctl.artifacts import resolve

        ref = f"{model_name}{version}" if version.startswith("#") else f"{model_name}@{version}"
        found = resolve(self.project, reg.load(self.root), ref)
        return ModelVersion(**found.manifest.model_dump(), tag=found.entry.registration.tag,
                            commit=found.entry.commit)

    def list_models(self) -> dict[str, Any]:
        """``{model: {version, stage, registered, active}}``, as ``mlopsctl show --json``."""
        from mlopsctl import registry as reg
        from mlopsctl import views

        return views.summary(reg.load(self.root, gto_files=True))

    def fetch(self, ref: str, out: str | os.PathLike[str] | None = None,
              force: bool = False) -> Path:
        """Restore a verified copy of ``model@version`` or ``model#env``; returns its path."""
        from mlopsctl.artifacts import fetch

        return fetch(self.project, ref, Path(out) if out else None, force=force).path

    def verify(self, target: str | None = None) -> bool:
        from mlopsctl.artifacts import verify

        return all(c.ok for c in verify(self.project, target))

    # --- lifecycle (GTO's deprecate / deregister / unassign) -----------------------------

    def deprecate_model(self, model_name: str, message: str = "") -> dict[str, Any]:
        """``mlopsctl deprecate``: the tag MODEL@deprecated; environments keep what they serve
        (listed under ``still_live``)."""
        from mlopsctl.lifecycle import deprecate

        return deprecate(self.project, model_name, message).to_json()

    def deregister_version(self, model_name: str, version: str,
                           message: str = "") -> dict[str, Any]:
        """``mlopsctl deregister``: the tag MODEL@vX.Y.Z!#N (refused for a served version)."""
        from mlopsctl.lifecycle import deregister

        return deregister(self.project, model_name, version, message).to_json()

    def unassign_model(self, model_name: str, environment: str, version: str | None = None,
                       everything: bool = False, message: str = "") -> dict[str, Any]:
        """``mlopsctl unassign``: the tag MODEL#ENV!#N, then the deploy target follows;
        ``live`` says what the environment serves now."""
        from mlopsctl.lifecycle import unassign

        return unassign(self.project, model_name, environment, version, everything,
                        message).to_json()

    # --- card and validation -------------------------------------------------------------

    def set_model_card(self, model_name: str, description: str | None = None,
                       owner: str | None = None, intended_use: str | None = None,
                       task: str | None = None,
                       holdout: str | os.PathLike[str] | None = None,
                       target: str | None = None) -> mf.ModelCard:
        """Fill in the model card (committed on its own); returns the card."""
        from mlopsctl.cards import update_card

        fields = {"description": description, "owner": owner, "intended_use": intended_use,
                  "task": task}
        return update_card(self.project, model_name,
                           {k: v for k, v in fields.items() if v is not None},
                           Path(holdout) if holdout is not None else None, target)

    def validate_model(self, model_name: str, version: str = "latest",
                       environment: str = "staging",
                       holdout: str | os.PathLike[str] | None = None,
                       target: str | None = None, latency_runs: int = 200) -> dict[str, Any]:
        """Validate against an environment's gates (what ``mlopsctl validate`` does); the
        report is stored as a git note and returned, passed or not."""
        from mlopsctl.validation import ValidateRequest, validate

        req = ValidateRequest(ref=f"{model_name}@{version}", env=environment,
                              data=Path(holdout) if holdout is not None else None,
                              target=target, latency_runs=latency_runs)
        return validate(self.project, req)

    def approve_model(self, model_name: str, model_version: str,
                      environment: str = "production", message: str = "") -> dict[str, Any]:
        """Record your approval of this version's artifact for ``environment``
        (``mlopsctl approve``); returns the entry. Environments with ``approvals: N`` release
        only with N approvers other than the promoter. CheckFailed when your role may not
        approve there."""
        from mlopsctl.approvals import approve

        return approve(self.project, f"{model_name}@{model_version}", environment, message)

    # --- releases ------------------------------------------------------------------------

    def promote_model(self, model_name: str, model_version: str | None = None,
                      environment: str = "staging", message: str = "") -> DeploymentResult:
        """Release to one environment (``mlopsctl promote``)."""
        result = DeploymentResult(model_name, model_version or "latest",
                                  DeploymentStatus.DEPLOYED)
        self._release(result, model_name, model_version, environment, message)
        return self._finish(result)

    def deploy_model(self, model_name: str, model_version: str | None = None,
                     skip_staging: bool = False, message: str = "") -> DeploymentResult:
        """Release through staging to production (each step is ``mlopsctl promote``: gates,
        smoke test in the idle slot, event tag, atomic flip). ``skip_staging=True`` asks for
        production directly, which the order gate refuses unless the configuration lets
        production go without staging."""
        envs = self.project.config.environments
        path = ["production"] if skip_staging or "staging" not in envs else \
            ["staging", "production"]
        result = DeploymentResult(model_name, model_version or "latest",
                                  DeploymentStatus.DEPLOYED)
        for env in path:
            ok = self._release(result, model_name, model_version, env, message)
            if env == "staging":
                result.staging_validation_passed = ok
            else:
                result.production_promotion_success = ok
            if not ok:
                break
        return self._finish(result)

    def rollback_model(self, model_name: str, target_version: str | None = None,
                       environment: str = "production", message: str = "") -> DeploymentResult:
        """Flip an environment back (``mlopsctl rollback``): to the version warm in the other
        slot, or to ``target_version`` if it was live there before."""
        from mlopsctl.promotion import rollback

        result = DeploymentResult(model_name, target_version or "previous",
                                  DeploymentStatus.ROLLED_BACK)
        try:
            done = rollback(self.project, model_name, environment, target_version, message)
        except CheckFailed as exc:
            self._refused(result, exc, self._early_gate("rollback", model_name, None,
                                                        environment) or
                          _late_gate(exc, "rollback"))
        else:
            result.model_version = _number(done.version) or result.model_version
            result.events.append(done.to_json())
            result.environments.append(environment)
            result.production_promotion_success = environment == "production"
        return self._finish(result)

    def _release(self, result: DeploymentResult, model: str, version: str | None, env: str,
                 message: str) -> bool:
        from mlopsctl.promotion import promote

        try:
            done = promote(self.project, model, version, env, message)
        except CheckFailed as exc:
            gate = self._early_gate("promote", model, version, env) or _late_gate(exc, "promote")
            self._refused(result, exc, gate, model, version, env)
            return False
        result.model_version = _number(done.version) or result.model_version
        result.events.append(done.to_json())
        result.environments.append(env)
        score = done.validation.get("compliance")
        if score is not None:
            result.constitutional_compliance_score = float(score)
        return True

    def _early_gate(self, action: str, model: str, version: str | None,
                    env: str) -> str | None:
        """Which of the first checks a release makes refuses it (the same calls, in the same
        order as promotion: policy pin, role, order), or None when they all pass."""
        from mlopsctl import registry as reg
        from mlopsctl.access import require
        from mlopsctl.artifacts import resolve
        from mlopsctl.errors import MlopsError
        from mlopsctl.gitops.identity import require_identity
        from mlopsctl.promotion import order_problem

        try:
            self.project.require_policy_pin()
        except CheckFailed:
            return "policy"
        try:
            require(self.project, require_identity(self.root).email, action, env)
        except CheckFailed:
            return "access"
        environment = self.project.config.environments.get(env)
        if action != "promote" or environment is None:
            return None
        try:
            registry = reg.load(self.root)
            found = resolve(self.project, registry, f"{model}@{version or 'latest'}")
        except MlopsError:
            return None
        state = registry.model(model)
        if state is not None and order_problem(state, found.entry.version, environment):
            return "order"
        return None

    def _refused(self, result: DeploymentResult, exc: CheckFailed, gate: str,
                 model: str | None = None, version: str | None = None,
                 env: str | None = None) -> None:
        result.deployment_status = DeploymentStatus.REFUSED
        result.gate, result.reason, result.hint = gate, exc.message, exc.hint
        if result.gate == "validation" and model and env:
            failing = self._failing_gates(model, version, env)
            if failing:
                result.reason = f"{exc.message}: {failing}"

    def _failing_gates(self, model: str, version: str | None, env: str) -> str:
        from mlopsctl import registry as reg
        from mlopsctl.artifacts import resolve
        from mlopsctl.validation import latest_report

        try:
            found = resolve(self.project, reg.load(self.root), f"{model}@{version or 'latest'}")
        except UsageError:
            return ""
        report = latest_report(self.project, found.entry.commit, env) or {}
        parts = []
        for g in report.get("gates", []):
            if not g.get("passed"):
                bound = f">= {g['min']}" if g.get("min") is not None else f"<= {g['max']}"
                parts.append(f"{g['gate']} {g['value']:.4g} (needs {bound})")
        if report.get("error"):
            parts.append(str(report["error"]))
        return "; ".join(parts)

    def _finish(self, result: DeploymentResult) -> DeploymentResult:
        target = self.project.config.performance_targets.constitutional_compliance
        score = result.constitutional_compliance_score
        result.constitutional_compliance_verified = score is not None and score >= target
        result.completed_at = datetime.now(timezone.utc)
        return result

    # --- reading -------------------------------------------------------------------------

    def get_model_status(self, model_name: str) -> dict[str, Any]:
        """The model's versions and stages (``show``) and, per environment, what is live and
        whether the target matches (``status``)."""
        from mlopsctl.promotion import status

        models = self.list_models()
        if model_name not in models:
            raise UsageError(f"unknown model '{model_name}'", hint="mlopsctl show")
        return {"model": model_name, **models[model_name],
                "environments": status(self.project, model_name)}

    def get_mlops_dashboard(self, scrape: bool = True) -> dict[str, Any]:
        """The monitor's document (``mlopsctl monitor --once --json``): models, environments,
        live metrics scraped from each environment's ``metrics_url``, alerts."""
        import importlib.util

        if importlib.util.find_spec("mlopsctl.monitoring") is not None:
            from mlopsctl import monitoring

            return dict(monitoring.dashboard(self.project, scrape=scrape))
        from mlopsctl.promotion import status

        return {"source": "status", "models": self.list_models(),
                "environments": status(self.project)}


def _existing(path: Path) -> Path:
    """The path, or its nearest existing parent (``storage_root`` may name a directory the old
    system would have created)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _compliance(report: Mapping[str, Any]) -> float:
    score = report.get("compliance", {}).get("score")
    return float(score) if score is not None else 0.0
