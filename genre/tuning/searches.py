# ruff: noqa: N803 - X is scikit-learn's name, part of the estimator API
"""Whole tuning procedures as scikit-learn estimators, so nested CV is ``cross_validate`` of a search.

``fit(X, y, groups)`` runs the procedure on the rows it is given -- a grid search, an in-memory Optuna
study, base searches and the stack of their winners -- on track-grouped inner folds, and refits the
winner on all of them as ``best_estimator_``; ``predict`` and ``predict_proba`` are the winner's. Nothing
is logged to MLflow: these are the inner searches of ``genre.tuning.nested``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils.validation import check_is_fitted

from genre.data import Dataset
from genre.errors import ConfigError
from genre.evaluation import TrackFolds, routed_groups
from genre.models import make_model
from genre.tuning.configs import SearchConfig
from genre.tuning.grid import param_grid
from genre.tuning.study import open_study, optimize

__all__ = ["StudySearchCV", "TunedStackCV", "grid_search_cv", "search_estimator"]


def grid_search_cv(
    config: SearchConfig, *, n_splits: int = 5, seed: int = 0, n_jobs: int = 1
) -> GridSearchCV:
    """``GridSearchCV`` of ``config``'s grid on ``TrackFolds(n_splits, seed)``, refitting the winner."""
    return GridSearchCV(
        config.build(config.fixed, random_state=seed),
        param_grid(config),
        scoring=config.scoring,
        cv=TrackFolds(n_splits, seed=seed, source=str(config.path)),
        refit=True,
        n_jobs=n_jobs,
    )


class _Refitted(ClassifierMixin, BaseEstimator):
    """Predictions of ``best_estimator_``: what every procedure here ends with."""

    def predict_proba(self, X: Any) -> np.ndarray:
        """The winner's class probabilities."""
        check_is_fitted(self)
        return self.best_estimator_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """The winner's most probable class of each row."""
        check_is_fitted(self)
        return self.best_estimator_.predict(X)

    def _refit(self, model: Any, X: Any, y: Any, groups: Any) -> None:
        with config_context(enable_metadata_routing=True):
            self.best_estimator_ = clone(model).fit(X, y, **routed_groups(model, groups))
        self.classes_ = self.best_estimator_.classes_


class StudySearchCV(_Refitted):
    """An in-memory Optuna study of ``config``'s space as an estimator (see ``genre.tuning.study``).

    Parameters
    ----------
    config : SearchConfig
        An ``optuna`` configuration.
    n_trials : int, default=20
        Finished trials the study runs.
    timeout : float or None, default=None
        Seconds after which no new trial starts.
    n_splits : int, default=5
        Track-grouped inner folds each trial is scored on.
    seed : int, default=0
        Seeds the folds, the sampler and the models.

    Attributes
    ----------
    best_params_ : dict
        The best trial's parameters.
    best_estimator_ : Pipeline
        The model with ``config.fixed`` and ``best_params_``, fitted on all rows given to ``fit``.
    """

    __metadata_request__fit = {"groups": True}  # scikit-learn's default request: routed groups

    def __init__(
        self,
        config: SearchConfig,
        *,
        n_trials: int = 20,
        timeout: float | None = None,
        n_splits: int = 5,
        seed: int = 0,
    ) -> None:
        self.config = config
        self.n_trials = n_trials
        self.timeout = timeout
        self.n_splits = n_splits
        self.seed = seed

    def fit(self, X: Any, y: Any, groups: Any = None) -> StudySearchCV:
        """Run the study on these rows' inner folds and refit its best parameters on all of them."""
        if groups is None:
            raise ConfigError("an Optuna search needs the rows' groups (tracks) for its inner folds")
        config = self.config
        rows = Dataset.from_rows(X, y, groups, source=f"{config.path} inner search")
        study = open_study(config, rows, n_splits=self.n_splits, seed=self.seed)
        optimize(
            study,
            config,
            rows,
            n_trials=self.n_trials,
            timeout=self.timeout,
            n_splits=self.n_splits,
            seed=self.seed,
        )
        if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            raise ConfigError(
                f"{config.path}: no trial of the inner study completed on {len(rows.frame)} rows"
            )
        self.best_params_ = study.best_params
        winner = config.build({**config.fixed, **self.best_params_}, random_state=self.seed)
        self._refit(winner, X, y, groups)
        return self


class TunedStackCV(_Refitted):
    """``tune_stacking`` inside a fold: each base model's search runs on the rows, the winners are stacked.

    Parameters
    ----------
    bases : mapping of str to estimator
        Base model name (``knn``, ``svm``, ``nn``) -> its search (``grid_search_cv``, ``StudySearchCV``);
        bases not given keep their defaults.
    params : mapping, optional
        Further stacking parameters (``final_estimator__C``).
    seed : int, default=0
    transform : {"standard", "logvar"}, default="standard"

    Attributes
    ----------
    best_params_ : dict
        The stack's parameters taken from the base searches' winners (``svm__C``, ...).
    best_estimator_ : Pipeline
        The stack with those parameters, fitted on all rows given to ``fit``.
    """

    __metadata_request__fit = {"groups": True}  # scikit-learn's default request: routed groups

    def __init__(
        self,
        bases: Mapping[str, Any],
        *,
        params: Mapping[str, Any] | None = None,
        seed: int = 0,
        transform: str = "standard",
    ) -> None:
        self.bases = bases
        self.params = params
        self.seed = seed
        self.transform = transform

    def fit(self, X: Any, y: Any, groups: Any = None) -> TunedStackCV:
        """Search every base on these rows, then fit the stack of their winners on all of them."""
        tuned: dict[str, Any] = {}
        for base, search in self.bases.items():
            with config_context(enable_metadata_routing=True):
                fitted = clone(search).fit(X, y, **routed_groups(search, groups))
            winner = fitted.best_estimator_[-1]
            chosen = {k: v for k, v in winner.get_params(deep=False).items() if k != "epoch_callback"}
            tuned.update({f"{base}__{name}": value for name, value in chosen.items()})
        self.best_params_ = {**tuned, **dict(self.params or {})}
        stack = make_model("stacking", self.best_params_, random_state=self.seed, transform=self.transform)
        self._refit(stack, X, y, groups)
        return self


def search_estimator(
    config: SearchConfig,
    strategy: str,
    *,
    n_splits: int = 5,
    seed: int = 0,
    n_trials: int = 20,
    timeout: float | None = None,
    n_jobs: int = 1,
) -> BaseEstimator:
    """The ``strategy`` (``grid`` or ``optuna``) search of ``config`` as an unfitted estimator."""
    if strategy == "grid":
        return grid_search_cv(config, n_splits=n_splits, seed=seed, n_jobs=n_jobs)
    if strategy == "optuna":
        return StudySearchCV(config, n_trials=n_trials, timeout=timeout, n_splits=n_splits, seed=seed)
    raise ConfigError(f"unknown search strategy {strategy!r}; expected grid or optuna")
