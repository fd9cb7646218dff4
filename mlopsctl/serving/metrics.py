"""Prometheus metrics of one server, in a registry of its own (two servers in one process, as in
tests, do not collide). Every series carries the version that answered, so a canary and the live
version can be compared side by side."""

from __future__ import annotations

import threading
from typing import Any

from mlopsctl.serving.holder import ModelHolder
from mlopsctl.serving.model import Loaded

# Predictions take a fraction of a millisecond to tens of milliseconds.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
NO_VERSION = "none"


class Metrics:
    def __init__(self, holder: ModelHolder) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.holder = holder
        self.registry = CollectorRegistry(auto_describe=True)
        r, labels = self.registry, ("model", "version")
        self.requests = Counter("mlopsctl_serve_requests", "Prediction requests answered.",
                                (*labels, "code"), registry=r)
        self.latency = Histogram("mlopsctl_serve_request_seconds",
                                 "Time to answer a prediction request.", labels,
                                 buckets=BUCKETS, registry=r)
        self.rows = Counter("mlopsctl_serve_predictions", "Rows predicted.", labels, registry=r)
        self.errors = Counter("mlopsctl_serve_errors",
                              "Requests the server failed to answer (5xx), by reason.",
                              (*labels, "reason"), registry=r)
        self.rejected = Counter("mlopsctl_serve_rejected",
                                "Requests refused as malformed (4xx), by reason.",
                                (*labels, "reason"), registry=r)
        self.load_failures = Counter("mlopsctl_serve_load_failures",
                                     "Versions that could not be loaded for serving.", labels,
                                     registry=r)
        self.switches = Counter("mlopsctl_serve_switches", "Live version switches.", ("model",),
                                registry=r)
        self.info = Gauge("mlopsctl_serve_version_info",
                          "1 for each version served, by role (live or canary).",
                          (*labels, "environment", "role"), registry=r)
        self.healthy = Gauge("mlopsctl_serve_healthy",
                             "1 when serving what the registry says is live, else 0.",
                             ("model", "environment"), registry=r)
        self.feedback = Counter("mlopsctl_serve_feedback_labels",
                                "Labels received back for earlier predictions.", labels,
                                registry=r)
        self.correct = Counter("mlopsctl_serve_feedback_correct",
                               "Labels that matched the prediction.", labels, registry=r)
        self.accuracy = Gauge("mlopsctl_serve_live_accuracy",
                              "Accuracy of predictions whose labels came back.", labels,
                              registry=r)
        self._lock = threading.Lock()
        self._tallies: dict[str, list[int]] = {}

    def children(self, loaded: Loaded) -> dict[str, Any]:
        """Metric children bound to this version's labels, made once (label lookup costs)."""
        if not loaded.children:
            labels = (loaded.model, loaded.version)
            loaded.children.update(
                ok=self.requests.labels(*labels, "200"), latency=self.latency.labels(*labels),
                rows=self.rows.labels(*labels))
        return loaded.children

    def error(self, model: str, version: str | None, reason: str, code: int) -> None:
        """A request not answered with predictions: the server's failure (5xx, counted against
        availability) or the client's (4xx, counted apart)."""
        labels = (model, version or NO_VERSION)
        (self.errors if code >= 500 else self.rejected).labels(*labels, reason).inc()
        self.requests.labels(*labels, str(code)).inc()

    def observe_feedback(self, model: str, version: str, total: int, correct: int) -> float:
        with self._lock:
            tally = self._tallies.setdefault(version, [0, 0])
            tally[0] += total
            tally[1] += correct
            accuracy = tally[1] / tally[0] if tally[0] else 0.0
        self.feedback.labels(model, version).inc(total)
        self.correct.labels(model, version).inc(correct)
        self.accuracy.labels(model, version).set(accuracy)
        return accuracy

    def refresh(self) -> None:
        """Bring the state gauges up to date (called before each scrape and after a switch)."""
        holder = self.holder
        routing = holder.routing
        self.info.clear()
        for role, loaded in (("live", routing.live), ("canary", routing.canary)):
            if loaded is not None:
                self.info.labels(holder.model, loaded.version, holder.env, role).set(1)
        self.healthy.labels(holder.model, holder.env).set(
            1 if holder.health()["status"] == "ok" else 0)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self.refresh()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
