"""What scikit-learn models really pickle: the evidence behind the loader's allowlist.

Fits every estimator of ``sklearn.utils.all_estimators()`` that fits on small data (plus
Pipelines, a ColumnTransformer on a pandas frame, sparse inputs and sparse fitted attributes),
saves each as a pickle (protocols 0, 2 and 5), a joblib file and a skops file, and records what
loading them needs: the globals imported, the callables REDUCE applies, the classes NEWOBJ
instantiates and the types BUILD sets state on. Run it after upgrading scikit-learn, numpy,
scipy, pandas or joblib, and review what it proposes before it enters ``allowlist.py``:

    python -m mlopsctl.loading.survey            # names the allowlist lacks, and unused ones
    python -m mlopsctl.loading.survey --all      # every name the zoo needs

Nothing here is imported by the CLI; the test suite uses ``fitted_estimators`` as the corpus of
legitimate models that must all load.
"""

from __future__ import annotations

import io
import pickle
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from mlopsctl.loading import allowlist

# Estimators that cannot be fitted on a plain numeric table, with the input they need instead.
_TEXT = ("CountVectorizer", "TfidfVectorizer", "HashingVectorizer")
_SKIP = {
    # They need inputs of another kind (dicts, labels only, 1-D) or are meta-tools, not models.
    "DictVectorizer", "FeatureHasher", "LabelBinarizer", "LabelEncoder", "MultiLabelBinarizer",
    "IsotonicRegression", "FrozenEstimator", "SparseCoder", "PatchExtractor",
    "TfidfTransformer",
}


class Fitted(NamedTuple):
    label: str
    estimator: Any
    x: Any  # rows to predict or transform
    y: Any  # labels for ``x`` (None for unsupervised estimators)


def _data() -> dict[str, Any]:
    import numpy as np

    rng = np.random.RandomState(0)
    x = np.abs(rng.normal(size=(60, 4))) + 0.1
    y_bin = (x[:, 0] + x[:, 1] > 1.8).astype(int)
    y_multi = np.array(["setosa", "versicolor", "virginica"])[
        np.digitize(x[:, 0] + x[:, 2], [1.5, 2.2])]
    y_reg = x @ np.array([1.5, -2.0, 0.5, 1.0]) + rng.normal(scale=0.1, size=60)
    return {"x": x, "bin": y_bin, "multi": y_multi, "reg": y_reg}


def _instances(cls: type) -> Iterator[Any]:
    try:  # scikit-learn's own test instances know the required arguments of meta-estimators
        from sklearn.utils._test_common.instance_generator import _construct_instances

        yield from _construct_instances(cls)
    except Exception:
        yield cls()


def _fit(est: Any, kind: str, d: dict[str, Any]) -> Fitted | None:
    from sklearn.base import is_classifier, is_regressor

    x = d["x"]
    name = type(est).__name__
    if name in _TEXT:
        docs = ["red apple", "green apple", "red car", "blue car"] * 5
        return Fitted(name, est.fit(docs), docs[:4], None)
    y = None
    if is_classifier(est):
        y = d["multi"] if kind == "multi" else d["bin"]
    elif is_regressor(est) or "Cross" in name or "PLS" in name or name == "CCA":
        y = d["reg"]
    try:
        est.fit(x, y) if y is not None else est.fit(x)
    except Exception:
        try:
            est.fit(x, d["bin"])
            y = d["bin"]
        except Exception:
            return None
    return Fitted(f"{name}[{kind}]" if kind != "default" else name, est, x[:10],
                  None if y is None else y[:10])


def _extras(d: dict[str, Any]) -> Iterator[Fitted]:
    """Pipelines, a ColumnTransformer on a mixed pandas frame, sparse input and attributes."""
    import numpy as np
    import pandas as pd
    from scipy import sparse
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x, y = d["x"], d["bin"]
    yield Fitted("Pipeline[scaler+logreg]", make_pipeline(StandardScaler(), LogisticRegression())
                 .fit(x, y), x[:10], y[:10])
    frame = pd.DataFrame({"tenure": x[:, 0], "spend": x[:, 1],
                          "plan": np.where(x[:, 2] > 0.8, "pro", "basic"),
                          "region": pd.Categorical(np.where(x[:, 3] > 0.8, "eu", "us"))})
    columns = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["tenure", "spend"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
    ])
    yield Fitted("Pipeline[ColumnTransformer+forest]", make_pipeline(
        columns, RandomForestClassifier(n_estimators=5, random_state=0)).fit(frame, y),
        frame.head(10), y[:10])
    yield Fitted("HistGradientBoosting[categorical frame]", HistGradientBoostingClassifier(
        categorical_features="from_dtype", max_iter=5).fit(frame[["tenure", "region"]], y),
        frame[["tenure", "region"]].head(10), y[:10])
    csr = sparse.csr_matrix(np.where(x > 1.0, x, 0.0))
    yield Fitted("LogisticRegression[sparse input]", LogisticRegression().fit(csr, y), csr[:10],
                 y[:10])
    yield Fitted("LogisticRegression[multiclass strings, frame]", LogisticRegression(
        max_iter=500).fit(frame[["tenure", "spend"]], d["multi"]),
        frame[["tenure", "spend"]].head(10), d["multi"][:10])


