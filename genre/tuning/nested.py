"""Nested cross-validation: what a whole tuning procedure is worth on tracks it never saw.

The search runs inside each outer fold and its winner is scored on that fold's held-out tracks; the
search's own best score is optimistic, since the same folds chose the winner.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from sklearn.base import BaseEstimator

from genre.data import Dataset
from genre.evaluation import SCORES, cross_validate_groups, grouped_folds, score
from genre.tracking import log_series, loggable

__all__ = ["log_nested", "nested_cv"]


def nested_cv(
    dataset: Dataset, procedure: BaseEstimator, *, outer_splits: int = 10, seed: int = 0, n_jobs: int = 1
) -> pd.DataFrame:
    """Score a whole tuning procedure on tracks it never saw: ``cross_validate`` of the procedure.

    ``procedure`` is an unfitted estimator that does everything the procedure does on the rows it is
    fitted on: a search of ``genre.tuning.searches`` (a grid, an Optuna study, a stack of tuned bases) or
    a plain model. Each of the ``outer_splits`` track-grouped outer folds fits it on its training tracks
    (the search runs there, on inner folds of those tracks only) and scores it on its held-out tracks;
    ``n_jobs`` outer folds run at once. Returns one row per outer fold with the ``evaluation.SCORES``,
    the seconds it took and the chosen parameters (JSON).
    """
    folds = grouped_folds(dataset, n_splits=outer_splits, seed=seed)
    result = cross_validate_groups(procedure, dataset.X, dataset.y, dataset.groups, folds, n_jobs=n_jobs)
    rows = []
    for fold, (fitted, test) in enumerate(zip(result["estimator"], result["indices"]["test"], strict=True)):
        held_out = dataset.subset(test)
        row = {"fold": fold, **score(held_out.y, fitted.predict(held_out.X))}
        row["seconds"] = float(result["fit_time"][fold] + result["score_time"][fold])
        winner = getattr(fitted, "best_estimator_", fitted)
        row["params"] = json.dumps(loggable(winner[-1].get_params(deep=True)), sort_keys=True)
        rows.append(row)
    return pd.DataFrame(rows)


def log_nested(dataset: Dataset, procedure: BaseEstimator, *, outer_splits: int, seed: int) -> None:
    """Nested CV of the search on the parent run: ``nested_cv_<score>`` per outer fold, mean and std."""
    table = nested_cv(dataset, procedure, outer_splits=outer_splits, seed=seed)
    log_series({f"nested_cv_{name}": table[name].tolist() for name in SCORES})
    mlflow.log_metrics(
        {f"nested_cv_{name}_mean": float(table[name].mean()) for name in SCORES}
        | {f"nested_cv_{name}_std": float(table[name].std(ddof=0)) for name in SCORES}
    )
    mlflow.log_param("tune.outer_folds", outer_splits)
    with tempfile.TemporaryDirectory() as tmp:
        table.to_csv(Path(tmp) / "nested_cv.csv", index=False)
        mlflow.log_artifacts(tmp)
