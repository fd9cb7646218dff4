"""Putting a server together: holder + metrics + follower + app, run by uvicorn in the
foreground (``mlopsctl serve``) or on a thread (the demo, tests, benchmarks)."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsctl import registry as reg
from mlopsctl.errors import EnvironmentProblem, UsageError
from mlopsctl.gitops import tags as T
from mlopsctl.project import Project
from mlopsctl.serving.app import MAX_BODY, create_app
from mlopsctl.serving.follow import Follower
from mlopsctl.serving.holder import Failure, ModelHolder
from mlopsctl.serving.metrics import Metrics
from mlopsctl.serving.model import LoadFailed, load_from_file

log = logging.getLogger("mlopsctl.serve")


@dataclass
class Service:
    holder: ModelHolder
    metrics: Metrics
    app: Any
    follower: Follower | None = None  # None when serving a pinned file

    def start_following(self) -> None:
        if self.follower is not None:
            self.follower.start()

    def stop_following(self) -> None:
        if self.follower is not None:
            self.follower.stop()


def _check_canary(percent: float) -> None:
    if not 0 <= percent <= 100:
        raise UsageError(f"--canary {percent:g}: expected a percentage from 0 to 100")


def follow_registry(project: Project, model: str, env: str, canary: float = 0.0,
                    interval: float = 0.5, max_body: int = MAX_BODY) -> Service:
    """A service that follows ``model`` in ``env``; the first load happens here, so the server
    answers from its first request (or reports in /health why it cannot)."""
    T.check_name(model)
    _check_canary(canary)
    if env not in project.config.environments:
        raise UsageError(f"unknown environment '{env}'",
                         hint="environments: " + ", ".join(project.config.environments))
    if reg.load(project.root).model(model) is None:
        raise UsageError(f"unknown model '{model}'", hint="mlopsctl show")
    holder = ModelHolder(model, env, canary)
    metrics = Metrics(holder)
    follower = Follower(project, holder, metrics, interval)
    follower.check(force=True)
    if holder.routing.live is None:
        why = holder.failure.reason if holder.failure else "nothing is live there yet"
        log.warning("%s %s: not serving yet: %s", model, env, why)
    return Service(holder, metrics, create_app(holder, metrics, max_body), follower)


def pinned_file(model: str, env: str, version: str, path: Path, fmt: str,
                sha256: str | None, max_body: int = MAX_BODY) -> Service:
    """A service answering with one artifact file (a Kubernetes pod: the cluster switches
    versions by replacing pods, so the pod itself never follows the registry)."""
    T.check_name(model)
    holder = ModelHolder(model, env)
    metrics = Metrics(holder)
    holder.wanted = {"live": version, "canary": None}
    try:
        holder.install(load_from_file(model, version, path, fmt, sha256), None)
    except LoadFailed as exc:
        holder.failure = Failure(version, str(exc))
        log.error("%s %s could not be loaded: %s", model, version, exc)
    return Service(holder, metrics, create_app(holder, metrics, max_body))


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say
    # they are TCP. With proto 0, every answer (headers, then body: two writes) waited ~40 ms
    # for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise EnvironmentProblem(f"cannot listen on {host}:{port}: {exc.strerror}",
                                 hint="pick another --port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _config(app: Any, log_level: str, access_log: bool) -> Any:
    import uvicorn

    return uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="off",
                          timeout_graceful_shutdown=5)


class _Terminated(Exception):
    pass


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


def run(service: Service, host: str, port: int, access_log: bool = False) -> None:
    """Serve in the foreground. uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises
    the signal: SIGTERM (how Kubernetes stops a pod) ends here as a normal return, SIGINT as
    KeyboardInterrupt."""
    import signal

    import uvicorn

    sock = bind(host, port)
    service.start_following()
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        uvicorn.Server(_config(service.app, "info", access_log)).run(sockets=[sock])
    except _Terminated:
        log.info("stopped (SIGTERM)")
    finally:
        signal.signal(signal.SIGTERM, previous)
        service.stop_following()
        sock.close()


class ThreadedServer:
    """uvicorn on a background thread, on an already bound socket (port 0 = any free one)."""

    def __init__(self, service: Service, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.service = service
        self.sock = bind(host, port)
        self.host, self.port = self.sock.getsockname()[:2]
        self.server = uvicorn.Server(_config(service.app, "warning", False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="mlopsctl-serve", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        import time

        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise EnvironmentProblem("the server thread stopped while starting")
            time.sleep(0.01)
        self.service.start_following()

    def stop(self) -> None:
        self.service.stop_following()
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
