"""The exact names a model file may reference: ``module.qualname`` entries, no prefixes.

Built from evidence, not guessed: ``python -m mlopsctl.loading.survey`` fits every estimator of
``sklearn.utils.all_estimators()`` that fits on small data (and Pipelines, a ColumnTransformer on a
pandas frame, sparse inputs, non-default losses, kernels and tree metrics, plain frames, sparse
matrices and dtypes), saves each as pickle, joblib and skops, and records every global imported,
every callable REDUCE applies, every class NEWOBJ instantiates and every type BUILD sets state on.
Each entry below was proposed by that survey and reviewed: constructing, calling or setting the
state of any of them evaluates no code and touches no file. Known traps that the survey never
proposes and that must never be added: ``pandas.core.computation`` (evaluates expressions),
``scipy.stats`` distributions (``__setstate__`` runs ``exec``), ``joblib.numpy_pickle_compat``
(``np.load(allow_pickle=True)`` on a path from the pickle), ``PytestTester`` (runs pytest), and
anything in ``os``, ``sys``, ``subprocess``, ``builtins.eval/exec/getattr/__import__``, and
``pyarrow.lib._restore_array`` (rebuilds arrow arrays from the pickle's buffers without
validating offsets: pandas' pyarrow-backed string columns are refused; store them as object).

``GLOBALS``: what GLOBAL/STACK_GLOBAL/INST may import. ``CALLABLES``: the subset REDUCE,
NEWOBJ, INST and OBJ may call (and only as the very object ``find_class`` returned).
``STATE_TYPES``: types BUILD may set state on beyond the classes in
``GLOBALS`` (numpy's dtype classes, which arrive through ``numpy.dtype(...)``, not by name).
A team's own classes are added per registry through ``trusted_types:`` in ``.mlops/policy.yaml``.
"""

from __future__ import annotations

from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING

