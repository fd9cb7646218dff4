"""The ``kubernetes`` target: ``<output_dir>/<env>/<model>.yaml``, regenerated purely from
registry state (no timestamps: the same state renders the same bytes). Strategy ``argo-rollouts``
(default): an Argo Rollouts blueGreen ``Rollout``, the slot map in its annotations, plus its active
and preview Services. Strategy ``deployment``: a Deployment per slot and one Service whose
``mlopsctl.io/slot`` selector names the live slot (switching it is the flip). Pods fetch the
artifact themselves (an init container runs ``mlopsctl fetch``), so ``prepare`` only validates;
``activate`` writes the file and the caller commits it. The pods' main container runs
``mlopsctl serve --artifact`` on the fetched file, ready once the model is loaded
(``GET /v1/models/MODEL``)."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from mlopsctl.deploy import SLOTS, DeployedSlot, SlotPlan, TargetState
from mlopsctl.errors import EnvironmentProblem, UsageError
from mlopsctl.fsio import atomic_write
from mlopsctl.templates import read_template

G = "mlopsctl.io/"
DEFAULTS: dict[str, Any] = {
    "strategy": "argo-rollouts", "image": "ghcr.io/example/mlopsctl-serve:latest", "port": 8080,
    "replicas": 2, "key_secret": "mlopsctl-key", "output_dir": "deploy/kubernetes",
    "namespace": None,
}
STRATEGIES = {"argo-rollouts": "rollout.yaml", "deployment": "deployment.yaml"}
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "strategy": (lambda v: v in STRATEGIES, " or ".join(STRATEGIES)),
    "image": (lambda v: isinstance(v, str) and bool(re.fullmatch(r"\S+", v)), "an image name"),
    "port": (lambda v: type(v) is int and 0 < v < 65536, "an integer port (1-65535)"),
    "replicas": (lambda v: type(v) is int and v >= 0, "an integer >= 0"),
    "key_secret": (lambda v: isinstance(v, str) and len(v) <= 253
                   and bool(_DNS_SUBDOMAIN.fullmatch(v)), "a Secret name"),
    "output_dir": (lambda v: isinstance(v, str) and bool(v) and not v.startswith("/")
                   and ".." not in PurePosixPath(v).parts, "a relative path inside the repo"),
    "namespace": (lambda v: v is None or (isinstance(v, str) and len(v) <= 63
                                          and bool(_DNS_LABEL.fullmatch(v))), "a namespace name"),
}


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options with defaults filled in; UsageError names the first bad one."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise UsageError(f"unknown kubernetes target option(s): {', '.join(unknown)}",
                         hint=f"known options: {', '.join(DEFAULTS)}")
    opts = {**DEFAULTS, **options}
    for key, (ok, want) in _CHECKS.items():
        if not ok(opts[key]):
            raise UsageError(f"kubernetes target option {key}={opts[key]!r}: expected {want}",
                             hint="fix target_options of this environment in .mlops/config.yaml")
    return opts


def k8s_name(*parts: str) -> str:
    """A DNS-1123 label from registry names (``_`` becomes ``-``)."""
    name = "-".join(parts).replace("_", "-")
    if len(name) > 63 or not _DNS_LABEL.fullmatch(name):
        raise UsageError(f"'{name}' is not a valid Kubernetes name (DNS-1123 label, <= 63 chars)",
                         hint="use shorter model and environment names")
    return name


def bare(version: str) -> str:
    return version[1:] if version.startswith("v") else version


def label_value(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:63].strip("-_.")


def _manifest(manifests: Mapping[str, Any], model: str, version: str) -> Any:
    for key in (version, bare(version), "v" + bare(version)):
        if key in manifests:
            return manifests[key]
    raise EnvironmentProblem(f"no manifest for {model}@{version} to render the kubernetes target")


def _facts(manifests: Mapping[str, Any], model: str, version: str | None,
           prefix: str = "") -> dict[str, str]:
    """Annotations recording ``version`` and its artifact's sha256 ({} for an empty slot)."""
    if not version:
        return {}
    sha256 = str(_manifest(manifests, model, version).artifact.sha256)
    return {G + prefix + "version": bare(version), G + prefix + "sha256": sha256}


@functools.cache
def _skeleton(strategy: str) -> tuple[dict[str, Any], ...]:
    return tuple(yaml.safe_load_all(read_template(f"kubernetes/{STRATEGIES[strategy]}")))


