# ruff: noqa: N803, N806 - X, X_train and C are scikit-learn's names, part of the estimator API
"""The four genre classifiers as scikit-learn estimators: ``knn``, ``svm``, ``nn`` and ``stacking``.

``make_model(name, params)`` returns an unfitted ``Pipeline(StandardScaler, model)``. Scaling sits inside
the pipeline so that every cross-validation fold fits its own scaler on its own training rows; and
because each piece is a plain estimator, ``cross_validate``, ``GridSearchCV`` and ``StackingClassifier``
compose the models unchanged. Hyperparameters are validated against scikit-learn's own constraints
before any training starts and a bad one raises :class:`genre.errors.ConfigError`.

Three small estimators of our own fill what scikit-learn lacks here:

* :class:`KNNClassifier` -- ``KNeighborsClassifier`` that rejects ``n_neighbors`` larger than the
  training set at ``fit`` (scikit-learn only notices at ``predict``, after CV has spent the fit).
* :class:`CalibratedSVC` -- ``SVC`` with probabilities from temperature scaling, because
  ``SVC(probability=True)`` is deprecated in scikit-learn 1.9; it predicts through a :class:`VectorizedSVC`,
  whose decision function is a few NumPy matrix products instead of libsvm's row-by-row loop.
* :class:`KerasMLPClassifier` -- a Keras 3 MLP; scikeras reports ``is_classifier() is False`` on
  scikit-learn 1.9, which silently turns integer ``cv=`` into unstratified ``KFold``.

TensorFlow is imported only when a network is trained or its Keras model is asked for, so importing this
module, using ``knn`` or ``svm``, or loading and predicting with a fitted stack never pays its
multi-second start-up.
"""

from __future__ import annotations

import difflib
import math
import os
import pickle
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils import check_random_state

# scikit-learn's constraint checking has no public entry point in 1.9 (the version is pinned); it is the
# same code its own estimators run in ``fit``, so configurations fail with the messages users know.
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data

from genre.errors import ConfigError
from genre.threads import configure_tensorflow, single_threaded

__all__ = [
    "MODEL_NAMES",
    "make_model",
    "check_params",
    "inverse_square",
    "TRANSFORMS",
    "LogVariances",
    "KNNClassifier",
    "VectorizedSVC",
    "CalibratedSVC",
    "KerasMLPClassifier",
    "MetaLogisticRegression",
    "SingleThreadedPipeline",
    "import_keras",
]

#: The models ``make_model`` builds, in the order reports list them.
MODEL_NAMES: tuple[str, ...] = ("knn", "svm", "nn", "stacking")


def inverse_square(distances: np.ndarray) -> np.ndarray:
    """KNN neighbour weights ``1 / d**2``: closer neighbours count quadratically more than with 1/d.

    A module-level function, so a fitted ``KNeighborsClassifier(weights=inverse_square)`` pickles. A query
    at distance 0 from some training rows takes exactly those rows' votes, as scikit-learn's
    ``weights="distance"`` does, instead of producing ``inf / inf``.

    Parameters
    ----------
    distances : ndarray of shape (n_queries, n_neighbors)
        Distances from each query to its neighbours.

    Returns
    -------
    ndarray of shape (n_queries, n_neighbors)
        The weights.

    Examples
    --------
    >>> inverse_square(np.array([[1.0, 2.0], [0.0, 3.0]]))
    array([[1.  , 0.25],
           [1.  , 0.  ]])
    """
    with np.errstate(divide="ignore", over="ignore"):
        weights = 1.0 / np.square(distances)
    exact = np.isinf(weights)
    exact_rows = exact.any(axis=1)
    weights[exact_rows] = exact[exact_rows]
    return weights


class LogVariances(TransformerMixin, BaseEstimator):
    """The logarithm of the ``*_var`` feature columns; every other column passes through.

    Half of GTZAN's features are variances over a clip, spread over several orders of magnitude with
    long right tails: standardised as they are, a few loud tracks dominate distances and kernels. Their
    log is close to symmetric. In nested CV on ``features_30_sec.csv`` (benchmarks/nested_cv.py and
    docs/results.md) it moved the SVM by about +0.01 and cost nothing; a Yeo-Johnson power transform
    gained the same at twenty times the cost.

    Columns are chosen by name at ``fit``, so ``X`` must be a DataFrame (as ``Dataset.X`` is).

    Parameters
    ----------
    floor : float, default=1e-12
        Variances are clipped at this before the log, so a silent band gives a finite value.

    Attributes
    ----------
    columns_ : ndarray of int
        Positions of the ``*_var`` columns.
    feature_names_in_ : ndarray of str
        Column names seen at ``fit``.

    Examples
    --------
    >>> import pandas as pd
    >>> LogVariances().fit_transform(pd.DataFrame({"rms_var": [1.0, np.e], "tempo": [120.0, 90.0]}))
    array([[  0.,  120.],
           [  1.,   90.]])
    """

    _parameter_constraints: dict = {"floor": [Interval(Real, 0, None, closed="neither")]}

    def __init__(self, floor: float = 1e-12) -> None:
        self.floor = floor

    def fit(self, X: Any, y: Any = None) -> LogVariances:
        """Find the ``*_var`` columns by name."""
        self._validate_params()
        validate_data(self, X, dtype=np.float64)
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            raise ValueError("LogVariances needs a DataFrame: it finds the *_var columns by name")
        self.columns_ = np.flatnonzero([str(name).endswith("_var") for name in names])
        return self

    def transform(self, X: Any) -> np.ndarray:
        """``X`` with its variance columns replaced by their logarithm."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64, copy=True)
        X[:, self.columns_] = np.log(np.maximum(X[:, self.columns_], self.floor))
        return X

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Back from log-variances to variances (up to the floor)."""
        check_is_fitted(self)
        X = np.array(X, dtype=np.float64, copy=True, ndmin=2)
        X[:, self.columns_] = np.exp(X[:, self.columns_])
        return X

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The input's names: columns keep their positions."""
        check_is_fitted(self)
        return np.asarray(self.feature_names_in_, dtype=object)


#: Feature transforms ``make_model`` can put before the scaler: ``standard`` (none) or ``logvar``.
TRANSFORMS: tuple[str, ...] = ("standard", "logvar")


