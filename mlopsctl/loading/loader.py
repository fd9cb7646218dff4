"""Loading model files without running foreign code.

A pickle is a program: GLOBAL imports any name, REDUCE calls whatever sits on the stack, BUILD
runs the object's ``__setstate__``. The loader therefore checks three things, each against the
exact names of ``allowlist.py`` plus the registry's own ``trusted_types``:

1. **Before anything is imported**, the opcodes are walked with the stack simulated
   (``pickletools.genops``; nothing executes) and every name the pickle would import must be
   on the list. A refused file names what it asked for.
2. **While it loads**, a pure-Python unpickler (``pickle._Unpickler``; joblib's reader is one
   too) checks each step as it happens: ``find_class`` imports only listed names; REDUCE,
   NEWOBJ, INST and OBJ call only objects that ``find_class`` itself returned, never an object
   built on the stack; BUILD sets state only on listed types; a few callables also have their
   arguments checked (a numpy array is always rebuilt empty, so a pickle cannot ask for a
   terabyte through ``_reconstruct``). joblib's arrays of Python objects are nested pickles:
   they are read by the same guarded unpickler, not by joblib's plain one.
3. **skops files** are audited against the same list (every type and function in the file's
   schema), not against skops' own defaults, then loaded by skops with exactly those types.

ONNX files carry no code: onnxruntime runs a graph of known operators. They are loaded from
bytes, so an ONNX file cannot name an external-data path to read.
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import re
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mlopsctl.loading import allowlist, pace

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")

TRUSTED_TYPES_HINT = ("if it is your team's own class, list it under `trusted_types:` in "
                      ".mlops/policy.yaml and re-pin with `mlopsctl policy accept` (the change "
                      "is then reviewed like any policy change)")


class UnsafeArtifact(Exception):
    """The model file asks for something outside the allowlist; it was not loaded."""

    def __init__(self, refused: list[str], why: str = "not on the loader's allowlist") -> None:
        self.globals = refused
        self.why = why
        super().__init__(f"refused to load: {', '.join(refused)} ({why})")


class Allowlist:
    """The built-in list plus a registry's ``trusted_types`` (exact dotted names)."""

    def __init__(self, trusted: Iterable[str] = ()) -> None:
        extra = set()
        for name in trusted:
            if not _DOTTED.match(name):
                raise ValueError(f"trusted_types entry {name!r} is not a dotted module.Name")
            extra.add(name)
        self.trusted = frozenset(extra)
        self.globals = allowlist.GLOBALS | self.trusted
        self.callables = allowlist.CALLABLES | self.trusted
        self.state_types = allowlist.ALL | self.trusted

    def permits(self, full: str) -> bool:
        return full in self.globals


BUILTIN_LIST = Allowlist()


# --- 1. the static walk ---------------------------------------------------------------------

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
               "BINSTRING", "STRING", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8"}
_MEMO_PUT = ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT")


class JoblibStream(Exception):
    """An uncompressed joblib file: array bytes follow the pickle opcodes inline."""


def pickle_globals(data: bytes) -> list[str]:
    """Every ``module.name`` a pickle would import, found by simulating its stack over the
    opcodes (nothing executes). STACK_GLOBAL takes the two strings actually on top of the
    stack, through the memo too, so pushed-and-popped decoys do not hide the real global."""
    found: list[str] = []
    stack: list[Any] = []
    mark, other = object(), object()
    memo: dict[int, Any] = {}
    pacer = pace.current()
    try:
        for opcode, arg, _pos in pickletools.genops(io.BytesIO(data)):
            if pacer is not None:
                pacer.tick()
            name = opcode.name
            if name == "STOP":
                break
            if name == "MARK":
                stack.append(mark)
                continue
            popped = _pop_operands(stack, opcode, mark)
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.append(allowlist.canonical(module, attr))
            elif name == "STACK_GLOBAL":
                mod, attr = popped[-2], popped[-1]
                if isinstance(mod, str) and isinstance(attr, str):
                    found.append(allowlist.canonical(mod, attr))
                else:
                    found.append("<a STACK_GLOBAL whose name is not a plain string>")
            if name == "MEMOIZE":
                memo[len(memo)] = popped[-1] if popped else (stack[-1] if stack else other)
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = stack[-1] if stack else other  # type: ignore[arg-type]
            if name in _STRING_OPS:
                stack.append(arg if isinstance(arg, str) else other)
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(int(arg), other))  # type: ignore[arg-type]
            elif name == "DUP":
                stack.extend([popped[0], popped[0]])
            elif name in _MEMO_PUT:
                stack.extend(popped)
            else:
                stack.extend(other for _ in opcode.stack_after)
    except Exception as exc:  # a malformed stream is refused, never half-trusted
        if any(g.startswith("joblib.numpy_pickle.") for g in found):
            raise JoblibStream from None
        raise UnsafeArtifact([f"<unreadable pickle stream: {exc}>"], "not a pickle") from None
    return found


