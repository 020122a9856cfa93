"""Optuna studies: created or joined by any number of workers, seeded per trial, with a budget they share.

An Optuna study on database storage (PostgreSQL for a team) can be shared by any number of worker
processes running the same command: trials are numbered by the storage, seeded by their number, and
logged under one parent run; a dead worker's trial is failed by its heartbeat and replaced. A database
that goes away for a while (a restart, a failover) costs at most the trials it interrupted: workers
wait for it and carry on (``STORAGE_PATIENCE_SECONDS``).
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from genre.data import Dataset
from genre.errors import ConfigError
from genre.evaluation import cross_validate_groups, search_folds
from genre.tracking import log_series, loggable, process_id, tracked_run
from genre.tuning.configs import SearchConfig, suggest
from genre.tuning.records import FINISHED_STATES
from genre.tuning.storage import (
    HEARTBEAT_SECONDS,
    POLL_SECONDS,
    STORAGE_PATIENCE_SECONDS,
    connection_lost,
    rdb_storage,
    redacted,
)

__all__ = [
    "TrialSeededSampler",
    "create_or_load_study",
    "fingerprint",
    "open_study",
    "optimize",
    "wait_for_attr",
]


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


log = logging.getLogger(__name__)


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
    return create_or_load_study(
        config,
        dataset,
        storage=storage,
        study_name=study_name,
        n_splits=n_splits,
        seed=seed,
        heartbeat=heartbeat,
    )[0]


def create_or_load_study(
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
        backend = rdb_storage(storage, heartbeat)
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
    existing = wait_for_attr(study, "genre.fingerprint", seconds=30)
    if existing != mark:
        raise ConfigError(
            f"study {name!r} in {redacted(storage)} was created for another search (fingerprint "
            f"{existing}, this one {mark}: different configuration, data, folds or seed); pass another "
            "--study-name"
        )
    return study, False


class _BudgetFilledError(Exception):
    """A trial started after other workers had already filled the budget: it is failed unrun."""


def wait_for_attr(study: optuna.Study, key: str, *, seconds: float) -> Any:
    """A study attribute its creator is about to set (a worker may load the study a moment before)."""
    deadline = time.monotonic() + seconds
    while True:
        value = study.user_attrs.get(key)
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


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
    protocol: str = "grouped",
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
    gives up). When the database does not answer (connections lost in a restart), the worker waits for
    it, up to ``STORAGE_PATIENCE_SECONDS``, and carries on from what the study then holds. Returns how
    many trials this call ran.
    """
    folds = search_folds(dataset, protocol, n_splits=n_splits, seed=seed)
    worker = process_id()

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("genre.worker", worker)
        # Two workers that saw one free place at the same moment both started a trial: the one with the
        # higher number (numbers come from the storage) is over budget and gives way, before any work.
        earlier = study.get_trials(deepcopy=False, states=(*FINISHED_STATES, optuna.trial.TrialState.RUNNING))
        if sum(t.number < trial.number for t in earlier) >= n_trials:
            trial.set_user_attr("genre.surplus", True)
            raise _BudgetFilledError(f"the study's {n_trials} trials were taken by other workers")
        return _trial(trial, config, dataset, folds, seed=seed, parent_run_id=parent_run_id)

    deadline = None if timeout is None else time.monotonic() + timeout
    earlier = {t.number for t in study.get_trials(deepcopy=False)}
    ran = failed = 0
    outage: float | None = None  # since when the database has not answered
    while failed < n_trials:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        try:
            with warnings.catch_warnings():  # a dead worker's trial must not hold its place
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            finished = len(study.get_trials(deepcopy=False, states=FINISHED_STATES))
            running = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
            if finished >= n_trials:
                break
            free = n_trials - finished - running
            if free <= 0:
                time.sleep(POLL_SECONDS)  # the others' trials fill the budget: see whether they finish
                continue
            batch = min(n_jobs, free)
            study.optimize(
                objective,
                n_trials=batch,
                n_jobs=batch,
                timeout=left,
                catch=(Exception,),
                gc_after_trial=False,
            )
            mine = [
                t
                for t in study.get_trials(deepcopy=False)
                if t.number not in earlier and t.user_attrs.get("genre.worker") == worker
            ]
        except Exception as error:
            # The database went away (a restart): every step above is read again from the study, so
            # wait for it and carry on. A trial it interrupted failed, or fails by its heartbeat.
            if not connection_lost(error):
                raise
            outage = outage or time.monotonic()
            if time.monotonic() - outage > STORAGE_PATIENCE_SECONDS:
                raise
            log.warning("the study's database did not answer; trying again in %.0f s", POLL_SECONDS)
            time.sleep(POLL_SECONDS)
            continue
        outage = None
        ran = len(mine)
        failed = sum(t.state == optuna.trial.TrialState.FAIL for t in mine)
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
    model = config.build(params, random_state=seed)
    if parent_run_id is None:
        return _cross_validate_trial(trial, config, model, dataset, folds)[0]
    with tracked_run(
        run_name=f"{config.model}-trial-{trial.number:03d}",
        nested=True,
        parent_run_id=parent_run_id,
        # Created with its tags, so a worker that dies at once leaves a run mark_lost_trial can find.
        tags={
            "genre.job": "tune_optuna.trial",
            "genre.model": config.model,
            "optuna.trial": str(trial.number),
        },
    ) as child:
        trial.set_user_attr("mlflow_run_id", child.info.run_id)
        mlflow.log_params({f"model.{k}": v for k, v in loggable(params).items()})
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
        series = {metric: per_fold}
        if networks:  # where each fold stopped, and the first fold's learning curves
            series["stopped_epoch"] = [network.stopped_epoch_ for network in networks]
            series.update({f"epoch_{key}": values for key, values in networks[0].history_.items()})
        log_series(series, run_id=child.info.run_id)
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
    network = config.model == "nn"
    epochs = model[-1].get_params()["epochs"] if network else 0
    per_fold: list[float] = []
    networks: list[Any] = []
    for fold, split in enumerate(folds):  # one fold at a time, so a trial can be pruned between folds
        candidate = clone(model)
        if network:
            candidate.set_params(nn__epoch_callback=_pruning_callback(trial, offset=fold * epochs))
        result = cross_validate_groups(
            candidate, dataset.X, dataset.y, dataset.groups, [split], scoring=config.scoring
        )
        per_fold.append(float(result["test_score"][0]))
        if network:
            networks.append(result["estimator"][0][-1])
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
