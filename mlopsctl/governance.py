"""The governance pin: one hash over everything that decides a release (pure, plus two git reads).

Governed content, hashed from its canonical form (parsed YAML, defaults applied, numbers as
floats, sorted keys), so comments, key order and ``1`` vs ``1.0`` do not matter and every change
of meaning does:

- from ``policy.yaml``: the rules (id, check, weight, params) and ``trusted_types``;
- from ``config.yaml``: for every environment, its ``gates``, ``model_gates`` (per-model gates,
  merged over the environment's), ``requires`` and ``approvals``.

The gates stay where users already keep them (``config.yaml``); they are hashed there rather
than moved, so an existing registry keeps its files and only needs ``mlopsctl policy accept``
once to re-pin (the previous release pinned ``sha256(policy.yaml)``, see ``legacy_hash``).

The pin is ``constitutional_hash`` in config.yaml, and only ``policy accept`` writes it. Its
provenance is checked too: the last commit that changed the pin line must be an acceptance of
that very hash (or the registry's initialisation), and the work tree must not carry a pin that
differs from the committed one. This detects a hand-edited pin; it is not enforcement (anyone
who can commit can forge an acceptance commit): signatures from an external trust anchor are.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONFIG_FILE = ".mlops/config.yaml"
POLICY_FILE = ".mlops/policy.yaml"
ACCEPT_PREFIX = "mlopsctl: accept policy "
INIT_SUBJECT = "mlopsctl: initialise the model registry"
_PIN_LINE = re.compile(r"(?m)^constitutional_hash:\s*['\"]?([0-9a-f]+)['\"]?\s*$")

# Default gates of every environment: classification and regression side by side (a gate whose
# metric the model does not produce is "not applicable"). MAE and RMSE are in the target's own
# units, so they have no universal default: set them per model under `model_gates`.
DEFAULT_GATES: dict[str, dict[str, float]] = {
    "accuracy": {"min": 0.85},
    "precision": {"min": 0.80},
    "recall": {"min": 0.80},
    "f1": {"min": 0.80},
    "r2": {"min": 0.70},
    "latency_p95_ms": {"max": 1500},
    "latency_max_ms": {"max": 2000},
    "compliance": {"min": 0.95},
}
DEFAULT_ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "staging": {},
    "production": {"requires": ["staging"]},
}


def _norm(value: Any) -> Any:
    """Numbers as floats (bools stay bools), mappings with string keys, lists kept in order."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return str(value)


def _gates(raw: Any) -> dict[str, dict[str, float]]:
    out = {}
    for name, gate in dict(raw or {}).items():
        gate = dict(gate or {})
        out[str(name)] = {k: float(gate[k]) for k in ("min", "max") if gate.get(k) is not None}
    return out


def canonical(config: Mapping[str, Any], policy: Mapping[str, Any]) -> dict[str, Any]:
    """The governed content of a parsed config.yaml and policy.yaml, defaults applied."""
    rules = [{"id": str(r.get("id")), "check": str(r.get("check")),
              "weight": float(r.get("weight", 1.0)), "params": _norm(r.get("params") or {})}
             for r in (policy.get("rules") or [])]
    envs_raw = config.get("environments")
    envs = DEFAULT_ENVIRONMENTS if envs_raw is None else envs_raw
    environments = {}
    for name, env in dict(envs).items():
        env = dict(env or {})
        gates = _gates(env.get("gates", DEFAULT_GATES))
        environments[str(name)] = {
            "gates": gates,
            "model_gates": {str(m): _gates(g) for m, g in dict(env.get("model_gates") or {})
                            .items()},
            "requires": [str(r) for r in (env.get("requires") or [])],
            "approvals": int(env.get("approvals") or 0),
        }
    return {"governance": 1, "rules": rules,
            "trusted_types": sorted({str(t) for t in (policy.get("trusted_types") or [])}),
            "environments": environments}


def digest(content: Mapping[str, Any]) -> str:
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def governance_hash(config: Mapping[str, Any], policy: Mapping[str, Any]) -> str:
    return digest(canonical(config, policy))


def load_yaml(text: str | bytes) -> dict[str, Any]:
    import yaml

    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return data if isinstance(data, dict) else {}


def hash_files(config_text: str | bytes, policy_text: str | bytes) -> str:
    return governance_hash(load_yaml(config_text), load_yaml(policy_text))


def legacy_hash(policy_bytes: bytes) -> str:
    """What the previous release pinned: sha256 of policy.yaml's bytes (gates not included)."""
    return hashlib.sha256(policy_bytes).hexdigest()[:16]