def _pop_operands(stack: list[Any], opcode: Any, mark: object) -> list[Any]:
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
    return popped


def check_pickle(data: bytes, allow: Allowlist = BUILTIN_LIST) -> None:
    bad = sorted({g for g in pickle_globals(data) if not allow.permits(g)})
    if bad:
        raise UnsafeArtifact(bad)


# --- 2. the guarded unpickler ------------------------------------------------------------------


def _empty_array_only(args: tuple[Any, ...]) -> str | None:
    # numpy pickles every array as _reconstruct(cls, (0,), b'b') and then BUILDs its data in.
    if len(args) >= 2 and tuple(args[1]) == (0,):
        return None
    return "an array must be rebuilt empty and filled by its state"


def _latin1_only(args: tuple[Any, ...]) -> str | None:
    if len(args) == 2 and args[1] in ("latin1", "latin-1") and isinstance(args[0], str):
        return None
    return "only latin-1 strings are re-encoded"


def _no_sizes(args: tuple[Any, ...]) -> str | None:
    # bytes(10**12) or bytearray(10**12) allocate; rebuilding from a value never needs a size.
    if all(not isinstance(a, int) for a in args):
        return None
    return "a size argument would allocate memory"


def _plain_base(args: tuple[Any, ...]) -> str | None:
    # copyreg._reconstructor(cls, base, state) calls base.__new__(cls, state): legitimate
    # pickles name object (or a builtin container) as the base, never numpy.ndarray.
    if len(args) == 3 and args[1] in (object, dict, list, tuple, set, frozenset, int, float,
                                      str, bytes):
        return None
    return "the base type must be object or a builtin container"


ARGUMENT_CHECKS: dict[str, Callable[[tuple[Any, ...]], str | None]] = {
    "copyreg._reconstructor": _plain_base,
    "numpy._core.multiarray._reconstruct": _empty_array_only,
    "numpy.ma.core._mareconstruct": lambda args: _empty_array_only(args[1:]),
    "_codecs.encode": _latin1_only,
    "builtins.bytes": _no_sizes,
    "builtins.bytearray": _no_sizes,
}


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


