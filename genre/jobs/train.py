"""The ``knn``, ``svm``, ``nn``, ``stacking``, ``main`` and ``tune_stacking`` entry points."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Run

from genre.data import EMBEDDED, GTZAN_MUSICNN, Dataset
from genre.data.schema import FEATURE_CHOICES, resolve_features
from genre.errors import ConfigError, DataError
from genre.evaluation import check_protocols, filtered_split
from genre.features import load_data
from genre.jobs.champion import leave_champion
from genre.models import MODEL_NAMES, import_keras, make_model
from genre.progress import Progress
from genre.tracking import configure_tracking, finished_run, run_key
from genre.training import TrainResult, compare, train_run
from genre.tuning import tuned_stack_params

__all__ = ["AUTO", "main_job", "train_job", "tune_stacking_job"]

#: ``protocols`` / ``features`` of ``genre main`` chosen from the data: every protocol and the data's
#: feature sets.
AUTO = "auto"

log = logging.getLogger(__name__)


def train_job(
    model_name: str,
    data: str = EMBEDDED,
    *,
    params: Mapping[str, Any] | None = None,
    protocol: str = "grouped",
    features: str = "gtzan57",
    transform: str = "standard",
    n_splits: int = 10,
    seed: int = 0,
    windows: bool = True,
    n_jobs: int = 1,
    force: bool = False,
    progress: Progress | None = None,
) -> TrainResult | Run:
    """The ``knn``, ``svm``, ``nn`` and ``stacking`` entry points: train and record one model.

    The model and its ``params`` are checked before the data is even loaded, so an unknown option or an
    impossible value fails at once with a ``ConfigError``. Audio data is extracted with the feature sets
    ``features`` needs. A finished run of the same model, parameters, features, data and code is returned
    instead of training again (unless ``force``).
    """
    make_model(model_name, params, random_state=seed, features=features, transform=transform)
    check_protocols([protocol])
    progress = progress or Progress(quiet=True)
    dataset = _load_and_configure(
        data,
        windows=windows,
        seed=seed,
        n_jobs=n_jobs,
        progress=progress,
        features=resolve_features(features),
    )
    question = {"model": model_name, "params": dict(params or {}), "protocol": protocol, "folds": n_splits}
    if features != "gtzan57":  # keys of runs from before feature sets existed stay valid
        question["features"] = features
    if transform != "standard":
        question["transform"] = transform
    key = run_key("train", {**question, "seed": seed}, dataset)
    if not force and (previous := finished_run(key)) is not None:
        progress.note(_reused(previous))
        return previous
    _import_tensorflow_for([model_name])
    return train_run(
        model_name,
        dataset,
        params=params,
        protocol=protocol,
        features=features,
        transform=transform,
        n_splits=n_splits,
        seed=seed,
        n_jobs=n_jobs,
        tags={"genre.run_key": key},
        progress=progress,
    )


def main_job(
    data: str = GTZAN_MUSICNN,
    *,
    models: Sequence[str] = MODEL_NAMES,
    protocols: Sequence[str] | str = AUTO,
    features: Sequence[str] | str = AUTO,
    n_splits: int = 5,
    seed: int = 0,
    windows: bool | None = None,
    n_jobs: int = 1,
    force: bool = False,
    champion: bool = False,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The README's main command: every model under every protocol, one parent run, a comparison table.

    See ``genre.training.comparison``. Default data is musicnn's taggrams of GTZAN shipped in the
    package (real music, 733 tracks, whole clips: ``windows=None`` is each source's natural rows).
    ``protocols="auto"`` runs ``filtered`` (GTZAN's artist-aware split, what users will see) and
    ``grouped`` beside it on GTZAN data, else ``grouped`` and ``seed``, so an optimistic figure always
    stands beside a more honest one; ``features="auto"`` gives the models every feature set the data
    holds (``both`` for a table of two; on audio, the 57 features). Rerun with the same code, data and
    parameters, the finished parent run's table is returned and nothing is trained (unless ``force``).
    With ``champion``, a registry without a champion gets this job's best ``filtered`` model as one
    (``genre.jobs.champion``); an existing champion is never moved.
    """
    choices = [] if features == AUTO else list(features)
    for choice in choices:
        if choice not in FEATURE_CHOICES:
            raise ConfigError(f"unknown features {choice!r}; expected one of {', '.join(FEATURE_CHOICES)}")
    for name in models:
        make_model(name, random_state=seed)
    if protocols != AUTO:
        check_protocols(protocols)
    progress = progress or Progress(quiet=True)
    needed = resolve_features(choices) if choices else ("gtzan57",)
    dataset = _load_and_configure(
        data, windows=windows, seed=seed, n_jobs=n_jobs, progress=progress, features=needed
    )
    choices = choices or [_choice_of(dataset.feature_sets)]
    protocols = _protocols_for(dataset, progress) if protocols == AUTO else list(protocols)
    question = {"models": list(models), "protocols": protocols, "folds": n_splits, "seed": seed}
    if choices != ["gtzan57"]:
        question["features"] = choices
    key = run_key("main", question, dataset)
    if not force and (previous := finished_run(key)) is not None:
        progress.note(_reused(previous))
        table = pd.read_csv(
            mlflow.artifacts.download_artifacts(f"runs:/{previous.info.run_id}/comparison.csv")
        )
    else:
        table = compare(
            dataset,
            models=models,
            protocols=protocols,
            features=choices,
            n_splits=n_splits,
            seed=seed,
            n_jobs=n_jobs,
            progress=progress,
            tags={"genre.run_key": key},
        )
    if champion:
        leave_champion(table, progress=progress)
    return table


