# ruff: noqa: N803, N806 - X and C are scikit-learn's names, part of the estimator API
"""Support vector classification: ``CalibratedSVC`` (probabilities by temperature scaling) and
``VectorizedSVC`` (libsvm's model, evaluated as matrix products)."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.svm import SVC

# scikit-learn's constraint checking has no public entry point in 1.9 (the version is pinned); it is the
# same code its own estimators run in ``fit``, so configurations fail with the messages users know.
from sklearn.utils._param_validation import (
    StrOptions,
)
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["CalibratedSVC", "VectorizedSVC"]


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
