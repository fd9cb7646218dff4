"""Live runtime metrics from a Prometheus text endpoint: scrape, parse, derive (no UI).

Any server exposing the Prometheus text format can feed the monitor; ``mlopsctl serve`` does.
Parsing is ``prometheus_client``'s own parser. Samples are grouped by their ``model`` label, and
also by ``model@version`` when they carry a ``version`` label (so the live version and a canary
are told apart); samples without a model count for the whole endpoint, under ``*``. Families
read (the first name is what ``mlopsctl serve`` exposes):

- requests: counter ``mlopsctl_serve_requests_total`` (also ``mlopsctl_requests_total``,
  ``http_requests_total``);
- errors: counter ``mlopsctl_serve_errors_total`` (also ``mlopsctl_request_errors_total``,
  ``mlopsctl_errors_total``); without one, requests labelled ``code``/``status`` >= 500 or
  ``outcome``/``result`` = ``error`` count as errors;
- latency: histogram ``mlopsctl_serve_request_seconds`` (also
  ``mlopsctl_request_duration_seconds``, ``http_request_duration_seconds``), or a summary with
  ``quantile`` labels;
- live accuracy: gauge ``mlopsctl_serve_live_accuracy`` (also ``mlopsctl_live_accuracy``), or
  the counters ``mlopsctl_serve_feedback_labels_total`` and ``..._feedback_correct_total``
  (or ``mlopsctl_feedback_total`` with a ``correct`` label), fed by labels coming back.

Rates, error rate, p50/p95 and accuracy are taken over the window between two scrapes when the
window saw traffic, else over the counters' whole life.
"""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from typing import Any

REQUESTS = ("mlopsctl_serve_requests", "mlopsctl_requests", "http_requests")
ERRORS = ("mlopsctl_serve_errors", "mlopsctl_request_errors", "mlopsctl_errors")
LATENCY = ("mlopsctl_serve_request_seconds", "mlopsctl_request_duration_seconds",
           "http_request_duration_seconds")
ACCURACY = ("mlopsctl_serve_live_accuracy", "mlopsctl_live_accuracy")
FEEDBACK = ("mlopsctl_feedback",)  # with a `correct` label
FEEDBACK_TOTAL = ("mlopsctl_serve_feedback_labels",)
FEEDBACK_CORRECT = ("mlopsctl_serve_feedback_correct",)
ALL = "*"
MAX_BYTES = 4 << 20


@dataclass
class Counters:
    """One model's cumulative counters in one scrape."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # le (seconds) -> cumulative
    latency_count: float = 0.0
    quantiles: dict[float, float] = field(default_factory=dict)  # q -> seconds
    accuracy: float | None = None
    correct: float = 0.0
    feedback: float = 0.0


@dataclass(frozen=True)
class Scrape:
    url: str
    at: float
    up: bool
    error: str | None = None
    models: dict[str, Counters] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveStats:
    up: bool
    at: float
    error: str | None = None
    requests: float | None = None
    request_rate: float | None = None  # per second
    error_rate: float | None = None  # share of requests, 0..1
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    accuracy: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _is_error(labels: dict[str, str]) -> bool:
    for key in ("status", "code", "status_code"):
        value = labels.get(key, "")
        if value.isdigit() and int(value) >= 500:
            return True
    return any(labels.get(k, "").lower() in ("error", "failure", "failed")
               for k in ("outcome", "result", "status"))


def parse(text: str) -> dict[str, Counters]:
    """Exposition text -> counters per model and per model@version (ValueError when it is not
    the text format)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, Counters] = {}
    coded_errors: dict[str, float] = {}
    counted_errors: set[str] = set()

    def keys(labels: dict[str, str]) -> list[str]:
        model = labels.get("model")
        if not model:
            return [ALL]
        version = labels.get("version")
        return [model, f"{model}@{version.removeprefix('v')}"] if version else [model]

    def add(labels: dict[str, str], attr: str, value: float) -> None:
        for key in keys(labels):
            c = out.setdefault(key, Counters())
            setattr(c, attr, getattr(c, attr) + value)

    for family in text_string_to_metric_families(text):
        name = family.name.removesuffix("_total")
        for sample in family.samples:
            labels, value = sample.labels, float(sample.value)
            if math.isnan(value):
                continue
            suffix = sample.name[len(family.name):]
            counter = suffix in ("", "_total")
            if name in REQUESTS and counter:
                add(labels, "requests", value)
                if _is_error(labels):
                    for key in keys(labels):
                        coded_errors[key] = coded_errors.get(key, 0.0) + value
            elif name in ERRORS and counter:
                add(labels, "errors", value)
                counted_errors.update(keys(labels))
            elif family.name in LATENCY:
                for key in keys(labels):
                    c = out.setdefault(key, Counters())
                    if suffix == "_bucket":
                        le = float(labels.get("le", "inf"))
                        c.buckets[le] = c.buckets.get(le, 0.0) + value
                    elif suffix == "_count":
                        c.latency_count += value
                    elif suffix == "" and "quantile" in labels:
                        c.quantiles[float(labels["quantile"])] = value
            elif name in ACCURACY:
                for key in keys(labels):
                    out.setdefault(key, Counters()).accuracy = value
            elif name in FEEDBACK_TOTAL and counter:
                add(labels, "feedback", value)
            elif name in FEEDBACK_CORRECT and counter:
                add(labels, "correct", value)
            elif name in FEEDBACK and counter:
                add(labels, "feedback", value)
                if labels.get("correct", "").lower() in ("true", "1", "yes"):
                    add(labels, "correct", value)
    for key, errors in coded_errors.items():  # no errors family: the status codes tell
        if key not in counted_errors:
            out[key].errors += errors
    return out