class KNNClassifier(KNeighborsClassifier):
    """``KNeighborsClassifier`` that checks ``n_neighbors`` against the training rows at ``fit``.

    scikit-learn only notices ``n_neighbors > n_samples`` when ``predict`` asks for the neighbours, so
    a too-large ``k`` costs a whole cross-validation fit before failing; here it fails at once, naming the
    parameter. Everything else, parameters included, is ``KNeighborsClassifier``'s.

    Examples
    --------
    >>> X, y = np.arange(8.0).reshape(4, 2), [0, 0, 1, 1]
    >>> KNNClassifier(n_neighbors=2, weights=inverse_square).fit(X, y).predict([[0.5, 1.5]])
    array([0])
    >>> KNNClassifier(n_neighbors=5).fit(X, y)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    genre.errors.ConfigError: knn: n_neighbors=5 exceeds the training rows (n_samples = 4); use ...
    """

    def fit(self, X: Any, y: Any) -> KNNClassifier:
        """Fit the nearest-neighbour index; raise ``ConfigError`` if fewer rows than ``n_neighbors``."""
        super().fit(X, y)
        if self.n_neighbors is not None and self.n_neighbors > self.n_samples_fit_:
            raise ConfigError(
                f"knn: n_neighbors={self.n_neighbors} exceeds the training rows (n_samples = "
                f"{self.n_samples_fit_}); use n_neighbors <= {self.n_samples_fit_}"
            )
        return self


class VectorizedSVC(SVC):
    """``SVC`` whose decision function runs as NumPy matrix products instead of libsvm's per-row loop.

    libsvm evaluates the kernel one (row, support vector) pair at a time and then the one-vs-one sums
    row by row: for 1000 GTZAN rows against a stack's 220 support vectors that took 13-15 ms, the largest
    part of the served stack's prediction. Here the kernel is one matrix product (RBF through squared
    norms) and the one-vs-one sums a second one, with the ``(n_support_vectors, n_pairs)`` matrix
    ``pair_coef_`` assembled from ``dual_coef_`` at ``fit``: about 1 ms. Fitting, parameters, the other
    attributes and ``predict`` are ``SVC``'s; decision values agree with libsvm's to float rounding
    (tests/test_models.py compares them on GTZAN). Sparse input, callable or precomputed kernels go
    through libsvm as before.

    Attributes
    ----------
    pair_coef_ : ndarray of shape (n_support_vectors, n_classes * (n_classes - 1) / 2)
        Column ``p`` holds each support vector's coefficient in the ``p``-th one-vs-one classifier
        (pairs in libsvm's order, ``(0, 1), (0, 2), ..., (1, 2), ...``), zero for support vectors of the
        other classes; empty for the kernels libsvm keeps evaluating.

    See Also
    --------
    sklearn.svm.SVC

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> X, y = make_classification(n_samples=60, n_classes=3, n_informative=4, random_state=0)
    >>> svc = VectorizedSVC().fit(X, y)
    >>> bool(np.allclose(svc.decision_function(X), SVC().fit(X, y).decision_function(X)))
    True
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> VectorizedSVC:
        """Fit as ``SVC`` does, then lay out the one-vs-one coefficients for ``decision_function``."""
        super().fit(X, y, sample_weight=sample_weight)
        self._lay_out_pairs()
        return self

    @classmethod
    def from_svc(cls, svc: SVC) -> VectorizedSVC:
        """A ``VectorizedSVC`` holding a fitted ``SVC``'s parameters and fitted state (shared, not copied)."""
        check_is_fitted(svc)
        fast = cls(**svc.get_params())
        fast.__dict__.update(vars(svc))
        fast._lay_out_pairs()
        return fast

    def _lay_out_pairs(self) -> None:
        starts = np.concatenate([[0], np.cumsum(self._n_support)])
        n_classes = len(self._n_support)
        pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
        self.pair_coef_ = np.zeros((self.support_vectors_.shape[0], len(pairs) if self._vectorized else 0))
        if self._vectorized:
            coef = self._dual_coef_
            for p, (i, j) in enumerate(pairs):
                # libsvm's svm_predict_values: class i's vectors weigh in with row j - 1, class j's with row i
                self.pair_coef_[starts[i] : starts[i + 1], p] = coef[j - 1, starts[i] : starts[i + 1]]
                self.pair_coef_[starts[j] : starts[j + 1], p] = coef[i, starts[j] : starts[j + 1]]

    @property
    def _vectorized(self) -> bool:
        return not (self._sparse or callable(self.kernel) or self.kernel == "precomputed")

    def _decision_function(self, X: Any) -> np.ndarray:
        """One-vs-one decision values (``SVC``'s hook), sign-flipped to one column for two classes."""
        check_is_fitted(self)
        if not self._vectorized:
            return super()._decision_function(X)
        X = self._validate_for_predict(X)
        dec = self._kernel(X) @ self.pair_coef_ + self._intercept_
        return -dec.ravel() if len(self.classes_) == 2 else dec

    def _kernel(self, X: np.ndarray) -> np.ndarray:
        """The kernel between the rows of ``X`` and the support vectors, as libsvm defines each kernel."""
        vectors = self.support_vectors_
        if self.kernel == "rbf":
            squared = (X**2).sum(axis=1)[:, None] + (vectors**2).sum(axis=1)[None, :] - 2.0 * (X @ vectors.T)
            return np.exp(-self._gamma * np.maximum(squared, 0.0))
        products = X @ vectors.T
        if self.kernel == "linear":
            return products
        if self.kernel == "poly":
            return (self._gamma * products + self.coef0) ** self.degree
        return np.tanh(self._gamma * products + self.coef0)  # sigmoid