def _variants(d: dict[str, Any]) -> Iterator[Fitted]:
    """Non-default settings that pickle other internals: losses, kernels, trees, metrics."""
    from sklearn import ensemble, gaussian_process, linear_model, neighbors, neural_network, svm
    from sklearn.gaussian_process import kernels

    x, y, r = d["x"], d["bin"], d["reg"]
    regressors: list[Any] = [
        *(ensemble.HistGradientBoostingRegressor(loss=loss, max_iter=5)
          for loss in ("absolute_error", "gamma", "poisson")),
        ensemble.HistGradientBoostingRegressor(loss="quantile", quantile=0.5, max_iter=5),
        *(ensemble.GradientBoostingRegressor(loss=loss, n_estimators=5)
          for loss in ("absolute_error", "huber", "quantile")),
        *(gaussian_process.GaussianProcessRegressor(kernel=k) for k in (
            kernels.Matern(), kernels.RationalQuadratic(), kernels.DotProduct()
            + kernels.WhiteKernel(), kernels.ConstantKernel() * kernels.RBF(),
            kernels.ExpSineSquared(), kernels.RBF() ** 2)),
        *(neighbors.KNeighborsRegressor(algorithm=a, metric=m) for a in ("ball_tree", "kd_tree")
          for m in ("minkowski", "manhattan", "chebyshev")),
        *(linear_model.SGDRegressor(loss=loss) for loss in ("huber", "epsilon_insensitive")),
        *(neural_network.MLPRegressor(solver=s, activation=a, max_iter=50)
          for s in ("adam", "sgd", "lbfgs") for a in ("relu", "tanh", "logistic")),
        *(svm.SVR(kernel=k) for k in ("linear", "poly", "sigmoid")),
    ]
    classifiers: list[Any] = [
        *(ensemble.GradientBoostingClassifier(loss=loss, n_estimators=5)
          for loss in ("log_loss", "exponential")),
        *(linear_model.SGDClassifier(loss=loss) for loss in (
            "log_loss", "modified_huber", "squared_hinge", "perceptron")),
        *(neighbors.KNeighborsClassifier(algorithm=a, metric=m)
          for a in ("ball_tree", "kd_tree", "brute") for m in ("minkowski", "manhattan")),
        *(ensemble.RandomForestClassifier(n_estimators=3, criterion=c)
          for c in ("entropy", "log_loss")),
        gaussian_process.GaussianProcessClassifier(kernel=kernels.Matern()),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        positive = r - r.min() + 1.0  # gamma and poisson losses need y > 0
        for est, target in [(e, positive) for e in regressors] + [(e, y) for e in classifiers]:
            label = f"{type(est).__name__}[{est.get_params().get('loss', 'variant')}]"
            try:
                yield Fitted(label, est.fit(x, target), x[:10], target[:10])
            except Exception as exc:
                print(f"# skipped {label}: {exc}", file=sys.stderr)


def fitted_estimators() -> Iterator[Fitted]:
    """Every estimator that fits on small data, fitted; multiclass variants for classifiers."""
    from sklearn.base import is_classifier
    from sklearn.utils import all_estimators

    d = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, cls in all_estimators():
            if name in _SKIP:
                continue
            for est in _instances(cls):
                kinds = ("default", "multi") if is_classifier(est) else ("default",)
                for kind in kinds:
                    try:
                        from sklearn.base import clone

                        fresh = clone(est)
                    except Exception:
                        fresh = est
                    fitted = _fit(fresh, kind, d)
                    if fitted is not None:
                        yield fitted
                break  # one instance per class is enough
        yield from _extras(d)
        yield from _variants(d)


def plain_objects() -> list[tuple[str, Any]]:
    """Values a model may carry beside estimators: frames, sparse matrices, dtypes, scalars."""
    import numpy as np
    import pandas as pd
    from scipy import sparse

    frames: list[Any] = [
        pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"], "c": pd.Categorical(["u", "v"])}),
        pd.Series([1, 2], index=pd.RangeIndex(2)), pd.Index(["a", "b"]),
        pd.Categorical(["a", "b"]), pd.Series(pd.to_datetime(["2024-01-01", "2024-02-01"])),
        pd.Series([1, None], dtype="Int64"),  # not dtype="string": pyarrow is refused
        pd.Series([pd.Timedelta(1, "D")]),
        pd.DataFrame(np.zeros((2, 2)), columns=pd.MultiIndex.from_tuples([("a", "b"),
                                                                           ("a", "c")])),
    ]
    formats = ("csr_matrix", "csc_matrix", "coo_matrix", "lil_matrix", "dok_matrix",
               "bsr_matrix", "dia_matrix", "csr_array", "csc_array", "coo_array")
    matrices = [getattr(sparse, f)(np.eye(3)) for f in formats]
    dtypes = ("int8", "int16", "uint16", "float16", "float32", "complex128", "bool", "U3", "S3",
              "datetime64[ns]", "timedelta64[ns]")
    arrays = [np.zeros(2, dtype=t) for t in dtypes]
    scalars = [np.float32(1), np.int32(1), np.bool_(True), np.str_("a")]
    return [(type(o).__name__, o) for o in frames + matrices + arrays + scalars]


# --- recording what loading needs --------------------------------------------------------------


class _Record:
    def __init__(self) -> None:
        self.names: dict[str, set[str]] = {"global": set(), "reduce": set(), "newobj": set(),
                                           "build": set()}
        self.by_label: dict[str, str] = {}  # name -> the first model that needed it

    def add(self, what: str, name: str, label: str) -> None:
        self.names[what].add(name)
        self.by_label.setdefault(name, label)


def _type_name(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _recording(base: Any, record: _Record, label: str) -> Any:
    """A subclass of ``base`` (an Unpickler) that notes what each step needs."""
    names: dict[int, str] = {}

    class Recording(base):
        dispatch: ClassVar[dict[int, Any]] = dict(base.dispatch)

        def find_class(self, module: str, name: str) -> Any:
            obj = super().find_class(module, name)
            full = allowlist.canonical(module, name)
            record.add("global", full, label)
            names[id(obj)] = full
            return obj

        def load_reduce(self) -> None:
            func = self.stack[-2]
            record.add("reduce", names.get(id(func), "<not a global> " + _type_name(func)),
                       label)
            base.load_reduce(self)

        def load_newobj(self) -> None:
            cls = self.stack[-2]
            record.add("newobj", names.get(id(cls), "<not a global> " + _type_name(cls)), label)
            base.load_newobj(self)

        def load_build(self) -> None:
            record.add("build", _type_name(self.stack[-2]), label)
            base.load_build(self)

        dispatch[pickle.REDUCE[0]] = load_reduce
        dispatch[pickle.NEWOBJ[0]] = load_newobj
        dispatch[pickle.BUILD[0]] = load_build

    return Recording


def _skops_types(path: Path) -> set[str]:
    from mlopsctl.loading.loader import skops_types

    return skops_types(path)


def survey(fitted: list[Fitted]) -> _Record:
    import joblib
    import skops.io as sio
    from joblib import numpy_pickle

    record = _Record()
    for label, obj in plain_objects():
        for protocol in (2, 5):
            data = pickle.dumps(obj, protocol=protocol)
            _recording(pickle._Unpickler, record, label)(io.BytesIO(data)).load()
    with tempfile.TemporaryDirectory() as tmp:
        for item in fitted:
            for protocol in (0, 2, 5):
                data = pickle.dumps(item.estimator, protocol=protocol)
                _recording(pickle._Unpickler, record, item.label)(io.BytesIO(data)).load()
            path = Path(tmp) / "model.joblib"
            joblib.dump(item.estimator, path)
            with open(path, "rb") as fh:
                cls = _recording(numpy_pickle.NumpyUnpickler, record, item.label)
                cls(str(path), fh, ensure_native_byte_order=True).load()
            skops_path = Path(tmp) / "model.skops"
            try:
                sio.dump(item.estimator, skops_path)
            except Exception:
                continue  # skops cannot save every estimator; those stay pickle/joblib only
            for name in _skops_types(skops_path):
                record.add("global", name, item.label)
    return record


def main(argv: list[str]) -> int:
    fitted = list(fitted_estimators())
    record = survey(fitted)
    needed = set().union(*record.names.values())
    needed = {n for n in needed if not n.startswith("<")}
    odd = sorted(n for v in record.names.values() for n in v if n.startswith("<"))
    print(f"# {len(fitted)} fitted models surveyed", file=sys.stderr)
    if "--all" in argv:
        for what, names in record.names.items():
            print(f"## {what}")
            for name in sorted(names):
                print(f"{name}    # {record.by_label.get(name, '')}")
        return 0
    called = {n for n in record.names["reduce"] | record.names["newobj"] if not n.startswith("<")}
    missing = sorted((needed - allowlist.ALL) | (called - allowlist.CALLABLES))
    unused = sorted(allowlist.ALL - needed)
    print("## needed but not in the allowlist, or called but not callable (review each):")
    for name in missing:
        print(f"{name}    # {record.by_label.get(name, '')}")
    print("## in the allowlist but not needed by the zoo (reviewed additions, older spellings):")
    for name in unused:
        print(name)
    if odd:
        print("## applied to something that is not a global (must never happen):")
        for name in odd:
            print(name)
    return 1 if missing or odd else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
