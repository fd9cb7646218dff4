"""Validation gates: the service behind ``mlopsctl validate``.

Nothing is taken on trust: the artifact is fetched and its sha256 checked, loaded safely in a
worker process with a time limit, its metrics are recomputed on the holdout set, latency is
measured, and the policy is scored. The report is stored as a git note on the version's commit,
so promotion can rely on a fresh passing report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlopsctl import manifests as mf
from mlopsctl import policy as pol
from mlopsctl import registry as reg
from mlopsctl.errors import EnvironmentProblem, UsageError
from mlopsctl.loading.sandbox import Limits, run_worker, unnamed_file
from mlopsctl.progress import Reporter
from mlopsctl.project import Project

REPORT_SCHEMA = 1
NOTE_SECTION = "validations"
DEFAULT_TOLERANCE = 0.02


@dataclass
class ValidateRequest:
    ref: str
    env: str = "staging"
    data: Path | None = None
    target: str | None = None
    latency_runs: int = 200
    timeout: float = 600.0
    remember: bool = True  # a holdout given with --data goes into a card that has none
    drop: list[str] = field(default_factory=list)  # holdout columns that are no feature (IDs)
    record: bool = True  # False: recompute only, write no note (`verify --release`)


def _holdout(project: Project, req: ValidateRequest, model: str) -> tuple[Path, str, bool]:
    """(holdout file, target column, whether the card should learn them)."""
    card = project.card(model)
    if req.data is not None:
        if not req.target:
            raise UsageError("--data needs --target COLUMN")
        learn = req.remember and (card is None or card.holdout is None)
        return Path(req.data), req.target, learn
    if card and card.holdout:
        return project.root / card.holdout.path, req.target or card.holdout.target, False
    raise UsageError(f"no holdout set for {model}",
                     hint=f"mlopsctl validate {req.ref} --data holdout.csv --target label  "
                     "(remembered in the model card)")


def _materialise(project: Project, path: Path) -> Path:
    """The holdout file, pulled from DVC first when only its pointer is present."""
    if path.is_file():
        return path
    pointer = path.with_name(path.name + ".dvc")
    if pointer.is_file():
        from mlopsctl.store.remote import _dvc_repo

        repo = _dvc_repo(project.root)
        try:
            repo.pull(targets=[str(pointer.resolve())])
        except Exception as exc:
            raise EnvironmentProblem(f"could not pull {path} from DVC: {exc}") from None
        finally:
            repo.close()
        if path.is_file():
            return path
    raise UsageError(f"holdout file {path} does not exist")


def worker_limits(project: Project) -> Limits:
    w = project.config.worker
    return Limits(memory_mb=w.memory_mb, cpu_seconds=w.cpu_seconds, file_size_mb=w.file_size_mb)


def trusted_types(project: Project) -> tuple[list[str], list[str]]:
    """The policy's ``trusted_types`` and where the worker imports them from (the repo)."""
    policy = mf.load(project.ws.policy_path, mf.Policy, ".mlops/policy.yaml")
    types = list(policy.trusted_types)
    return types, ([str(project.root)] if types else [])


def run_model(project: Project, manifest: mf.VersionManifest, request: dict[str, Any],
              timeout: float, reporter: Reporter | None = None) -> dict[str, Any]:
    """Restore the version's artifact into an unnamed file (sha256 verified) and run one worker
    request on it in the sandbox: nothing decrypted is ever left on disk."""
    from mlopsctl.artifacts import restore_into

    types, path = trusted_types(project)
    request = {**request, "format": manifest.artifact.format, "trusted_types": types}
    with unnamed_file() as fh:
        restore_into(project, manifest, fh, reporter or Reporter())
        return run_worker(request, timeout, worker_limits(project), artifact=fh, sys_path=path)


def _gates(env: mf.Environment, model: str, values: dict[str, float]) -> list[dict[str, Any]]:
    out = []
    for name, gate in env.gates_for(model).items():
        value = values.get(name)
        if value is None:
            out.append({"gate": name, "min": gate.min, "max": gate.max, "value": None,
                        "applicable": False, "passed": True})
            continue
        ok = (gate.min is None or value >= gate.min) and (gate.max is None or value <= gate.max)
        out.append({"gate": name, "min": gate.min, "max": gate.max, "value": value,
                    "applicable": True, "passed": ok})
    return out


def _tolerance(policy: mf.Policy) -> tuple[float, float]:
    """(absolute, relative) tolerance of the policy's ``reported_consistent`` rule."""
    for rule in policy.rules:
        if rule.check == "reported_consistent":
            return pol.tolerances(rule.params)
    return DEFAULT_TOLERANCE, pol.DEFAULT_RELATIVE_TOLERANCE