class _Guard:
    """Checks for a pure-Python unpickler; mixed in before ``pickle._Unpickler`` or joblib's
    ``NumpyUnpickler``. ``_granted`` maps id() of each object ``find_class`` returned to its
    name, and keeps the object alive so an id is never reused."""

    allow: Allowlist
    stack: list[Any]
    _granted: dict[int, tuple[Any, str]]

    def _init_guard(self, allow: Allowlist) -> None:
        self.allow = allow
        self._granted = {}
        pacer = pace.current()
        if pacer is not None:
            # The same handlers, each after a tick: ``load`` reads ``self.dispatch``, so an
            # instance's own table shadows the class's.
            table = type(self).dispatch  # type: ignore[attr-defined]
            self.__dict__["dispatch"] = pacer.dispatch(table)

    def find_class(self, module: str, name: str) -> Any:
        full = allowlist.canonical(module, name)
        if not self.allow.permits(full):
            raise UnsafeArtifact([full])
        obj = _resolve(full)
        self._granted[id(obj)] = (obj, full)
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeArtifact(["<persistent id>"], "model files never need persistent ids")

    def _callable_name(self, func: Any, opcode: str) -> str:
        granted = self._granted.get(id(func))
        if granted is None or granted[0] is not func:
            raise UnsafeArtifact([f"{opcode} of a {_type_name(func)} object"],
                                 "only functions and classes on the allowlist may be called")
        if granted[1] not in self.allow.callables:
            raise UnsafeArtifact([f"{opcode} of {granted[1]}"],
                                 "it may be named in a model file, never called")
        return granted[1]

    def _check_args(self, name: str, args: Any) -> None:
        check = ARGUMENT_CHECKS.get(name)
        if check is not None:
            why = check(tuple(args))
            if why:
                raise UnsafeArtifact([f"{name}{_short(args)}"], why)

    def load_reduce(self) -> None:
        args, func = self.stack[-1], self.stack[-2]
        name = self._callable_name(func, "REDUCE")
        self._check_args(name, args)
        super().load_reduce()  # type: ignore[misc]

    def load_newobj(self) -> None:
        self._check_class(self.stack[-2], "NEWOBJ")
        super().load_newobj()  # type: ignore[misc]

    def load_newobj_ex(self) -> None:
        self._check_class(self.stack[-3], "NEWOBJ_EX")
        super().load_newobj_ex()  # type: ignore[misc]

    def _instantiate(self, klass: Any, args: Any) -> None:
        name = self._check_class(klass, "INST/OBJ")
        self._check_args(name, args)
        super()._instantiate(klass, args)  # type: ignore[misc]

    def _check_class(self, cls: Any, opcode: str) -> str:
        name = self._callable_name(cls, opcode)
        if not isinstance(cls, type):
            raise UnsafeArtifact([f"{opcode} of {name}"], "only classes are instantiated")
        return name

    def _check_build(self) -> None:
        inst = self.stack[-2]
        name = _type_name(inst)
        if name not in self.allow.state_types:
            raise UnsafeArtifact([f"BUILD of {name}"],
                                 "state is only set on types on the allowlist")

    def load_build(self) -> None:
        self._check_build()
        super().load_build()  # type: ignore[misc]


def _tree_nodes(tree: Any) -> None:
    """sklearn's Tree walks its node arrays without bounds checks: each child must be a later
    node (which also rules out cycles) and each split feature one the tree was fitted on."""
    import numpy as np

    n = int(tree.node_count)
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    feature = np.asarray(tree.feature)
    index = np.arange(n)
    leaf = left == -1
    if (len(left) != n or len(right) != n or np.any(leaf != (right == -1))
            or np.any((~leaf) & ((left <= index) | (left >= n) | (right <= index)
                                 | (right >= n)))
            or np.any((~leaf) & ((feature < 0) | (feature >= int(tree.n_features))))
            or np.asarray(tree.value).shape[0] != n):
        raise UnsafeArtifact(["sklearn.tree._tree.Tree"], "its node arrays point out of bounds")


def _sparse_indices(matrix: Any) -> None:
    """scipy's sparse kernels trust their index arrays; check them as scipy itself can."""
    try:
        if hasattr(matrix, "check_format"):
            matrix.check_format(full_check=True)
        elif hasattr(matrix, "coords") or hasattr(matrix, "row"):
            shape = matrix.shape
            coords = getattr(matrix, "coords", None) or (matrix.row, matrix.col)
            for axis, values in enumerate(coords):
                if len(values) and (values.min() < 0 or values.max() >= shape[axis]):
                    raise ValueError("index out of range")
    except UnsafeArtifact:
        raise
    except Exception as exc:
        raise UnsafeArtifact([_type_name(matrix)], f"inconsistent sparse matrix: {exc}") \
            from None


def _predictor_nodes(predictor: Any) -> None:
    """A histogram-gradient-boosting tree: children must be later nodes of the same array."""
    import numpy as np

    nodes = getattr(predictor, "nodes", None)
    if nodes is None or not hasattr(nodes, "dtype") or nodes.dtype.names is None:
        return
    n = len(nodes)
    inner = ~nodes["is_leaf"].astype(bool)
    index = np.arange(n)
    for side in ("left", "right"):
        child = nodes[side].astype(np.int64)
        if np.any(inner & ((child <= index) | (child >= n))):
            raise UnsafeArtifact([_type_name(predictor)], "its nodes point out of bounds")


