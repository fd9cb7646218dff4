"""``mlopsctl serve``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("serve")
@click.argument("model")
@click.option("--env", "env", required=True, metavar="ENV", help="The environment to follow.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on.")
@click.option("--canary", default=0.0, type=click.FloatRange(0, 100), metavar="PERCENT",
              help="Send this share of requests to the candidate version (staging's, else the "
              "one in the other slot).")
@click.option("--poll", default=0.5, show_default=True, type=click.FloatRange(0.05, 3600),
              metavar="SECONDS", help="How often to look at the registry's tags.")
@click.option("--max-body", default=4 << 20, show_default=True, type=click.IntRange(1),
              metavar="BYTES", help="Largest request body accepted.")
@click.option("--artifact", type=click.Path(dir_okay=False, path_type=Path),
              help="Serve this file instead of following the registry (Kubernetes pods).")
@click.option("--version", "version", metavar="X.Y.Z", help="With --artifact: its version.")
@click.option("--sha256", metavar="HEX", help="With --artifact: the sha256 it must have.")
@click.option("--format", "fmt", default="sklearn-pickle", show_default=True,
              type=click.Choice(["sklearn-pickle", "pickle", "joblib", "skops", "onnx"]),
              help="With --artifact: its format.")
@click.option("--access-log", is_flag=True, help="Log every request.")
def command(model: str, env: str, host: str, port: int, canary: float, poll: float,
            max_body: int, artifact: Path | None, version: str | None, sha256: str | None,
            fmt: str, access_log: bool) -> None:
    """Serve the version live in ENV over HTTP (KServe v1), following the registry.

    POST /v1/models/MODEL:predict with {"instances": [[...], ...]} (or objects keyed by feature
    name) answers {"predictions": [...], "model_version": "X.Y.Z"}; GET /v1/models/MODEL says
    whether it is ready; /health and /metrics (Prometheus) report what is served. On a promote
    or rollback the new version is fetched (sha256 verified), loaded and smoke-tested in the
    sandboxed worker, then loaded safely beside the live one and swapped in atomically: no
    request fails or waits. A version that cannot be loaded is reported in /health, /metrics
    and the log, and the old one keeps serving.

    \b
    Example:
      mlopsctl serve churn --env production --port 8080
      curl -s localhost:8080/v1/models/churn:predict -d '{"instances": [[0.1, 3, 7.5]]}'
      mlopsctl serve churn --env production --canary 10   # 10 % to staging's version
    """
    import logging

    from mlopsctl.errors import UsageError
    from mlopsctl.serving import server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if artifact is not None:
        if not version:
            raise UsageError("--artifact needs --version X.Y.Z")
        service = server.pinned_file(model, env, version, artifact, fmt, sha256, max_body)
    else:
        from mlopsctl.project import Project

        if version or sha256:
            raise UsageError("--version and --sha256 go with --artifact",
                             hint="without --artifact the registry says what to serve")
        service = server.follow_registry(Project.open(), model, env, canary, poll, max_body)
    logging.getLogger("mlopsctl.serve").info(
        "serving %s (%s) on http://%s:%d", model, env, host, port)
    server.run(service, host, port, access_log)