def scrape(url: str, timeout: float = 1.0, clock: Any = time.time) -> Scrape:
    """GET ``url`` and parse it. Never raises: a source that is down comes back ``up=False``."""
    at = clock()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read(MAX_BYTES).decode("utf-8", "replace")
        return Scrape(url, at, True, None, parse(body))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return Scrape(url, at, False, str(reason) or type(exc).__name__)


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``histogram_quantile``: linear interpolation inside the bucket holding rank q."""
    edges = sorted(buckets.items())
    if not edges or edges[-1][1] <= 0:
        return None
    total = edges[-1][1]
    rank = q * total
    lower_edge, lower_count = 0.0, 0.0
    for le, count in edges:
        if count >= rank:
            if math.isinf(le):
                return lower_edge
            width = count - lower_count
            if width <= 0:
                return le
            return lower_edge + (le - lower_edge) * (rank - lower_count) / width
        lower_edge, lower_count = le, count
    return lower_edge


def derive(cur: Scrape, prev: Scrape | None, model: str = ALL) -> LiveStats:
    """The figures for ``model`` (or the whole endpoint) from a scrape and the one before."""
    if not cur.up:
        return LiveStats(False, cur.at, cur.error)
    c = cur.models.get(model)
    if c is None:
        return LiveStats(True, cur.at)
    p = prev.models.get(model) if prev is not None and prev.up else None
    if p is not None and c.requests < p.requests:  # the server restarted: counters reset
        p = None
    window = p is not None and c.requests > p.requests
    rate = None
    if p is not None and prev is not None and cur.at > prev.at:
        rate = (c.requests - p.requests) / (cur.at - prev.at)
    if window and p is not None:
        requests, errors = c.requests - p.requests, c.errors - p.errors
        buckets = {le: n - p.buckets.get(le, 0.0) for le, n in c.buckets.items()}
        correct, feedback = c.correct - p.correct, c.feedback - p.feedback
    else:
        requests, errors, buckets = c.requests, c.errors, c.buckets
        correct, feedback = c.correct, c.feedback
    if feedback <= 0 and p is not None:
        correct, feedback = c.correct, c.feedback
    p50 = quantile(0.5, buckets) if buckets else c.quantiles.get(0.5)
    p95 = quantile(0.95, buckets) if buckets else c.quantiles.get(0.95)
    accuracy = c.accuracy if c.accuracy is not None else (
        correct / feedback if feedback > 0 else None)
    return LiveStats(
        up=True, at=cur.at, requests=c.requests, request_rate=rate,
        error_rate=(errors / requests) if requests > 0 else None,
        latency_p50_ms=p50 * 1e3 if p50 is not None else None,
        latency_p95_ms=p95 * 1e3 if p95 is not None else None,
        accuracy=accuracy)


class LiveHistory:
    """The recent scrapes of one environment's endpoint, and the figures derived from them."""

    def __init__(self, url: str, keep: int = 120) -> None:
        self.url = url
        self.scrapes: deque[Scrape] = deque(maxlen=keep)
        self.points: deque[tuple[float, dict[str, LiveStats]]] = deque(maxlen=keep)

    def add(self, scrape: Scrape) -> None:
        prev = next((s for s in reversed(self.scrapes) if s.up), None)
        self.scrapes.append(scrape)
        models = set(scrape.models) | ({ALL} if not scrape.up else set())
        self.points.append((scrape.at, {m: derive(scrape, prev, m) for m in models}))

    @property
    def latest(self) -> Scrape | None:
        return self.scrapes[-1] if self.scrapes else None

    def stats(self, model: str, version: str | None = None) -> LiveStats | None:
        """The newest figures for ``model@version``, else ``model``, else the whole endpoint."""
        if not self.points:
            return None
        _, stats = self.points[-1]
        for key in ([f"{model}@{version.removeprefix('v')}"] if version else []) + [model, ALL]:
            if key in stats:
                return stats[key]
        first = next(iter(stats.values()), None)
        return None if first is None else LiveStats(first.up, first.at, first.error)

    def series(self, model: str, metric: str) -> list[tuple[float, float]]:
        """(time, value) of one figure over the kept scrapes, for plots."""
        out = []
        for at, stats in self.points:
            s = stats.get(model) or stats.get(ALL)
            value = getattr(s, metric, None) if s is not None else None
            if isinstance(value, (int, float)):
                out.append((at, float(value)))
        return out
