"""``mlopsctl show``."""

from __future__ import annotations

from typing import Any

import click

from mlopsctl.cli import complete, console


@click.command("show")
@click.argument("model", required=False, shell_complete=complete.models)
@click.option("--all", "show_all", is_flag=True, help="Include deprecated models.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON (without MODEL: the same document as `gto show --json`).")
def command(model: str | None, show_all: bool, as_json: bool) -> None:
    """List models, or the versions of one model.

    Built from the tags (through the tag index under the git dir), so a registry written by GTO
    or by hand is listed too; version manifests add sizes, hashes and metrics.

    \b
    Example:
      mlopsctl show
      mlopsctl show churn
      mlopsctl show --json | jq '.churn.stage.production'
    """
    from mlopsctl import views
    from mlopsctl.workspace import Workspace

    ws = Workspace.find()
    registry = _registry(ws)
    console.warn_policy_drift(ws)
    if model is None:
        doc = views.summary(registry, include_deprecated=show_all)
        if as_json:
            console.emit_json(doc)
        else:
            _render_summary(doc)
        return
    state = console.require_model(registry, model)
    manifests = _manifests(ws, state)
    detail = views.model_detail(state, manifests)
    from mlopsctl.blobstate import mark_collected

    mark_collected(ws, detail)  # versions[i]["blob"]: stored | collected | missing | None
    if as_json:
        console.emit_json(detail)
    else:
        _render_detail(detail)


def _manifests(ws, state) -> dict[str, object]:
    """The work-tree manifests as their schema validates them (``parsecache``: each content
    once)."""
    from mlopsctl.parsecache import ModelCaches, manifest_doc

    caches = ModelCaches(ws.git_dir)
    out: dict[str, object] = {}
    for entry in state.versions.values():
        path = ws.manifest_path(state.name, entry.number)
        try:
            text = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue
        out[entry.version] = manifest_doc(caches.of(state.name), text, ws.rel(path))
    caches.save()
    return out


def _render_summary(doc: dict[str, dict[str, object]]) -> None:
    if not doc:
        console.note("No models registered yet. Register one with: mlopsctl bump MODEL "
                     "--artifact PATH")
        return
    # every model lists the same stages, in GTO's order (sorted, or as .gto lists them)
    stages = list(dict.fromkeys(s for m in doc.values() for s in m["stage"]))  # type: ignore[attr-defined]
    t = console.table("model", "latest", *stages)
    for name, m in doc.items():
        label = name if m["active"] else f"{name} (deprecated)"
        if not m["registered"]:
            label += " (declared, not registered)"
        t.add_row(label, str(m["version"] or "-"),
                  *(str(m["stage"].get(s) or "-") for s in stages))  # type: ignore[attr-defined]
    console.out().print(t)


def _render_detail(detail: dict[str, object]) -> None:
    t = console.table("version", "created", "stages", "size", "sha256", "metrics", "message",
                      title=f"{detail['model']}")
    for v in detail["versions"]:  # type: ignore[attr-defined]
        m = v["manifest"] or {}
        art = m.get("artifact", {})
        metrics = ", ".join(f"{k}={val:.3g}" for k, val in m.get("metrics", {}).items())
        size = console.human_size(art["size"]) if art else "-"
        version = v["version"] if v["registered"] else f"{v['version']} (deregistered)"
        version += {"collected": " (blob gone)", "missing": " (blob missing)"}.get(v["blob"], "")
        t.add_row(version, v["created_at"][:16].replace("T", " "),
                  ", ".join(v["stages"]) or "-", size, art.get("sha256", "-")[:10],
                  metrics or "-", m.get("message", v["message"]) or "")
    for col in t.columns[:5]:
        col.no_wrap = True
    console.out().print(t)


def _registry(ws: Any) -> Any:
    """The registry as gto show reads it (.gto stages and artifacts.yaml too); under
    `signing: required`, from signed events only: an unsigned or forged tag is not an event."""
    from mlopsctl import registry as reg
    from mlopsctl.governance import signing_required_quick

    try:
        required = ws.initialized and signing_required_quick(ws.config_path.read_text())
    except OSError:
        required = False
    if not required:
        return reg.load(ws.root, gto_files=True)
    from mlopsctl.project import Project
    from mlopsctl.trust import trusted_registry

    return trusted_registry(Project.open(ws.root), gto_files=True)
