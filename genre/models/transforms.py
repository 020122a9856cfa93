# ruff: noqa: N803, N806 - X is scikit-learn's name, part of the estimator API
"""Feature transforms a model can put before its scaler: ``standard`` (none) or ``logvar``."""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

# scikit-learn's constraint checking has no public entry point in 1.9 (the version is pinned); it is the
# same code its own estimators run in ``fit``, so configurations fail with the messages users know.
from sklearn.utils._param_validation import (
    Interval,
)
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["TRANSFORMS", "LogVariances"]


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
