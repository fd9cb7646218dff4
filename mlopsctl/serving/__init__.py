"""``mlopsctl serve``: an HTTP server (KServe v1 protocol) that follows the registry.

- ``model.py``   a loaded version (verified, safely loaded, smoke-tested) and request parsing;
- ``holder.py``  what is being served: an immutable routing (live, canary, share) swapped whole;
- ``follow.py``  watches the tags cheaply and loads new versions beside the live one;
- ``metrics.py`` Prometheus metrics, labelled per version;
- ``app.py``     the Starlette application.

A switch never makes a request fail or wait: a new version is fetched, checked, loaded and
smoke-tested on the follower's thread while the old one keeps answering, then one attribute
assignment makes it live. A request reads the routing once, so it is answered wholly by one
version.
"""