def _neighbor_tree(tree: Any) -> None:
    """KDTree/BallTree: the index array and every node's range stay inside the data."""
    import numpy as np

    data, idx, nodes, bounds = tree.get_arrays()
    n = len(data)
    idx = np.asarray(idx)
    start, end = np.asarray(nodes["idx_start"]), np.asarray(nodes["idx_end"])
    if (len(idx) != n or (n and (idx.min() < 0 or idx.max() >= n))
            or np.any(start < 0) or np.any(end > n) or np.any(start > end)
            or np.asarray(bounds).shape[1:2] not in ((len(nodes),), ())
            or (np.asarray(bounds).ndim == 3 and np.asarray(bounds).shape[2] != data.shape[1])):
        raise UnsafeArtifact([_type_name(tree)], "its index arrays point outside its data")


def _boosting(model: Any) -> None:
    """A histogram-gradient-boosting model: split features and category bitsets in range."""
    import numpy as np

    width = getattr(model, "n_features_in_", None)
    for row in getattr(model, "_predictors", None) or []:
        for predictor in row:
            _predictor_nodes(predictor)
            nodes = predictor.nodes
            inner = ~nodes["is_leaf"].astype(bool)
            features = nodes["feature_idx"].astype(np.int64)
            if isinstance(width, int) and np.any(inner & ((features < 0) | (features >= width))):
                raise UnsafeArtifact([_type_name(model)], "a split reads a feature it lacks")
            categorical = inner & nodes["is_categorical"].astype(bool)
            bitsets = len(getattr(predictor, "raw_left_cat_bitsets", ()))
            if np.any(categorical & (nodes["bitset_idx"].astype(np.int64) >= bitsets)):
                raise UnsafeArtifact([_type_name(model)], "a split's category set is missing")


_SPARSE = ("scipy.sparse._csr.", "scipy.sparse._csc.", "scipy.sparse._bsr.", "scipy.sparse._coo.")
STATE_CHECKS: dict[str, Callable[[Any], None]] = {
    "sklearn.tree._tree.Tree": _tree_nodes,
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor": _predictor_nodes,
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier":
        _boosting,
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor":
        _boosting,
    "sklearn.neighbors._kd_tree.KDTree": _neighbor_tree,
    "sklearn.neighbors._ball_tree.BallTree": _neighbor_tree,
}


def check_state(root: Any, limit: int = 1_000_000) -> None:
    """Memory-safety checks of state that compiled code later trusts without checking (tree
    node arrays, sparse indices), over every object reachable from the loaded model."""
    import numpy as np

    seen: set[int] = set()
    todo = [root]
    pacer = pace.current()
    while todo and len(seen) < limit:
        if pacer is not None:
            pacer.tick()
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None))):
            continue
        seen.add(id(obj))
        name = _type_name(obj)
        check = STATE_CHECKS.get(name)
        if check is None and name.startswith(_SPARSE):
            check = _sparse_indices
        if check is not None:
            check(obj)
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                todo.extend(obj.ravel().tolist())
        elif isinstance(obj, dict):
            todo.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            todo.extend(obj)
        elif isinstance(getattr(obj, "__dict__", None), dict):
            todo.extend(vars(obj).values())


def _short(args: Any) -> str:
    text = repr(args)
    return text if len(text) <= 60 else text[:57] + "..."


def _resolve(full: str) -> Any:
    import importlib

    module, _, name = full.rpartition(".")
    # Names are dotted paths: a class nested in a module path ("a.b.C") resolves at the
    # longest importable module prefix.
    parts = full.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for part in parts[cut:]:
                obj = getattr(obj, part)
        except AttributeError:
            break
        return obj
    raise UnsafeArtifact([full], f"cannot import {module}.{name}")


def _dispatch(base: type) -> dict[int, Any]:
    table = dict(base.dispatch)  # type: ignore[attr-defined]
    for op, method in ((pickle.REDUCE, "load_reduce"), (pickle.NEWOBJ, "load_newobj"),
                       (pickle.NEWOBJ_EX, "load_newobj_ex"), (pickle.BUILD, "load_build")):
        table[op[0]] = lambda self, _m=method: getattr(self, _m)()
    return table


class GuardedUnpickler(_Guard, pickle._Unpickler):
    dispatch = _dispatch(pickle._Unpickler)

    def __init__(self, file: Any, allow: Allowlist = BUILTIN_LIST) -> None:
        super().__init__(file)
        self._init_guard(allow)


