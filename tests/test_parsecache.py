"""``show MODEL`` validates each manifest's bytes once (parsecache.py): warm, it reads neither
YAML nor pydantic, and changed bytes are validated again."""

from __future__ import annotations

import json
import marshal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run

from mlopsctl import parsecache


@pytest.fixture
def versions(registry: Path) -> Path:
    for n in (1, 2, 3):
        (registry / "model.bin").write_bytes(b"model %d" % n)
        assert run("bump", "m", "--artifact", "model.bin").code == 0
    return registry


def show(root: Path) -> tuple[dict[str, object], list[str]]:
    """`show m --json` in a fresh process: its document, and the modules it imported."""
    code = ("import json, sys\nfrom mlopsctl.cli import main\n"
            "code = main(['show', 'm', '--json'])\n"
            "sys.stderr.write('\\nMODULES ' + json.dumps(sorted(sys.modules)))\n"
            "raise SystemExit(code)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    modules = json.loads(proc.stderr.rsplit("MODULES ", 1)[1])
    return json.loads(proc.stdout), modules


def test_a_second_show_validates_nothing_again(versions: Path) -> None:
    first, _ = show(versions)
    second, modules = show(versions)
    assert second == first
    assert [v["blob"] for v in second["versions"]] == ["stored"] * 3  # type: ignore[index]
    assert "pydantic" not in modules  # nothing validated: every document came from the cache


def test_changed_bytes_are_validated_again(versions: Path) -> None:
    show(versions)
    manifest = versions / ".mlops" / "models" / "m" / "versions" / "0.2.0.yaml"
    manifest.write_text(manifest.read_text().replace("  size: ", "  size: many ", 1))
    result = run("show", "m", "--json")
    assert result.code == 3
    assert "0.2.0.yaml" in result.err and "size" in result.err


def test_a_cache_from_other_schemas_is_ignored(versions: Path) -> None:
    show(versions)
    path = versions / ".git" / "mlopsctl" / "parsed" / "m"
    _, docs, specs = marshal.loads(path.read_bytes())
    poisoned = {blob: {**doc, "message": "not what the file says"} for blob, doc in docs.items()}
    path.write_bytes(marshal.dumps(("another fingerprint", poisoned, specs)))
    shown, _ = show(versions)
    assert all(v["manifest"]["message"] != "not what the file says"  # type: ignore[index]
               for v in shown["versions"])  # type: ignore[union-attr]
    assert marshal.loads(path.read_bytes())[0] == parsecache.fingerprint()


def test_a_damaged_cache_starts_empty(versions: Path) -> None:
    show(versions)
    path = versions / ".git" / "mlopsctl" / "parsed" / "m"
    path.write_bytes(b"\x00garbage")
    shown, _ = show(versions)
    assert len(shown["versions"]) == 3  # type: ignore[arg-type]
