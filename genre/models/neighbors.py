# ruff: noqa: N803 - X is scikit-learn's name, part of the estimator API
"""K-nearest neighbours: ``KNNClassifier`` and the ``inverse_square`` neighbour weights."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from genre.errors import ConfigError

__all__ = ["KNNClassifier", "inverse_square"]


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
