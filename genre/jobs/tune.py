"""The ``tune_grid`` and ``tune_optuna`` entry points: a search over a configuration, recorded in MLflow."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from genre.data import EMBEDDED, Dataset
from genre.data.schema import resolve_features
from genre.errors import ConfigError
from genre.features import load_data
from genre.models import FEATURES
from genre.tracking import configure_tracking
from genre.tuning import (
    HEARTBEAT_SECONDS,
    SearchConfig,
    SearchResult,
    load_search_config,
    tune_grid_run,
    tune_optuna_run,
)

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
    protocol: str = "grouped",
    features: str | None = None,
) -> SearchResult:
    """The ``tune_grid`` entry point: an exhaustive search over ``config``'s grid (see ``genre.tuning``).

    The configuration is read and validated before the data is loaded. ``features`` overrides the
    configuration's feature sets; ``protocol`` is ``grouped`` or ``filtered`` (the search never sees
    the test tracks; the winner is tested on them).
    """
    search = _configured(load_search_config(config, "grid"), features)
    _check_folds(n_splits, outer_splits, protocol)
    configure_tracking()
    dataset = _search_data(data, search, windows=windows, seed=seed, n_jobs=n_jobs)
    return tune_grid_run(
        search,
        dataset,
        n_splits=n_splits,
        outer_splits=outer_splits,
        seed=seed,
        n_jobs=n_jobs,
        protocol=protocol,
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
    protocol: str = "grouped",
    features: str | None = None,
) -> SearchResult:
    """The ``tune_optuna`` entry point: an Optuna study over ``config``'s space (see ``genre.tuning``).

    ``n_trials`` is the study's total: rerunning the same command on persistent ``storage`` resumes
    the study and runs only the trials still missing. ``protocol`` and ``features`` as for
    ``tune_grid_job``.
    """
    search = _configured(load_search_config(config, "optuna"), features)
    _check_folds(n_splits, outer_splits, protocol)
    if n_trials < 1:
        raise ConfigError(f"n_trials must be at least 1, got {n_trials}")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout}")
    heartbeat = HEARTBEAT_SECONDS if heartbeat is None else heartbeat
    if heartbeat < 1:
        raise ConfigError(f"heartbeat must be at least 1 second, got {heartbeat}")
    configure_tracking()
    dataset = _search_data(data, search, windows=windows, seed=seed, n_jobs=n_jobs)
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
        protocol=protocol,
    )


def _configured(search: SearchConfig, features: str | None) -> SearchConfig:
    """``search`` with its feature sets replaced by ``features`` (None or ``config``: the file's)."""
    if features in (None, "config"):
        return search
    if features not in FEATURES:
        raise ConfigError(f"unknown features {features!r}; expected one of {', '.join(FEATURES)} or config")
    replaced = replace(search, features=features)
    replaced.build(search.fixed, random_state=0)  # parameter names of a stack depend on its features
    return replaced


def _search_data(data: str, search: SearchConfig, *, windows: bool, seed: int, n_jobs: int) -> Dataset:
    """The search's data, with the feature sets its model needs (extracted, for audio)."""
    sets = resolve_features(search.features)
    return load_data(data, windows=windows, seed=seed, n_jobs=n_jobs, features=sets).with_features(sets)


def _check_folds(n_splits: int, outer_splits: int, protocol: str) -> None:
    if protocol not in ("grouped", "filtered"):
        raise ConfigError(f"a search runs under the grouped or filtered protocol, not {protocol!r}")
    if n_splits < 2:
        raise ConfigError(f"folds must be at least 2, got {n_splits}")
    if outer_splits and outer_splits < 2:
        raise ConfigError(f"outer folds must be 0 (no nested CV) or at least 2, got {outer_splits}")
    if outer_splits and protocol == "filtered":
        raise ConfigError(
            "outer folds are the grouped protocol's estimate of a search; under the filtered protocol the "
            "split's test tracks are the outer test (outer_folds=0)"
        )
