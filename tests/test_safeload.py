"""mlopsctl.safeload: the opcode walk, the allowlist and the restricted loaders, on real
scikit-learn models and on hand-made hostile pickles. Every hostile payload only touches (or
removes) files under the test's tmp_path, and every test asserts that it did not run."""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlopsctl.loading.loader import BUILTIN_LIST
from mlopsctl.loading.pace import paced
from mlopsctl.safeload import UnsafeArtifact, check_pickle, load_model, pickle_globals

# --- real models ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def fitted(iris: tuple[Any, Any]) -> dict[str, Any]:
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = iris
    return {
        "pipeline": make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y),
        "forest": RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y),
        "ridge": Ridge().fit(*load_diabetes(return_X_y=True)),
    }


EXPECTED_CLASS = {
    "pipeline": "sklearn.pipeline.Pipeline",
    "forest": "sklearn.ensemble._forest.RandomForestClassifier",
    "ridge": "sklearn.linear_model._ridge.Ridge",
}


def _same_predictions(a: Any, b: Any, iris: tuple[Any, Any]) -> bool:
    import numpy as np
    from sklearn.datasets import load_diabetes

    x = iris[0] if hasattr(a, "classes_") else load_diabetes(return_X_y=True)[0]
    return bool(np.array_equal(a.predict(x), b.predict(x)))




@pytest.mark.parametrize("protocol", [
    0, 1, 2, 3, 4, 5,
])
@pytest.mark.parametrize("name", ["pipeline", "forest", "ridge"])
def test_real_models_pickle_globals_are_found_allowed_and_load(
        name: str, protocol: int, fitted: dict[str, Any], iris: tuple[Any, Any],
        tmp_path: Path) -> None:
    model = fitted[name]
    data = pickle.dumps(model, protocol=protocol)

    found = pickle_globals(data)

    assert EXPECTED_CLASS[name] in found
    assert any(g.startswith("numpy.") for g in found)  # the fitted arrays
    assert [g for g in found if not BUILTIN_LIST.permits(g)] == []
    check_pickle(data)
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    loaded = load_model(path, "sklearn-pickle")
    assert type(loaded) is type(model)
    assert _same_predictions(loaded, model, iris)


class Midway:
    """Trusted in the test below: its state being set means the unpickling is under way."""

    started = threading.Event()

    def __init__(self) -> None:
        self.state = "set"

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__dict__.update(state)
        Midway.started.set()


def test_a_paced_load_lets_a_waiting_thread_run_midway(tmp_path: Path) -> None:
    """With no forced GIL handovers, a thread woken while the unpickler runs gets the GIL only
    when the loader lets go of it: after the load at full speed, midway when paced (as `serve`
    loads beside its requests). Plain Python objects only: numpy and file reads release the GIL
    by themselves."""
    path = tmp_path / "long.pkl"
    rows = [[float(i)] * 3 for i in range(20_000)]
    path.write_bytes(pickle.dumps([Midway(), rows]))
    trusted = [f"{__name__}.Midway"]
    load_model(path, "pickle", trusted)  # imports done, the file in the page cache

    def woken_during_load(pace: bool) -> bool:
        Midway.started.clear()
        loading, seen = [True], []

        def watch() -> None:
            Midway.started.wait()
            seen.append(loading[0])  # needs the GIL

        watcher = threading.Thread(target=watch)
        watcher.start()
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1000.0)
        try:
            with paced(work_s=0.0) if pace else contextlib.nullcontext():
                loaded = load_model(path, "pickle", trusted)
            loading[0] = False
        finally:
            sys.setswitchinterval(interval)
        watcher.join()
        assert loaded[1] == rows
        return seen[0]

    # The control: a load at full speed keeps the GIL to the end. A busy machine can still
    # hand it over at a file read now and then, so the control needs one clean run of five.
    assert any(woken_during_load(pace=False) is False for _ in range(5))
    assert all(woken_during_load(pace=True) for _ in range(3))


@pytest.mark.parametrize("fmt", ["sklearn-pickle", "joblib"])
def test_a_paced_load_builds_the_same_model(fmt: str, fitted: dict[str, Any],
                                            iris: tuple[Any, Any], tmp_path: Path) -> None:
    import joblib

    path = tmp_path / "model.bin"
    if fmt == "joblib":
        joblib.dump(fitted["forest"], path)
    else:
        path.write_bytes(pickle.dumps(fitted["forest"]))
    with paced(work_s=0.0):
        loaded = load_model(path, fmt)
    assert _same_predictions(loaded, fitted["forest"], iris)


