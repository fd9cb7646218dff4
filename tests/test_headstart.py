"""The head start of ``bump``: the artifact is sealed on a worker thread while the command
imports pydantic and validates, and the blob is used only when the validated inputs are the ones
it started from. Validation keeps the last word: same errors, nothing left behind.

Real registries (`mlopsctl init` in a temp git repository); the CLI run in-process."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import Result, git, run

from mlopsctl import headstart, versioning
from mlopsctl.progress import Reporter
from mlopsctl.project import Project
from mlopsctl.store.remote import load_remote

DATA = os.urandom(3 << 20) + b"weights" * 50_000  # a few chunks, partly compressible


def ok(*args: str | os.PathLike[str]) -> Result:
    result = run(*args)
    assert result.code == 0, f"mlopsctl {' '.join(map(str, args))}: {result.err}"
    return result


def staging(repo: Path) -> list[str]:
    """Blobs in the remote's staging directory (where bump seals before publishing)."""
    base = load_remote(repo, "mlops").local_dir
    assert base is not None
    return sorted(p.name for p in (base / "tmp-mlopsctl").glob("*"))


@pytest.fixture
def artifact(registry: Path) -> Path:
    path = registry / "model.bin"
    path.write_bytes(DATA)
    return path


class Recorder(Reporter):
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def start(self, label: str, total: int) -> None:
        self.calls.append(("start", (label, total)))

    def advance(self, n: int) -> None:
        self.calls.append(("advance", n))

    def stop(self) -> None:
        self.calls.append(("stop", None))


# --- the head start is what gets used ----------------------------------------------------------


def test_bump_publishes_the_blob_its_head_start_sealed(registry: Path, artifact: Path,
                                                       tmp_path: Path) -> None:
    def no_second_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("bump sealed the artifact again instead of taking the head start")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(versioning, "_seal", no_second_pass)
        ok("bump", "m", "--artifact", "model.bin")
    assert staging(registry) == []
    ok("fetch", "m@0.1.0", "-o", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == DATA


def test_a_bump_without_artifact_seals_the_cards_file_ahead(registry: Path, artifact: Path,
                                                            tmp_path: Path) -> None:
    ok("bump", "m", "--artifact", "model.bin")
    artifact.write_bytes(DATA[::-1])

    def no_second_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("bump sealed the artifact again instead of taking the head start")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(versioning, "_seal", no_second_pass)
        ok("bump", "m")  # the model card remembers model.bin
    ok("fetch", "m@0.2.0", "-o", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == DATA[::-1]


def test_claiming_shows_the_whole_stream_as_progress(registry: Path, artifact: Path) -> None:
    head = headstart.start_seal("m", Path("model.bin"), None, None)
    assert head is not None
    project = Project.open()
    reporter = Recorder()
    result = versioning.bump(project, versioning.BumpRequest("m", Path("model.bin")), reporter,
                             head=head)
    assert result.manifest.artifact.sha256 == hashlib.sha256(DATA).hexdigest()
    assert reporter.calls[0] == ("start", ("sealing model.bin", len(DATA)))
    assert reporter.calls[-1] == ("stop", None)
    assert sum(n for what, n in reporter.calls if what == "advance") == len(DATA)  # type: ignore[misc]


def test_the_head_start_needs_neither_pydantic_nor_the_manifest_models(registry: Path,
                                                                       artifact: Path) -> None:
    """The point of it: sealing starts before the slow imports."""
    code = textwrap.dedent("""
        import sys
        from pathlib import Path
        from mlopsctl.headstart import start_seal
        seal = start_seal("m", Path("model.bin"), None, None)
        print(seal is not None,
              sorted(m for m in ("pydantic", "mlopsctl.manifests") if m in sys.modules))
        seal.discard()
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=registry, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "True []"
    assert staging(registry) == []


# --- anything else: thrown away, the command does the work itself ------------------------------


def test_a_head_start_from_other_inputs_is_thrown_away(registry: Path, artifact: Path,
                                                       tmp_path: Path) -> None:
    head = headstart.start_seal("m", Path("model.bin"), None, None)  # plans 0.1.0
    assert head is not None
    ok("bump", "m", "--artifact", "model.bin")  # another process takes 0.1.0 meanwhile
    result = versioning.bump(Project.open(), versioning.BumpRequest("m", Path("model.bin")),
                             head=head)
    assert result.manifest.version == "0.2.0"  # sealed again, for the version it got
    assert staging(registry) == []
    ok("fetch", "m@0.2.0", "-o", tmp_path / "back.bin")  # bound to 0.2.0, not to 0.1.0
    assert (tmp_path / "back.bin").read_bytes() == DATA


def test_a_failed_head_start_is_redone_by_the_command(registry: Path, artifact: Path,
                                                      tmp_path: Path) -> None:
    head = headstart.start_seal("m", Path("model.bin"), None, None)
    assert head is not None
    head._thread.join()
    head.error = RuntimeError("say the disk hiccuped")  # the command must not trust it
    result = versioning.bump(Project.open(), versioning.BumpRequest("m", Path("model.bin")),
                             head=head)
    assert result.manifest.version == "0.1.0"
    assert staging(registry) == []
    ok("fetch", "m@0.1.0", "-o", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == DATA


def _same_error_without_head_start(*args: str) -> str:
    """Run the command with and without head starts; both must fail alike. Returns stderr."""
    with_head = run(*args)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(headstart, "start_seal", lambda *a: None)
        without = run(*args)
    assert with_head == without
    assert with_head.code != 0
    return with_head.err


def test_a_config_pydantic_refuses_fails_bump_as_before(registry: Path, artifact: Path) -> None:
    """The raw read finds the key id and level it needs in a config the schema refuses: the
    head start begins, and the bump still fails with the schema's error, leaving nothing."""
    config = registry / ".mlops" / "config.yaml"
    config.write_text(config.read_text() + "surprise: field\n")
    head = headstart.start_seal("m", Path("model.bin"), None, None)
    assert head is not None  # the raw read alone would go ahead
    head.discard()
    err = _same_error_without_head_start("bump", "m", "--artifact", "model.bin")
    assert ".mlops/config.yaml" in err and "surprise" in err
    assert staging(registry) == [] and git(registry, "tag") == ""


def test_a_usage_error_after_the_head_start_leaves_no_blob(registry: Path,
                                                           artifact: Path) -> None:
    result = run("bump", "m", "--artifact", "model.bin", "--holdout", "model.bin")
    assert result.code == 2
    assert "--target" in result.err
    assert staging(registry) == []


@pytest.mark.parametrize("key_id", ["../../../../tmp/k", "k0123", 7])
def test_raw_values_not_in_mlopsctls_shape_get_no_head_start(registry: Path, artifact: Path,
                                                             key_id: object) -> None:
    """Before validation, a raw value that names a file (the key) must look exactly like what
    mlopsctl writes; otherwise the bump simply streams after validating, as before."""
    config = registry / ".mlops" / "config.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["encryption"]["key_id"] = key_id
    config.write_text(yaml.safe_dump(doc))
    assert headstart.start_seal("m", Path("model.bin"), None, None) is None
