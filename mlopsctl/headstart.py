"""A head start for ``bump``'s artifact stream.

Much of a small bump's fixed cost is Python work that holds the GIL: importing pydantic and
validating the registry's files (config, access list, model card) with it. Sealing (zstd,
AES-GCM, hashing, file I/O) runs in C with the GIL released. So ``bump`` starts sealing on a
worker thread first, from the few values it needs, read from the raw YAML (key id, compression
level, remote name, and the card's artifact path when none is given), then does all of its usual
work, in the usual order, with the usual validation; where it would seal, it ``claim``s the head
start with the inputs it has validated. The sealed blob is taken only if it was made from exactly
those inputs and succeeded; otherwise it is stopped and removed, and the bump seals itself.

So validation is not duplicated: the raw values only choose work that may be thrown away, and
nothing the head start makes is published unless the validated path asks for exactly it.
Anything unexpected here (a missing key, a malformed file, a taken version) just means no head
start: the bump then meets the problem itself and reports it as it always has. A raw key id is
used only in the exact shape mlopsctl writes, since it names a file read before validation.

``fetch`` has none: measured, its stream (already split over two cores) slowed down by as much as
the overlap saved, since each of its stages needs the GIL for a moment per chunk while the
validation holds it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlopsctl import semver
from mlopsctl.errors import UsageError
from mlopsctl.progress import Reporter

KEY_ID = re.compile(r"k[0-9a-f]{15}")


class _Stopped(Exception):
    """Raised through the stream's progress callback to end a head start nobody wants."""


# While a head start runs, the command's own Python work (imports, validation) holds the GIL
# in long stretches, and the stream's threads need it for a moment between each C call
# (hashing, compressing, sealing, writing a chunk). CPython makes a waiting thread wait up to
# the switch interval (5 ms) before it asks the holder to let go: that, once or twice per 1 MiB
# chunk and stage, would slow the stream to a crawl exactly while it is meant to overlap.
SWITCH_INTERVAL = 0.0005


class HeadStart:
    """One stream running on a worker thread, and the inputs it was started with."""

    def __init__(self, label: str, size: int, inputs: dict[str, Any],
                 work: Callable[[Callable[[int], None]], Any], leftover: Path) -> None:
        self.label, self.size, self.inputs = label, size, inputs
        self.leftover = leftover  # removed unless the result is claimed
        self.done = 0  # bytes streamed so far
        self.result: Any = None
        self.error: BaseException | None = None
        self.claimed = False
        self._work = work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlopsctl-head-start",
                                        daemon=True)
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(SWITCH_INTERVAL, self._switch_interval))
        self._thread.start()

    def _progress(self, n: int) -> None:
        if self._stop.is_set():
            raise _Stopped
        self.done += n

    def _run(self) -> None:
        try:
            self.result = self._work(self._progress)
        except BaseException as exc:  # judged in claim(): any failure means "do it yourself"
            self.error = exc
        finally:
            sys.setswitchinterval(self._switch_interval)

    def claim(self, inputs: dict[str, Any], reporter: Reporter) -> Any:
        """The stream's result if it was started from exactly ``inputs`` and succeeded, once it
        has finished (showing its progress on ``reporter``); None otherwise, having discarded
        it. Only the first claim can succeed."""
        if self.claimed or inputs != self.inputs:
            self.discard()
            return None
        reporter.start(self.label, self.size)
        try:
            shown = 0
            while self._thread.is_alive():
                self._thread.join(0.05)
                done = self.done
                reporter.advance(done - shown)
                shown = done
            self._thread.join()
            if self.done > shown:  # it may have finished before the claim
                reporter.advance(self.done - shown)
        finally:
            reporter.stop()
        if self.error is not None:
            self.discard()
            return None
        self.claimed = True
        return self.result

    def discard(self) -> None:
        """Stop the stream and remove what it wrote (idempotent; nothing once claimed)."""
        if self.claimed:
            return
        self._stop.set()
        self._thread.join()
        self.claimed = True  # spent: a later claim gets None
        with contextlib.suppress(OSError):  # never made, or unremovable: bump's sweep retries
            self.leftover.unlink()


