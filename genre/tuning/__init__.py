"""Tuning: grid searches and Optuna studies recorded in MLflow, nested CV, and stacks from tuned bases.

Both strategies read a validated ``SearchConfig`` (``configs``, the YAML files of ``experiments/``) and
score candidates with the same track-grouped folds, so a search never picks hyperparameters on windows of
tracks it also trains on. ``grid`` and ``study`` run the searches (``storage``: the database that
several Optuna workers share), ``runs`` records one as a parent run with a child per candidate or
trial, ``nested`` scores a whole search on tracks it never saw, and ``stack_sources`` builds the stack
from earlier tuning runs. ``searches`` holds whole procedures as estimators, so ``nested`` CV is
``cross_validate`` of a search.
"""

from genre.tuning.configs import SearchConfig, load_search_config, resolve_config_path, suggest
from genre.tuning.grid import LiveGridSearchCV, grid_search
from genre.tuning.nested import nested_cv
from genre.tuning.records import SearchResult
from genre.tuning.runs import tune_grid_run, tune_optuna_run
from genre.tuning.searches import StudySearchCV, TunedStackCV, grid_search_cv, search_estimator
from genre.tuning.stack_sources import STACK_BASES, best_tuning_run, tuned_stack_params
from genre.tuning.storage import HEARTBEAT_SECONDS
from genre.tuning.study import TrialSeededSampler, fingerprint, open_study, optimize

__all__ = [
    "HEARTBEAT_SECONDS",
    "STACK_BASES",
    "StudySearchCV",
    "TunedStackCV",
    "LiveGridSearchCV",
    "SearchConfig",
    "SearchResult",
    "TrialSeededSampler",
    "best_tuning_run",
    "fingerprint",
    "grid_search",
    "grid_search_cv",
    "load_search_config",
    "nested_cv",
    "open_study",
    "optimize",
    "resolve_config_path",
    "search_estimator",
    "suggest",
    "tune_grid_run",
    "tune_optuna_run",
    "tuned_stack_params",
]