GLOBALS: frozenset[str] = frozenset({
    # builtins
    "builtins.bytearray", "builtins.bytes", "builtins.dict", "builtins.list", "builtins.object",
    "builtins.slice", "builtins.str", "builtins.tuple",
    # codecs
    "_codecs.encode",
    # copyreg
    "copyreg._reconstructor",
    # functools
    "functools.partial",
    # joblib
    "joblib.numpy_pickle.NumpyArrayWrapper",
    # numpy
    "numpy._core.multiarray._reconstruct", "numpy._core.multiarray.scalar",
    "numpy._core.numeric._frombuffer", "numpy.dtype", "numpy.float64", "numpy.int64",
    "numpy.ma.MaskedArray", "numpy.ma.core._mareconstruct", "numpy.mean", "numpy.ndarray",
    "numpy.random._generator.Generator", "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64", "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random._pickle.__generator_ctor", "numpy.random._pickle.__randomstate_ctor",
    "numpy.random.bit_generator.SeedSequence",
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence", "numpy.random.mtrand.RandomState",
    "numpy.uint64",
    # pandas
    "pandas.Categorical", "pandas.CategoricalDtype", "pandas.DataFrame", "pandas.Index",
    "pandas.Int64Dtype", "pandas.MultiIndex", "pandas.NA", "pandas.RangeIndex", "pandas.Series",
    "pandas._libs.arrays.__pyx_unpickle_NDArrayBacked",
    "pandas._libs.internals._unpickle_block",
    "pandas.arrays.DatetimeArray", "pandas.arrays.IntegerArray", "pandas.arrays.TimedeltaArray",
    "pandas.core.indexes.base._new_Index", "pandas.core.internals.managers.BlockManager",
    "pandas.core.internals.managers.SingleBlockManager",
    # scipy
    "scipy._lib.array_api_compat.numpy._aliases.asarray", "scipy.interpolate._bsplines.BSpline",
    "scipy.sparse._bsr.bsr_matrix", "scipy.sparse._coo.coo_array", "scipy.sparse._coo.coo_matrix",
    "scipy.sparse._csc.csc_array", "scipy.sparse._csc.csc_matrix", "scipy.sparse._csr.csr_array",
    "scipy.sparse._csr.csr_matrix", "scipy.sparse._dia.dia_matrix", "scipy.sparse._dok.dok_matrix",
    "scipy.sparse._lil.lil_matrix",
    # sklearn
    "sklearn._loss._loss.CyAbsoluteError", "sklearn._loss._loss.CyExponentialLoss",
    "sklearn._loss._loss.CyHalfBinomialLoss", "sklearn._loss._loss.CyHalfGammaLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss", "sklearn._loss._loss.CyHalfPoissonLoss",
    "sklearn._loss._loss.CyHalfSquaredError", "sklearn._loss._loss.CyHalfTweedieLossIdentity",
    "sklearn._loss._loss.CyHuberLoss", "sklearn._loss._loss.CyPinballLoss",
    "sklearn._loss._loss.__pyx_unpickle_CyHalfMultinomialLoss", "sklearn._loss.link.HalfLogitLink",
    "sklearn._loss.link.IdentityLink", "sklearn._loss.link.Interval", "sklearn._loss.link.LogLink",
    "sklearn._loss.link.LogitLink", "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.AbsoluteError", "sklearn._loss.loss.ExponentialLoss",
    "sklearn._loss.loss.HalfBinomialLoss", "sklearn._loss.loss.HalfGammaLoss",
    "sklearn._loss.loss.HalfMultinomialLoss", "sklearn._loss.loss.HalfPoissonLoss",
    "sklearn._loss.loss.HalfSquaredError", "sklearn._loss.loss.HalfTweedieLossIdentity",
    "sklearn._loss.loss.HuberLoss", "sklearn._loss.loss.PinballLoss",
    "sklearn.calibration.CalibratedClassifierCV", "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.cluster._affinity_propagation.AffinityPropagation",
    "sklearn.cluster._agglomerative.AgglomerativeClustering",
    "sklearn.cluster._agglomerative.FeatureAgglomeration",
    "sklearn.cluster._bicluster.SpectralBiclustering",
    "sklearn.cluster._bicluster.SpectralCoclustering", "sklearn.cluster._birch.Birch",
    "sklearn.cluster._birch._CFNode", "sklearn.cluster._birch._CFSubcluster",
    "sklearn.cluster._bisect_k_means.BisectingKMeans",
    "sklearn.cluster._bisect_k_means._BisectingTree", "sklearn.cluster._dbscan.DBSCAN",
    "sklearn.cluster._hdbscan.hdbscan.HDBSCAN", "sklearn.cluster._kmeans.KMeans",
    "sklearn.cluster._kmeans.MiniBatchKMeans", "sklearn.cluster._kmeans._kmeans_single_lloyd",
    "sklearn.cluster._mean_shift.MeanShift", "sklearn.cluster._optics.OPTICS",
    "sklearn.cluster._spectral.SpectralClustering",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.compose._target.TransformedTargetRegressor",
    "sklearn.covariance._elliptic_envelope.EllipticEnvelope",
    "sklearn.covariance._empirical_covariance.EmpiricalCovariance",
    "sklearn.covariance._graph_lasso.GraphicalLasso",
    "sklearn.covariance._graph_lasso.GraphicalLassoCV",
    "sklearn.covariance._robust_covariance.MinCovDet",
    "sklearn.covariance._shrunk_covariance.LedoitWolf",
    "sklearn.covariance._shrunk_covariance.OAS",
    "sklearn.covariance._shrunk_covariance.ShrunkCovariance",
    "sklearn.cross_decomposition._pls.CCA", "sklearn.cross_decomposition._pls.PLSCanonical",
    "sklearn.cross_decomposition._pls.PLSRegression", "sklearn.cross_decomposition._pls.PLSSVD",
    "sklearn.decomposition._dict_learning.DictionaryLearning",
    "sklearn.decomposition._dict_learning.MiniBatchDictionaryLearning",
    "sklearn.decomposition._factor_analysis.FactorAnalysis",
    "sklearn.decomposition._fastica.FastICA",
    "sklearn.decomposition._incremental_pca.IncrementalPCA",
    "sklearn.decomposition._kernel_pca.KernelPCA",
    "sklearn.decomposition._lda.LatentDirichletAllocation",
    "sklearn.decomposition._nmf.MiniBatchNMF", "sklearn.decomposition._nmf.NMF",
    "sklearn.decomposition._pca.PCA", "sklearn.decomposition._sparse_pca.MiniBatchSparsePCA",
    "sklearn.decomposition._sparse_pca.SparsePCA",
    "sklearn.decomposition._truncated_svd.TruncatedSVD",
    "sklearn.discriminant_analysis.LinearDiscriminantAnalysis",
    "sklearn.discriminant_analysis.QuadraticDiscriminantAnalysis", "sklearn.dummy.DummyClassifier",
    "sklearn.dummy.DummyRegressor", "sklearn.ensemble._bagging.BaggingClassifier",
    "sklearn.ensemble._bagging.BaggingRegressor", "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._forest.RandomTreesEmbedding",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._gb.GradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._iforest.IsolationForest", "sklearn.ensemble._stacking.StackingClassifier",
    "sklearn.ensemble._stacking.StackingRegressor", "sklearn.ensemble._voting.VotingClassifier",
    "sklearn.ensemble._voting.VotingRegressor",
    "sklearn.ensemble._weight_boosting.AdaBoostClassifier",
    "sklearn.ensemble._weight_boosting.AdaBoostRegressor",
    "sklearn.feature_extraction.text.CountVectorizer",
    "sklearn.feature_extraction.text.HashingVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.feature_selection._from_model.SelectFromModel", "sklearn.feature_selection._rfe.RFE",
    "sklearn.feature_selection._rfe.RFECV",
    "sklearn.feature_selection._sequential.SequentialFeatureSelector",
    "sklearn.feature_selection._univariate_selection.GenericUnivariateSelect",
    "sklearn.feature_selection._univariate_selection.SelectFdr",
    "sklearn.feature_selection._univariate_selection.SelectFpr",
    "sklearn.feature_selection._univariate_selection.SelectFwe",
    "sklearn.feature_selection._univariate_selection.SelectKBest",
    "sklearn.feature_selection._univariate_selection.SelectPercentile",
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._variance_threshold.VarianceThreshold",
    "sklearn.gaussian_process._gpc.GaussianProcessClassifier",
    "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",
    "sklearn.gaussian_process._gpr.GaussianProcessRegressor",
    "sklearn.gaussian_process.kernels.ConstantKernel",
    "sklearn.gaussian_process.kernels.DotProduct",
    "sklearn.gaussian_process.kernels.Exponentiation", "sklearn.gaussian_process.kernels.Matern",
    "sklearn.gaussian_process.kernels.Product", "sklearn.gaussian_process.kernels.RBF",
    "sklearn.gaussian_process.kernels.RationalQuadratic", "sklearn.gaussian_process.kernels.Sum",
    "sklearn.gaussian_process.kernels.WhiteKernel", "sklearn.impute._base.MissingIndicator",
    "sklearn.impute._base.SimpleImputer", "sklearn.impute._knn.KNNImputer",
    "sklearn.kernel_approximation.AdditiveChi2Sampler", "sklearn.kernel_approximation.Nystroem",
    "sklearn.kernel_approximation.PolynomialCountSketch",
    "sklearn.kernel_approximation.RBFSampler", "sklearn.kernel_approximation.SkewedChi2Sampler",
    "sklearn.kernel_ridge.KernelRidge", "sklearn.linear_model._base.LinearRegression",
    "sklearn.linear_model._bayes.ARDRegression", "sklearn.linear_model._bayes.BayesianRidge",
    "sklearn.linear_model._coordinate_descent.ElasticNet",
    "sklearn.linear_model._coordinate_descent.ElasticNetCV",
    "sklearn.linear_model._coordinate_descent.Lasso",
    "sklearn.linear_model._coordinate_descent.LassoCV",
    "sklearn.linear_model._glm.glm.PoissonRegressor",
    "sklearn.linear_model._glm.glm.TweedieRegressor", "sklearn.linear_model._huber.HuberRegressor",
    "sklearn.linear_model._least_angle.Lars", "sklearn.linear_model._least_angle.LarsCV",
    "sklearn.linear_model._least_angle.LassoLars", "sklearn.linear_model._least_angle.LassoLarsCV",
    "sklearn.linear_model._least_angle.LassoLarsIC",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._logistic.LogisticRegressionCV",
    "sklearn.linear_model._omp.OrthogonalMatchingPursuit",
    "sklearn.linear_model._omp.OrthogonalMatchingPursuitCV",
    "sklearn.linear_model._passive_aggressive.PassiveAggressiveClassifier",
    "sklearn.linear_model._passive_aggressive.PassiveAggressiveRegressor",
    "sklearn.linear_model._perceptron.Perceptron",
    "sklearn.linear_model._quantile.QuantileRegressor",
    "sklearn.linear_model._ransac.RANSACRegressor", "sklearn.linear_model._ridge.Ridge",
    "sklearn.linear_model._ridge.RidgeCV", "sklearn.linear_model._ridge.RidgeClassifier",
    "sklearn.linear_model._ridge.RidgeClassifierCV", "sklearn.linear_model._sgd_fast.Hinge",
    "sklearn.linear_model._sgd_fast.ModifiedHuber", "sklearn.linear_model._sgd_fast.SquaredHinge",
    "sklearn.linear_model._stochastic_gradient.SGDClassifier",
    "sklearn.linear_model._stochastic_gradient.SGDOneClassSVM",
    "sklearn.linear_model._stochastic_gradient.SGDRegressor",
    "sklearn.linear_model._theil_sen.TheilSenRegressor",
    "sklearn.manifold._classical_mds.ClassicalMDS", "sklearn.manifold._isomap.Isomap",
    "sklearn.manifold._locally_linear.LocallyLinearEmbedding", "sklearn.manifold._mds.MDS",
    "sklearn.manifold._spectral_embedding.SpectralEmbedding", "sklearn.manifold._t_sne.TSNE",
    "sklearn.metrics._classification.balanced_accuracy_score",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64", "sklearn.metrics._dist_metrics.newObj",
    "sklearn.metrics._scorer._CurveScorer", "sklearn.metrics._scorer._PassthroughScorer",
    "sklearn.metrics._scorer._Scorer", "sklearn.mixture._bayesian_mixture.BayesianGaussianMixture",
    "sklearn.mixture._gaussian_mixture.GaussianMixture",
    "sklearn.model_selection._classification_threshold.FixedThresholdClassifier",
    "sklearn.model_selection._classification_threshold.TunedThresholdClassifierCV",
    "sklearn.model_selection._search.GridSearchCV",
    "sklearn.model_selection._search.RandomizedSearchCV", "sklearn.model_selection._split.KFold",
    "sklearn.multiclass.OneVsOneClassifier", "sklearn.multiclass.OneVsRestClassifier",
    "sklearn.multiclass.OutputCodeClassifier", "sklearn.multiclass._ConstantPredictor",
    "sklearn.naive_bayes.BernoulliNB", "sklearn.naive_bayes.CategoricalNB",
    "sklearn.naive_bayes.ComplementNB", "sklearn.naive_bayes.GaussianNB",
    "sklearn.naive_bayes.MultinomialNB", "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._ball_tree.newObj",
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._classification.RadiusNeighborsClassifier",
    "sklearn.neighbors._graph.KNeighborsTransformer",
    "sklearn.neighbors._graph.RadiusNeighborsTransformer", "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._kd_tree.newObj", "sklearn.neighbors._kde.KernelDensity",
    "sklearn.neighbors._lof.LocalOutlierFactor",
    "sklearn.neighbors._nca.NeighborhoodComponentsAnalysis",
    "sklearn.neighbors._nearest_centroid.NearestCentroid",
    "sklearn.neighbors._regression.KNeighborsRegressor",
    "sklearn.neighbors._regression.RadiusNeighborsRegressor",
    "sklearn.neighbors._unsupervised.NearestNeighbors",
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
    "sklearn.neural_network._rbm.BernoulliRBM",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer", "sklearn.pipeline.FeatureUnion",
    "sklearn.pipeline.Pipeline", "sklearn.preprocessing._data.Binarizer",
    "sklearn.preprocessing._data.KernelCenterer", "sklearn.preprocessing._data.MaxAbsScaler",
    "sklearn.preprocessing._data.MinMaxScaler", "sklearn.preprocessing._data.Normalizer",
    "sklearn.preprocessing._data.PowerTransformer",
    "sklearn.preprocessing._data.QuantileTransformer", "sklearn.preprocessing._data.RobustScaler",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._discretization.KBinsDiscretizer",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.preprocessing._label.LabelBinarizer", "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.preprocessing._polynomial.PolynomialFeatures",
    "sklearn.preprocessing._polynomial.SplineTransformer",
    "sklearn.preprocessing._target_encoder.TargetEncoder",
    "sklearn.random_projection.GaussianRandomProjection",
    "sklearn.random_projection.SparseRandomProjection",
    "sklearn.semi_supervised._label_propagation.LabelPropagation",
    "sklearn.semi_supervised._label_propagation.LabelSpreading",
    "sklearn.semi_supervised._self_training.SelfTrainingClassifier",
    "sklearn.svm._classes.LinearSVC", "sklearn.svm._classes.LinearSVR",
    "sklearn.svm._classes.NuSVC", "sklearn.svm._classes.NuSVR", "sklearn.svm._classes.OneClassSVM",
    "sklearn.svm._classes.SVC", "sklearn.svm._classes.SVR",
    "sklearn.tree._classes.DecisionTreeClassifier", "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._classes.ExtraTreeClassifier", "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree", "sklearn.utils._bunch.Bunch",
    "sklearn.utils._metadata_requests.MetadataRequest",
    "sklearn.utils._metadata_requests.MethodMetadataRequest",
    "sklearn.utils.validation.check_array",
})

