"""Loading code-bearing artifacts without running foreign code.

A pickle can call any importable function while it loads. Before anything is unpickled, its
opcodes are walked (``pickletools.genops``: nothing executes) and every global it would import
is checked against an allowlist of the scientific stack; one outside it refuses the whole file.
Loading then goes through an Unpickler whose ``find_class`` enforces the same list, so a global
the static walk could not see (joblib's inline arrays) is still refused before it is imported.
skops files are loaded with skops' own type audit; ONNX through onnxruntime when installed.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
from pathlib import Path
from typing import Any

# Module prefixes whose classes and functions a model pickle may reference.
ALLOWED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "pandas.", "joblib.numpy_pickle.",
                    "collections.", "datetime.")
ALLOWED_EXACT = {
    "_codecs.encode", "copyreg._reconstructor", "numpy.dtype", "numpy.ndarray",
    "builtins.dict", "builtins.list", "builtins.set", "builtins.frozenset", "builtins.tuple",
    "builtins.slice", "builtins.range", "builtins.complex", "builtins.float", "builtins.int",
    "builtins.bool", "builtins.str", "builtins.bytes", "builtins.bytearray", "builtins.object",
}
# Refused even under an allowed prefix: parts that reach the OS, files, or evaluate code.
_DENIED_PARTS = {"os", "sys", "subprocess", "ctypes", "ctypeslib", "f2py", "distutils",
                 "testing", "io", "importlib", "compile", "__import__", "fromfile", "tofile",
                 "memmap", "getattr", "globals", "locals", "breakpoint", "input"}
_DENIED_PART_RE = re.compile(r"^(load|save|read_|to_|open)|exec|eval|system|popen|spawn")


class UnsafeArtifact(Exception):
    """The artifact references code outside the allowlist; it was not loaded."""

    def __init__(self, globals_: list[str]) -> None:
        super().__init__("refused to load: the pickle references " + ", ".join(globals_))
        self.globals = globals_


def _allowed(name: str) -> bool:
    parts = name.split(".")
    if any(p in _DENIED_PARTS or _DENIED_PART_RE.search(p) for p in parts):
        return False
    return name in ALLOWED_EXACT or name.startswith(ALLOWED_PREFIXES)


def pickle_globals(data: bytes) -> list[str]:
    """Every ``module.name`` a pickle would import, found by walking its opcodes only.

    STACK_GLOBAL takes its module and name from the two most recent string pushes (possibly via
    the memo), which the walk tracks."""
    found: list[str] = []
    strings: list[str] = []
    memo: dict[int, str] = {}
    next_memo = 0
    try:
        for opcode, arg, _pos in pickletools.genops(io.BytesIO(data)):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.append(f"{module}.{attr}")
            elif name == "STACK_GLOBAL":
                if len(strings) < 2:
                    found.append("<unresolvable STACK_GLOBAL>")
                else:
                    found.append(f"{strings[-2]}.{strings[-1]}")
            elif name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
                          "SHORT_BINSTRING", "BINSTRING", "STRING"):
                strings.append(str(arg))
            elif name == "MEMOIZE":
                if strings:
                    memo[next_memo] = strings[-1]
                next_memo += 1
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                if strings:
                    memo[int(arg)] = strings[-1]  # type: ignore[arg-type]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if int(arg) in memo:  # type: ignore[arg-type]
                    strings.append(memo[int(arg)])  # type: ignore[arg-type]
            elif name == "STOP":
                break
    except Exception as exc:  # a malformed stream is refused, never half-trusted
        raise UnsafeArtifact([f"<unreadable pickle stream: {exc}>"]) from None
    return found


def check_pickle(data: bytes) -> None:
    bad = sorted({g for g in pickle_globals(data) if not _allowed(g)})
    if bad:
        raise UnsafeArtifact(bad)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if not _allowed(full):
            raise UnsafeArtifact([full])
        return super().find_class(module, name)


def load_model(path: Path, fmt: str) -> Any:
    """Load an artifact of format ``fmt`` (as recorded in its manifest) safely."""
    if fmt == "skops":
        import skops.io as sio

        untrusted = sio.get_untrusted_types(file=path)
        bad = [t for t in untrusted if not _allowed(t)]
        if bad:
            raise UnsafeArtifact(bad)
        return sio.load(path, trusted=untrusted)
    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError:
            raise UnsafeArtifact(["<onnx needs `pip install onnxruntime`>"]) from None
        return _OnnxModel(onnxruntime.InferenceSession(str(path)))
    if fmt == "joblib":
        return _load_joblib(path)
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b" or data[:4] == b"\x28\xb5\x2f\xfd":
        return _load_joblib(path)  # a compressed joblib file named .pkl
    check_pickle(data)
    return _RestrictedUnpickler(io.BytesIO(data)).load()


def _load_joblib(path: Path) -> Any:
    from joblib import numpy_pickle

    class Restricted(numpy_pickle.NumpyUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            full = f"{module}.{name}"
            if not _allowed(full):
                raise UnsafeArtifact([full])
            return super().find_class(module, name)

    with open(path, "rb") as raw, \
            numpy_pickle._validate_fileobject_and_memmap(raw, str(path), None) as (fobj, _):
        return Restricted(str(path), fobj, ensure_native_byte_order=True).load()


class _OnnxModel:
    """predict / predict_proba over an onnxruntime session (the sklearn-onnx conventions)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.input = session.get_inputs()[0].name

    def _run(self, x: Any) -> list[Any]:
        import numpy as np

        return list(self.session.run(None, {self.input: np.asarray(x, dtype=np.float32)}))

    def predict(self, x: Any) -> Any:
        return self._run(x)[0]
