"""The ASGI application (Starlette): the KServe v1 protocol plus ``/health`` and ``/metrics``.

    GET  /v1/models                  {"models": [MODEL]}
    GET  /v1/models/MODEL            {"name", "ready", "version"} (503 while nothing is loaded)
    POST /v1/models/MODEL:predict    {"instances": [[...], ...] | [{feature: value}, ...]}
                                     -> {"predictions": [...], "model_version": "X.Y.Z", "id"}
    POST /v1/models/MODEL:feedback   {"id": ID, "labels": [...]}  (live accuracy per version)
    GET  /health                     what is served, what the registry wants, load failures
    GET  /metrics                    Prometheus text format

Every answer is JSON; a bad request gets a 4xx saying what is wrong, an internal failure a 500
with no traceback (that goes to the log). Predictions run on the event loop: they are short and
CPU-bound, and a thread hop would cost more than most scikit-learn models take to predict.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

from mlopsctl.serving.holder import ModelHolder
from mlopsctl.serving.metrics import Metrics
from mlopsctl.serving.model import BadRequest, Loaded, quiet_feature_name_warning

log = logging.getLogger("mlopsctl.serve")
MAX_BODY = 4 << 20  # bytes of a request body
REMEMBERED = 10_000  # predictions kept for feedback (oldest forgotten first)


class _Remembered:
    """id -> (version, predictions) of recent answers, so labels can come back later."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[str, list[Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, version: str, predictions: list[Any]) -> str:
        key = uuid.uuid4().hex
        with self._lock:
            self._items[key] = (version, predictions)
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> tuple[str, list[Any]] | None:
        with self._lock:
            return self._items.get(key)

    def forget(self, key: str) -> bool:
        """Remove ``key``; False when another request took it first (labelled once only)."""
        with self._lock:
            return self._items.pop(key, None) is not None


def create_app(holder: ModelHolder, metrics: Metrics, max_body: int = MAX_BODY) -> Any:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    quiet_feature_name_warning()
    remembered = _Remembered()
    model = holder.model

    def answer(doc: Any, status: int = 200) -> Response:
        return Response(json.dumps(doc).encode(), status, media_type="application/json")

    def refuse(message: str, status: int, reason: str, version: str | None = None) -> Response:
        metrics.error(model, version, reason, status)
        return answer({"error": message}, status)

    async def body_of(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body):
            raise BadRequest(f"request body over the limit of {max_body} bytes", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise BadRequest(f"request body over the limit of {max_body} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    async def json_body(request: Request) -> dict[str, Any]:
        raw = await body_of(request)
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the body is not JSON") from None
        if not isinstance(doc, dict):
            raise BadRequest("the body must be a JSON object")
        return doc

    async def predict(request: Request, loaded: Loaded) -> Response:
        started = time.perf_counter()
        doc = await json_body(request)
        if "instances" not in doc:
            raise BadRequest('the body needs "instances": a list of rows')
        x = loaded.matrix(doc["instances"])
        try:
            predictions = loaded.predict(x)
        except (ValueError, TypeError) as exc:  # the model refused these values (NaN, ...)
            raise BadRequest(f"{model} {loaded.version} refused the input: {exc}",
                             422) from None
        key = remembered.add(loaded.version, predictions)
        response = answer({"predictions": predictions, "model_version": loaded.version,
                           "id": key})
        child = metrics.children(loaded)
        child["ok"].inc()
        child["rows"].inc(len(predictions))
        child["latency"].observe(time.perf_counter() - started)
        return response

    async def feedback(request: Request) -> Response:
        doc = await json_body(request)
        key, labels = doc.get("id"), doc.get("labels")
        if not isinstance(key, str) or not isinstance(labels, list):
            raise BadRequest('the body needs "id" (from a prediction) and "labels" (a list)')
        found = remembered.get(key)
        gone = BadRequest(f"no remembered prediction with id {key!r} (unknown, already "
                          f"labelled, or older than the last {REMEMBERED})", 404)
        if found is None:
            raise gone
        version, predictions = found
        if len(labels) != len(predictions):
            raise BadRequest(f"{len(labels)} labels for {len(predictions)} predictions")
        if not remembered.forget(key):
            raise gone
        correct = sum(1 for p, y in zip(predictions, labels, strict=True) if p == y)
        accuracy = metrics.observe_feedback(model, version, len(labels), correct)
        return answer({"model_version": version, "labels": len(labels), "correct": correct,
                       "live_accuracy": accuracy})

    async def models(request: Request) -> Response:
        rest = request.path_params["rest"]
        name, _, verb = rest.partition(":")
        if name != model:
            return refuse(f"unknown model '{name}': this server serves '{model}'", 404,
                          "unknown_model")
        loaded = holder.pick()
        version = loaded.version if loaded else None
        try:
            if verb == "" and request.method == "GET":
                status = 200 if loaded else 503
                return answer({"name": model, "ready": loaded is not None,
                               "version": version}, status)
            if verb in ("predict", "feedback") and request.method != "POST":
                return refuse(f"use POST for :{verb}", 405, "method", version)
            if verb == "predict":
                if loaded is None:
                    return refuse(f"no version of {model} is loaded yet (see /health)", 503,
                                  "unavailable")
                return await predict(request, loaded)
            if verb == "feedback":
                return await feedback(request)
            return refuse(f"unknown verb ':{verb}' (use :predict or :feedback)", 404,
                          "unknown_verb", version)
        except BadRequest as exc:
            return refuse(exc.message, exc.status, "bad_request", version)
        except Exception:  # a bug or a model's own failure: logged, never shown
            log.exception("%s %s: request failed", model, version)
            return refuse("internal error while predicting (logged on the server)", 500,
                          "internal", version)

    async def list_models(request: Request) -> Response:
        return answer({"models": [model]})

    async def health(request: Request) -> Response:
        doc = holder.health()
        return answer(doc, 200 if doc["version"] else 503)

    async def prometheus(request: Request) -> Response:
        data, content_type = metrics.exposition()
        return Response(data, 200, headers={"Content-Type": content_type})

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        if status == 404:
            detail = (f"no such endpoint {request.url.path} (try /v1/models/{model}:predict, "
                      "/health, /metrics)")
        return answer({"error": detail}, status)

    async def crash(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        return answer({"error": "internal error (logged on the server)"}, 500)

    routes = [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{rest}", models, methods=["GET", "POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
    return Starlette(routes=routes,
                     exception_handlers={HTTPException: http_error, Exception: crash})
