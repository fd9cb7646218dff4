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

# What a model pickle may reference: classes defined in these packages (constructing one runs
# no foreign code), numpy ufuncs, and the named unpickle helpers below. Plain functions are
# refused even inside these packages: scikit-learn alone has functions that write files,
# delete directories or run scripts.
ALLOWED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "pandas.", "joblib.numpy_pickle",
                    "collections", "datetime", "builtins", "numpy", "scipy", "pandas")
ALLOWED_EXACT = {
    "_codecs.encode", "copyreg._reconstructor", "copyreg.__newobj__",
    "builtins.dict", "builtins.list", "builtins.set", "builtins.frozenset", "builtins.tuple",
    "builtins.slice", "builtins.range", "builtins.complex", "builtins.float", "builtins.int",
    "builtins.bool", "builtins.str", "builtins.bytes", "builtins.bytearray", "builtins.object",
}
# Unpickle helpers by name, inside the allowed packages (numpy's _reconstruct, scalar,
# _frombuffer and bit-generator constructors; pandas' _unpickle_* and _new_*; Cython's
# __pyx_unpickle_*).
_HELPER_RE = re.compile(r"^(_reconstruct|scalar|_frombuffer|__\w+_ctor|_unpickle\w*|_new_\w+|"
                        r"__pyx_unpickle_\w+|_timedelta_unpickle|new_block)$")
# Refused wherever they appear: parts that reach the OS, files, tests, or evaluate code.
_DENIED_PARTS = {"os", "sys", "subprocess", "shutil", "ctypes", "ctypeslib", "f2py", "distutils",
                 "testing", "_testing", "io", "importlib", "compile", "__import__", "fromfile",
                 "tofile", "memmap", "getattr", "globals", "locals", "breakpoint", "input",
                 "datasets", "npyio", "_datasource", "DataSource", "pickle", "dill", "cloudpickle"}
_DENIED_PART_RE = re.compile(r"^(load|save|read_|to_|open)|exec|eval|system|popen|spawn|HDF|Excel")


class UnsafeArtifact(Exception):
    """The artifact references code outside the allowlist; it was not loaded."""

    def __init__(self, globals_: list[str]) -> None:
        super().__init__("refused to load: the pickle references " + ", ".join(globals_))
        self.globals = globals_


def _denied(dotted: str) -> bool:
    return any(p in _DENIED_PARTS or _DENIED_PART_RE.search(p) for p in dotted.split("."))


def _py3_name(module: str, name: str) -> tuple[str, str]:
    """Protocols 0 and 1 name Python 2 modules (copy_reg, __builtin__); map them as pickle
    itself does."""
    from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING

    if (module, name) in NAME_MAPPING:
        return NAME_MAPPING[(module, name)]
    return IMPORT_MAPPING.get(module, module), name


def _allowed(full: str) -> bool:
    """May a pickle reference ``module.name``? Imports the module (only ever one inside the
    allowed packages) to see what the name is; runs nothing from the pickle."""
    module, _, name = full.rpartition(".")
    if " " in full or not module:
        return False
    module, name = _py3_name(module, name)
    full = f"{module}.{name}"
    if full in ALLOWED_EXACT:
        return True
    if _denied(full) or not module.startswith(ALLOWED_PREFIXES):
        return False
    if module.split(".")[0] not in ("sklearn", "numpy", "scipy", "pandas", "joblib",
                                    "collections", "datetime", "builtins"):
        return False
    try:
        import importlib

        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except Exception:  # a name that does not resolve is no model
        return False
    if isinstance(obj, type):
        owner = getattr(obj, "__module__", "") or ""
        return (owner.startswith(ALLOWED_PREFIXES) and not _denied(owner)
                and not _denied(getattr(obj, "__qualname__", "")))
    if "." in name:
        return False  # a dotted walk to a function: it may lead anywhere
    if type(obj).__name__ == "ufunc":
        return True
    return bool(_HELPER_RE.match(name))


_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
               "BINSTRING", "STRING", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8"}


def pickle_globals(data: bytes) -> list[str]:
    """Every ``module.name`` a pickle would import, found by simulating its stack over the
    opcodes (nothing executes). STACK_GLOBAL takes the two strings actually on top of the
    stack, so pushed-and-popped decoys do not hide the real global."""
    found: list[str] = []
    stack: list[Any] = []
    mark = object()
    other = object()
    memo: dict[int, Any] = {}
    try:
        for opcode, arg, _pos in pickletools.genops(io.BytesIO(data)):
            name = opcode.name
            if name == "STOP":
                break
            if name == "MARK":
                stack.append(mark)
                continue
            before = opcode.stack_before
            popped: list[Any] = []
            if pickletools.markobject in before:
                while stack and stack[-1] is not mark:
                    popped.insert(0, stack.pop())
                if not stack:
                    raise ValueError("no MARK on the stack")
                stack.pop()
                for _ in range(before.index(pickletools.markobject)):
                    popped.insert(0, stack.pop())
            else:
                for _ in before:
                    popped.insert(0, stack.pop())
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.append(f"{module}.{attr}")
            elif name == "STACK_GLOBAL":
                mod, attr = popped[-2], popped[-1]
                if isinstance(mod, str) and isinstance(attr, str):
                    found.append(f"{mod}.{attr}")
                else:
                    found.append("<unresolvable STACK_GLOBAL>")
            if name == "MEMOIZE":
                memo[len(memo)] = popped[-1] if popped else (stack[-1] if stack else other)
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = stack[-1] if stack else other  # type: ignore[arg-type]
            # What the opcode leaves on the stack.
            after = opcode.stack_after
            if name in _STRING_OPS:
                stack.append(arg if isinstance(arg, str) else other)
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(int(arg), other))  # type: ignore[arg-type]
            elif name == "DUP":
                stack.append(stack[-1] if stack else other)
            elif name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
                pass  # these leave the stack as it was; handled above
            else:
                stack.extend(other for _ in after)
            if name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT") and popped:
                stack.extend(popped)
    except Exception as exc:  # a malformed stream is refused, never half-trusted
        if any(g.startswith("joblib.numpy_pickle.") for g in found):
            raise _JoblibStream from None
        raise UnsafeArtifact([f"<unreadable pickle stream: {exc}>"]) from None
    return found


class _JoblibStream(Exception):
    """An uncompressed joblib file: array bytes follow the pickle opcodes inline."""


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
    if data.startswith(_COMPRESSED_MAGIC):
        return _load_joblib(path)  # a compressed joblib file named .pkl
    try:
        check_pickle(data)
    except _JoblibStream:
        return _load_joblib(path)  # an uncompressed joblib file named .pkl
    return _RestrictedUnpickler(io.BytesIO(data)).load()


# zlib, gzip, bz2, xz/lzma, lz4, zstd: the compressions joblib writes. A pickle starts with
# 0x80 (protocol 2+) or an opcode character, never with these.
_COMPRESSED_MAGIC = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda", b"\x1f\x8b", b"BZh",
                     b"\xfd7zXZ", b"\x5d\x00\x00", b"\x04\x22\x4d\x18", b"\x28\xb5\x2f\xfd",
                     b"ZF")


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
