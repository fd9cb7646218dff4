"""What the server answers with: one immutable ``Routing`` (live version, optional canary and its
share) that the follower replaces whole. A request reads ``holder.routing`` once; the
assignment that replaces it is atomic, so a switch never shows a half-made state and never
blocks a request."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from mlopsctl.serving.model import Loaded, _now


@dataclass(frozen=True)
class Routing:
    live: Loaded | None = None
    canary: Loaded | None = None
    canary_percent: float = 0.0


@dataclass
class Failure:
    version: str
    reason: str
    at: str = field(default_factory=_now)

    def to_json(self) -> dict[str, str]:
        return {"version": self.version, "reason": self.reason, "at": self.at}


class ModelHolder:
    def __init__(self, model: str, env: str, canary_percent: float = 0.0) -> None:
        self.model, self.env = model, env
        self.canary_percent = canary_percent
        self.routing = Routing()
        self.failure: Failure | None = None  # the newest version that could not be loaded
        self.wanted: dict[str, str | None] = {"live": None, "canary": None}  # per the registry
        self.checked_at: str | None = None
        self.follow_error: str | None = None  # the registry itself could not be read
        self.switches = 0
        self._ticket = itertools.count()  # next() is atomic under the GIL
        self._lock = threading.Lock()  # serialises writers (the follower), never readers

    def pick(self) -> Loaded | None:
        """The version that answers this request: the canary for its share, else the live."""
        routing = self.routing
        # A deterministic spread: exactly P of every 100 requests, no random generator.
        if routing.canary is not None and routing.canary_percent > 0 and \
                next(self._ticket) % 100 < routing.canary_percent:
            return routing.canary
        return routing.live

    def install(self, live: Loaded | None, canary: Loaded | None) -> bool:
        """Make ``live``/``canary`` the routing (one assignment). True when the live changed."""
        with self._lock:
            before = self.routing.live
            percent = self.canary_percent if canary is not None else 0.0
            self.routing = Routing(live, canary, percent)
            changed = before is not live
            if changed and before is not None:
                self.switches += 1
            return changed

    def health(self) -> dict[str, Any]:
        routing = self.routing
        live = routing.live
        wanted = self.wanted["live"]
        if live is None:
            status = "unavailable"
        elif self.failure is not None or self.follow_error or (wanted and wanted != live.version):
            status = "degraded"
        else:
            status = "ok"
        doc: dict[str, Any] = {
            "status": status, "model": self.model, "environment": self.env,
            "version": live.version if live else None,
            "sha256": live.sha256 if live else None,
            "loaded_at": live.loaded_at if live else None,
            "registry_live_version": wanted,
            "canary": ({"version": routing.canary.version, "percent": routing.canary_percent}
                       if routing.canary else None),
            "switches": self.switches,
            "registry_checked_at": self.checked_at,
        }
        if self.failure is not None:
            doc["load_failure"] = self.failure.to_json()
        if self.follow_error:
            doc["registry_error"] = self.follow_error
        return doc