def _object(skeleton: dict[str, Any], name: str, opts: dict[str, Any], labels: dict[str, str],
            notes: dict[str, str] | None = None) -> dict[str, Any]:
    obj = copy.deepcopy(skeleton)
    meta = {"name": name, "namespace": opts["namespace"],
            "labels": {"app.kubernetes.io/managed-by": "mlopsctl", **labels}, "annotations": notes}
    obj["metadata"] = {key: value for key, value in meta.items() if value}
    return obj


def _fill_pod(pod: dict[str, Any], plan: SlotPlan, slot: str | None, version: str | None,
              manifests: Mapping[str, Any], opts: dict[str, Any], labels: dict[str, str]) -> None:
    facts = _facts(manifests, plan.model, version)
    notes = {G + "model": plan.model, G + "environment": plan.env, **facts}
    env = [{"name": "MODEL_NAME", "value": plan.model}]
    spec, main = pod["spec"], pod["spec"]["containers"][0]
    if version is None:
        del spec["initContainers"]
    else:
        name = PurePosixPath(str(_manifest(manifests, plan.model, version).artifact.path)).name
        path = f"/models/{name if name not in ('', '.', '..') else 'model'}"
        labels = {**labels, G + "version": label_value(bare(version))}
        env += [{"name": "MODEL_VERSION", "value": bare(version)},
                {"name": "MODEL_SHA256", "value": facts[G + "sha256"]},
                {"name": "MODEL_PATH", "value": path}]
        init = spec["initContainers"][0]
        init["image"] = opts["image"]
        init["command"] = ["mlopsctl", "fetch", f"{plan.model}@{bare(version)}", "-o", path]
        init["env"][0]["valueFrom"]["secretKeyRef"]["name"] = opts["key_secret"]
    if slot is not None:
        labels = {**labels, G + "slot": slot}
        notes[G + "slot"] = slot
    pod["metadata"] = {"labels": labels, "annotations": notes}
    main["image"], main["env"] = opts["image"], env
    main["ports"][0]["containerPort"] = opts["port"]
    main["command"] = serve_command(plan, opts["port"], _format(manifests, plan.model, version))
    main["readinessProbe"]["httpGet"]["path"] = f"/v1/models/{plan.model}"


def serve_command(plan: SlotPlan, port: int, fmt: str) -> list[str]:
    """The pod's server: ``mlopsctl serve`` on the artifact the init container fetched, checked
    against its sha256. Version, path and hash come from the container's env (Kubernetes
    expands ``$(VAR)``), so a flip changes the env, not the command."""
    return ["mlopsctl", "serve", plan.model, "--env", plan.env, "--host", "0.0.0.0",
            "--port", str(port), "--artifact", "$(MODEL_PATH)", "--version", "$(MODEL_VERSION)",
            "--sha256", "$(MODEL_SHA256)", "--format", fmt]


def _format(manifests: Mapping[str, Any], model: str, version: str | None) -> str:
    if version is None:
        return "sklearn-pickle"
    return str(_manifest(manifests, model, version).artifact.format)


def render(plan: SlotPlan, manifests: Mapping[str, Any], options: Mapping[str, Any]) -> str:
    """The multi-document YAML for ``plan`` (manifests keyed by version, with or without 'v')."""
    opts = check_options(options)
    base = k8s_name(plan.model, plan.env)
    common = {G + "model": label_value(plan.model), G + "environment": label_value(plan.env)}
    live, skeleton = plan.live_version, _skeleton(opts["strategy"])
    live_slot = plan.live_slot if live else None
    docs: list[dict[str, Any]] = []
    if opts["strategy"] == "argo-rollouts":
        notes = {G + "live-slot": live_slot or "none"}
        for slot in SLOTS:
            notes.update(_facts(manifests, plan.model, plan.slots.get(slot), f"{slot}-"))
        docs.append(rollout := _object(skeleton[0], base, opts, common, notes))
        spec = rollout["spec"]
        spec["replicas"] = opts["replicas"] if live else 0
        spec["selector"]["matchLabels"] = dict(common)
        blue_green = spec["strategy"]["blueGreen"]
        blue_green["activeService"] = k8s_name(base, "active")
        blue_green["previewService"] = k8s_name(base, "preview")
        _fill_pod(spec["template"], plan, live_slot, live, manifests, opts, common)
        services = {k8s_name(base, role): common for role in ("active", "preview")}
    else:
        for slot in SLOTS:
            held, selector = plan.slots.get(slot), {**common, G + "slot": slot}
            notes = {G + "slot": slot, **_facts(manifests, plan.model, held)}
            docs.append(deployment := _object(skeleton[0], k8s_name(base, slot), opts, selector,
                                              notes))
            deployment["spec"]["replicas"] = opts["replicas"] if held and live else 0
            deployment["spec"]["selector"]["matchLabels"] = selector
            _fill_pod(deployment["spec"]["template"], plan, slot, held, manifests, opts, selector)
        services = {base: {**common, G + "slot": live_slot or "none"}}
    for name, selector in services.items():
        docs.append(service := _object(skeleton[1], name, opts, common))
        service["spec"]["selector"] = dict(selector)
        service["spec"]["ports"][0]["port"] = opts["port"]
    header = (f"# Generated by mlopsctl from registry state (model {plan.model}, environment "
              f"{plan.env}).\n# Do not edit by hand: mlopsctl rewrites this file on every "
              "deploy; change the registry instead.\n")
    return header + yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False,
                                       explicit_start=True, width=1000)