STATE_TYPES: frozenset[str] = frozenset({
    # numpy
    "numpy.dtypes.BoolDType", "numpy.dtypes.BytesDType", "numpy.dtypes.Complex128DType",
    "numpy.dtypes.DateTime64DType", "numpy.dtypes.Float16DType", "numpy.dtypes.Float32DType",
    "numpy.dtypes.Float64DType", "numpy.dtypes.Int16DType", "numpy.dtypes.Int32DType",
    "numpy.dtypes.Int64DType", "numpy.dtypes.Int8DType", "numpy.dtypes.ObjectDType",
    "numpy.dtypes.StrDType", "numpy.dtypes.TimeDelta64DType", "numpy.dtypes.UInt16DType",
    "numpy.dtypes.UInt32DType", "numpy.dtypes.UInt64DType", "numpy.dtypes.UInt8DType",
    "numpy.dtypes.VoidDType",
})

# Reviewed by hand beside the survey: containers that older pickles name, and the spellings of
# pandas' classes before pandas 3 gave them ``__module__ = "pandas"``.
GLOBALS |= frozenset({
    "builtins.set", "builtins.frozenset", "builtins.complex", "collections.OrderedDict",
    "pandas.core.frame.DataFrame", "pandas.core.series.Series", "pandas.core.indexes.base.Index",
    "pandas.core.indexes.range.RangeIndex", "pandas.core.indexes.multi.MultiIndex",
    "pandas.core.arrays.categorical.Categorical", "pandas.core.dtypes.dtypes.CategoricalDtype",
})