def _joblib_unpickler() -> type:
    import numpy as np
    from joblib import numpy_pickle

    class GuardedJoblib(_Guard, numpy_pickle.NumpyUnpickler):
        dispatch = _dispatch(numpy_pickle.NumpyUnpickler)

        def __init__(self, path: str, fobj: Any, allow: Allowlist) -> None:
            super().__init__(path, fobj, ensure_native_byte_order=True)
            self._init_guard(allow)

        def load_build(self) -> None:
            self._check_build()
            pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
            wrapper = self.stack[-1]
            if isinstance(wrapper, numpy_pickle.NumpyArrayWrapper):
                self.stack[-1] = self._read_array(wrapper)

        def _read_array(self, wrapper: Any) -> Any:
            if wrapper.subclass is not np.ndarray:
                raise UnsafeArtifact([f"array subclass {wrapper.subclass!r}"],
                                     "joblib arrays must be plain numpy arrays")
            if wrapper.dtype.hasobject:
                # The objects are a nested pickle: read it with the same guards.
                inner = GuardedUnpickler(self.file_handle, self.allow)
                array = inner.load()
                if type(array) is not np.ndarray:
                    raise UnsafeArtifact([_type_name(array)], "expected an array of objects")
                return array
            return self._read_plain(wrapper)

        def _read_plain(self, wrapper: Any) -> Any:
            """joblib's array bytes, read as far as the stream really goes: a shape that claims
            more than the file holds fails without allocating it first (joblib's own reader
            allocates the claimed size up front)."""
            from joblib.numpy_pickle_utils import _ensure_native_byte_order

            dtype = np.dtype(wrapper.dtype)
            count = 1
            for dim in wrapper.shape:
                count *= int(dim)
            if count < 0:
                raise UnsafeArtifact([f"array shape {wrapper.shape!r}"], "a negative size")
            if wrapper.safe_get_numpy_array_alignment_bytes() is not None:
                padding = self.file_handle.read(1)
                if padding and padding[0]:
                    self.file_handle.read(padding[0])
            want = count * dtype.itemsize
            data = bytearray()
            while len(data) < want:
                chunk = self.file_handle.read(min(want - len(data), 16 * 1024 * 1024))
                if not chunk:
                    raise UnsafeArtifact([f"array of shape {tuple(wrapper.shape)!r}"],
                                         "the file holds less data than the array claims")
                data += chunk
            array = np.frombuffer(data, dtype=dtype, count=count)
            if wrapper.order == "F":
                array = array.reshape(wrapper.shape[::-1]).transpose()
            else:
                array = array.reshape(wrapper.shape)
            return _ensure_native_byte_order(array)

    return GuardedJoblib


# --- formats -------------------------------------------------------------------------------------

# zlib, gzip, bz2, xz/lzma, lz4, zstd: the compressions joblib writes. A pickle starts with
# 0x80 (protocol 2+) or an opcode character, never with these.
_COMPRESSED_MAGIC = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda", b"\x1f\x8b", b"BZh",
                     b"\xfd7zXZ", b"\x5d\x00\x00", b"\x04\x22\x4d\x18", b"\x28\xb5\x2f\xfd",
                     b"ZF")


def load_model(path: Path, fmt: str, trusted_types: Iterable[str] = ()) -> Any:
    """Load an artifact of format ``fmt`` (as recorded in its manifest) safely; raises
    UnsafeArtifact for anything outside the allowlist plus ``trusted_types``."""
    allow = Allowlist(trusted_types) if trusted_types else BUILTIN_LIST
    if fmt == "onnx":
        return OnnxModel(path.read_bytes())
    model = _load_code_bearing(path, fmt, allow)
    check_state(model)
    return model


def _load_code_bearing(path: Path, fmt: str, allow: Allowlist) -> Any:
    if fmt == "skops":
        return _load_skops(path, allow)
    if fmt == "joblib":
        return _load_joblib(path, allow)
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_COMPRESSED_MAGIC):
        return _load_joblib(path, allow)  # a compressed joblib file named .pkl
    data = path.read_bytes()
    try:
        check_pickle(data, allow)
    except JoblibStream:
        return _load_joblib(path, allow)  # an uncompressed joblib file named .pkl
    return GuardedUnpickler(io.BytesIO(data), allow).load()


def _load_joblib(path: Path, allow: Allowlist) -> Any:
    from joblib import numpy_pickle

    guarded = _joblib_unpickler()
    with open(path, "rb") as raw, \
            numpy_pickle._validate_fileobject_and_memmap(raw, str(path), None) as (fobj, _):
        return guarded(str(path), fobj, allow).load()


