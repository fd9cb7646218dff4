"""``mlopsctl serve``: an HTTP server (KServe v1 protocol) that follows the registry.

- ``model.py``   a loaded version (verified, checked in the worker, safely loaded) and request
                 parsing;
- ``smoke.py``   the smoke test, run in the sandboxed worker;
- ``holder.py``  what is being served: an immutable routing (live, canary, share) swapped whole;
- ``follow.py``  watches the tags cheaply and loads new versions beside the live one;
- ``metrics.py`` Prometheus metrics, labelled per version;
- ``app.py``     the Starlette application.

A switch never makes a request fail or wait: a new version is fetched and verified on the
follower's thread, loaded and smoke-tested in the sandboxed worker (another process), then
loaded by the server through the same guarded loader in short slices that leave the GIL to the
requests, while the old version keeps answering; one attribute assignment makes it live. A
request reads the routing once, so it is answered wholly by one version.
"""
