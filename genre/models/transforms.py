# ruff: noqa: N803, N806 - X is scikit-learn's name, part of the estimator API
"""Feature transforms a model can put before its scaler: ``standard`` (none), ``logvar`` or ``levelfree``."""

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

__all__ = ["TRANSFORMS", "LevelFree", "LogVariances"]


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


class LevelFree(TransformerMixin, BaseEstimator):
    """The 57 GTZAN features with the recording's level taken out: the same song played louder or
    quieter gives the same row.

    A gain ``g`` on the signal scales seven of the 57 features and leaves the others alone: ``rms_mean``,
    ``harmony_mean`` and ``perceptr_mean`` by ``g``, their variances by ``g**2``, and shifts
    ``mfcc1_mean`` (the mean log energy: every mel band's dB moves by ``20 log10 g``, which the
    orthonormal DCT gathers in the first coefficient, ``sqrt(128)`` times) by ``sqrt(128) * 20 log10 g``.
    Chroma, the spectral shape features, zero crossings, tempo and every other MFCC are ratios or
    differences of the spectrum, unchanged. So, with ``r = rms_mean``: the means become ``x / r``, the
    variances ``x / r**2``, ``mfcc1_mean`` becomes ``mfcc1_mean - sqrt(128) * 20 log10 r``, and
    ``rms_mean`` itself becomes 1 (the level is what is taken out). Columns keep their names and
    positions, and the features' Kaggle values are untouched: the model learns from these ratios.

    Columns are found by name at ``fit``, so ``X`` must be a DataFrame; columns of other feature sets
    pass through.

    Parameters
    ----------
    floor : float, default=1e-8
        ``rms_mean`` is clipped at this before dividing (a silent clip is refused long before).
    """

    _parameter_constraints: dict = {"floor": [Interval(Real, 0, None, closed="neither")]}
    _LEVEL = "rms_mean"
    _MEANS = ("harmony_mean", "perceptr_mean")
    _VARIANCES = ("rms_var", "harmony_var", "perceptr_var")
    _ENERGY = "mfcc1_mean"
    #: dB per decade of gain in ``mfcc1_mean``: ``sqrt(n_mels) * 20``, n_mels = 128 (librosa's mfcc).
    _DB_PER_DECADE = float(np.sqrt(128.0) * 20.0)
    #: The level ``inverse_transform`` puts back (a moderately loud recording's ``rms_mean``).
    REFERENCE_LEVEL = 0.1

    def __init__(self, floor: float = 1e-8) -> None:
        self.floor = floor

    def fit(self, X: Any, y: Any = None) -> LevelFree:
        """Find the level-dependent columns by name."""
        self._validate_params()
        validate_data(self, X, dtype=np.float64)
        names = [str(n) for n in getattr(self, "feature_names_in_", [])]
        needed = [self._LEVEL, *self._MEANS, *self._VARIANCES, self._ENERGY]
        missing = [n for n in needed if n not in names]
        if missing:
            raise ValueError(f"LevelFree needs a DataFrame with the 57 GTZAN features; missing {missing}")
        self.level_ = names.index(self._LEVEL)
        self.means_ = np.array([names.index(n) for n in self._MEANS])
        self.variances_ = np.array([names.index(n) for n in self._VARIANCES])
        self.energy_ = names.index(self._ENERGY)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """``X`` with the level divided out of the seven level-dependent columns."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64, copy=True)
        level = np.maximum(X[:, self.level_], self.floor)
        X[:, self.means_] /= level[:, None]
        X[:, self.variances_] /= (level**2)[:, None]
        X[:, self.energy_] -= self._DB_PER_DECADE * np.log10(level)
        X[:, self.level_] = 1.0
        return X

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Features of a recording at ``REFERENCE_LEVEL`` with these level-free values (the level itself
        is gone): what a served model's input example is built from."""
        check_is_fitted(self)
        X = np.array(X, dtype=np.float64, copy=True, ndmin=2)
        level = self.REFERENCE_LEVEL
        X[:, self.means_] *= level
        X[:, self.variances_] *= level**2
        X[:, self.energy_] += self._DB_PER_DECADE * np.log10(level)
        X[:, self.level_] = level
        return X

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The input's names: columns keep their positions."""
        check_is_fitted(self)
        return np.asarray(self.feature_names_in_, dtype=object)


#: Feature transforms ``make_model`` can put before the scaler: ``standard`` (none), ``logvar`` (the log
#: of the variance columns) or ``levelfree`` (the recording's level divided out).
TRANSFORMS: tuple[str, ...] = ("standard", "logvar", "levelfree")
