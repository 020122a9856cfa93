# ruff: noqa: N803 - X is scikit-learn's name, part of the estimator API
"""The pipeline every genre model is: ``SingleThreadedPipeline``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import config_context
from sklearn.pipeline import Pipeline
from sklearn.utils.metaestimators import available_if

from genre.threads import single_threaded

__all__ = ["SingleThreadedPipeline"]


def _final_estimator_has(method: str) -> Callable[[Pipeline], bool]:
    return lambda pipeline: hasattr(pipeline._final_estimator, method)


class SingleThreadedPipeline(Pipeline):
    """``Pipeline`` whose fitting, prediction and scoring run with one thread per native pool.

    The model ``make_model`` returns, so every path that trains or applies one (cross-validation, a
    search, the served model, a test's reference) computes the same bits whatever the machine's thread
    count or ``n_jobs`` (see ``genre.threads``). ``fit`` routes metadata (the track ``groups``) to the
    steps that request it whether or not the caller enabled scikit-learn's routing. Everything else is
    ``Pipeline``'s.
    """

    def fit(self, X: Any, y: Any = None, **params: Any) -> SingleThreadedPipeline:
        """``Pipeline.fit`` with one thread per pool, ``params`` routed to the steps that request them.

        ``groups`` (the rows' tracks) is information about the rows rather than an instruction: steps
        that request it (a stack's inner folds, a network's early stopping) get it through scikit-learn's
        metadata routing, and a pipeline none of whose steps needs it (``knn``) fits without it.
        """
        with single_threaded(), config_context(enable_metadata_routing=True):
            if "groups" in params and not self.get_metadata_routing().consumes("fit", ["groups"]):
                params = {key: value for key, value in params.items() if key != "groups"}
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
