"""The ``tune_grid`` and ``tune_optuna`` entry points: a search over a configuration, recorded in MLflow."""

from __future__ import annotations

from pathlib import Path

from genre.data import EMBEDDED
from genre.errors import ConfigError
from genre.features import load_data
from genre.tracking import configure_tracking
from genre.tuning import HEARTBEAT_SECONDS, SearchResult, load_search_config, tune_grid_run, tune_optuna_run

__all__ = ["tune_grid_job", "tune_optuna_job"]


def tune_grid_job(
    config: str | Path,
    data: str = EMBEDDED,
    *,
    n_splits: int = 5,
    outer_splits: int = 0,
    seed: int = 0,
    windows: bool = True,
    n_jobs: int = 1,
) -> SearchResult:
    """The ``tune_grid`` entry point: an exhaustive search over ``config``'s grid (see ``genre.tuning``).

    The configuration is read and validated before the data is loaded.
    """
    search = load_search_config(config, "grid")
    _check_folds(n_splits, outer_splits)
    configure_tracking()
    dataset = load_data(data, windows=windows, seed=seed, n_jobs=n_jobs)
    return tune_grid_run(
        search, dataset, n_splits=n_splits, outer_splits=outer_splits, seed=seed, n_jobs=n_jobs
    )


def tune_optuna_job(
    config: str | Path,
    data: str = EMBEDDED,
    *,
    n_trials: int = 20,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    n_splits: int = 5,
    outer_splits: int = 0,
    seed: int = 0,
    windows: bool = True,
    n_jobs: int = 1,
    heartbeat: int | None = None,
) -> SearchResult:
    """The ``tune_optuna`` entry point: an Optuna study over ``config``'s space (see ``genre.tuning``).

    ``n_trials`` is the study's total: rerunning the same command on persistent ``storage`` resumes
    the study and runs only the trials still missing.
    """
    search = load_search_config(config, "optuna")
    _check_folds(n_splits, outer_splits)
    if n_trials < 1:
        raise ConfigError(f"n_trials must be at least 1, got {n_trials}")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout}")
    heartbeat = HEARTBEAT_SECONDS if heartbeat is None else heartbeat
    if heartbeat < 1:
        raise ConfigError(f"heartbeat must be at least 1 second, got {heartbeat}")
    configure_tracking()
    dataset = load_data(data, windows=windows, seed=seed, n_jobs=n_jobs)
    return tune_optuna_run(
        search,
        dataset,
        n_trials=n_trials,
        timeout=timeout,
        storage=storage,
        study_name=study_name,
        n_splits=n_splits,
        outer_splits=outer_splits,
        seed=seed,
        n_jobs=n_jobs,
        heartbeat=heartbeat,
    )


def _check_folds(n_splits: int, outer_splits: int) -> None:
    if n_splits < 2:
        raise ConfigError(f"folds must be at least 2, got {n_splits}")
    if outer_splits and outer_splits < 2:
        raise ConfigError(f"outer folds must be 0 (no nested CV) or at least 2, got {outer_splits}")
