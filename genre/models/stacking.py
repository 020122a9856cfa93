# ruff: noqa: N803 - X is scikit-learn's name, part of the estimator API
"""The stacking ensemble that owns its leak safety: ``GroupedStackingClassifier``."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import config_context
from sklearn.base import clone
from sklearn.ensemble import StackingClassifier
from sklearn.model_selection import StratifiedGroupKFold, check_cv, cross_val_predict
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import Bunch, _safe_indexing
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping, process_routing
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_consistent_length, check_is_fitted

from genre.models.folds import ContiguousTrackFolds

__all__ = ["GroupedStackingClassifier"]

Folds = list[tuple[np.ndarray, np.ndarray]]


class GroupedStackingClassifier(StackingClassifier):
    """``StackingClassifier`` whose inner folds keep each group (a track) on one side.

    The meta-learner must learn from out-of-fold probabilities that look like the ones it will combine
    at test time. On GTZAN's 3-s windows, row-wise inner folds put windows of one track on both sides,
    so the base models' out-of-fold probabilities look better than they are and the meta-learner learns
    to trust them. ``fit(X, y, groups=...)`` therefore cuts its inner folds with
    ``StratifiedGroupKFold`` (as many folds as ``cv`` has, shuffled with ``cv``'s ``random_state``), and
    routes ``groups`` with scikit-learn's metadata routing to every base estimator that requests them (a
    network's early stopping holds out whole tracks), in the full fits and in every inner fold. The
    meta-learner gets no groups. Without ``groups`` it is ``StackingClassifier``, inner folds ``cv``.
    A ``cv`` that splits by groups itself (``ContiguousTrackFolds``: runs of neighbouring tracks, GTZAN's
    nearest thing to artists) is used as it is: out-of-fold probabilities then come from models that
    did not hear the held-out tracks' neighbours, as a test on unseen artists would.

    Because the stack splits for itself, anything may call ``fit`` with the groups -- a pipeline, a
    cross-validation, a grid search, a test -- and no caller has to prepare its folds.

    Each base estimator may see its own columns of ``X`` (``columns``): how one stack holds an SVM on
    musicnn's tag probabilities beside models of the 57 GTZAN features, under one meta-learner.

    Parameters
    ----------
    columns : dict of str to (int, int), optional
        For a base estimator's name, the ``[start, stop)`` range of column positions it is fitted and
        applied on; a base not named sees every column. ``make_model`` sets it from the feature sets.
    Others as ``StackingClassifier``'s.

    Attributes
    ----------
    folds_ : list of (ndarray, ndarray)
        The inner folds the out-of-fold predictions came from (train and test row positions).
    Others as ``StackingClassifier``'s.

    See Also
    --------
    sklearn.ensemble.StackingClassifier
    """

    __metadata_request__fit = {"groups": True}  # scikit-learn's default request: routed groups
    _parameter_constraints: dict = {**StackingClassifier._parameter_constraints, "columns": [dict, None]}

    def __init__(
        self,
        estimators: list[tuple[str, Any]],
        final_estimator: Any = None,
        *,
        cv: Any = None,
        stack_method: str = "auto",
        n_jobs: int | None = None,
        passthrough: bool = False,
        verbose: int = 0,
        columns: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        super().__init__(
            estimators,
            final_estimator,
            cv=cv,
            stack_method=stack_method,
            n_jobs=n_jobs,
            passthrough=passthrough,
            verbose=verbose,
        )
        self.columns = columns

    def fit(self, X: Any, y: Any, groups: Any = None) -> GroupedStackingClassifier:
        """Fit the base estimators on all rows and the meta-learner on their out-of-fold predictions.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,), optional
            Rows that must stay on one side of every inner fold, e.g. the windows of one track.
        """
        self._validate_params()
        check_classification_targets(y)
        self._label_encoder = LabelEncoder().fit(y)
        self.classes_ = self._label_encoder.classes_
        y_encoded = self._label_encoder.transform(y)
        names, estimators = self._validate_estimators()
        self._validate_final_estimator()
        self.folds_ = self._inner_folds(X, y_encoded, groups)

        with config_context(enable_metadata_routing=True):
            routed = process_routing(self, "fit", **({} if groups is None else {"groups": groups}))
            kept = [(name, est) for name, est in zip(names, estimators, strict=True) if est != "drop"]
            self.estimators_ = Parallel(n_jobs=self.n_jobs)(
                delayed(_fit)(clone(est), self._columns_of(name, X), y_encoded, routed[name].fit)
                for name, est in kept
            )
            self.named_estimators_ = Bunch()
            fitted = iter(self.estimators_)
            for name, est in zip(names, estimators, strict=True):
                self.named_estimators_[name] = next(fitted) if est != "drop" else "drop"
            self.stack_method_ = [self._method_name(name, est, self.stack_method) for name, est in kept]
            predictions = Parallel(n_jobs=self.n_jobs)(
                delayed(cross_val_predict)(
                    clone(est),
                    self._columns_of(name, X),
                    y_encoded,
                    cv=self.folds_,
                    method=method,
                    params=routed[name].fit,
                    verbose=self.verbose,
                )
                for (name, est), method in zip(kept, self.stack_method_, strict=True)
            )
        if hasattr(self.estimators_[0], "feature_names_in_") and not self.columns:
            self.feature_names_in_ = self.estimators_[0].feature_names_in_
        self.final_estimator_.fit(self._concatenate_predictions(X, predictions), y_encoded)
        return self

    def _transform(self, X: Any) -> np.ndarray:
        """The base estimators' predictions side by side, each on its own columns."""
        check_is_fitted(self)
        names = [name for name, est in self.estimators if est != "drop"]
        predictions = [
            getattr(est, method)(self._columns_of(name, X))
            for name, est, method in zip(names, self.estimators_, self.stack_method_, strict=True)
        ]
        return self._concatenate_predictions(X, predictions)

    def _columns_of(self, name: str, X: Any) -> Any:
        """The columns base estimator ``name`` works on (all of them unless ``columns`` names it)."""
        if not self.columns or name not in self.columns:
            return X
        start, stop = self.columns[name]
        return _safe_indexing(X, list(range(start, stop)), axis=1)

    def _inner_folds(self, X: Any, y: np.ndarray, groups: Any) -> Folds:
        if groups is not None and isinstance(self.cv, ContiguousTrackFolds):
            return list(self.cv.split(X, y, groups))
        inner = check_cv(self.cv, y, classifier=True)
        if groups is None:
            return list(inner.split(X, y))
        check_consistent_length(X, y, groups)
        splitter = StratifiedGroupKFold(
            n_splits=inner.get_n_splits(), shuffle=True, random_state=getattr(inner, "random_state", None)
        )
        return list(splitter.split(X, y, groups))

    def get_metadata_routing(self) -> MetadataRouter:
        """``StackingClassifier``'s routing, plus this estimator's own request for ``groups``."""
        router = MetadataRouter(owner=self).add_self_request(self)
        for name, estimator in self.estimators:
            router.add(**{name: estimator}, method_mapping=MethodMapping().add(callee="fit", caller="fit"))
        final = getattr(self, "final_estimator_", self.final_estimator)
        return router.add(
            final_estimator_=final, method_mapping=MethodMapping().add(caller="predict", callee="predict")
        )


def _fit(estimator: Any, X: Any, y: np.ndarray, params: dict[str, Any]) -> Any:
    return estimator.fit(X, y, **params)
