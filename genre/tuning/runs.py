"""A search as MLflow runs: one parent run per search, a nested child per grid candidate or Optuna trial.

A child is logged as soon as it is scored, so an interrupted search keeps everything it finished, and
the parent is marked KILLED (Ctrl-C, ``kill``) or FAILED. The parent logs the best parameters
(``best.<name>``), the search's best mean score (``best_cv_<scoring>``), the full results as
``cv_results.csv`` or ``trials.csv``, plots, and the best model refitted on all rows. That best score is
the search's own selection score: optimistic, since the same folds chose the winner; ``outer_splits``
adds the nested CV of the whole search (``genre.tuning.nested``), the number to quote.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pandas as pd

from genre.data import Dataset
from genre.errors import ConfigError
from genre.tracking import log_series, process_id, take_launcher, tracked_run
from genre.tuning import plots
from genre.tuning.configs import SearchConfig
from genre.tuning.grid import best_candidate, candidate_params, grid_search, params_columns
from genre.tuning.nested import log_nested
from genre.tuning.records import (
    FINISHED_STATES,
    SearchResult,
    log_search_header,
    log_search_result,
    search_sides,
)
from genre.tuning.searches import search_estimator
from genre.tuning.storage import HEARTBEAT_SECONDS, redacted
from genre.tuning.study import create_or_load_study, optimize, wait_for_attr

__all__ = ["tune_grid_run", "tune_optuna_run"]


def tune_grid_run(
    config: SearchConfig,
    dataset: Dataset,
    *,
    n_splits: int = 5,
    seed: int = 0,
    n_jobs: int = 1,
    log_model: bool = True,
    outer_splits: int = 0,
    protocol: str = "grouped",
) -> SearchResult:
    """``tune_grid``: the grid search as a parent run, with a nested child run per candidate.

    With ``outer_splits`` (>= 2) the parent also records the nested CV of the whole search
    (``nested_cv_<score>``): the honest estimate of what the tuned model scores on unseen tracks. Under
    the ``filtered`` protocol the search sees only the train and valid tracks of GTZAN's split (in
    contiguous folds), and the winner is tested once on its test tracks (``test_<score>``).
    """
    metric = f"cv_{config.scoring}"
    dataset, test = search_sides(dataset, protocol)
    with tracked_run(run_name=f"tune_grid-{config.model}", nested=mlflow.active_run() is not None) as parent:
        log_search_header(config, dataset, "grid", n_splits=n_splits, seed=seed, protocol=protocol)
        mlflow.log_param("tune.candidates", config.n_candidates)
        children: dict[int, str] = {}

        def on_candidate(index: int, results: dict[str, Any]) -> None:
            params = candidate_params(config, results["params"][index])
            folds = [results[f"split{k}_test_score"][index] for k in range(n_splits)]
            with tracked_run(run_name=f"{config.model}-candidate-{index:03d}", nested=True) as child:
                mlflow.set_tags({"genre.job": "tune_grid.candidate", "genre.model": config.model})
                mlflow.log_params({f"model.{k}": v for k, v in params.items()})
                log_series({metric: folds})
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
            config,
            dataset,
            n_splits=n_splits,
            seed=seed,
            n_jobs=n_jobs,
            protocol=protocol,
            on_candidate=on_candidate,
        )
        seconds = time.perf_counter() - started
        table = pd.DataFrame(
            {f"param_{k}": v for k, v in params_columns(config, search.cv_results_["params"]).items()}
        )
        for column in ("mean_test_score", "std_test_score", "rank_test_score", "mean_fit_time"):
            table[column] = search.cv_results_[column]
        for k in range(n_splits):
            table[f"split{k}_test_score"] = search.cv_results_[f"split{k}_test_score"]
        table["run_id"] = [children[i] for i in range(len(table))]
        best, best_params = best_candidate(config, search.cv_results_)
        result = SearchResult(
            parent.info.run_id, {**config.fixed, **best_params}, float(table["mean_test_score"][best]), table
        )
        mlflow.MlflowClient().set_tag(children[best], "genre.best", "true")
        if outer_splits:
            search = search_estimator(config, "grid", n_splits=n_splits, seed=seed, n_jobs=n_jobs)
            log_nested(dataset, search, outer_splits=outer_splits, seed=seed)
        log_search_result(
            config,
            dataset,
            result,
            children[best],
            seconds=seconds,
            seed=seed,
            log_model=log_model,
            test=test,
        )
        with tempfile.TemporaryDirectory() as tmp:
            table.to_csv(Path(tmp) / "cv_results.csv", index=False)
            plots.search_heatmap_png(
                table,
                "mean_test_score",
                Path(tmp) / "search_heatmap.png",
                title=f"{config.model}: best mean CV {config.scoring}",
            )
            mlflow.log_artifacts(tmp)
    return result


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
    protocol: str = "grouped",
) -> SearchResult:
    """``tune_optuna``: an Optuna study as a parent run, with a nested child run per trial.

    Any number of processes may run the same command at once on one database storage (PostgreSQL for a
    team): they share the study, its creator opens the parent run, every trial is a child of it, and
    the process that completes the study's last trial logs the result on the parent (best parameters,
    plots, the refitted winner) and closes it. The others return the best so far and leave the parent
    to it. Rerunning the command resumes the study under the same parent; ``mlflow run``'s own run
    for each invocation is filed under the parent as a ``worker``. ``outer_splits`` adds the nested CV
    of the search, as for ``tune_grid_run`` (inner studies are in memory, ``n_trials`` each), and
    ``protocol`` works as there.
    """
    dataset, test = search_sides(dataset, protocol)
    launcher = take_launcher()  # filed under the study's parent as a worker, below
    study, created = create_or_load_study(
        config,
        dataset,
        storage=storage,
        study_name=study_name,
        n_splits=n_splits,
        seed=seed,
        heartbeat=heartbeat,
    )
    parent_id = None if created else wait_for_attr(study, "mlflow_run_id", seconds=60)
    if parent_id is None or not _run_exists(parent_id):  # new, or the study outlived its tracking store
        parent_id = _open_parent(
            study, config, dataset, storage=storage, n_splits=n_splits, seed=seed, protocol=protocol
        )
    client = mlflow.MlflowClient()
    if launcher and launcher != parent_id:
        client.set_tag(launcher, "mlflow.parentRunId", parent_id)
        client.set_tag(launcher, "genre.job", "tune_optuna.worker")
    _set_shared_tag(client, parent_id, "genre.n_trials", str(n_trials))
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
            protocol=protocol,
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
            search = search_estimator(
                config, "optuna", n_splits=n_splits, seed=seed, n_trials=n_trials, timeout=timeout
            )
            log_nested(dataset, search, outer_splits=outer_splits, seed=seed)
        counts = {state.name.lower(): 0 for state in optuna.trial.TrialState}
        for trial in study.trials:
            counts[trial.state.name.lower()] += 1
        mlflow.log_metrics({f"trials_{state}": count for state, count in counts.items()})
        log_search_result(
            config, dataset, result, best_child, seconds=seconds, seed=seed, log_model=log_model, test=test
        )
        with tempfile.TemporaryDirectory() as tmp:
            result.table.to_csv(Path(tmp) / "trials.csv", index=False)
            plots.study_pngs(study, Path(tmp))
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
    protocol: str,
) -> str:
    """Create the study's parent run, record it on the study, and log what the search is.

    The run is left RUNNING but not active in this process: trials name it as their parent
    explicitly, so worker threads and processes need no shared active-run state, and only the process
    that finishes the study closes it.
    """
    with tracked_run(run_name=f"tune_optuna-{config.model}", keep_open=True) as run:  # open for the trials
        study.set_user_attr("mlflow_run_id", run.info.run_id)
        log_search_header(config, dataset, "optuna", n_splits=n_splits, seed=seed, protocol=protocol)
        mlflow.log_params({"tune.study": study.study_name, "tune.storage": redacted(storage)})
    return run.info.run_id


def _set_shared_tag(client: mlflow.MlflowClient, run_id: str, key: str, value: str) -> None:
    """A tag that every worker sets on the study's parent, possibly at the same instant.

    MLflow's SQL store writes a tag by looking it up and inserting it when it is not there yet, so
    workers setting a new tag together race: all but one get a unique-key error (an HTTP 400 from a
    tracking server). By then the tag exists, and setting it again updates it.
    """
    for attempt in range(3):
        try:
            client.set_tag(run_id, key, value)
            return
        except mlflow.exceptions.MlflowException:
            if attempt == 2:
                raise
            time.sleep(0.2 * (attempt + 1))


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
        finished = study.get_trials(deepcopy=False, states=FINISHED_STATES)
        last = max(finished, key=lambda t: (t.datetime_complete, t.number))
        return last.user_attrs.get("genre.worker") == process_id()
    recorded = mlflow.MlflowClient().get_run(parent_id).data.tags.get("genre.best_run_id")
    return recorded is None or recorded != best_child


def _trials_table(study: optuna.Study) -> pd.DataFrame:
    return study.trials_dataframe(attrs=("number", "value", "params", "state", "duration", "user_attrs"))


def _run_exists(run_id: str) -> bool:
    try:
        mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return False
    return True