class KubernetesTarget:
    name = "kubernetes"

    def __init__(self, root: Path, options: Mapping[str, Any],
                 manifests: Callable[[str, str], Any]) -> None:
        self.root, self.options, self.lookup = root, dict(options), manifests
        self.opts = check_options(self.options)

    def rendered_path(self, env: str, model: str) -> Path:
        from mlopsctl.gitops.tags import path_part

        return self.root / self.opts["output_dir"] / path_part(env) / f"{path_part(model)}.yaml"

    def prepare(self, plan: SlotPlan, slot: str, manifest: Any, artifact: Path) -> None:
        """Nothing to stage (the cluster fetches the artifact); check the inputs only."""
        if slot not in SLOTS:
            raise UsageError(f"unknown slot '{slot}' (expected blue or green)")
        if manifest.model != plan.model:
            raise UsageError(f"manifest of {manifest.model} given for {plan.model}")
        if not re.fullmatch(r"[0-9a-f]{64}", str(manifest.artifact.sha256)):
            raise EnvironmentProblem(f"{plan.model}@{manifest.version}: no valid artifact sha256")

    def activate(self, plan: SlotPlan) -> None:
        """Write the rendered file atomically (the caller commits it)."""
        held = {v for v in (*plan.slots.values(), plan.live_version) if v}
        manifests = {v: self.lookup(plan.model, v) for v in sorted(held)}
        text = render(plan, manifests, self.options)
        atomic_write(self.rendered_path(plan.env, plan.model), text.encode())

    def state(self, env: str, model: str) -> TargetState:
        """The live slot and each slot's version recorded in the rendered file."""
        path = self.rendered_path(env, model)
        try:
            docs = [d for d in yaml.safe_load_all(path.read_bytes()) if isinstance(d, dict)]
            return _parse(docs)
        except (OSError, yaml.YAMLError, LookupError, TypeError, AttributeError, ValueError) as exc:
            detail = f"{path}: {'missing' if isinstance(exc, FileNotFoundError) else exc!r}"
            return TargetState(None, {s: DeployedSlot(None, None, False, detail) for s in SLOTS})


def _parse(docs: list[dict[str, Any]]) -> TargetState:
    def slot(notes: dict[str, Any], prefix: str) -> DeployedSlot:
        held = notes.get(G + prefix + "version")
        return DeployedSlot(f"v{held}" if held else None, notes.get(G + prefix + "sha256"), True,
                            "ok" if held else "empty")

    kinds = {d.get("kind"): d for d in docs}
    if "Rollout" in kinds:
        notes = kinds["Rollout"]["metadata"]["annotations"]
        live, slots = notes[G + "live-slot"], {s: slot(notes, f"{s}-") for s in SLOTS}
    else:
        live = kinds["Service"]["spec"]["selector"][G + "slot"]
        slots = {d["metadata"]["annotations"][G + "slot"]: slot(d["metadata"]["annotations"], "")
                 for d in docs if d.get("kind") == "Deployment"}
    if set(slots) != set(SLOTS):
        raise ValueError("the file does not describe both slots")
    return TargetState(live if live in SLOTS else None, slots)
