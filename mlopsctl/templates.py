"""Files shipped with mlopsctl (``templates/`` in the source tree, ``mlopsctl/templates`` in the
wheel)."""

from __future__ import annotations

from pathlib import Path


def templates_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("mlopsctl's templates are missing from this installation")


def read_template(name: str) -> bytes:
    return (templates_dir() / name).read_bytes()
