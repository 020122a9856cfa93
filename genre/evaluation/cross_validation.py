"""Scoring a model under a protocol: per-fold cross-validation, held-out test, track-level accuracy.

The three protocols (see ``genre.evaluation.protocols``) are evaluated by the same code so their numbers
are comparable, metric for metric:

* ``filtered``: GTZAN's artist-aware split; cross-validation in contiguous track folds over the train
  and valid tracks, the model fitted on them, and the 290 test tracks the held-out test.
* ``grouped``: track-grouped stratified k-fold over all rows; no held-out set.
* ``seed``: the rows are split 80/20 at random (stratified); cross-validation runs row-wise on the
  80 %, and the 20 % is the held-out test. On windowed data this leaks, and is labelled so.

On windowed data the window probabilities of each track in a test fold are averaged into one track
prediction, and ``track_accuracy`` is reported beside the window-level scores.

Every cross-validation in genre -- a protocol's folds here, an Optuna trial's, the outer loop of nested
CV -- goes through ``cross_validate_groups``: scikit-learn's ``cross_validate``, with the rows' track
groups routed to every estimator that requests them and the folds run in ``n_jobs`` processes. The models
own their leak safety (a stack's inner folds, a network's early stopping), so no caller prepares them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import cross_validate
from sklearn.pipeline import Pipeline
from sklearn.utils.metadata_routing import get_routing_for_object

from genre.data import Dataset
from genre.evaluation.metrics import score, track_accuracy
from genre.evaluation.protocols import (
    check_protocols,
    filtered_folds,
    filtered_split,
    grouped_folds,
    row_folds,
    seed_split,
)

__all__ = ["Evaluation", "cross_validate_groups", "evaluate", "fit_model", "routed_groups", "score_fold"]

Folds = Sequence[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Evaluation:
    """The outcome of ``evaluate``.

    Attributes
    ----------
    protocol : str
    folds : pandas.DataFrame
        One row per fold (``fold`` 0..k-1) with the ``SCORES`` (and ``track_accuracy`` on windowed data).
    test : dict or None
        Held-out scores (``filtered`` and ``seed``).
    y_true, y_pred : numpy.ndarray
        What the confusion matrix shows: the held-out test (``filtered``, ``seed``) or the out-of-fold
        predictions of every row (``grouped``).
    train_rows : numpy.ndarray
        Rows the final model is trained on: the train and valid tracks (``filtered``), the 80 %
        (``seed``) or everything (``grouped``).
    fitted : Pipeline
        The model fitted on ``train_rows``: what a held-out test scores, and what a run logs.
    test_rows : numpy.ndarray or None
        The held-out rows (``filtered`` and ``seed``).
    dropped_rows : int
        Rows no side of the protocol uses (``filtered``: tracks outside GTZAN's lists).
    """

    protocol: str
    folds: pd.DataFrame
    test: dict[str, float] | None
    y_true: np.ndarray
    y_pred: np.ndarray
    train_rows: np.ndarray
    fitted: Pipeline
    test_rows: np.ndarray | None = None
    dropped_rows: int = 0

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
    model: Pipeline,
    dataset: Dataset,
    protocol: str,
    *,
    n_splits: int = 10,
    seed: int = 0,
    n_jobs: int = 1,
    on_fits: Callable[[int], None] | None = None,
) -> Evaluation:
    """Cross-validate (and, for ``seed``, test) an unfitted ``model`` on ``dataset`` under ``protocol``,
    and fit it on all its training rows.

    Every fold fits a fresh clone, so scaling and everything else inside the model's pipeline is
    learned on training rows only; ``n_jobs`` folds run at once, each in a process of its own, and the
    final fit runs in this process beside the last of them. ``on_fits(k)`` is told each time ``k``
    more fits are done (for progress on the console).
    """
    check_protocols([protocol])
    dropped = 0
    if protocol == "grouped":
        train_rows = np.arange(len(dataset.frame))
        folds = grouped_folds(dataset, n_splits=n_splits, seed=seed)
    elif protocol == "filtered":
        train_rows, test_rows, dropped = filtered_split(dataset)
        folds = filtered_folds(dataset.subset(train_rows), n_splits=n_splits)
    else:
        train_rows, test_rows = seed_split(dataset, seed=seed)
        folds = row_folds(dataset.subset(train_rows), n_splits=n_splits, seed=seed)
    train = dataset.subset(train_rows)
    fold_scores, oof, fitted = _cross_validate(model, train, folds, n_jobs=n_jobs, on_fits=on_fits)
    if protocol == "grouped":
        return Evaluation(protocol, fold_scores, None, dataset.y, oof, train_rows, fitted)
    test = dataset.subset(test_rows)
    predicted, test_scores = score_fold(fitted, test)
    return Evaluation(
        protocol, fold_scores, test_scores, test.y, predicted, train_rows, fitted, test_rows, dropped
    )


def fit_model(model: BaseEstimator, dataset: Dataset) -> Any:
    """A clone of ``model`` fitted on ``dataset``, with the track groups for the steps that request them.

    A stack then cuts its inner folds over tracks and a network holds out whole tracks for early
    stopping (see ``genre.models``).
    """
    with config_context(enable_metadata_routing=True):
        return clone(model).fit(dataset.X, dataset.y, **routed_groups(model, dataset.groups))


def cross_validate_groups(
    model: BaseEstimator,
    X: pd.DataFrame,  # noqa: N803 - scikit-learn's name
    y: np.ndarray,
    groups: np.ndarray,
    folds: Folds,
    *,
    scoring: Any = None,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """``sklearn.model_selection.cross_validate`` of ``model`` over ``folds``, ``groups`` routed to it.

    Returns ``cross_validate``'s dictionary with every fold's fitted ``estimator`` and row ``indices``.
    A fold that fails raises (``error_score="raise"``): a score of NaN would hide a broken model.
    """
    with config_context(enable_metadata_routing=True):
        return cross_validate(
            model,
            X,
            y,
            cv=list(folds),
            params=routed_groups(model, groups),
            scoring=scoring,
            return_estimator=True,
            return_indices=True,
            n_jobs=n_jobs,
            error_score="raise",
        )


def routed_groups(estimator: BaseEstimator, groups: np.ndarray) -> dict[str, np.ndarray]:
    """``{"groups": groups}`` for an estimator that requests them (metadata routing), else ``{}``.

    Under routing, scikit-learn refuses metadata nobody asked for; a ``knn`` pipeline does not need the
    tracks, a stack or a network does.
    """
    with config_context(enable_metadata_routing=True):
        wants = get_routing_for_object(estimator).consumes("fit", ["groups"])
    return {"groups": groups} if wants else {}


def score_fold(fitted: ClassifierMixin, test: Dataset) -> tuple[np.ndarray, dict[str, float]]:
    """Predictions of ``fitted`` for ``test`` and their ``SCORES`` (plus ``track_accuracy`` on windows)."""
    proba = fitted.predict_proba(test.X)
    predicted = fitted.classes_[proba.argmax(axis=1)]
    scores = score(test.y, predicted)
    if test.windowed:
        scores["track_accuracy"] = track_accuracy(
            proba, fitted.classes_, test.frame["track"].to_numpy(), test.y
        )
    return predicted, scores


def _cross_validate(
    model: Pipeline, dataset: Dataset, folds: Folds, *, n_jobs: int, on_fits: Callable[[int], None] | None
) -> tuple[pd.DataFrame, np.ndarray, Any]:
    """Per-fold scores, out-of-fold predictions, and ``model`` fitted on all of ``dataset``.

    With ``on_fits``, ``n_jobs`` folds run at a time, so that progress can be told after each group of
    folds (all folds at once otherwise). The fit on all rows runs on a thread of this process while the
    last group of folds runs in the worker processes: the last group often leaves a core idle.
    """
    folds = list(folds)
    step = max(n_jobs, 1) if on_fits is not None else len(folds)
    rows = []
    out_of_fold = np.empty(len(dataset.frame), dtype=object)
    with ThreadPoolExecutor(max_workers=1) as final:
        for first in range(0, len(folds), step):
            some = folds[first : first + step]
            if first + step >= len(folds):
                final_fit = final.submit(fit_model, model, dataset)
            result = cross_validate_groups(model, dataset.X, dataset.y, dataset.groups, some, n_jobs=n_jobs)
            for fold, (estimator, (_, test)) in enumerate(zip(result["estimator"], some, strict=True), first):
                predicted, scores = score_fold(estimator, dataset.subset(test))
                out_of_fold[test] = predicted
                rows.append({"fold": fold, **scores})
            if on_fits is not None:
                on_fits(len(some))
        fitted = final_fit.result()
    if on_fits is not None:
        on_fits(1)
    return pd.DataFrame(rows), out_of_fold, fitted
