"""The ``knn``, ``svm``, ``nn``, ``stacking``, ``main`` and ``tune_stacking`` entry points."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from genre.data import EMBEDDED, Dataset
from genre.evaluation import check_protocols, markdown_table
from genre.features import load_data
from genre.models import MODEL_NAMES, make_model
from genre.settings import EXPERIMENT
from genre.tracking import configure_tracking, log_dataset, tracked_run
from genre.training import TrainResult, train_run
from genre.tuning import tuned_stack_params

__all__ = ["main_job", "train_job", "tune_stacking_job"]

log = logging.getLogger(__name__)


def train_job(
    model_name: str,
    data: str = EMBEDDED,
    *,
    params: Mapping[str, Any] | None = None,
    protocol: str = "grouped",
    n_splits: int = 10,
    seed: int = 0,
    windows: bool = True,
    n_jobs: int = 1,
) -> TrainResult:
    """The ``knn``, ``svm``, ``nn`` and ``stacking`` entry points: train and record one model.

    The model and its ``params`` are checked before the data is even loaded, so an unknown option or an
    impossible value fails at once with a ``ConfigError``.
    """
    make_model(model_name, params, random_state=seed)
    check_protocols([protocol])
    configure_tracking(EXPERIMENT)
    dataset = load_data(data, windows=windows, seed=seed, n_jobs=n_jobs)
    return train_run(
        model_name, dataset, params=params, protocol=protocol, n_splits=n_splits, seed=seed, n_jobs=n_jobs
    )


def main_job(
    data: str = EMBEDDED,
    *,
    models: Sequence[str] = MODEL_NAMES,
    protocols: Sequence[str] = ("grouped", "seed"),
    n_splits: int = 10,
    seed: int = 0,
    windows: bool = True,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """The README's main command: every model under every protocol, one parent run, a comparison table.

    Each (model, protocol) pair is a nested child run with the full record of ``train_run``; the parent
    holds the dataset and ``comparison.csv`` / ``comparison.md``, and the table is returned. Default
    data is the embedded set; protocols default to both, so the leaky ``seed`` figure always stands
    beside the honest ``grouped`` one.
    """
    for name in models:
        make_model(name, random_state=seed)
    check_protocols(protocols)
    configure_tracking(EXPERIMENT)
    dataset = load_data(data, windows=windows, seed=seed, n_jobs=n_jobs)
    rows = []
    with tracked_run(run_name="main"):
        mlflow.set_tags({"genre.job": "main"})
        mlflow.log_params(
            {
                "main.models": ",".join(models),
                "main.protocols": ",".join(protocols),
                "cv.seed": seed,
                "cv.folds": n_splits,
            }
        )
        log_dataset(dataset)
        for protocol in protocols:
            for name in models:
                started = time.perf_counter()
                result = train_run(
                    name, dataset, protocol=protocol, n_splits=n_splits, seed=seed, n_jobs=n_jobs
                )
                rows.append(_comparison_row(result, dataset, time.perf_counter() - started))
        table = pd.DataFrame(rows)
        with tempfile.TemporaryDirectory() as tmp:
            table.to_csv(Path(tmp) / "comparison.csv", index=False)
            (Path(tmp) / "comparison.md").write_text(markdown_table(table) + "\n")
            mlflow.log_artifacts(tmp)
    return table


def _comparison_row(result: TrainResult, dataset: Dataset, seconds: float) -> dict[str, object]:
    summary = result.evaluation.summary()
    protocol = result.evaluation.protocol
    row: dict[str, object] = {
        "model": result.model_name,
        "protocol": protocol + (" (leaky)" if protocol == "seed" and dataset.windowed else ""),
        "cv_accuracy": summary["cv_accuracy_mean"],
        "cv_accuracy_std": summary["cv_accuracy_std"],
        "cv_f1_macro": summary["cv_f1_macro_mean"],
        "test_accuracy": summary.get("test_accuracy", float("nan")),
    }
    if dataset.windowed:
        row["cv_track_accuracy"] = summary["cv_track_accuracy_mean"]
    row["seconds"] = seconds
    row["run_id"] = result.run_id
    return row


def tune_stacking_job(
    data: str = EMBEDDED,
    *,
    sources: Mapping[str, str] | None = None,
    metric: str = "best_cv_accuracy",
    params: Mapping[str, Any] | None = None,
    protocol: str = "grouped",
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
    make_model("stacking", params, random_state=seed)
    configure_tracking(EXPERIMENT)
    dataset = load_data(data, windows=windows, seed=seed, n_jobs=n_jobs)
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
        n_splits=n_splits,
        seed=seed,
        n_jobs=n_jobs,
        tags=tags,
        documents={"stack_sources.json": provenance},
    )
