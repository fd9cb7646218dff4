"""Shared by the monitor's tests: one prepared registry per process (built with the real CLI:
init, bump, validate, promote), real Prometheus endpoints on loopback, config edits."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_CACHE: dict[str, Any] = {}


def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """'base': clf 0.1.0-0.3.0 validated (0.3.0 for staging only); 'staged': 0.1.0 then 0.2.0
    promoted to staging (0.2.0 live, 0.1.0 warm in the other slot). Built once per process."""
    if "snaps" not in _CACHE:
        from test_promotion import Snapshot, make_snapshots

        # MLOPSCTL_TEST_MONITOR_CACHE=DIR keeps the build between runs (for working on these
        # tests; the suite always builds afresh).
        keep = os.environ.get("MLOPSCTL_TEST_MONITOR_CACHE")
        if keep and (Path(keep) / "done").is_file():
            _CACHE["snaps"] = {name: Snapshot(Path(keep) / name / "repo",
                                              Path(keep) / name / "home", {})
                               for name in ("base", "staged")}
        else:
            root = Path(keep) if keep else tmp_path_factory.mktemp("monitor-prepared")
            _CACHE["snaps"] = make_snapshots(
                root, {"0.1.0": ("staging", "production"), "0.2.0": ("staging", "production"),
                       "0.3.0": ("staging",)},
                {"staged": ("0.1.0", "0.2.0")})
            if keep:
                (root / "done").write_text("")
    return dict(_CACHE["snaps"])


def use(snaps: dict[str, Any], name: str, dest: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from test_promotion import copy_snapshot

    snap = copy_snapshot(snaps[name], dest / name)
    monkeypatch.setenv("HOME", str(snap.home))
    monkeypatch.chdir(snap.repo)
    return snap


def edit_config(repo: Path, change: Any) -> None:
    """Change .mlops/config.yaml in the work tree (``change`` edits the loaded mapping)."""
    path = repo / ".mlops" / "config.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def set_env(repo: Path, env: str, **fields: Any) -> None:
    def change(data: dict[str, Any]) -> None:
        data.setdefault("environments", {}).setdefault(env, {}).update(fields)
    edit_config(repo, change)


@contextlib.contextmanager
def prometheus(registry: Any) -> Iterator[str]:
    """prometheus_client's own exposition server on 127.0.0.1 (a free port); yields its URL."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class ServeLike:
    """The series `mlopsctl serve` exposes, in a registry of their own, driven by the test."""

    def __init__(self, model: str = "clf", version: str = "0.2.0") -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        labels = ("model", "version")
        self.labels = (model, version)
        self.requests = Counter("mlopsctl_serve_requests", "requests", (*labels, "code"),
                                registry=self.registry)
        self.errors = Counter("mlopsctl_serve_errors", "errors", (*labels, "reason"),
                              registry=self.registry)
        self.latency = Histogram("mlopsctl_serve_request_seconds", "latency", labels,
                                 buckets=(0.001, 0.01, 0.1, 0.25, 1.0, 2.5, 5.0),
                                 registry=self.registry)
        self.accuracy = Gauge("mlopsctl_serve_live_accuracy", "accuracy", labels,
                              registry=self.registry)

    def traffic(self, ok: int, failed: int, seconds: float) -> None:
        for _ in range(ok):
            self.requests.labels(*self.labels, "200").inc()
            self.latency.labels(*self.labels).observe(seconds)
        for _ in range(failed):
            self.requests.labels(*self.labels, "500").inc()
            self.errors.labels(*self.labels, "predict").inc()


def benchmarks_module() -> Any:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import monitor as bench
    finally:
        sys.path.pop(0)
    return bench


def fixed_registry(path: Path, models: int) -> Path:
    """A registry with fixed dates (one ``git fast-import`` stream, as the benchmark builds
    them), for snapshots that must not change from run to run."""
    env = dict(os.environ)
    return Path(benchmarks_module().build(path, models, env))
