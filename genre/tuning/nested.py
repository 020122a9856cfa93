"""Nested cross-validation: what a whole tuning procedure is worth on tracks it never saw.

The search runs inside each outer fold and its winner is scored on that fold's held-out tracks; the
search's own best score is optimistic, since the same folds chose the winner.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pandas as pd
from sklearn.pipeline import Pipeline

from genre.data import Dataset
from genre.errors import ConfigError
from genre.evaluation import SCORES, fit_model, grouped_folds, score
from genre.models import check_params, make_model
from genre.tuning.configs import SearchConfig
from genre.tuning.grid import best_candidate, grid_search
from genre.tuning.records import plain
from genre.tuning.study import open_study, optimize

__all__ = ["log_nested", "nested_cv", "search_builder", "stack_builder"]


def nested_cv(
    dataset: Dataset,
    build: Callable[[Dataset], Pipeline],
    *,
    outer_splits: int = 10,
    seed: int = 0,
    on_fold: Callable[[dict[str, Any]], None] | None = None,
) -> pd.DataFrame:
    """Score a whole tuning procedure on tracks it never saw: the search runs inside each outer fold.

    ``build(train)`` does everything the procedure does on the outer fold's training tracks (a grid
    search, a study, a stack built from tuned base models...) and returns the unfitted winner; it is
    fitted on those tracks and scored on the fold's held-out tracks. Returns one row per outer fold
    with the ``evaluation.SCORES``, the seconds it took and the chosen parameters (JSON).
    """
    rows = []
    for fold, (train_rows, test_rows) in enumerate(grouped_folds(dataset, n_splits=outer_splits, seed=seed)):
        started = time.perf_counter()
        train, test = dataset.subset(train_rows), dataset.subset(test_rows)
        winner = build(train)
        fitted = fit_model(winner, train)
        row = {"fold": fold, **score(test.y, fitted.predict(test.X))}
        row["seconds"] = time.perf_counter() - started
        row["params"] = json.dumps(
            {
                k: plain(v)
                for k, v in winner[-1].get_params(deep=True).items()
                if v is None or isinstance(plain(v), (str, int, float, bool))
            },
            sort_keys=True,
        )
        rows.append(row)
        if on_fold is not None:
            on_fold(row)
    return pd.DataFrame(rows)


def search_builder(
    config: SearchConfig,
    strategy: str,
    *,
    n_splits: int = 5,
    seed: int = 0,
    n_trials: int = 20,
    timeout: float | None = None,
    n_jobs: int = 1,
) -> Callable[[Dataset], Pipeline]:
    """A ``build`` for :func:`nested_cv`: run the ``strategy`` search on a training part, return the winner.

    Nothing is logged to MLflow and Optuna studies live in memory: these are the inner searches.
    """
    if strategy not in {"grid", "optuna"}:
        raise ConfigError(f"unknown search strategy {strategy!r}; expected grid or optuna")

    def build(train: Dataset) -> Pipeline:
        if strategy == "grid":
            search = grid_search(config, train, n_splits=n_splits, seed=seed, n_jobs=n_jobs)
            params = check_params(config.model, best_candidate(config, search.cv_results_)[1])
        else:
            study = open_study(config, train, n_splits=n_splits, seed=seed)
            optimize(study, config, train, n_trials=n_trials, timeout=timeout, n_splits=n_splits, seed=seed)
            if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
                raise ConfigError(
                    f"{config.path}: no trial of the inner study completed on {len(train.frame)} rows"
                )
            params = study.best_params
        return make_model(
            config.model, {**config.fixed, **params}, random_state=seed, transform=config.transform
        )

    return build


def stack_builder(
    bases: Mapping[str, Callable[[Dataset], Pipeline]],
    *,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    transform: str = "standard",
) -> Callable[[Dataset], Pipeline]:
    """A ``build`` for :func:`nested_cv`: tune each base model on the training part, stack the winners.

    ``bases`` maps base model names to their own ``build`` (e.g. ``search_builder(...)``); bases not
    given keep their defaults. ``params`` are further stacking parameters (``final_estimator__C``).
    This is ``tune_stacking`` inside an outer fold: the base searches never see the fold's test tracks.
    """

    def build(train: Dataset) -> Pipeline:
        tuned: dict[str, Any] = {}
        for base, base_build in bases.items():
            winner = base_build(train)[-1]
            chosen = {k: v for k, v in winner.get_params(deep=False).items() if k != "epoch_callback"}
            tuned.update({f"{base}__{name}": value for name, value in chosen.items()})
        return make_model("stacking", {**tuned, **dict(params or {})}, random_state=seed, transform=transform)

    return build


def log_nested(
    dataset: Dataset, build: Callable[[Dataset], Pipeline], *, outer_splits: int, seed: int
) -> None:
    """Nested CV of the search on the parent run: ``nested_cv_<score>`` per outer fold, mean and std."""

    def on_fold(row: dict[str, Any]) -> None:
        for name in SCORES:
            mlflow.log_metric(f"nested_cv_{name}", row[name], step=row["fold"])

    table = nested_cv(dataset, build, outer_splits=outer_splits, seed=seed, on_fold=on_fold)
    for name in SCORES:
        mlflow.log_metrics(
            {
                f"nested_cv_{name}_mean": float(table[name].mean()),
                f"nested_cv_{name}_std": float(table[name].std(ddof=0)),
            }
        )
    mlflow.log_param("tune.outer_folds", outer_splits)
    with tempfile.TemporaryDirectory() as tmp:
        table.to_csv(Path(tmp) / "nested_cv.csv", index=False)
        mlflow.log_artifacts(tmp)