def seal_inputs(artifact: Path, key: bytes, key_id: str, model: str, version: str, level: int,
                staging: Path) -> dict[str, Any]:
    """What a sealed blob depends on (besides the bytes): a head start is claimed by these."""
    return {"artifact": artifact.resolve(), "key": key, "key_id": key_id, "model": model,
            "version": version, "level": level, "staging": staging}


def plan_version(registry: Any, model: str, version: str | None, part: str | None
                 ) -> tuple[semver.Version, str | None]:
    """(version to register, parent version) of a bump of ``model`` asking for ``version`` or
    a ``part`` (major/minor/patch; minor by default) to bump."""
    state = registry.model(model)
    existing = registry.taken_versions(model)
    parent = state.latest.number if state and state.latest else None
    if version:
        wanted = semver.parse(version)
        if wanted.tag in existing:
            raise UsageError(
                f"{model} already has version {wanted}",
                hint="versions are immutable: pick another, e.g. `--patch` "
                f"(mlopsctl show {model})",
            )
        return wanted, parent
    current = semver.greatest([semver.parse(v) for v in existing])
    return semver.bump(current, part or "minor"), parent


# --- reading raw values --------------------------------------------------------------------------


def _raw_yaml(text: bytes) -> dict[str, Any]:
    import yaml

    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(data, dict):
        raise ValueError("not a mapping")
    return data


def _shaped(value: Any, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError("not in the shape mlopsctl writes")
    return value


def _storage(config: dict[str, Any]) -> tuple[str, str]:
    """(key id, DVC remote name) as config.yaml states them (mlopsctl init writes both)."""
    remote = config["remote"]
    if not isinstance(remote, str):
        raise ValueError("remote")
    return _shaped(config["encryption"]["key_id"], KEY_ID), remote


def start_seal(model: str, artifact: Path | None, version: str | None,
               part: str | None) -> HeadStart | None:
    """Start sealing the artifact a bump of ``model`` would register, or None when the inputs
    cannot be told without validation (the bump then does all of it itself)."""
    try:
        return _start_seal(model, artifact, version, part)
    except Exception:  # whatever it is, the bump meets it again and reports it
        return None


def _start_seal(model: str, artifact: Path | None, version: str | None,
                part: str | None) -> HeadStart | None:
    from mlopsctl import registry as reg
    from mlopsctl.gitops.tags import path_part
    from mlopsctl.store.keys import load_key
    from mlopsctl.store.pipeline import seal_file
    from mlopsctl.store.remote import load_remote
    from mlopsctl.workspace import Workspace

    ws = Workspace.find()
    config = _raw_yaml(ws.config_path.read_bytes())
    kid, remote_name = _storage(config)
    level = config["compression"]["level"]
    if type(level) is not int or not 1 <= level <= 22:
        return None
    if artifact is None:  # the one the model card remembers
        remembered = _raw_yaml(ws.card_path(model).read_bytes())["artifact"]
        if not isinstance(remembered, str) or not remembered:
            return None
        artifact = ws.root / remembered
    artifact = Path(artifact)
    if not artifact.is_file():
        return None
    key = load_key(kid)
    staging = load_remote(ws.root, remote_name).staging_dir()
    number = str(plan_version(reg.load(ws.root), model, version, part)[0])
    blob = staging / f"{path_part(model)}-{number}-early-{os.getpid()}.blob"
    inputs = seal_inputs(artifact, key, kid, model, number, level, staging)

    def work(progress: Callable[[int], None]) -> tuple[Path, Any]:
        return blob, seal_file(artifact, blob, key=key, key_id=kid, model=model, version=number,
                               level=level, progress=progress)

    return HeadStart(f"sealing {artifact.name}", artifact.stat().st_size, inputs, work, blob)