def validate(project: Project, req: ValidateRequest, reporter: Reporter | None = None
             ) -> dict[str, Any]:
    from mlopsctl.artifacts import resolve

    reporter = reporter or Reporter()
    policy_hash = project.require_policy_pin()
    project.require_role("validate", req.env)
    if req.env not in project.config.environments:
        raise UsageError(f"unknown environment '{req.env}'",
                         hint="environments: " + ", ".join(project.config.environments))
    environment = project.config.environments[req.env]
    registry = reg.load(project.root)
    found = resolve(project, registry, req.ref)
    manifest = found.manifest
    holdout, target, learn = _holdout(project, req, manifest.model)
    holdout = _materialise(project, holdout)
    policy = mf.load(project.ws.policy_path, mf.Policy, ".mlops/policy.yaml")
    card = project.card(manifest.model)

    result = run_model(project, manifest, {
        "holdout": str(holdout.resolve()), "target": target, "drop": list(req.drop),
        "latency_runs": req.latency_runs, "warmup": 10,
    }, req.timeout, reporter)

    if result.get("usage"):
        raise UsageError(str(result.get("error")), hint="pick the label column with --target")
    report = _report_skeleton(project, manifest, found.entry, req.env, policy_hash, holdout,
                              target)
    if not result.get("ok"):
        report.update(passed=False, status="refused" if result.get("refused") else "error",
                      error=result.get("error"), refused_globals=result.get("globals", []))
        if req.record:
            _store(project, found.entry.commit, req.env, report)
        return report

    metrics: dict[str, float] = result["metrics"]
    latency: dict[str, float] = result["latency"]
    gaps = pol.reported_gaps(manifest.metrics, metrics, *_tolerance(policy))
    findings = [f"reported {k} = {a:.4g} but recomputed {b:.4g}" for k, (a, b) in gaps.items()]
    evidence = pol.Evidence(metrics=metrics, reported=manifest.metrics, latency=latency,
                            manifest=manifest, card=card, artifact_verified=True,
                            findings=tuple(findings), task=result["task"])
    scored = pol.evaluate(policy, evidence)
    values = dict(metrics)
    values.update({f"latency_{k}": v for k, v in latency.items()})
    values["compliance"] = scored.compliance
    gates = _gates(environment, manifest.model, values)
    passed = all(g["passed"] for g in gates)
    report.update(
        passed=passed, status="passed" if passed else "failed", task=result["task"],
        rows=result["rows"], model_class=result["model_class"],
        metrics={k: {"recomputed": v, "reported": manifest.metrics.get(k)}
                 for k, v in metrics.items()},
        reported_only={k: v for k, v in manifest.metrics.items() if k not in metrics},
        latency=latency, gates=gates, findings=findings,
        compliance={"score": scored.compliance,
                    "required": environment.gates_for(manifest.model).get(
                        "compliance", mf.Gate()).min,
                    "rules": [o.__dict__ for o in scored.outcomes]},
        timings=result.get("timings", {}),
    )
    if learn:
        report["holdout_remembered"] = _learn_holdout(project, manifest.model, holdout, target)
    if req.record:
        _store(project, found.entry.commit, req.env, report)
    return report


def _report_skeleton(project: Project, manifest: mf.VersionManifest, entry: reg.VersionEntry,
                     env: str, policy_hash: str, holdout: Path, target: str) -> dict[str, Any]:
    from mlopsctl.gitops.identity import find_identity

    who = find_identity(project.root)
    try:
        holdout_rel = holdout.resolve().relative_to(project.root).as_posix()
    except ValueError:
        holdout_rel = str(holdout)
    from mlopsctl.fsio import sha256_file

    return {
        "schema_version": REPORT_SCHEMA,
        "model": manifest.model,
        "version": manifest.version,
        "commit": entry.commit,
        "environment": env,
        "validated_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        .replace("+00:00", "Z"),
        "validated_by": str(who) if who else None,
        "artifact_sha256": manifest.artifact.sha256,
        "policy_hash": policy_hash,
        "holdout": {"path": holdout_rel, "target": target, "sha256": sha256_file(holdout)},
    }


def _store(project: Project, commit: str, env: str, report: dict[str, Any]) -> None:
    """Write the report into the version's note; signed by the validator (ssh-keygen, over its
    canonical JSON) when signing is on: git does not sign the commits of notes."""
    from mlopsctl.fsio import file_lock
    from mlopsctl.gitops.notes import merge_note
    from mlopsctl.signing import should_sign

    if should_sign(project.config, project.root):
        from mlopsctl.attest import REPORT_NAMESPACE, sign

        report["signature"] = sign(project.root, report, REPORT_NAMESPACE)

    with file_lock(project.ws.lock_path):
        merge_note(project.root, commit, NOTE_SECTION, env, report)


def _learn_holdout(project: Project, model: str, holdout: Path, target: str) -> str | None:
    """Remember the holdout in the model card, when it lies inside the repo: the commit."""
    from mlopsctl.fsio import file_lock
    from mlopsctl.gitops import refs

    try:
        rel = holdout.resolve().relative_to(project.root).as_posix()
    except ValueError:
        return None
    ws = project.ws
    with file_lock(ws.lock_path):
        card = project.card(model) or mf.ModelCard(name=model)
        card.holdout = mf.Holdout(path=rel, target=target)
        files = {ws.rel(ws.card_path(model)): mf.dump(card)}
        head = refs.head_commit(project.root)
        commit = refs.commit_files(project.root, files, f"mlopsctl: {model} holdout is {rel}",
                                   head)
        refs.sync_worktree(project.root, files)
    return commit


def latest_report(project: Project, commit: str, env: str) -> dict[str, Any] | None:
    from mlopsctl.gitops.notes import read_note

    section = read_note(project.root, commit).get(NOTE_SECTION, {})
    report = section.get(env)
    return report if isinstance(report, dict) else None