def _choice_of(sets: Sequence[str]) -> str:
    """The ``features`` value that names exactly the feature sets ``sets``."""
    return next(name for name, members in FEATURE_CHOICES.items() if set(members) == set(sets))


def _protocols_for(dataset: Dataset, progress: Progress) -> list[str]:
    """``filtered`` and ``grouped`` on data GTZAN's lists can split; else ``grouped`` and ``seed`` (says why).

    ``seed`` is left out beside ``filtered``: on whole clips it only repeats ``grouped``'s optimism, and
    on the default data it would add a third of the time; ``--protocols`` still asks for it.
    """
    try:
        filtered_split(dataset)
    except DataError as error:
        progress.note(f"no filtered protocol: {error.detail if error.subject else error}")
        return ["grouped", "seed"]
    return ["filtered", "grouped"]


def _load_and_configure(
    data: str, *, windows: bool | None, seed: int, n_jobs: int, progress: Progress, features: Sequence[str]
) -> Dataset:
    """The job's data, with the tracking store set up on a thread of its own meanwhile: a new store's
    tables take seconds to create, while extraction works in worker processes."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracking") as setup:
        tracking = setup.submit(configure_tracking)
        dataset = load_data(
            data, windows=windows, seed=seed, n_jobs=n_jobs, progress=progress.live, features=features
        )
        tracking.result()
    return dataset


def _import_tensorflow_for(models: Sequence[str]) -> None:
    """The networks' final fits run in this process: import TensorFlow (seconds) on a thread now, while
    the first runs (knn, svm) fit in the worker processes."""
    if {"nn", "stacking"} & set(models):
        threading.Thread(target=import_keras, name="import TensorFlow", daemon=True).start()


def _reused(run: Run) -> str:
    when = datetime.fromtimestamp(run.info.end_time / 1000).strftime("%Y-%m-%d %H:%M")
    return (
        f"reusing run {run.info.run_id} ({run.info.run_name}, finished {when}): same code, data and "
        "parameters; --force runs it again"
    )


def tune_stacking_job(
    data: str = EMBEDDED,
    *,
    sources: Mapping[str, str] | None = None,
    metric: str = "best_cv_accuracy",
    params: Mapping[str, Any] | None = None,
    protocol: str = "grouped",
    features: str = "gtzan57",
    transform: str = "standard",
    n_splits: int = 10,
    seed: int = 0,
    windows: bool = True,
    n_jobs: int = 1,
) -> TrainResult:
    """The ``tune_stacking`` entry point: the stack built from earlier tuning runs' best parameters.

    ``sources`` maps ``knn``/``svm``/``nn`` to a run id, ``"best"`` or ``"default"`` (see
    ``tuning.tuned_stack_params``); ``params`` adds or overrides stacking parameters such as
    ``final_estimator__C``. ``"best"`` only considers tuning runs on the same data. The run is an
    ordinary ``stacking`` training run plus its provenance: tags ``genre.source.<base>`` with the run
    ids and ``stack_sources.json``; a base tuned on other data is flagged in ``genre.warning``.
    """
    check_protocols([protocol])
    make_model("stacking", params, random_state=seed, features=features, transform=transform)
    configure_tracking()
    dataset = load_data(data, windows=windows, seed=seed, n_jobs=n_jobs, features=resolve_features(features))
    tuned, provenance = tuned_stack_params(sources or {}, metric=metric, data=dataset.name)
    stack_params = {**tuned, **dict(params or {})}
    tags = {f"genre.source.{base}": entry["run_id"] or "default" for base, entry in provenance.items()}
    tags["genre.job"] = "tune_stacking"
    elsewhere = [
        base for base, entry in provenance.items() if entry["run_id"] and entry["data"] != dataset.name
    ]
    if elsewhere:
        tags["genre.warning"] = f"{', '.join(elsewhere)} tuned on other data than {dataset.name}"
        log.warning("%s", tags["genre.warning"])
    return train_run(
        "stacking",
        dataset,
        params=stack_params,
        protocol=protocol,
        features=features,
        transform=transform,
        n_splits=n_splits,
        seed=seed,
        n_jobs=n_jobs,
        tags=tags,
        documents={"stack_sources.json": provenance},
    )
