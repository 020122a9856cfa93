"""The exhaustive grid search: ``GridSearchCV`` over a configuration's grid, one candidate at a time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn import config_context
from sklearn.model_selection import GridSearchCV, ParameterGrid

from genre.data import Dataset
from genre.evaluation import routed_groups, search_folds
from genre.models import check_params
from genre.tracking import plain
from genre.tuning.configs import SearchConfig

__all__ = [
    "LiveGridSearchCV",
    "best_candidate",
    "candidate_params",
    "grid_search",
    "param_grid",
    "params_columns",
]


class LiveGridSearchCV(GridSearchCV):
    """``GridSearchCV`` that scores one candidate at a time and reports each as soon as it is scored.

    ``GridSearchCV`` returns only when the whole grid is done, so an interrupted search would leave
    nothing behind. ``_run_search`` is scikit-learn's extension point for the order in which
    candidates are evaluated (``HalvingGridSearchCV`` overrides it too); here it feeds the grid one
    candidate at a time and calls ``on_candidate(index, results)`` after each, ``results`` being the
    ``cv_results_`` of everything scored so far. ``n_jobs`` still runs a candidate's folds in
    parallel.

    Parameters
    ----------
    on_candidate : callable or None, default=None
        Called as ``on_candidate(index, results)``. Every other parameter is ``GridSearchCV``'s.
    """

    def __init__(
        self,
        estimator: Any,
        param_grid: Any,
        *,
        scoring: Any = None,
        n_jobs: int | None = None,
        refit: bool = True,
        cv: Any = None,
        verbose: int = 0,
        pre_dispatch: str = "2*n_jobs",
        error_score: Any = np.nan,
        return_train_score: bool = False,
        on_candidate: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(
            estimator,
            param_grid,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.on_candidate = on_candidate

    def _run_search(self, evaluate_candidates: Callable[..., dict[str, Any]]) -> None:
        for candidate in ParameterGrid(self.param_grid):
            results = evaluate_candidates([candidate])
            if self.on_candidate is not None:
                self.on_candidate(len(results["params"]) - 1, results)


def grid_search(
    config: SearchConfig,
    dataset: Dataset,
    *,
    n_splits: int = 5,
    seed: int = 0,
    n_jobs: int = 1,
    protocol: str = "grouped",
    on_candidate: Callable[[int, dict[str, Any]], None] | None = None,
) -> LiveGridSearchCV:
    """Score every candidate of ``config``'s grid with ``n_splits``-fold CV: track-grouped folds, or the
    filtered protocol's contiguous ones (``dataset`` is then its training side).

    The search is not refitted (callers fit the winner with ``evaluation.fit_model``). A candidate that
    fails to fit scores NaN and the search goes on. The track groups reach the models that request them
    (a stack's inner folds, a network's early stopping) through metadata routing.
    """
    search = LiveGridSearchCV(
        config.build(config.fixed, random_state=seed),
        param_grid(config),
        scoring=config.scoring,
        cv=search_folds(dataset, protocol, n_splits=n_splits, seed=seed),
        refit=False,
        n_jobs=n_jobs,
        on_candidate=on_candidate,
    )
    with config_context(enable_metadata_routing=True):
        return search.fit(dataset.X, dataset.y, **routed_groups(search, dataset.groups))


def param_grid(config: SearchConfig) -> list[dict[str, list[Any]]]:
    """``config``'s grid for ``GridSearchCV`` of its pipeline: step-prefixed names, aliases resolved."""
    return [
        {
            f"{config.model}__{name}": [check_params(config.model, {name: v})[name] for v in values]
            for name, values in one.items()
        }
        for one in config.grid
    ]


def candidate_params(config: SearchConfig, raw: Mapping[str, Any]) -> dict[str, Any]:
    """A ``cv_results_`` params dict in the configuration's names and spellings."""
    return {key.removeprefix(f"{config.model}__"): plain(value) for key, value in raw.items()}


def best_candidate(config: SearchConfig, results: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """Index and parameters (configuration spelling) of the best mean score; failed candidates are NaN."""
    best = int(np.nanargmax(results["mean_test_score"]))
    return best, candidate_params(config, results["params"][best])


def params_columns(config: SearchConfig, params: list[dict[str, Any]]) -> dict[str, list[Any]]:
    rows = [candidate_params(config, p) for p in params]
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {name: [row.get(name) for row in rows] for name in names}