@pytest.mark.parametrize("protocol", [0, 1])
def test_protocol_0_and_1_load_when_written_without_python2_names(
        protocol: int, fitted: dict[str, Any], iris: tuple[Any, Any], tmp_path: Path) -> None:
    data = pickle.dumps(fitted["pipeline"], protocol=protocol, fix_imports=False)
    assert "copyreg._reconstructor" in pickle_globals(data)
    check_pickle(data)
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    assert _same_predictions(load_model(path, "sklearn-pickle"), fitted["pipeline"], iris)


# --- hostile pickles ------------------------------------------------------------------------------


class Reduce:
    """An object that pickles as ``func(*args)``; ``func`` may itself be a Reduce (called on
    load), which is how chained tricks like getattr(__import__('os'), 'system') are built."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.func, self.args)

    def __call__(self, *args: Any) -> None:  # pickle insists that a REDUCE target is callable
        raise AssertionError("never called while pickling")


def _str(opcode_text: str) -> bytes:
    raw = opcode_text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def _stack_global_memoized(module: str, name: str, arg: str) -> bytes:
    """Protocol 4: memoize the module and name strings, drop them, fetch them back with BINGET,
    then STACK_GLOBAL + REDUCE."""
    return (b"\x80\x04" + _str(module) + b"\x94" + _str(name) + b"\x94" + b"00"
            + b"h\x00h\x01" + b"\x93" + _str(arg) + b"\x85R.")


def _protocol0_global(module: str, name: str, arg: str) -> bytes:
    """Protocol 0 text: GLOBAL module name, MARK, UNICODE arg, TUPLE, REDUCE."""
    return f"c{module}\n{name}\n(V{arg}\ntR.".encode()


Payload = Callable[[Path], bytes]
HOSTILE: dict[str, Payload] = {
    "os.system-p0-GLOBAL": lambda m: pickle.dumps(Reduce(os.system, f"touch {m}"), protocol=0),
    "os.system-p0-handmade": lambda m: _protocol0_global("os", "system", f"touch {m}"),
    "os.system-p2": lambda m: pickle.dumps(Reduce(os.system, f"touch {m}"), protocol=2),
    "os.system-p4-STACK_GLOBAL": lambda m: pickle.dumps(Reduce(os.system, f"touch {m}"),
                                                        protocol=4),
    "os.system-p5": lambda m: pickle.dumps(Reduce(os.system, f"touch {m}"), protocol=5),
    "os.system-p4-memoized-strings": lambda m: _stack_global_memoized("posix", "system",
                                                                      f"touch {m}"),
    "subprocess.Popen": lambda m: pickle.dumps(Reduce(subprocess.Popen, ["touch", str(m)])),
    "builtins.eval": lambda m: pickle.dumps(
        Reduce(eval, f"__import__('pathlib').Path({str(m)!r}).touch()")),
    "builtins.exec-p0": lambda m: pickle.dumps(
        Reduce(exec, f"open({str(m)!r}, 'w').close()"), protocol=0),
    "builtins.getattr-trick": lambda m: pickle.dumps(
        Reduce(Reduce(getattr, Reduce(__import__, "os"), "system"), f"touch {m}")),
    "nested-in-list-and-dict": lambda m: pickle.dumps(
        {"model": [1, 2.0, {"inner": Reduce(os.system, f"touch {m}")}]}),
    "second-global-reuses-memoized-module": lambda m: pickle.dumps(
        [Reduce(os.getcwd), Reduce(os.system, f"touch {m}")], protocol=4),
}
EXPECTED_GLOBAL = {
    "subprocess.Popen": "subprocess.Popen",
    "builtins.eval": "builtins.eval",
    "builtins.exec-p0": "builtins.exec",  # protocol 0 writes Python 2 names, read as pickle does
    "builtins.getattr-trick": "builtins.getattr",
    "os.system-p0-handmade": "os.system",
}


@pytest.mark.parametrize("pace", [False, True], ids=["full-speed", "paced"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_pickles_are_refused_statically_and_by_load_model(case: str, pace: bool,
                                                                   tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = HOSTILE[case](marker)

    # Paced (as `serve` loads beside its requests), the same checks run, each after a tick.
    with paced(work_s=0.0) if pace else contextlib.nullcontext():
        found = pickle_globals(data)
        assert EXPECTED_GLOBAL.get(case, "posix.system") in found, found
        with pytest.raises(UnsafeArtifact) as refused:
            check_pickle(data)
        assert EXPECTED_GLOBAL.get(case, "posix.system") in refused.value.globals
        assert "refused" in str(refused.value)
        assert not marker.exists()

        path = tmp_path / "evil.pkl"
        path.write_bytes(data)
        for fmt in ("sklearn-pickle", "binary"):
            with pytest.raises(UnsafeArtifact):
                load_model(path, fmt)
    assert not marker.exists(), "the payload ran"


def test_getattr_trick_names_every_forbidden_global(tmp_path: Path) -> None:
    data = HOSTILE["builtins.getattr-trick"](tmp_path / "pwned")
    with pytest.raises(UnsafeArtifact) as refused:
        check_pickle(data)
    assert {"builtins.getattr", "builtins.__import__"} <= set(refused.value.globals)


def _popped_decoy(marker: Path) -> bytes:
    """Push 'posix' 'system', then push and POP an allowed 'numpy' 'ndarray' decoy: the real
    STACK_GLOBAL takes posix.system, a walk that only remembers the last two strings sees
    numpy.ndarray."""
    return (b"\x80\x04" + _str("posix") + _str("system") + _str("numpy") + _str("ndarray")
            + b"00" + b"\x93" + _str(f"touch {marker}") + b"\x85R.")


def test_check_pickle_is_not_fooled_by_a_popped_decoy(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(UnsafeArtifact):
        check_pickle(_popped_decoy(marker))
    assert not marker.exists()


def test_load_model_still_refuses_the_popped_decoy_at_find_class(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(_popped_decoy(marker))
    with pytest.raises(UnsafeArtifact) as refused:
        load_model(path, "sklearn-pickle")
    assert refused.value.globals == ["posix.system"]
    assert not marker.exists()


# --- functions inside the allowed packages that act on the system ---------------------------


def _stack_global_call(module: str, name: str, *args: str) -> bytes:
    """Protocol 4: STACK_GLOBAL(module, name) called with string args (name may be dotted)."""
    tuple_op = {1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(args)]
    return b"\x80\x04" + _str(module) + _str(name) + b"\x93" + b"".join(map(_str, args)) \
        + tuple_op + b"R."


# Functions inside the allowed packages that act on the system must be refused: only classes,
# ufuncs and named unpickle helpers pass, and dotted names may not walk into other modules.


def test_allowlist_refuses_sklearn_testing_helper_that_runs_a_script(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = _stack_global_call("sklearn.utils._testing", "assert_run_python_script_without_output",
                              f"open({str(marker)!r}, 'w').close()", "NEVER MATCHES")
    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    try:
        with pytest.raises(UnsafeArtifact):
            load_model(path, "sklearn-pickle")
    finally:
        assert not marker.exists(), "a script ran while the model loaded"


def test_allowlist_refuses_a_file_writing_sklearn_function(tmp_path: Path) -> None:
    marker = tmp_path / "written"
    data = pickle.dumps(Reduce(_dump_svmlight(), [[1.0]], [1.0], str(marker)), protocol=2)
    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    try:
        with pytest.raises(UnsafeArtifact):
            load_model(path, "sklearn-pickle")
    finally:
        assert not marker.exists(), "the model wrote a file while loading"


def _dump_svmlight() -> Any:
    from sklearn.datasets import dump_svmlight_file

    return dump_svmlight_file


@pytest.mark.parametrize(("module", "name"), [
    ("sklearn.datasets", "clear_data_home"),
    ("sklearn.datasets._base", "shutil.rmtree"),
])
def test_allowlist_refuses_directory_removal(module: str, name: str, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "sub" / "precious.txt").write_text("keep me")
    path = tmp_path / "evil.pkl"
    path.write_bytes(_stack_global_call(module, name, str(victim)))
    try:
        with pytest.raises(UnsafeArtifact):
            load_model(path, "sklearn-pickle")
    finally:
        assert (victim / "sub" / "precious.txt").exists(), "the model deleted a directory"


# --- damaged pickles ------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "no-stop"])
def test_damaged_pickles_are_refused(damage: str, fitted: dict[str, Any],
                                     tmp_path: Path) -> None:
    good = pickle.dumps(fitted["pipeline"], protocol=4)
    data = {
        "truncated": good[: len(good) // 2],
        "garbage": b"this is not a pickle at all \x00\xff\xfe",
        "empty": b"",
        "no-stop": good[:-1],
    }[damage]
    with pytest.raises(UnsafeArtifact) as refused:
        check_pickle(data)
    assert "unreadable" in str(refused.value)
    path = tmp_path / "broken.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafeArtifact):
        load_model(path, "sklearn-pickle")


# --- joblib ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("xz", 1), ("bz2", 1)],
                         ids=["plain", "zlib", "gzip", "xz", "bz2"])
@pytest.mark.parametrize("name", ["pipeline", "forest"])
def test_joblib_round_trips_real_models(name: str, compress: Any, fitted: dict[str, Any],
                                        iris: tuple[Any, Any], tmp_path: Path) -> None:
    import joblib

    path = tmp_path / "model.joblib"
    joblib.dump(fitted[name], path, compress=compress)
    loaded = load_model(path, "joblib")
    assert type(loaded) is type(fitted[name])
    assert _same_predictions(loaded, fitted[name], iris)


def test_a_gzip_joblib_file_named_pkl_loads(fitted: dict[str, Any], iris: tuple[Any, Any],
                                            tmp_path: Path) -> None:
    import joblib

    path = tmp_path / "model.pkl"
    joblib.dump(fitted["forest"], path, compress=("gzip", 3))
    assert _same_predictions(load_model(path, "sklearn-pickle"), fitted["forest"], iris)


@pytest.mark.parametrize("compress", [0, 3], ids=["plain", "zlib"])
def test_a_default_joblib_file_named_pkl_loads(compress: int, fitted: dict[str, Any],
                                               iris: tuple[Any, Any], tmp_path: Path) -> None:
    import joblib

    path = tmp_path / "model.pkl"
    joblib.dump(fitted["forest"], path, compress=compress)
    assert _same_predictions(load_model(path, "sklearn-pickle"), fitted["forest"], iris)


def _object_array(payload: Any) -> Any:
    import numpy as np

    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = "fine", payload
    return {"weights": np.arange(5.0), "objects": arr}


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3)], ids=["plain", "zlib", "gzip"])
@pytest.mark.parametrize("shape", ["direct", "nested", "object-array"])
@pytest.mark.parametrize("filename", ["evil.joblib", "evil.pkl"])
def test_hostile_joblib_files_are_refused(filename: str, shape: str, compress: Any,
                                          tmp_path: Path) -> None:
    import joblib

    marker = tmp_path / "pwned"
    payload = Reduce(os.system, f"touch {marker}")
    obj = {"direct": payload, "nested": {"model": [payload]},
           "object-array": _object_array(payload)}[shape]
    path = tmp_path / filename
    joblib.dump(obj, path, compress=compress)
    fmt = "joblib" if filename.endswith(".joblib") else "sklearn-pickle"
    with pytest.raises(UnsafeArtifact):
        load_model(path, fmt)
    assert not marker.exists(), "the payload ran"


def test_a_truncated_joblib_file_is_not_loaded(fitted: dict[str, Any], tmp_path: Path) -> None:
    import joblib

    path = tmp_path / "model.joblib"
    joblib.dump(fitted["forest"], path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do, as long as nothing loads
        load_model(path, "joblib")


# --- skops ----------------------------------------------------------------------------------------


def test_skops_round_trips_and_refuses_untrusted_functions(
        fitted: dict[str, Any], iris: tuple[Any, Any], tmp_path: Path) -> None:
    import skops.io as sio

    good = tmp_path / "model.skops"
    sio.dump(fitted["pipeline"], good)
    assert _same_predictions(load_model(good, "skops"), fitted["pipeline"], iris)

    evil = tmp_path / "evil.skops"
    sio.dump({"f": os.system}, evil)
    with pytest.raises(UnsafeArtifact) as refused:
        load_model(evil, "skops")
    assert refused.value.globals == ["posix.system"]


# --- the allowlist itself -------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "sklearn.linear_model._logistic.LogisticRegression", "numpy.ndarray", "numpy.dtype",
    "numpy._core.multiarray._reconstruct", "scipy.sparse._csr.csr_matrix",
    "pandas.core.frame.DataFrame", "copyreg._reconstructor", "builtins.dict", "_codecs.encode",
    "collections.OrderedDict", "joblib.numpy_pickle.NumpyArrayWrapper",
])
def test_allowed_names(name: str) -> None:
    assert BUILTIN_LIST.permits(name)


@pytest.mark.parametrize("name", [
    "posix.system", "os.system", "subprocess.Popen", "builtins.eval", "builtins.exec",
    "builtins.getattr", "builtins.__import__", "builtins.open", "numpy.load", "numpy.fromfile",
    "numpy.ctypeslib.load_library", "numpy.testing.assert_equal", "pandas.read_pickle",
    "pandas.eval", "pandas.io.pickle.read_pickle", "sklearn.os.system", "numpy.os.system",
    "scipy.io.loadmat", "numpy.ndarray.tofile", "joblib.load", "pickle.loads", "sys.exit",
])
def test_denied_names(name: str) -> None:
    assert not BUILTIN_LIST.permits(name)


def test_pickle_globals_reports_inst_opcode(tmp_path: Path) -> None:
    # INST (protocol 0): module and class in the argument, instantiated with the marked args.
    data = b"(S'x'\nios\nsystem\n."
    assert pickle_globals(data) == ["os.system"]
    with pytest.raises(UnsafeArtifact):
        check_pickle(data)


def test_frame_opcodes_do_not_hide_globals(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    body = _str("posix") + _str("system") + b"\x93" + _str(f"touch {marker}") + b"\x85R."
    data = b"\x80\x04\x95" + struct.pack("<Q", len(body) + 1) + body + b"."
    with pytest.raises(UnsafeArtifact):
        check_pickle(data)
    assert not marker.exists()