class CalibratedSVC(ClassifierMixin, BaseEstimator):
    """Support vector classifier with probabilities from temperature scaling of its decision function.

    ``SVC(probability=True)`` is deprecated in scikit-learn 1.9 (removed in 1.11). Here one ``SVC`` is
    fitted on all rows, and a calibrator is fitted on cross-validated decision values
    (``CalibratedClassifierCV(ensemble=False)``, which is what ``probability=True`` did internally).
    Temperature scaling, ``softmax(decision / T)``, is the default because it is one parameter for all
    classes and keeps the SVC's ranking of classes: on GTZAN (10-fold CV, C=3) it kept SVC's accuracy
    (0.762 vs 0.760) with log-loss 0.99, whereas Platt's one-vs-rest sigmoids dropped accuracy to 0.735,
    and the cross-validated ensemble of five SVCs (``ensemble=True``) to 0.751. A ``predict_proba``
    is needed twice over: the served model returns probabilities, and the stacking meta-learner
    reads them.

    Parameters
    ----------
    C : float, default=3.0
        Inverse regularisation strength (> 0). 3 measured best on GTZAN's 57 features, standardised.
    kernel : {"rbf", "linear", "poly", "sigmoid"}, default="rbf"
        Kernel of the SVC.
    degree : int, default=3
        Degree of the ``"poly"`` kernel.
    gamma : {"scale", "auto"} or float, default="scale"
        Kernel coefficient of ``"rbf"``, ``"poly"`` and ``"sigmoid"``.
    coef0 : float, default=0.0
        Independent term of ``"poly"`` and ``"sigmoid"``.
    calibration : {"temperature", "sigmoid", "isotonic"}, default="temperature"
        How decision values become probabilities (``CalibratedClassifierCV``'s ``method``).
    calibration_cv : int or CV splitter, default=5
        Folds that produce the out-of-fold decision values the calibrator is fitted on. An integer
        is capped at the smallest class's row count, so a small training set (a few tracks per
        genre, or the inner folds of a stack in an outer CV fold) still calibrates.

    Attributes
    ----------
    calibrated_ : CalibratedClassifierCV
        The fitted SVC and its calibrator.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        Number of features seen in ``fit``.

    See Also
    --------
    sklearn.svm.SVC, sklearn.calibration.CalibratedClassifierCV

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> X, y = make_classification(n_samples=60, n_classes=3, n_informative=4, random_state=0)
    >>> proba = CalibratedSVC().fit(X, y).predict_proba(X[:2])
    >>> proba.shape, bool(np.allclose(proba.sum(axis=1), 1.0))
    ((2, 3), True)
    """

    _parameter_constraints: dict = {
        **{key: SVC._parameter_constraints[key] for key in ("C", "degree", "gamma", "coef0")},
        "kernel": [StrOptions({"linear", "poly", "rbf", "sigmoid"})],
        "calibration": [StrOptions({"temperature", "sigmoid", "isotonic"})],
        "calibration_cv": ["cv_object"],
    }

    def __init__(
        self,
        C: float = 3.0,
        kernel: str = "rbf",
        *,
        degree: int = 3,
        gamma: str | float = "scale",
        coef0: float = 0.0,
        calibration: str = "temperature",
        calibration_cv: Any = 5,
    ) -> None:
        self.C = C
        self.kernel = kernel
        self.degree = degree
        self.gamma = gamma
        self.coef0 = coef0
        self.calibration = calibration
        self.calibration_cv = calibration_cv

    def fit(self, X: Any, y: Any) -> CalibratedSVC:
        """Fit the SVC on all rows and its calibrator on cross-validated decision values."""
        self._validate_params()
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        svc = SVC(C=self.C, kernel=self.kernel, degree=self.degree, gamma=self.gamma, coef0=self.coef0)
        folds = self.calibration_cv
        if isinstance(folds, Integral):
            labels, counts = np.unique(y, return_counts=True)
            if counts.min() < 2:
                raise ValueError(
                    "CalibratedSVC needs at least 2 samples of each class to calibrate its probabilities; "
                    f"class {labels[counts.argmin()].item()!r} has {counts.min()} sample(s)"
                )
            folds = min(int(folds), int(counts.min()))
        self.calibrated_ = CalibratedClassifierCV(svc, method=self.calibration, cv=folds, ensemble=False).fit(
            X, y
        )
        # The calibrator learns from libsvm's own out-of-fold decision values, so a fit is the one made
        # before VectorizedSVC existed: the temperature's optimiser turns decision values that differ in
        # the 15th digit into probabilities that differ in the 8th. Prediction then runs the fitted SVC
        # through VectorizedSVC (the same values to ~1e-14, a quarter of the time).
        for calibrated in self.calibrated_.calibrated_classifiers_:
            calibrated.estimator = VectorizedSVC.from_svc(calibrated.estimator)
        self.classes_ = self.calibrated_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated class probabilities, columns in the order of ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.calibrated_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class KerasMLPClassifier(ClassifierMixin, BaseEstimator):
    """A Keras 3 multilayer perceptron as a scikit-learn classifier, with early stopping.

    ``n_features -> hidden_layers x Dense(units, relu) [+ Dropout] -> Dense(n_classes, softmax)``,
    trained with Adam on sparse categorical cross-entropy. ``fit`` holds out a stratified
    ``validation_fraction`` of its training rows (of its ``groups``, when given: whole tracks of windowed
    data) and stops when their loss has not improved by ``min_delta`` for ``patience`` epochs, keeping
    the best epoch's weights; the held-out rows are never trained on, so early stopping never looks at
    a CV fold's test rows.

    Parameters
    ----------
    hidden_layers : int, default=5
        Number of hidden layers (0 gives multinomial logistic regression).
    units : int, default=300
        Width of each hidden layer.
    dropout : float, default=0.0
        Dropout rate after each hidden layer, in [0, 1).
    learning_rate : float, default=1e-4
        Adam's learning rate.
    batch_size : int, default=32
        Rows per gradient step.
    epochs : int, default=300
        Upper bound on training epochs; early stopping usually ends training sooner.
    patience : int, default=20
        Epochs without improvement of the validation loss before training stops.
    min_delta : float, default=0.0
        Smallest decrease of the validation loss that counts as an improvement.
    validation_fraction : float or None, default=0.1
        Share of the training rows held out (stratified, and at least one row per class) for early
        stopping, in (0, 1). ``None`` trains on every row for exactly ``epochs`` epochs.
    restore_best_weights : bool, default=True
        Keep the weights of the epoch with the lowest validation loss rather than the last epoch's.
    random_state : int, RandomState instance or None, default=None
        Seeds the validation split, weight initialisation, dropout and batch shuffling. With an int, two
        fits give identical weights and predictions.
    verbose : int, default=0
        0 is silent; otherwise ``fit`` prints one line per epoch with its losses and accuracies.
    epoch_callback : callable or None, default=None
        Called as ``epoch_callback(epoch, logs)`` after every epoch, ``epoch`` counting from 1 and
        ``logs`` mapping ``"loss"``, ``"accuracy"``, ``"val_loss"``, ``"val_accuracy"`` to floats: the
        hook for per-epoch logging and for pruning a tuning trial (raise to abort ``fit``). Pass a
        function or closure: ``clone`` deep-copies other callables, such as bound methods' objects.

    Attributes
    ----------
    model_ : keras.Model
        The trained network.
    coefs_ : list of ndarray
        Its Dense layers' kernels, input to output (as in ``MLPClassifier``); ``predict_proba`` uses them.
    intercepts_ : list of ndarray
        Its Dense layers' biases.
    classes_ : ndarray of shape (n_classes,)
        Class labels; output unit ``i`` is ``classes_[i]``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    history_ : dict of str to list of float
        Per-epoch ``loss`` and ``accuracy`` on the training rows, and ``val_loss`` and ``val_accuracy``
        on the held-out rows when ``validation_fraction`` is set.
    stopped_epoch_ : int
        Number of epochs trained (``epochs`` unless early stopping ended training sooner).
    best_epoch_ : int
        The epoch (from 1) whose weights the model holds.

    See Also
    --------
    sklearn.neural_network.MLPClassifier : the same idea without Keras.

    Notes
    -----
    ``fit`` trains with a loop of its own rather than ``model.fit``: each epoch is one compiled
    TensorFlow function over the shuffled batches, then the held-out rows, and Python only keeps the
    history and the early-stopping score. The loss, metrics, Adam update and stopping rule are Keras'
    (the network after ``fit`` matches ``model.fit``'s on the same batches to float rounding), in a
    third to 40% of the time (GTZAN, default network: 4.6 s -> 1.7 s per fit on 900 rows, 2.45 s ->
    0.72 s on 270): ``model.fit``'s per-epoch and per-batch Python overhead was most of its cost for
    networks this small.

    A pickled classifier keeps its network as Keras' own pickle, unpickled on first use of ``model_``:
    ``predict_proba`` needs only the weights, so loading a fitted stack to serve it does not import
    TensorFlow (about 4.4 s of a server's start-up here).

    The compiled functions are kept per network shape and batch size (the last 8), so the dozens of fits
    of a cross-validation or a stack trace them once; each fit loads its own freshly initialised network
    into them and takes the result back. ``random_state`` seeds each layer's initialiser and dropout,
    the validation split and a NumPy generator that shuffles the batches; no global generator (Python's,
    NumPy's, TensorFlow's or Keras') is used or changed. ``predict_proba`` runs the forward pass in NumPy
    on the trained weights rather than through ``model.predict`` (tens of milliseconds of set-up per
    call) or even the network itself (~7 ms per call): a served request is often a single row.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> X, y = make_classification(n_samples=100, n_classes=3, n_informative=4, random_state=0)
    >>> clf = KerasMLPClassifier(hidden_layers=1, units=8, epochs=3, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape, clf.stopped_epoch_
    ((2, 3), 3)
    """

    _parameter_constraints: dict = {
        "hidden_layers": [Interval(Integral, 0, None, closed="left")],
        "units": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "min_delta": [Interval(Real, 0, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither"), None],
        "restore_best_weights": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "epoch_callback": [callable, None],
    }

    def __init__(
        self,
        *,
        hidden_layers: int = 5,
        units: int = 300,
        dropout: float = 0.0,
        learning_rate: float = 1e-4,
        batch_size: int = 32,
        epochs: int = 300,
        patience: int = 20,
        min_delta: float = 0.0,
        validation_fraction: float | None = 0.1,
        restore_best_weights: bool = True,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        epoch_callback: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        self.hidden_layers = hidden_layers
        self.units = units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.min_delta = min_delta
        self.validation_fraction = validation_fraction
        self.restore_best_weights = restore_best_weights
        self.random_state = random_state
        self.verbose = verbose
        self.epoch_callback = epoch_callback

    def fit(self, X: Any, y: Any, groups: Any = None) -> KerasMLPClassifier:
        """Build the network for ``X``'s width and ``y``'s classes, and train it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,), optional
            Rows that must stay on one side of the early-stopping split, such as the 3-s windows of one
            track: the held-out rows are then about ``validation_fraction`` of the groups (stratified),
            so the validation loss is measured on tracks the network has not trained on. Without
            groups, rows are held out one by one. ``evaluation.fit_model`` passes the track groups on
            windowed data (through scikit-learn's metadata routing inside pipelines and stacks).

        Raises
        ------
        ValueError
            If ``y`` has a single class, or a class has too few rows (or groups) to appear on both
            sides of the stratified validation split.
        """
        self._validate_params()
        self.__dict__.pop("_pickled_model", None)  # a network unpickled earlier is not this fit's
        X, y = validate_data(self, X, y, dtype=np.float32)
        if groups is not None:
            groups = np.asarray(groups)
            check_consistent_length(X, groups)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"KerasMLPClassifier needs at least 2 classes to train; y has one class, {self.classes_[0]!r}"
            )
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        X_train, y_train, validation = self._split(X, y_index, groups, seed)

        keras, tf = import_keras()
        self.model_ = self._build(keras, X.shape[1], seed)
        shape = (X.shape[1], len(self.classes_), self.hidden_layers, self.units, self.dropout)
        trainer = _trainer(keras, tf, (*shape, self.batch_size), lambda: self._build(keras, X.shape[1], 0))
        with trainer.lock:
            trainer.load(self.model_)
            self._train(trainer, (X_train, y_train), validation, seed)
            trainer.store(self.model_)
        dense = [layer.get_weights() for layer in self.model_.layers if layer.__class__.__name__ == "Dense"]
        self.coefs_ = [kernel for kernel, _ in dense]
        self.intercepts_ = [bias for _, bias in dense]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (float64, rows summing to 1), columns in the order of ``classes_``.

        The forward pass runs in NumPy on the trained weights (``coefs_``, ``intercepts_``; dropout is
        off at inference), which is the network ``model_`` computes: calling TensorFlow costs ~7 ms
        per call, most of a served one-row request, against ~0.1 ms here.
        """
        check_is_fitted(self)
        hidden = validate_data(self, X, reset=False, dtype=np.float32)
        for kernel, bias in zip(self.coefs_[:-1], self.intercepts_[:-1], strict=True):
            hidden = hidden @ kernel  # bias and ReLU in place: a 1000-row batch allocates 3x less
            hidden += bias
            np.maximum(hidden, 0.0, out=hidden)
        logits = (hidden @ self.coefs_[-1] + self.intercepts_[-1]).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __getstate__(self) -> dict[str, Any]:
        """The state to pickle, with the network as Keras' pickle of it (bytes), left as is when unused."""
        state = super().__getstate__()
        if "model_" in state:
            state["_pickled_model"] = pickle.dumps(state.pop("model_"))
        return state

    def __getattr__(self, name: str) -> Any:
        """``model_`` after unpickling: the network, unpickled now (importing TensorFlow), then kept."""
        pickled = self.__dict__.get("_pickled_model")
        if name != "model_" or pickled is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        import_keras()  # quietly, before Keras' unpickler imports it
        self.model_ = pickle.loads(pickled)
        del self._pickled_model
        return self.model_

    def _split(
        self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None, seed: int
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """Training rows, their labels, and the stratified held-out (X, y) for early stopping or None."""
        if self.validation_fraction is None:
            return X, y, None
        if groups is not None:
            return self._split_groups(X, y, groups, seed)
        # At least one row per class, so a small CV fold still gets a stratified validation set.
        n_validation = max(math.ceil(self.validation_fraction * len(y)), len(self.classes_))
        try:
            X_train, X_val, y_train, y_val = train_test_split(
                X, y, test_size=n_validation, stratify=y, random_state=seed
            )
        except ValueError as error:
            raise ValueError(
                f"KerasMLPClassifier cannot hold out a stratified validation set from {len(y)} rows with "
                f"{len(self.classes_)} classes ({error}); use more rows or validation_fraction=None"
            ) from error
        return X_train, y_train, (X_val, y_val)

    def _split_groups(
        self, X: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """``_split`` keeping each group on one side: a fold of stratified group k-fold, k = 1/fraction."""
        classes_per_group = pd.Series(y).groupby(groups).nunique()
        groups_per_class = pd.Series(groups).groupby(y).nunique()
        if classes_per_group.max() > 1 or groups_per_class.min() < 2:
            reason = (
                f"group {str(classes_per_group.idxmax())!r} holds rows of several classes"
                if classes_per_group.max() > 1
                else f"class {str(self.classes_[groups_per_class.idxmin()])!r} has a single group"
            )
            raise ValueError(
                f"KerasMLPClassifier cannot hold out whole groups for early stopping: {reason}; every "
                "class needs 2 or more groups, each group one class"
            )
        n_splits = max(2, round(1 / self.validation_fraction))
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        train, validation = next(splitter.split(X, y, groups))
        return X[train], y[train], (X[validation], y[validation])

    def _build(self, keras: Any, n_features: int, seed: int) -> Any:
        # Every random layer gets its own seed, drawn from `seed`: no global generator is touched (Keras'
        # set_random_seed would also clear TensorFlow's cache of compiled functions, costing ~0.1 s a fit).
        seeds = iter(int(s) for s in np.random.SeedSequence(seed).generate_state(2 * self.hidden_layers + 1))
        layers = [keras.Input(shape=(n_features,))]
        for _ in range(self.hidden_layers):
            init = keras.initializers.GlorotUniform(seed=next(seeds))
            layers.append(keras.layers.Dense(self.units, activation="relu", kernel_initializer=init))
            if self.dropout:
                layers.append(keras.layers.Dropout(self.dropout, seed=next(seeds)))
        init = keras.initializers.GlorotUniform(seed=next(seeds))
        layers.append(keras.layers.Dense(len(self.classes_), activation="softmax", kernel_initializer=init))
        model = keras.Sequential(layers)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def _train(
        self,
        trainer: _Trainer,
        training: tuple[np.ndarray, np.ndarray],
        validation: tuple[np.ndarray, np.ndarray] | None,
        seed: int,
    ) -> None:
        """Train ``trainer``'s network epoch by epoch, on a fresh shuffle of the rows each time, recording
        ``history_``; with held-out rows, stop and restore weights as Keras'
        ``EarlyStopping(monitor="val_loss")`` does."""
        tf = trainer.tf
        X, y = tf.constant(training[0]), tf.constant(training[1], dtype=tf.int32)
        if validation is not None:
            X_val, y_val = tf.constant(validation[0]), tf.constant(validation[1], dtype=tf.int32)
        rng = np.random.default_rng(seed)
        self.history_: dict[str, list[float]] = {}
        best_loss, best_epoch, best_weights = math.inf, 0, None
        for epoch in range(1, self.epochs + 1):
            scores = trainer.train_epoch(tf.constant(rng.permutation(len(training[1]))), X, y)
            if validation is not None:
                val_loss, val_accuracy = trainer.score(X_val, y_val)
                scores.update(val_loss=val_loss, val_accuracy=val_accuracy)
            logs = {key: float(value) for key, value in scores.items()}
            for key, value in logs.items():
                self.history_.setdefault(key, []).append(value)
            self.stopped_epoch_ = epoch
            if self.verbose:
                summary = " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())
                print(f"Epoch {epoch}/{self.epochs} - {summary}")
            if self.epoch_callback is not None:
                self.epoch_callback(epoch, dict(logs))
            if validation is None:
                continue
            # Improving means beating the best loss by more than min_delta; as in Keras, the first epoch
            # always improves (even on a NaN loss), and training stops after `patience` epochs without.
            if epoch == 1 or logs["val_loss"] + self.min_delta < best_loss:
                best_loss, best_epoch = logs["val_loss"], epoch
                if self.restore_best_weights:
                    best_weights = trainer.model.get_weights()
            elif epoch - best_epoch >= self.patience:
                break
        self.best_epoch_ = self.stopped_epoch_
        if best_weights is not None:
            trainer.model.set_weights(best_weights)
            self.best_epoch_ = best_epoch


#: Trainers by network shape, kept across fits: tracing and first running one costs about 0.2 s, and a
#: cross-validation, a stack or a search fits the same shape dozens of times. The oldest goes beyond 8.
_TRAINERS: OrderedDict[tuple[Any, ...], _Trainer] = OrderedDict()
_TRAINERS_LOCK = threading.Lock()


def _trainer(keras: Any, tf: Any, key: tuple[Any, ...], build: Callable[[], Any]) -> _Trainer:
    """The cached ``_Trainer`` for ``key`` (the network's shape, then the batch size); ``build`` makes the
    network if there is none yet."""
    with _TRAINERS_LOCK:
        if key not in _TRAINERS:
            _TRAINERS[key] = _Trainer(keras, tf, build(), batch_size=key[-1])
        _TRAINERS.move_to_end(key)
        while len(_TRAINERS) > 8:
            _TRAINERS.popitem(last=False)
        return _TRAINERS[key]


class _Trainer:
    """A working copy of one network shape, with compiled functions that train and score it.

    ``train_epoch(order, X, y)`` takes an Adam step on each ``batch_size`` rows of ``(X, y)`` in the
    order ``order`` and returns what ``model.fit`` logs: ``loss`` and ``accuracy`` averaged over the rows
    as each batch was trained on. ``score(X, y)`` returns the loss and accuracy of the network as it is.
    Each is one ``tf.function`` for any number of rows (a graph loop over the batches), so Python runs
    once per epoch instead of several times per batch as in ``model.fit`` (its callbacks, its per-epoch
    iterators): an epoch of GTZAN's 900 rows takes about 45 ms instead of 115 ms, a third of it Adam's
    update itself. The functions are traced once per shape, not per fit: a fit ``load``s its freshly
    initialised network's state into ``model``, trains, and ``store``s the result back, under ``lock``.
    """

    def __init__(self, keras: Any, tf: Any, model: Any, batch_size: int) -> None:
        self.tf, self.model, self.lock = tf, model, threading.Lock()
        variables = model.trainable_variables
        self._adam = _FusedAdam(tf, model.optimizer, variables)
        n_features = model.input_shape[-1]
        rows = tf.TensorSpec([None], tf.int64)
        data = [tf.TensorSpec([None, n_features], tf.float32), tf.TensorSpec([None], tf.int32)]

        def scores(y_true: Any, proba: Any) -> tuple[Any, Any]:
            """Per-row cross-entropy and 0/1 accuracy, as the compiled loss and "accuracy" compute them."""
            loss = keras.losses.sparse_categorical_crossentropy(y_true, proba)
            return loss, keras.metrics.sparse_categorical_accuracy(y_true, proba)

        @tf.function(input_signature=[rows, *data])
        def train_epoch(order: Any, X: Any, y: Any) -> dict[str, Any]:
            n_rows = tf.shape(order, out_type=tf.int64)[0]
            total_loss, total_correct = tf.constant(0.0), tf.constant(0.0)
            for start in tf.range(0, n_rows, batch_size):
                batch = order[start : start + batch_size]
                x_batch, y_batch = tf.gather(X, batch), tf.gather(y, batch)
                with tf.GradientTape() as tape:
                    loss, correct = scores(y_batch, model(x_batch, training=True))
                    mean_loss = tf.reduce_mean(loss)
                self._adam.apply(tape.gradient(mean_loss, variables))
                total_loss += tf.reduce_sum(loss)
                total_correct += tf.reduce_sum(correct)
            n_rows = tf.cast(n_rows, tf.float32)
            return {"loss": total_loss / n_rows, "accuracy": total_correct / n_rows}

        @tf.function(input_signature=data)
        def score(X: Any, y: Any) -> tuple[Any, Any]:
            loss, correct = scores(y, model(X, training=False))
            return tf.reduce_mean(loss), tf.reduce_mean(correct)

        self.train_epoch, self.score = train_epoch, score

    def load(self, model: Any) -> None:
        """Start from ``model``'s state (weights, dropout seeds, learning rate) with a fresh Adam."""
        for mine, theirs in zip(self.model.variables, model.variables, strict=True):
            mine.assign(theirs)
        self._adam.reset(float(model.optimizer.learning_rate.numpy()))

    def store(self, model: Any) -> None:
        """Copy the trained state, Adam's included, into ``model``."""
        for mine, theirs in zip(self.model.variables, model.variables, strict=True):
            theirs.assign(mine)
        self._adam.copy_to(model.optimizer, model.trainable_variables)


class _FusedAdam:
    """The model's ``keras.optimizers.Adam`` step, run as TensorFlow's fused ``ApplyAdam`` kernel per weight.

    Same arithmetic (``m += (g - m)(1 - beta_1)``, ``v += (g**2 - v)(1 - beta_2)``,
    ``w -= lr sqrt(1 - beta_2**t) / (1 - beta_1**t) m / (sqrt(v) + epsilon)``), same hyperparameters and the
    optimizer's own state (``iterations`` and its moment slots); ``copy_to`` hands that state to the fitted
    model's Adam, which then holds what ``model.fit`` would leave (it pickles without warnings and could
    train on). But one kernel per tensor instead of about ten ops traces 0.2 s faster and on its own runs
    twice as fast (14 ms instead of 31 ms for an epoch's 26 updates of the default network's 360k weights).
    """

    def __init__(self, tf: Any, optimizer: Any, variables: list[Any]) -> None:
        if type(optimizer).__name__ != "Adam" or optimizer.amsgrad:
            raise TypeError(f"_FusedAdam implements Adam without amsgrad, not {optimizer!r}")
        optimizer.build(variables)  # its slots must exist before tracing: a tf.function cannot create them
        self._tf, self._optimizer, self._variables = tf, optimizer, variables
        # Adam's moment slots, one per variable in ``variables``' order (Keras 3's attribute names).
        self._moments = list(zip(optimizer._momentums, optimizer._velocities, strict=True))
        self._beta1, self._beta2 = tf.constant(optimizer.beta_1), tf.constant(optimizer.beta_2)
        self._epsilon = tf.constant(optimizer.epsilon)

    def reset(self, learning_rate: float) -> None:
        """Back to step 0 with zero moments, at ``learning_rate``."""
        self._optimizer.iterations.assign(0)
        self._optimizer.learning_rate.assign(learning_rate)
        for m, v in self._moments:
            m.assign(self._tf.zeros_like(m))
            v.assign(self._tf.zeros_like(v))

    def copy_to(self, optimizer: Any, variables: list[Any]) -> None:
        """Give ``optimizer``, an Adam for ``variables`` (shaped as this one's), this one's state."""
        optimizer.build(variables)
        optimizer.iterations.assign(self._optimizer.iterations)
        theirs = zip(optimizer._momentums, optimizer._velocities, strict=True)
        for (m, v), (their_m, their_v) in zip(self._moments, theirs, strict=True):
            their_m.assign(m)
            their_v.assign(v)

    def apply(self, gradients: list[Any]) -> None:
        """One Adam step of every variable along its gradient (call inside a ``tf.function``)."""
        tf, optimizer = self._tf, self._optimizer
        optimizer.iterations.assign_add(1)
        step = tf.cast(optimizer.iterations, tf.float32)
        learning_rate = tf.cast(optimizer.learning_rate, tf.float32)
        beta1_power, beta2_power = tf.pow(self._beta1, step), tf.pow(self._beta2, step)
        for variable, gradient, (m, v) in zip(self._variables, gradients, self._moments, strict=True):
            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle,
                m=m.handle,
                v=v.handle,
                beta1_power=beta1_power,
                beta2_power=beta2_power,
                lr=learning_rate,
                beta1=self._beta1,
                beta2=self._beta2,
                epsilon=self._epsilon,
                grad=gradient,
            )


#: Lines TensorFlow writes to stderr while loading, before its logging honours ``TF_CPP_MIN_LOG_LEVEL``.
_TF_STARTUP_NOISE: tuple[bytes, ...] = (
    b"All log messages before absl::InitializeLog() is called are written to STDERR",
    b"oneDNN custom operations are on",
)


def import_keras() -> tuple[Any, Any]:
    """Keras and TensorFlow, imported on first use (several seconds) rather than with this module.

    Code about to unpickle a fitted network (loading a logged model) calls it first, so the import
    happens here, quietly, rather than inside the unpickler.

    TensorFlow's start-up notes are kept off the terminal: its C++ logging is set to warnings-and-up hidden
    too (``TF_CPP_MIN_LOG_LEVEL=2``, unless already set), and the oneDNN note it prints before that
    setting takes effect is filtered out of the import's stderr; anything else printed there is kept.
    """
    first_import = "tensorflow" not in sys.modules
    if first_import:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_without(_TF_STARTUP_NOISE) if first_import else nullcontext():
        import keras
        import tensorflow as tf

    if first_import:
        configure_tensorflow(tf)
    return keras, tf


@contextmanager
def _stderr_without(noise: tuple[bytes, ...]) -> Iterator[None]:
    """Capture file descriptor 2 during the block, then write back the lines containing none of ``noise``."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().splitlines(keepends=True)
            kept = b"".join(line for line in lines if not any(part in line for part in noise))
            if kept:
                os.write(2, kept)


#: String aliases a configuration may use for callable parameter values, by (estimator class, parameter):
#: a YAML file cannot name a function. (Code, e.g. a GridSearchCV grid, passes ``inverse_square`` itself.)
_ALIASES: dict[tuple[type, str], dict[str, Callable[..., Any]]] = {
    (KNNClassifier, "weights"): {"inverse_square": inverse_square},
}


class MetaLogisticRegression(LogisticRegression):
    """The stack's meta-learner: ``LogisticRegression`` whose ``fit`` takes and ignores ``groups``.

    ``evaluation.fit_model`` routes the track groups to the networks inside a stack (metadata routing),
    and scikit-learn 1.9's ``StackingClassifier.fit`` hands every fit parameter, routed or not, to its
    final estimator as well, where a plain ``LogisticRegression`` refuses ``groups``. The model is
    ``LogisticRegression``'s, unchanged.
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None, groups: Any = None) -> MetaLogisticRegression:
        """``LogisticRegression.fit``; ``groups`` is accepted for the stack's sake and not used."""
        return super().fit(X, y, sample_weight=sample_weight)


def _final_estimator_has(method: str) -> Callable[[Pipeline], bool]:
    return lambda pipeline: hasattr(pipeline._final_estimator, method)


class SingleThreadedPipeline(Pipeline):
    """``Pipeline`` whose fitting, prediction and scoring run with one thread per native pool.

    The model ``make_model`` returns, so every path that trains or applies one (cross-validation, a
    search, the served model, a test's reference) computes the same bits whatever the machine's thread
    count or ``n_jobs`` (see ``genre.threads``). Everything else is ``Pipeline``'s.
    """

    def fit(self, X: Any, y: Any = None, **params: Any) -> SingleThreadedPipeline:
        """``Pipeline.fit`` with one thread per pool."""
        with single_threaded():
            return super().fit(X, y, **params)

    @available_if(_final_estimator_has("predict"))
    def predict(self, X: Any, **params: Any) -> np.ndarray:
        """``Pipeline.predict`` with one thread per pool."""
        with single_threaded():
            return super().predict(X, **params)

    @available_if(_final_estimator_has("predict_proba"))
    def predict_proba(self, X: Any, **params: Any) -> np.ndarray:
        """``Pipeline.predict_proba`` with one thread per pool."""
        with single_threaded():
            return super().predict_proba(X, **params)

    @available_if(_final_estimator_has("decision_function"))
    def decision_function(self, X: Any, **params: Any) -> np.ndarray:
        """``Pipeline.decision_function`` with one thread per pool."""
        with single_threaded():
            return super().decision_function(X, **params)

    @available_if(_final_estimator_has("score"))
    def score(self, X: Any, y: Any = None, sample_weight: Any = None, **params: Any) -> float:
        """``Pipeline.score`` with one thread per pool."""
        with single_threaded():
            return super().score(X, y, sample_weight=sample_weight, **params)


def _knn(random_state: int) -> KNNClassifier:
    # k=5 with 1/d weights: 0.711 on GTZAN (10-fold), within 0.01 of the best k in 3..15, and its
    # probabilities are smoother than k=1-3's for the stacking meta-learner.
    return KNNClassifier(n_neighbors=5, weights="distance")


def _svm(random_state: int) -> CalibratedSVC:
    return CalibratedSVC()


def _nn(random_state: int) -> KerasMLPClassifier:
    return KerasMLPClassifier(random_state=random_state)


def _stacking(random_state: int) -> StackingClassifier:
    # The meta-learner must learn from out-of-fold probabilities that look like the ones it will combine
    # at test time. GTZAN's CSV is sorted by file name, and neighbouring files of a genre often share an
    # artist, so unshuffled inner folds (``cv=5``) hold out whole runs of artists: base models scored
    # 0.56-0.60 out of fold there against 0.71-0.76 on the shuffled outer folds, and the stack learnt from
    # those fell below the SVM (0.753 vs 0.762). Shuffled inner folds mirror the shuffled outer protocol
    # (0.69-0.74 out of fold) and the stack beats every base model. On windowed (3-s) data, where a shuffle
    # puts windows of one track on both sides, pass ``cv=5`` or a group-aware splitter instead.
    return StackingClassifier(
        estimators=[(name, _BUILDERS[name](random_state)) for name in ("knn", "svm", "nn")],
        final_estimator=MetaLogisticRegression(C=1.0, max_iter=1000),
        cv=StratifiedKFold(5, shuffle=True, random_state=random_state),
        stack_method="predict_proba",
    )


_BUILDERS: dict[str, Callable[[int], BaseEstimator]] = {
    "knn": _knn,
    "svm": _svm,
    "nn": _nn,
    "stacking": _stacking,
}


def make_model(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    random_state: int = 0,
    transform: str = "standard",
) -> Pipeline:
    """An unfitted ``SingleThreadedPipeline([("scale", StandardScaler()), (name, estimator)])`` for one of
    ``MODEL_NAMES``.

    The scaler is part of the pipeline so each CV fold standardises with its own training rows' means
    and deviations. ``params`` override the project's defaults, in the estimator's own parameter names;
    each one is checked against scikit-learn's declared constraints here, so a typo or an impossible
    value fails in milliseconds rather than after training. (Constraints between parameters and the data,
    such as ``n_neighbors`` against the training rows, are checked at ``fit``.)

    ======== ==================== =====================================================================
    name     estimator            defaults (and parameter names for ``params``)
    ======== ==================== =====================================================================
    knn      KNNClassifier        ``n_neighbors=5, weights="distance", p=2``; ``weights`` may also be
                                  ``"uniform"`` or ``"inverse_square"`` (1/d**2, :func:`inverse_square`)
    svm      CalibratedSVC        ``C=3.0, kernel="rbf", gamma="scale", degree=3``, temperature-scaled
                                  probabilities
    nn       KerasMLPClassifier   5 x Dense(300, relu), Adam lr 1e-4, batch 32, up to 300 epochs,
                                  early stopping with patience 20 on 10% held out; ``random_state``
    stacking StackingClassifier   ``knn``, ``svm``, ``nn`` as above, ``LogisticRegression(C=1.0)`` on
                                  their out-of-fold probabilities from 5 shuffled stratified folds
                                  (``cv``); base-model parameters as ``knn__n_neighbors``, ``svm__C``,
                                  ``nn__epochs``, the meta-learner's as ``final_estimator__C``
    ======== ==================== =====================================================================

    In the returned pipeline the same parameters carry the step name: ``knn__n_neighbors``, or
    ``stacking__svm__C``, for ``set_params`` and ``GridSearchCV`` grids.

    Parameters
    ----------
    name : {"knn", "svm", "nn", "stacking"}
        Which model.
    params : mapping of str to object, optional
        Hyperparameters to override, e.g. ``{"n_neighbors": 7}`` for ``knn``.
    random_state : int, default=0
        Seed of the network (alone or in the stack) and of the stack's inner folds, unless ``params``
        sets them; ``knn`` and ``svm`` are deterministic.
    transform : {"standard", "logvar"}, default="standard"
        ``"logvar"`` puts :class:`LogVariances` (step ``logvar``) before the scaler.

    Returns
    -------
    Pipeline
        Unfitted; ``pipeline[-1]`` is the estimator, named ``name``.

    Raises
    ------
    ConfigError
        Unknown model name or parameter, or a value the parameter cannot take.

    Examples
    --------
    >>> make_model("knn", {"n_neighbors": 7, "weights": "inverse_square"}).get_params()["knn__n_neighbors"]
    7
    >>> make_model("svm", {"C": -1})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    genre.errors.ConfigError: svm model, parameter 'C': The 'C' parameter of CalibratedSVC must be a float...
    """
    if name not in _BUILDERS:
        raise ConfigError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    if transform not in TRANSFORMS:
        raise ConfigError(f"unknown transform {transform!r}; expected one of {', '.join(TRANSFORMS)}")
    estimator = _BUILDERS[name](random_state)
    estimator.set_params(**_checked_params(name, estimator, params or {}))
    steps = [("logvar", LogVariances())] if transform == "logvar" else []
    return SingleThreadedPipeline([*steps, ("scale", StandardScaler()), (name, estimator)])


def check_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` for model ``name``, validated as ``make_model`` does, with string aliases resolved.

    What a search hands to ``GridSearchCV`` or ``set_params``: a YAML grid can only say
    ``weights: inverse_square``, the estimator needs the function.

    Raises
    ------
    ConfigError
        Unknown model name or parameter, or a value the parameter cannot take.

    Examples
    --------
    >>> check_params("knn", {"weights": "inverse_square"})["weights"].__name__
    'inverse_square'
    """
    if name not in _BUILDERS:
        raise ConfigError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    return _checked_params(name, _BUILDERS[name](0), params)


def _checked_params(name: str, estimator: BaseEstimator, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with aliases resolved, each validated against its owning estimator's constraints."""
    available = estimator.get_params(deep=True)
    checked = {}
    for key, value in params.items():
        if key not in available:
            close = difflib.get_close_matches(key, available, n=3)
            hint = (
                f"did you mean {' or '.join(map(repr, close))}?" if close else f"one of {sorted(available)}"
            )
            raise ConfigError(f"{name} model has no parameter {key!r}; {hint}")
        owner_key, _, local = key.rpartition("__")
        owner = available[owner_key] if owner_key else estimator
        if isinstance(value, str):
            value = _ALIASES.get((type(owner), local), {}).get(value, value)
        constraints = getattr(owner, "_parameter_constraints", {})
        if local in constraints:
            try:
                validate_parameter_constraints(
                    {local: constraints[local]}, {local: value}, caller_name=type(owner).__name__
                )
            except InvalidParameterError as error:
                raise ConfigError(f"{name} model, parameter {key!r}: {error}") from error
        checked[key] = value
    return checked