# Names a model file may mention but never call (REDUCE, NEWOBJ, INST, OBJ): classes it passes
# to the unpickle helpers (``_reconstruct(numpy.ndarray, ...)``: ``numpy.ndarray((10**12,))``
# would allocate a terabyte), functions kept as estimator parameters, singletons. The survey
# finds each of them named but never applied.
NAMED_ONLY: frozenset[str] = frozenset({
    # builtins
    "builtins.dict", "builtins.list", "builtins.object", "builtins.str", "builtins.tuple",
    # numpy
    "numpy.float64", "numpy.int64", "numpy.ma.MaskedArray", "numpy.mean", "numpy.ndarray",
    "numpy.random._generator.Generator", "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64", "numpy.random.bit_generator.SeedSequence",
    "numpy.random.mtrand.RandomState", "numpy.uint64",
    # pandas
    "pandas.Categorical", "pandas.Index", "pandas.MultiIndex", "pandas.NA", "pandas.RangeIndex",
    "pandas.arrays.DatetimeArray", "pandas.arrays.TimedeltaArray",
    "pandas.core.arrays.categorical.Categorical", "pandas.core.indexes.base.Index",
    "pandas.core.indexes.multi.MultiIndex", "pandas.core.indexes.range.RangeIndex",
    # scipy
    "scipy._lib.array_api_compat.numpy._aliases.asarray",
    # sklearn
    "sklearn._loss._loss.CyHalfMultinomialLoss", "sklearn.cluster._kmeans._kmeans_single_lloyd",
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.metrics._classification.balanced_accuracy_score",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64", "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree", "sklearn.utils.validation.check_array",
})

CALLABLES: frozenset[str] = GLOBALS - NAMED_ONLY

ALL: frozenset[str] = GLOBALS | STATE_TYPES

# Callables whose arguments are checked as well: ``_codecs.encode`` rebuilds bytes in protocols
# 0-2 from a latin-1 string; any other codec name would make it a general-purpose encoder.
ARGUMENT_GUARDS: dict[str, tuple[str, ...]] = {"_codecs.encode": ("latin1", "latin-1")}


def canonical(module: str, name: str) -> str:
    """One spelling per name: Python 2 names mapped as pickle maps them, and numpy's
    ``numpy.core`` alias (numpy < 2 wrote it) read as ``numpy._core``."""
    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    module = IMPORT_MAPPING.get(module, module)
    if module == "numpy.core" or module.startswith("numpy.core."):
        module = "numpy._core" + module[len("numpy.core"):]
    return f"{module}.{name}"