def signing_required_quick(config_text: str) -> bool:
    """``signing: required`` read from config.yaml's text (for read commands that do not parse
    the config)."""
    import re

    return re.search(r"(?m)^signing:\s*['\"]?required['\"]?\s*(#.*)?$", config_text) is not None


def pinned_in(config_text: str) -> str | None:
    match = _PIN_LINE.search(config_text)
    return match.group(1) if match else None


def drift_message(actual: str, pinned: str, policy_bytes: bytes | None = None) -> str | None:
    if actual == pinned:
        return None
    if policy_bytes is not None and pinned == legacy_hash(policy_bytes):
        return (f"the governance pin {pinned} was made by an earlier release and covers "
                f"policy.yaml alone; the gates, requires and approvals are not pinned yet "
                f"(governance hash {actual})")
    return (f"governance has drifted: policy.yaml and the environments' gates, requires and "
            f"approvals hash to {actual}, but config pins {pinned}")


def drift_hint(message: str) -> str:
    if "earlier release" in message:
        return "review the gates, then `mlopsctl policy accept -m \"pin the gates\"` (once)"
    return ("review the change (git diff -- .mlops/config.yaml .mlops/policy.yaml), then "
            "`mlopsctl policy accept -m WHY`, or restore both files from git")


# --- provenance of the pin ----------------------------------------------------------------------


def provenance_problem(root: Path, worktree_config: str, cache: Path | None = None
                       ) -> str | None:
    """Why the pin in ``worktree_config`` did not come from ``mlopsctl policy accept``, or None.

    The pin must equal the committed one, and the newest commit that changed the pin line must
    be an acceptance of that hash (or the initialisation of the registry).

    Finding that commit walks the history back (seconds at 100,000 commits), so a good verdict
    is remembered in ``cache`` with the commit it was reached at: later, only the commits since
    are searched, when that commit is still an ancestor of HEAD."""
    from mlopsctl.gitops.git import GitFailed, git, git_ok

    pin = pinned_in(worktree_config)
    if pin is None:
        return None
    try:
        head, committed_bytes = git(root, "rev-parse", "HEAD").decode().strip(), \
            git(root, "show", f"HEAD:{CONFIG_FILE}")
    except GitFailed:
        return None  # nothing committed yet
    committed = committed_bytes.decode()
    if pinned_in(committed) != pin:
        return (f"constitutional_hash was edited by hand: {CONFIG_FILE} pins {pin}, but the "
                f"committed pin is {pinned_in(committed)}; only `mlopsctl policy accept` "
                "writes the pin")
    since = "HEAD"
    known = _remembered(cache, pin)
    if known == head:
        return None
    if known and git_ok(root, "merge-base", "--is-ancestor", known, head):
        since = f"{known}..HEAD"  # the pin line's newest change is older than `known`, or new
    try:
        log = git(root, "log", "-1", "--format=%H%x00%s", "-G^constitutional_hash:",
                  since, "--", CONFIG_FILE).decode().strip()
    except GitFailed:
        return None
    if not log:
        if since != "HEAD":  # nothing changed the pin since the good verdict
            _remember(cache, pin, head)
        return None
    sha, _, subject = log.partition("\x00")
    if subject.startswith(INIT_SUBJECT) or (
            subject.startswith(ACCEPT_PREFIX)
            and subject.removeprefix(ACCEPT_PREFIX).split()[:1] == [pin]):
        _remember(cache, pin, head)
        return None
    # An acceptance of this very pin after that commit (it changed no line: the pin was right).
    later = git(root, "log", "-1", "--format=%H", "--fixed-strings",
                f"--grep={ACCEPT_PREFIX}{pin}", f"{sha}..HEAD").decode()
    if later.strip():
        _remember(cache, pin, head)
        return None
    return (f"the pin {pin} was set in commit {sha[:8]} (\"{subject[:60]}\"), not by "
            "`mlopsctl policy accept`: a pin edited by hand")


def _remembered(cache: Path | None, pin: str) -> str | None:
    """The commit at which ``pin`` last had a good provenance verdict, if remembered."""
    if cache is None:
        return None
    try:
        doc = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(doc, dict) and doc.get("pin") == pin and isinstance(doc.get("head"), str) \
            and re.fullmatch(r"[0-9a-f]{40,64}", doc["head"]):
        return str(doc["head"])
    return None


def _remember(cache: Path | None, pin: str, head: str) -> None:
    if cache is None:
        return
    from mlopsctl.fsio import atomic_write

    # a cache: a git dir that cannot be written just means searching again next time
    with contextlib.suppress(OSError):
        atomic_write(cache, json.dumps({"pin": pin, "head": head}).encode(), durable=False)