def skops_types(path: Path) -> set[str]:
    """Every type, function and method a .skops file names in its schema."""
    with zipfile.ZipFile(path) as zf:
        schema = json.loads(zf.read("schema.json"))
    found: set[str] = set()
    todo: list[Any] = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            module, cls = node.get("__module__"), node.get("__class__")
            if isinstance(module, str) and isinstance(cls, str):
                name = f"{module}.{cls}"
                if node.get("__loader__") == "MethodNode":
                    content = node.get("content")
                    name += "." + str(content.get("func") if isinstance(content, dict) else "")
                found.add(name)
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return found


# Plain values skops stores as JSON or builds itself; they carry no behaviour.
_SKOPS_VALUES = frozenset({"builtins.str", "builtins.int", "builtins.float", "builtins.bool",
                           "builtins.NoneType", "builtins.list", "builtins.dict",
                           "builtins.tuple", "builtins.set", "builtins.frozenset",
                           "builtins.bytes", "builtins.bytearray", "builtins.slice",
                           "builtins.complex"})


def _load_skops(path: Path, allow: Allowlist) -> Any:
    import skops.io as sio

    try:
        types = skops_types(path)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UnsafeArtifact([f"<unreadable skops file: {exc}>"], "not a skops file") from None
    bad = sorted(t for t in types if t not in _SKOPS_VALUES and t not in allow.state_types)
    if bad:
        raise UnsafeArtifact(bad)
    return sio.load(path, trusted=sorted(types))


class OnnxModel:
    """predict / predict_proba / classes_ over an onnxruntime session, following
    skl2onnx's conventions (a label output, then probabilities as a tensor or as a list of
    {class: probability} maps)."""

    def __init__(self, data: bytes) -> None:
        try:
            import onnxruntime
        except ImportError:  # pragma: no cover - onnxruntime is a dependency
            raise UnsafeArtifact(["<onnx>"], "onnxruntime is not installed") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise UnsafeArtifact([f"<onnx: {str(exc)[:200]}>"], "not a loadable ONNX model") \
                from None
        self.inputs = self.session.get_inputs()
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.classes_: Any = None
        if len(self.outputs) >= 2:
            self.classes_ = self._classes()
        if self.classes_ is None:
            del self.classes_  # a regressor: no classes_ attribute, as in scikit-learn

    def _feed(self, x: Any) -> dict[str, Any]:
        import numpy as np

        types = {"tensor(float)": np.float32, "tensor(double)": np.float64,
                 "tensor(int64)": np.int64, "tensor(string)": object}
        if len(self.inputs) == 1:
            item = self.inputs[0]
            values = x.to_numpy() if hasattr(x, "to_numpy") else np.asarray(x)
            return {item.name: values.astype(types.get(item.type, np.float32))}
        feed = {}
        for item in self.inputs:  # one input per column, by name (skl2onnx's frame convention)
            column = x[item.name].to_numpy().reshape(-1, 1)
            feed[item.name] = column.astype(types.get(item.type, np.float32))
        return feed

    def _run(self, x: Any) -> list[Any]:
        return list(self.session.run(None, self._feed(x)))

    def _classes(self) -> Any:
        import numpy as np

        out = self.session.get_outputs()[1]
        if out.type.startswith("seq(map("):
            probe = self._probe()
            if probe is not None:
                return np.array(list(probe[1][0].keys()))
        return None

    def _probe(self) -> list[Any] | None:
        import numpy as np

        if len(self.inputs) != 1:
            return None
        shape = self.inputs[0].shape
        width = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
        if width is None:
            return None
        return self._run(np.zeros((1, width)))

    def predict(self, x: Any) -> Any:
        import numpy as np

        out = np.asarray(self._run(x)[0])
        return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out

    def predict_proba(self, x: Any) -> Any:
        import numpy as np

        result = self._run(x)
        if len(result) < 2:
            raise AttributeError("this ONNX model has no probability output")
        proba = result[1]
        if isinstance(proba, list):  # ZipMap: one {class: p} per row
            keys = list(proba[0].keys()) if proba else []
            return np.array([[row[k] for k in keys] for row in proba])
        return np.asarray(proba)
