"""Scoring a model under a protocol: per-fold cross-validation, held-out test, track-level accuracy.

The two protocols (see ``genre.evaluation.protocols``) are evaluated by the same code so their numbers are
comparable, metric for metric:

* ``seed``: the rows are split 80/20 at random (stratified); cross-validation runs row-wise on the
  80 %, and the 20 % is the held-out test. On windowed data this leaks, and is labelled so.
* ``grouped``: track-grouped stratified k-fold over all rows; no held-out set.

On windowed data the window probabilities of each track in a test fold are averaged into one track
prediction, and ``track_accuracy`` is reported beside the window-level scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import StackingClassifier
from sklearn.model_selection import StratifiedGroupKFold, check_cv
from sklearn.pipeline import Pipeline

from genre.data import Dataset
from genre.evaluation.metrics import score, track_accuracy
from genre.evaluation.protocols import check_protocols, grouped_folds, row_folds, seed_split
from genre.models import KerasMLPClassifier

__all__ = ["Evaluation", "evaluate", "fit_model", "grouped_validation"]


@dataclass(frozen=True)
class Evaluation:
    """The outcome of ``evaluate``.

    Attributes
    ----------
    protocol : str
    folds : pandas.DataFrame
        One row per fold (``fold`` 0..k-1) with the ``SCORES`` (and ``track_accuracy`` on windowed data).
    test : dict or None
        Held-out scores (``seed`` protocol only).
    y_true, y_pred : numpy.ndarray
        What the confusion matrix shows: the held-out test (``seed``) or the out-of-fold predictions
        of every row (``grouped``).
    train_rows : numpy.ndarray
        Rows the final model is trained on: the 80 % (``seed``) or everything (``grouped``).
    fitted : Pipeline or None
        The ``seed`` protocol's model, already fitted on ``train_rows`` to score the test; callers
        reuse it as the final model instead of fitting the same thing twice. None for ``grouped``.
    """

    protocol: str
    folds: pd.DataFrame
    test: dict[str, float] | None
    y_true: np.ndarray
    y_pred: np.ndarray
    train_rows: np.ndarray
    fitted: Pipeline | None = None

    def summary(self) -> dict[str, float]:
        """``cv_<score>_mean`` / ``_std`` over folds and ``test_<score>``: the run's headline metrics."""
        out: dict[str, float] = {}
        for column in self.folds.columns.drop("fold"):
            out[f"cv_{column}_mean"] = float(self.folds[column].mean())
            out[f"cv_{column}_std"] = float(self.folds[column].std(ddof=0))
        for name, value in (self.test or {}).items():
            out[f"test_{name}"] = value
        return out


def evaluate(
    model: Pipeline, dataset: Dataset, protocol: str, *, n_splits: int = 10, seed: int = 0
) -> Evaluation:
    """Cross-validate (and, for ``seed``, test) an unfitted ``model`` on ``dataset`` under ``protocol``.

    Every fold fits a fresh clone, so scaling and everything else inside the model's pipeline is
    learned on training rows only.
    """
    check_protocols([protocol])
    if protocol == "grouped":
        folds = grouped_folds(dataset, n_splits=n_splits, seed=seed)
        fold_scores, oof = _cross_validate(model, dataset, folds)
        return Evaluation(protocol, fold_scores, None, dataset.y, oof, np.arange(len(dataset.frame)))

    train_rows, test_rows = seed_split(dataset, seed=seed)
    train = dataset.subset(train_rows)
    fold_scores, _ = _cross_validate(model, train, row_folds(train, n_splits=n_splits, seed=seed))
    test = dataset.subset(test_rows)
    fitted = fit_model(model, train)
    predicted, test_scores = _score_fold(fitted, test)
    return Evaluation(protocol, fold_scores, test_scores, test.y, predicted, train_rows, fitted)


def fit_model(model: Pipeline, dataset: Dataset) -> Pipeline:
    """Fit a clone of ``model`` on ``dataset``, keeping track groups together inside a stacking ensemble.

    A ``StackingClassifier`` trains its meta-learner on out-of-fold predictions of its own inner folds.
    Row-wise inner folds would put windows of one track on both sides, so the base models' out-of-fold
    predictions would look better than they are and the meta-learner would learn to trust them. Its
    ``cv`` is therefore replaced by the same number of stratified folds over the dataset's groups. For
    the same reason a network's early stopping holds out whole tracks (``grouped_validation``).
    """
    model = clone(model)
    stack = model[-1]
    if isinstance(stack, StackingClassifier):
        inner = check_cv(stack.cv, dataset.y, classifier=True)
        splitter = StratifiedGroupKFold(
            n_splits=inner.get_n_splits(), shuffle=True, random_state=getattr(inner, "random_state", None)
        )
        stack.set_params(cv=list(splitter.split(dataset.X, dataset.y, dataset.groups)))
    with grouped_validation(model, dataset) as params:
        return model.fit(dataset.X, dataset.y, **params)


@contextmanager
def grouped_validation(model: BaseEstimator, dataset: Dataset) -> Iterator[dict[str, Any]]:
    """The fit parameters that give ``model``'s networks the track groups on windowed data, or ``{}``.

    A network's early stopping holds out part of its training rows. On 3-s windows, row by row, the
    held-out windows have siblings from the same tracks in training, so the validation loss is
    optimistic (measured on GTZAN's 3-s subset, 5 grouped folds: best validation loss 0.06-0.14 row-wise
    against 0.16-0.47 on held-out tracks) and so are the logged ``epoch_val_loss`` curves and the
    Optuna pruner's signal. Inside the block, scikit-learn's metadata routing is on and every
    ``KerasMLPClassifier`` in ``model`` (a pipeline, a stack, or a search's estimator) requests
    ``groups``; call ``fit(X, y, **params)`` there. Row-per-track data needs nothing: ``{}``.
    """
    nested = [model, *model.get_params(deep=True).values()]  # steps, stack members, a search's estimator
    networks = [
        estimator
        for estimator in nested
        if isinstance(estimator, KerasMLPClassifier) and estimator.validation_fraction is not None
    ]
    if not dataset.windowed or not networks:
        yield {}
        return
    with config_context(enable_metadata_routing=True):
        for network in networks:
            network.set_fit_request(groups=True)
        yield {"groups": dataset.groups}


def _cross_validate(
    model: Pipeline, dataset: Dataset, folds: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[pd.DataFrame, np.ndarray]:
    rows = []
    out_of_fold = np.empty(len(dataset.frame), dtype=object)
    for fold, (train, test) in enumerate(folds):
        fitted = fit_model(model, dataset.subset(train))
        predicted, scores = _score_fold(fitted, dataset.subset(test))
        out_of_fold[test] = predicted
        rows.append({"fold": fold, **scores})
    return pd.DataFrame(rows), out_of_fold


def _score_fold(fitted: ClassifierMixin, test: Dataset) -> tuple[np.ndarray, dict[str, float]]:
    proba = fitted.predict_proba(test.X)
    predicted = fitted.classes_[proba.argmax(axis=1)]
    scores = score(test.y, predicted)
    if test.windowed:
        scores["track_accuracy"] = track_accuracy(
            proba, fitted.classes_, test.frame["track"].to_numpy(), test.y
        )
    return predicted, scores
