"""Hyperparameter search, recorded in MLflow: exhaustive grids, Optuna studies, and nested CV.

Both strategies read a validated :class:`genre.experiments.SearchConfig` and score candidates with the
same track-grouped folds (``splits.grouped_folds``), so a search never picks hyperparameters on
windows of tracks it also trains on. Each search is one parent run with a nested child per grid
candidate or Optuna trial; a child is logged as soon as it is scored, so an interrupted search keeps
everything it finished, and the parent is marked KILLED (Ctrl-C, ``kill``) or FAILED.

The parent logs the best parameters (``best.<name>``), the search's best mean score
(``best_cv_<scoring>``), the full results as ``cv_results.csv``, plots, and the best model refitted on
all rows. That best score is the search's own selection score: optimistic, since the same folds chose
the winner. :func:`nested_cv` measures what a search is worth on unseen tracks: the search runs inside
each outer fold and the winner is scored on that fold's held-out tracks.

An Optuna study on database storage (PostgreSQL for a team) can be shared by any number of worker
processes running the same command: trials are numbered by the storage, seeded by their number, and
logged under one parent run; a dead worker's trial is failed by its heartbeat and replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd
from mlflow.entities import Metric, RunStatus
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import GridSearchCV, ParameterGrid
from sklearn.pipeline import Pipeline

from genre import reports
from genre.data import Dataset
from genre.errors import ConfigError
from genre.evaluation import SCORES, fit_model, grouped_validation, score
from genre.experiments import SearchConfig, suggest
from genre.models import check_params, make_model
from genre.splits import grouped_folds
from genre.tracking import log_dataset, tracked_run
from genre.training import log_fitted, log_history

__all__ = [
    "LiveGridSearchCV",
    "SearchResult",
    "grid_search",
    "nested_cv",
    "search_builder",
    "stack_builder",
    "STACK_BASES",
    "best_tuning_run",
    "open_study",
    "optimize",
    "tune_grid_run",
    "tune_optuna_run",
    "tuned_stack_params",
]

#: Optuna trial states that count towards a study's ``n_trials`` (a failed trial is retried).
_FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclass(frozen=True)
class SearchResult:
    """A finished search: its parent run, the winner, and one row per candidate or trial."""

    run_id: str | None
    best_params: dict[str, Any]
    best_score: float
    table: pd.DataFrame


def plain(value: Any) -> Any:
    """A parameter value as configurations and run params spell it (a function by its name)."""
    return value.__name__ if isinstance(value, FunctionType) else value


def _check_searchable(config: SearchConfig, dataset: Dataset) -> None:
    if config.model == "stacking" and dataset.windowed:
        # GridSearchCV and the trial loop call fit() directly, so the stack's inner folds would be
        # row-wise over windows and its meta-learner would learn from leaky out-of-fold predictions.
        raise ConfigError(
            f"{config.path}: model: searching the stack's own parameters on windowed data would train its "
            "meta-learner on windows of tracks it has seen; tune the base models and build the stack "
            "from their best runs (tune_stacking), or search on one row per track (--windows false)"
        )


# --- exhaustive grid --------------------------------------------------------------------------------


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
    on_candidate: Callable[[int, dict[str, Any]], None] | None = None,
) -> LiveGridSearchCV:
    """Score every candidate of ``config``'s grid with track-grouped ``n_splits``-fold CV.

    The search is not refitted (callers fit the winner with ``evaluation.fit_model``, which keeps a
    stack's inner folds track-grouped). A candidate that fails to fit scores NaN and the search goes on.
    """
    _check_searchable(config, dataset)
    estimator = make_model(config.model, config.fixed, random_state=seed, transform=config.transform)
    grid = [
        {
            f"{config.model}__{name}": [check_params(config.model, {name: v})[name] for v in values]
            for name, values in one.items()
        }
        for one in config.grid
    ]
    search = LiveGridSearchCV(
        estimator,
        grid,
        scoring=config.scoring,
        cv=grouped_folds(dataset, n_splits=n_splits, seed=seed),
        refit=False,
        n_jobs=n_jobs,
        on_candidate=on_candidate,
    )
    with grouped_validation(search, dataset) as params:
        return search.fit(dataset.X, dataset.y, **params)


def _candidate_params(config: SearchConfig, raw: Mapping[str, Any]) -> dict[str, Any]:
    """A ``cv_results_`` params dict in the configuration's names and spellings."""
    return {key.removeprefix(f"{config.model}__"): plain(value) for key, value in raw.items()}


def _best_candidate(config: SearchConfig, results: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """Index and parameters (configuration spelling) of the best mean score; failed candidates are NaN."""
    best = int(np.nanargmax(results["mean_test_score"]))
    return best, _candidate_params(config, results["params"][best])


def tune_grid_run(
    config: SearchConfig,
    dataset: Dataset,
    *,
    n_splits: int = 5,
    seed: int = 0,
    n_jobs: int = 1,
    log_model: bool = True,
    outer_splits: int = 0,
) -> SearchResult:
    """``tune_grid``: the grid search as a parent run, with a nested child run per candidate.

    With ``outer_splits`` (>= 2) the parent also records the nested CV of the whole search
    (``nested_cv_<score>``): the honest estimate of what the tuned model scores on unseen tracks.
    """
    _check_searchable(config, dataset)
    metric = f"cv_{config.scoring}"
    with tracked_run(run_name=f"tune_grid-{config.model}", nested=mlflow.active_run() is not None) as parent:
        _log_search_header(config, dataset, "grid", n_splits=n_splits, seed=seed)
        mlflow.log_param("tune.candidates", config.n_candidates)
        children: dict[int, str] = {}

        def on_candidate(index: int, results: dict[str, Any]) -> None:
            params = _candidate_params(config, results["params"][index])
            folds = [results[f"split{k}_test_score"][index] for k in range(n_splits)]
            with tracked_run(run_name=f"{config.model}-candidate-{index:03d}", nested=True) as child:
                mlflow.set_tags({"genre.job": "tune_grid.candidate", "genre.model": config.model})
                mlflow.log_params({f"model.{k}": v for k, v in params.items()})
                for fold, value in enumerate(folds):
                    mlflow.log_metric(metric, float(value), step=fold)
                mlflow.log_metrics(
                    {
                        f"{metric}_mean": float(results["mean_test_score"][index]),
                        f"{metric}_std": float(results["std_test_score"][index]),
                        "fit_seconds_mean": float(results["mean_fit_time"][index]),
                    }
                )
            children[index] = child.info.run_id

        started = time.perf_counter()
        search = grid_search(
            config, dataset, n_splits=n_splits, seed=seed, n_jobs=n_jobs, on_candidate=on_candidate
        )
        seconds = time.perf_counter() - started
        table = pd.DataFrame(
            {f"param_{k}": v for k, v in _params_columns(config, search.cv_results_["params"]).items()}
        )
        for column in ("mean_test_score", "std_test_score", "rank_test_score", "mean_fit_time"):
            table[column] = search.cv_results_[column]
        for k in range(n_splits):
            table[f"split{k}_test_score"] = search.cv_results_[f"split{k}_test_score"]
        table["run_id"] = [children[i] for i in range(len(table))]
        best, best_params = _best_candidate(config, search.cv_results_)
        result = SearchResult(
            parent.info.run_id, {**config.fixed, **best_params}, float(table["mean_test_score"][best]), table
        )
        mlflow.MlflowClient().set_tag(children[best], "genre.best", "true")
        if outer_splits:
            build = search_builder(config, "grid", n_splits=n_splits, seed=seed, n_jobs=n_jobs)
            _log_nested(dataset, build, outer_splits=outer_splits, seed=seed)
        _log_search_result(
            config, dataset, result, children[best], seconds=seconds, seed=seed, log_model=log_model
        )
        with tempfile.TemporaryDirectory() as tmp:
            table.to_csv(Path(tmp) / "cv_results.csv", index=False)
            reports.search_heatmap_png(
                table,
                "mean_test_score",
                Path(tmp) / "search_heatmap.png",
                title=f"{config.model}: best mean CV {config.scoring}",
            )
            mlflow.log_artifacts(tmp)
    return result


def _params_columns(config: SearchConfig, params: list[dict[str, Any]]) -> dict[str, list[Any]]:
    rows = [_candidate_params(config, p) for p in params]
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {name: [row.get(name) for row in rows] for name in names}


# --- Optuna ------------------------------------------------------------------------------------------


def fingerprint(config: SearchConfig, dataset: Dataset, *, n_splits: int, seed: int) -> str:
    """What makes two searches the same search: configuration text, data, folds and seed.

    Stored on the study, so that resuming (or a second worker joining) a study with a different
    search fails instead of mixing trials that are not comparable.
    """
    digest = hashlib.sha256()
    digest.update(config.text().encode())
    digest.update(pd.util.hash_pandas_object(dataset.frame, index=False).to_numpy().tobytes())
    digest.update(f"{n_splits}:{seed}:{dataset.windowed}".encode())
    return digest.hexdigest()[:16]


#: Seconds between a running trial's heartbeats on database storage. A trial silent for three beats is
#: stale: its worker died, and the next worker to look marks it FAIL (and its MLflow run FAILED).
HEARTBEAT_SECONDS = 20

#: How often a worker waiting for the others' last trials looks at the study again.
_POLL_SECONDS = 2.0


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """TPE whose random draws for trial ``k`` come from ``seed + k``, whichever process runs it.

    A single TPE sampler seeded once gives every worker that starts it the same random stream, so
    workers launched together propose the same parameters; reseeding by the number of trials seen at
    start only moves the collision. Seeding each trial by its number (unique in the study, handed out
    by the storage) keeps one process's search reproducible and makes parallel workers explore
    different points. TPE keeps no other state between trials (it reads the history from the study),
    so a fresh :class:`~optuna.samplers.TPESampler` per trial is the same algorithm.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._samplers: dict[int, optuna.samplers.TPESampler] = {}

    def _for(self, trial: optuna.trial.FrozenTrial) -> optuna.samplers.TPESampler:
        if trial.number not in self._samplers:
            self._samplers[trial.number] = optuna.samplers.TPESampler(seed=self.seed + trial.number)
        return self._samplers[trial.number]

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Any,
    ) -> None:
        self._for(trial).after_trial(study, trial, state, values)
        del self._samplers[trial.number]


def open_study(
    config: SearchConfig,
    dataset: Dataset,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    n_splits: int = 5,
    seed: int = 0,
    heartbeat: int = HEARTBEAT_SECONDS,
) -> optuna.Study:
    """The Optuna study for this search: created, or loaded to resume it or to join it as a worker."""
    return _create_or_load_study(
        config,
        dataset,
        storage=storage,
        study_name=study_name,
        n_splits=n_splits,
        seed=seed,
        heartbeat=heartbeat,
    )[0]


def _create_or_load_study(
    config: SearchConfig,
    dataset: Dataset,
    *,
    storage: str | None,
    study_name: str | None,
    n_splits: int,
    seed: int,
    heartbeat: int,
) -> tuple[optuna.Study, bool]:
    """The study, and whether this call created it (exactly one of several racing workers does).

    ``storage`` is any SQLAlchemy URL (``sqlite:///optuna.db``, ``postgresql://...``) or None for an
    in-memory study. The default name is the model and the search's fingerprint, so rerunning the same
    command resumes its study and changing the data or the space starts a new one. Creation relies on
    the storage's unique study name, so workers started at the same instant agree on one creator; the
    others wait for it to record the fingerprint before they compare theirs. Database storage gets a
    heartbeat: a trial whose process died is marked FAIL by the next worker that looks.
    """
    mark = fingerprint(config, dataset, n_splits=n_splits, seed=seed)
    name = study_name or f"genre-{config.model}-{mark}"
    backend: optuna.storages.BaseStorage
    if storage:
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                backend = optuna.storages.RDBStorage(
                    storage,
                    heartbeat_interval=heartbeat,
                    grace_period=3 * heartbeat,
                    heartbeat_stale_trial_callback=_mark_lost_trial,
                )
        except Exception as error:  # SQLAlchemy raises its own types for bad URLs or unreachable servers
            raise ConfigError(
                f"storage {_redacted(storage)!r}: cannot open it as an Optuna database ({error})"
            ) from None
    else:
        backend = optuna.storages.InMemoryStorage()
    options: dict[str, Any] = {
        "storage": backend,
        "study_name": name,
        "sampler": TrialSeededSampler(seed),
        "pruner": config.make_pruner(),
    }
    try:
        study = optuna.create_study(direction="maximize", load_if_exists=False, **options)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**options)
        created = False
    if created:
        study.set_user_attr("genre.model", config.model)
        study.set_user_attr("genre.config", str(config.path))
        study.set_user_attr("genre.fingerprint", mark)
        return study, True
    existing = _wait_for_attr(study, "genre.fingerprint", seconds=30)
    if existing != mark:
        raise ConfigError(
            f"study {name!r} in {_redacted(storage)} was created for another search (fingerprint "
            f"{existing}, this one {mark}: different configuration, data, folds or seed); pass another "
            "--study-name"
        )
    return study, False


class _BudgetFilledError(Exception):
    """A trial started after other workers had already filled the budget: it is failed unrun."""


def _wait_for_attr(study: optuna.Study, key: str, *, seconds: float) -> Any:
    """A study attribute its creator is about to set (a worker may load the study a moment before)."""
    deadline = time.monotonic() + seconds
    while True:
        value = study.user_attrs.get(key)
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def _mark_lost_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Close the MLflow run of a trial whose worker died (Optuna has just marked the trial FAIL).

    A worker that died between creating the run and recording its id on the trial left only the run's
    tags: it is found by the study's parent and the trial number.
    """
    client = mlflow.MlflowClient()
    run_id = trial.user_attrs.get("mlflow_run_id")
    parent_id = study.user_attrs.get("mlflow_run_id")
    if run_id is None and parent_id is not None:
        found = mlflow.search_runs(
            search_all_experiments=True,
            filter_string=(
                f"tags.mlflow.parentRunId = '{parent_id}' and tags.`optuna.trial` = '{trial.number}'"
            ),
            output_format="list",
        )
        run_id = found[0].info.run_id if found else None
    if run_id is None:
        return  # it died before its run existed
    client.set_tag(run_id, "optuna.state", "FAIL")
    client.set_tag(
        run_id,
        "genre.error",
        f"worker {trial.user_attrs.get('genre.worker', '?')} lost: no heartbeat from this trial",
    )
    client.set_terminated(run_id, "FAILED")


def optimize(
    study: optuna.Study,
    config: SearchConfig,
    dataset: Dataset,
    *,
    n_trials: int,
    timeout: float | None = None,
    n_splits: int = 5,
    seed: int = 0,
    n_jobs: int = 1,
    parent_run_id: str | None = None,
) -> int:
    """Run trials until the study holds ``n_trials`` finished (complete or pruned) ones, or ``timeout``.

    ``n_trials`` is the study's total, not this call's: a resumed or shared study runs only what is
    missing. A worker starts a trial only while finished plus running trials are short of the total,
    and a trial that finds the budget taken by lower-numbered ones (two workers saw the last free
    place at once) is failed unrun with ``genre.surplus``, so workers sharing a study never overshoot
    it. When the others' running trials would fill it, a worker waits, because one of them may belong
    to a dead worker (marked FAIL once its heartbeat is stale) and need replacing. With
    ``parent_run_id`` each trial is a child run of it. A trial that raises is marked FAIL, logged, and
    the search goes on (it does not count towards ``n_trials``; after ``n_trials`` failures this call
    gives up). Returns how many trials this call ran.
    """
    _check_searchable(config, dataset)
    folds = grouped_folds(dataset, n_splits=n_splits, seed=seed)
    worker = _worker_id()

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("genre.worker", worker)
        # Two workers that saw one free place at the same moment both started a trial: the one with the
        # higher number (numbers come from the storage) is over budget and gives way, before any work.
        earlier = study.get_trials(deepcopy=False, states=(*_FINISHED, optuna.trial.TrialState.RUNNING))
        if sum(t.number < trial.number for t in earlier) >= n_trials:
            trial.set_user_attr("genre.surplus", True)
            raise _BudgetFilledError(f"the study's {n_trials} trials were taken by other workers")
        return _trial(trial, config, dataset, folds, seed=seed, parent_run_id=parent_run_id)

    deadline = None if timeout is None else time.monotonic() + timeout
    ran = failed = 0
    while failed < n_trials:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        with warnings.catch_warnings():  # a dead worker's trial must not hold its place
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        finished = len(study.get_trials(deepcopy=False, states=_FINISHED))
        running = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
        if finished >= n_trials:
            break
        free = n_trials - finished - running
        if free <= 0:
            time.sleep(_POLL_SECONDS)  # the other workers' trials fill the budget: see whether they finish
            continue
        batch = min(n_jobs, free)
        before = {t.number for t in study.get_trials(deepcopy=False)}
        study.optimize(
            objective, n_trials=batch, n_jobs=batch, timeout=left, catch=(Exception,), gc_after_trial=False
        )
        mine = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.number not in before and t.user_attrs.get("genre.worker") == worker
        ]
        ran += len(mine)
        failed += sum(t.state == optuna.trial.TrialState.FAIL for t in mine)
    return ran


def _trial(
    trial: optuna.Trial,
    config: SearchConfig,
    dataset: Dataset,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    seed: int,
    parent_run_id: str | None,
) -> float:
    params = {**config.fixed, **{name: suggest(trial, name, d) for name, d in config.space.items()}}
    model = make_model(config.model, params, random_state=seed, transform=config.transform)
    if parent_run_id is None:
        return _cross_validate_trial(trial, config, model, dataset, folds)[0]
    with tracked_run(
        run_name=f"{config.model}-trial-{trial.number:03d}",
        nested=True,
        parent_run_id=parent_run_id,
        # Created with its tags, so a worker that dies at once leaves a run _mark_lost_trial can find.
        tags={
            "genre.job": "tune_optuna.trial",
            "genre.model": config.model,
            "optuna.trial": str(trial.number),
        },
    ) as child:
        trial.set_user_attr("mlflow_run_id", child.info.run_id)
        mlflow.log_params({f"model.{k}": plain(v) for k, v in params.items()})
        try:
            mean, per_fold, networks = _cross_validate_trial(trial, config, model, dataset, folds)
        except optuna.TrialPruned as pruned:
            mlflow.set_tag("optuna.state", "PRUNED")
            mlflow.set_tag("optuna.pruned_at", str(pruned))
            raise
        except Exception as error:
            mlflow.set_tag("optuna.state", "FAIL")
            mlflow.set_tag("genre.error", f"{type(error).__name__}: {error}"[:4000])
            raise
        metric = f"cv_{config.scoring}"
        for fold, value in enumerate(per_fold):
            mlflow.log_metric(metric, value, step=fold)
        for fold, network in enumerate(networks):
            mlflow.log_metric("stopped_epoch", network.stopped_epoch_, step=fold)
        if networks:  # the first fold's learning curves, one batch of metrics
            curves = [
                Metric(f"epoch_{key}", float(value), int(time.time() * 1000), epoch)
                for key, values in networks[0].history_.items()
                for epoch, value in enumerate(values, start=1)
            ]
            mlflow.MlflowClient().log_batch(child.info.run_id, metrics=curves)
        mlflow.log_metrics({f"{metric}_mean": mean, f"{metric}_std": float(np.std(per_fold))})
        mlflow.set_tag("optuna.state", "COMPLETE")
    return mean


def _cross_validate_trial(
    trial: optuna.Trial,
    config: SearchConfig,
    model: Pipeline,
    dataset: Dataset,
    folds: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[float, list[float], list[Any]]:
    """Mean and per-fold scores (and, for the MLP, each fold's fitted network), reporting progress.

    The MLP reports the negated validation loss after every epoch of every fold (step
    ``fold * epochs + epoch``; negated because the study maximises), so the pruner can stop a trial whose
    network learns worse than earlier trials' did at the same point. Other models report their running
    mean score after each fold.
    """
    scorer = get_scorer(config.scoring)
    network = config.model == "nn"
    epochs = model[-1].get_params()["epochs"] if network else 0
    per_fold: list[float] = []
    networks: list[Any] = []
    for fold, (train, test) in enumerate(folds):
        candidate = clone(model)
        if network:
            candidate.set_params(nn__epoch_callback=_pruning_callback(trial, offset=fold * epochs))
        fitted = fit_model(candidate, dataset.subset(train))
        held_out = dataset.subset(test)
        per_fold.append(float(scorer(fitted, held_out.X, held_out.y)))
        if network:
            networks.append(fitted[-1])
        else:
            trial.report(float(np.mean(per_fold)), step=fold)
            if trial.should_prune():
                raise optuna.TrialPruned(f"fold {fold}")
    return float(np.mean(per_fold)), per_fold, networks


def _pruning_callback(trial: optuna.Trial, *, offset: int) -> Callable[[int, dict[str, float]], None]:
    def report(epoch: int, logs: dict[str, float]) -> None:
        loss = logs.get("val_loss", logs["loss"])
        trial.report(-loss, step=offset + epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"step {offset + epoch}")

    return report


def tune_optuna_run(
    config: SearchConfig,
    dataset: Dataset,
    *,
    n_trials: int = 20,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    n_splits: int = 5,
    seed: int = 0,
    n_jobs: int = 1,
    log_model: bool = True,
    outer_splits: int = 0,
    heartbeat: int = HEARTBEAT_SECONDS,
) -> SearchResult:
    """``tune_optuna``: an Optuna study as a parent run, with a nested child run per trial.

    Any number of processes may run the same command at once on one database storage (PostgreSQL for a
    team): they share the study, its creator opens the parent run, every trial is a child of it, and
    the process that completes the study's last trial logs the result on the parent (best parameters,
    plots, the refitted winner) and closes it. The others return the best so far and leave the parent
    to it. Rerunning the command resumes the study under the same parent; ``mlflow run``'s own run
    for each invocation is filed under the parent as a ``worker``. ``outer_splits`` adds the nested CV
    of the search, as for ``tune_grid_run`` (inner studies are in memory, ``n_trials`` each).
    """
    _check_searchable(config, dataset)
    launcher = os.environ.pop("MLFLOW_RUN_ID", None)  # else the next start_run() would adopt it
    study, created = _create_or_load_study(
        config,
        dataset,
        storage=storage,
        study_name=study_name,
        n_splits=n_splits,
        seed=seed,
        heartbeat=heartbeat,
    )
    parent_id = None if created else _wait_for_attr(study, "mlflow_run_id", seconds=60)
    if parent_id is None or not _run_exists(parent_id):  # new, or the study outlived its tracking store
        parent_id = _open_parent(study, config, dataset, storage=storage, n_splits=n_splits, seed=seed)
    client = mlflow.MlflowClient()
    if launcher and launcher != parent_id:
        client.set_tag(launcher, "mlflow.parentRunId", parent_id)
        client.set_tag(launcher, "genre.job", "tune_optuna.worker")
    client.set_tag(parent_id, "genre.n_trials", str(n_trials))
    started = time.perf_counter()
    try:
        ran = optimize(
            study,
            config,
            dataset,
            n_trials=n_trials,
            timeout=timeout,
            n_splits=n_splits,
            seed=seed,
            n_jobs=n_jobs,
            parent_run_id=parent_id,
        )
    except BaseException as error:
        if not _running(study):  # no other worker carries on: the search ends here
            client.set_terminated(parent_id, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    seconds = time.perf_counter() - started
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        if not _running(study):
            client.set_terminated(parent_id, "FAILED")
        raise ConfigError(
            f"study {study.study_name!r}: no trial completed ({len(study.trials)} ran); see the failed "
            "trials' genre.error tags in MLflow"
        )
    best = study.best_trial
    result = SearchResult(parent_id, {**config.fixed, **best.params}, float(best.value), _trials_table(study))
    best_child = best.user_attrs.get("mlflow_run_id")
    if not _finalizes(study, ran=ran, best_child=best_child, parent_id=parent_id):
        return result
    with tracked_run(run_id=parent_id):
        if best_child:
            client.set_tag(best_child, "genre.best", "true")
        if outer_splits:
            build = search_builder(
                config, "optuna", n_splits=n_splits, seed=seed, n_trials=n_trials, timeout=timeout
            )
            _log_nested(dataset, build, outer_splits=outer_splits, seed=seed)
        counts = {state.name.lower(): 0 for state in optuna.trial.TrialState}
        for trial in study.trials:
            counts[trial.state.name.lower()] += 1
        mlflow.log_metrics({f"trials_{state}": count for state, count in counts.items()})
        _log_search_result(
            config, dataset, result, best_child, seconds=seconds, seed=seed, log_model=log_model
        )
        with tempfile.TemporaryDirectory() as tmp:
            result.table.to_csv(Path(tmp) / "trials.csv", index=False)
            reports.study_pngs(study, Path(tmp))
            mlflow.log_artifacts(tmp)
    return result


def _open_parent(
    study: optuna.Study,
    config: SearchConfig,
    dataset: Dataset,
    *,
    storage: str | None,
    n_splits: int,
    seed: int,
) -> str:
    """Create the study's parent run, record it on the study, and log what the search is.

    The run is left RUNNING but not active in this process: trials name it as their parent
    explicitly, so worker threads and processes need no shared active-run state, and only the process
    that finishes the study closes it.
    """
    run = mlflow.start_run(run_name=f"tune_optuna-{config.model}")
    study.set_user_attr("mlflow_run_id", run.info.run_id)
    _log_search_header(config, dataset, "optuna", n_splits=n_splits, seed=seed)
    mlflow.log_params({"tune.study": study.study_name, "tune.storage": _redacted(storage)})
    mlflow.end_run(RunStatus.to_string(RunStatus.RUNNING))  # leave it open for the trials
    return run.info.run_id


def _running(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))


def _finalizes(study: optuna.Study, *, ran: int, best_child: str | None, parent_id: str) -> bool:
    """Whether this process logs the search's result: exactly one of the workers that shared it.

    Nobody while trials still run. Then the worker whose trial finished last: every worker reads the
    same finished study, so they agree without a lock. A process that ran no trial (a rerun, or a
    worker that joined too late) finalizes only a study whose result is not logged yet, which also
    recovers a study whose finishing worker died before logging.
    """
    if _running(study):
        return False
    if ran:
        finished = study.get_trials(deepcopy=False, states=_FINISHED)
        last = max(finished, key=lambda t: (t.datetime_complete, t.number))
        return last.user_attrs.get("genre.worker") == _worker_id()
    recorded = mlflow.MlflowClient().get_run(parent_id).data.tags.get("genre.best_run_id")
    return recorded is None or recorded != best_child


def _worker_id() -> str:
    """Who ran a trial, as a trial attribute: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _trials_table(study: optuna.Study) -> pd.DataFrame:
    return study.trials_dataframe(attrs=("number", "value", "params", "state", "duration", "user_attrs"))


def _run_exists(run_id: str) -> bool:
    try:
        mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return False
    return True


def _redacted(url: str | None) -> str:
    """A storage URL without its password, for logging."""
    if not url:
        return "memory"
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "unparsable URL"


# --- shared logging ----------------------------------------------------------------------------------


def _log_search_header(
    config: SearchConfig, dataset: Dataset, strategy: str, *, n_splits: int, seed: int
) -> None:
    mlflow.set_tags(
        {
            "genre.job": f"tune_{strategy}",
            "genre.model": config.model,
            "genre.strategy": strategy,
            "genre.protocol": "grouped",
        }
    )
    mlflow.log_params(
        {
            "tune.config": str(config.path),
            "tune.scoring": config.scoring,
            "tune.transform": config.transform,
            "model.name": config.model,
            "cv.protocol": "grouped",
            "cv.folds": n_splits,
            "cv.seed": seed,
        }
    )
    log_dataset(dataset)
    mlflow.log_text(config.text(), f"config/{config.path.name}")


def _log_search_result(
    config: SearchConfig,
    dataset: Dataset,
    result: SearchResult,
    best_child: str | None,
    *,
    seconds: float,
    seed: int,
    log_model: bool,
) -> None:
    """The winner on the parent: params, score, where it came from, and the model refitted on all rows.

    The best parameters are tags (``best.<name>``), not params: a resumed or shared Optuna study logs
    to the same parent again, and its winner may have changed, which MLflow forbids for params.
    """
    mlflow.set_tags({f"best.{k}": str(plain(v)) for k, v in result.best_params.items()})
    mlflow.log_metrics({f"best_cv_{config.scoring}": result.best_score, "search_seconds": seconds})
    if best_child:
        mlflow.set_tag("genre.best_run_id", best_child)
    mlflow.log_dict(
        {
            "model": config.model,
            "transform": config.transform,
            "params": {k: plain(v) for k, v in result.best_params.items()},
            "score": result.best_score,
            "scoring": config.scoring,
            "run_id": best_child,
        },
        "best_params.json",
    )
    if log_model:
        best = make_model(config.model, result.best_params, random_state=seed, transform=config.transform)
        fitted = fit_model(best, dataset)
        log_history(fitted, config.model)
        log_fitted(fitted, dataset)


# --- nested cross-validation -------------------------------------------------------------------------


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
            params = check_params(config.model, _best_candidate(config, search.cv_results_)[1])
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


def _log_nested(
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


# --- a stack from tuned base models ------------------------------------------------------------------

#: The stack's base models, whose tuned parameters ``tuned_stack_params`` collects.
STACK_BASES: tuple[str, ...] = ("knn", "svm", "nn")


def best_tuning_run(model: str, *, metric: str = "best_cv_accuracy", data: str | None = None) -> str:
    """The id of the finished ``tune_grid``/``tune_optuna`` parent run of ``model`` with the highest
    ``metric`` in the active experiment, among runs on the dataset named ``data`` if given.

    Scores on different data do not compare (the embedded set is far easier than GTZAN), so callers
    that know their data should pass its name.

    Raises
    ------
    ConfigError
        No finished tuning run of ``model`` (on ``data``) has ``metric``.
    """
    on_data = f" AND params.`data.name` = '{data}'" if data else ""
    runs = mlflow.search_runs(  # in the active experiment
        filter_string=(
            f"tags.`genre.model` = '{model}' AND tags.`genre.strategy` != '' "  # only search parents have it
            f"AND attributes.status = 'FINISHED'{on_data}"
        ),
        order_by=[f"metrics.`{metric}` DESC"],
        output_format="list",
    )
    runs = [run for run in runs if metric in run.data.metrics]
    if not runs:
        raise ConfigError(
            f"no finished tune_grid or tune_optuna run of {model} with metric {metric!r} in this "
            f"experiment{f' on data {data!r}' if data else ''}; tune {model} first, pass its run id, "
            "or 'default' for its default parameters"
        )
    return runs[0].info.run_id


def tuned_stack_params(
    sources: Mapping[str, str], *, metric: str = "best_cv_accuracy", data: str | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Stacking parameters from earlier tuning runs, and where each base model's came from.

    ``sources`` maps each of ``STACK_BASES`` to a tuning run id, ``"best"`` (the best finished tuning
    run of that model in the active experiment by ``metric``, on the dataset named ``data`` if given)
    or ``"default"`` (the model's defaults). Returns ``make_model("stacking", ...)`` parameters
    (``svm__C``...) and the provenance: per base model the run id, its search strategy, data, score
    and parameters.
    """
    unknown = sorted(set(sources) - set(STACK_BASES))
    if unknown:
        raise ConfigError(
            f"the stack has no base model {unknown[0]!r}; its bases are {', '.join(STACK_BASES)}"
        )
    params: dict[str, Any] = {}
    provenance: dict[str, dict[str, Any]] = {}
    client = mlflow.MlflowClient()
    for base in STACK_BASES:
        source = sources.get(base, "default")
        if source == "default":
            provenance[base] = {"run_id": None, "params": {}}
            continue
        run_id = best_tuning_run(base, metric=metric, data=data) if source == "best" else source
        try:
            run = client.get_run(run_id)
            best = mlflow.artifacts.load_dict(f"runs:/{run_id}/best_params.json")
        except mlflow.exceptions.MlflowException as error:
            raise ConfigError(
                f"{base}: run {run_id!r} is not a finished tuning run here ({error.message})"
            ) from None
        if best.get("model") != base:
            raise ConfigError(f"{base}: run {run_id} tuned {best.get('model')!r}, not {base}")
        checked = check_params(base, best["params"])
        params.update({f"{base}__{name}": value for name, value in checked.items()})
        provenance[base] = {
            "run_id": run_id,
            "strategy": run.data.tags.get("genre.strategy"),
            "data": run.data.params.get("data.name"),
            "score": best.get("score"),
            "scoring": best.get("scoring"),
            "params": best["params"],
        }
    return params, provenance
