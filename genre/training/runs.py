"""MLflow-tracked training: one run per model that leaves a complete, comparable record.

``train_run`` is what the ``knn``, ``svm``, ``nn`` and ``stacking`` entry points call. Every run logs
the same things under the same names, so the MLflow UI compares them side by side:

* name ``<model>-<protocol>`` (``<model>-<features>-<protocol>`` on other features than the 57), and
  a description (the run's note) saying what it is and what it scored;
* params: every effective hyperparameter (``model.*``), the feature sets (``model.features``), the data
  (``data.*``), protocol, seed and folds (``cv.*``). The prefixes keep them apart from the raw values
  ``mlflow run`` logs under the MLproject parameter names, which MLflow would refuse to see logged
  again with another spelling;
* tags: ``genre.model``, ``genre.protocol`` and what the protocol measures, and where the code came
  from (``genre.code_version``, ``genre.git_commit``, ``genre.git_dirty``);
* inputs: the training rows (context ``train``) and, for ``filtered`` and ``seed``, the held-out rows
  (``test``);
* metrics: ``cv_<score>`` per fold (steps 1..k); ``cv_<score>_mean`` / ``_std`` and ``test_<score>``
  at step 0, linked to the logged model and the training data; for the MLP ``epoch_*`` curves
  (steps 1..n); with a held-out test, ``mlflow.models.evaluate``'s classifier metrics and plots;
* artifacts: ``confusion_matrix.png``, ``classification_report.{json,txt}``, ``cv_folds.csv``, the MLP's
  ``training_curves.png``, and the fitted model (trained on all training rows), named ``<model>-<protocol>``.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.models.model import ModelInfo
from sklearn.pipeline import Pipeline

from genre import models
from genre.data import Dataset
from genre.data.schema import resolve_features
from genre.evaluation import HELD_OUT, PROTOCOLS, Evaluation, evaluate, reports
from genre.progress import Progress, Task
from genre.tracking import (
    log_dataset,
    log_fitted,
    log_history,
    log_series,
    model_params,
    source_tags,
    tracked_run,
)

__all__ = ["TrainResult", "describe_run", "progress_label", "run_name", "train_run"]


@dataclass(frozen=True)
class TrainResult:
    """A finished training run: its id, the evaluation, and the model fitted on all training rows."""

    run_id: str
    model_name: str
    evaluation: Evaluation
    model: Pipeline


def train_run(
    model_name: str,
    dataset: Dataset,
    *,
    params: Mapping[str, Any] | None = None,
    protocol: str = "grouped",
    features: str = "gtzan57",
    transform: str = "standard",
    n_splits: int = 10,
    seed: int = 0,
    n_jobs: int = 1,
    log_model: bool = True,
    tags: Mapping[str, str] | None = None,
    documents: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    task: Task | None = None,
) -> TrainResult:
    """Evaluate ``model_name`` on ``dataset`` under ``protocol``, fit it on all training rows, log it.

    Opens a run (nested under the active one, if any). The model and its parameters are validated
    before any training, so a bad option fails in a second with a ``ConfigError``. ``tags`` are added
    to the run's, and each of ``documents`` (file name -> JSON-able value) is logged as a JSON
    artifact: how callers record where a model's parameters came from. ``n_jobs`` folds are fitted at
    once, each in its own process; the numbers do not depend on it. ``progress`` hears of every fit
    (``task``, planned by the caller, or one planned here). The model is given the feature sets
    ``features`` names (``gtzan57``, ``musicnn`` or ``both``), which ``dataset`` must hold, through the
    feature ``transform`` (``standard``, ``logvar``, ``levelfree``: see ``make_model``).
    """
    model = models.make_model(
        model_name, dict(params or {}), random_state=seed, features=features, transform=transform
    )
    dataset = dataset.with_features(resolve_features(features))
    name = run_name(model_name, protocol, features)
    progress = progress or Progress(quiet=True)
    task = task or progress.plan(progress_label(model_name, protocol, features), model_name, n_splits + 1)
    started = time.perf_counter()
    with tracked_run(run_name=name, nested=mlflow.active_run() is not None) as run:
        mlflow.set_tags(
            {
                "genre.job": "train",  # callers' tags (tune_stacking's) replace it
                "genre.model": model_name,
                "genre.features": features,
                "genre.protocol": protocol,
                "genre.protocol_description": PROTOCOLS[protocol],
                "genre.leaky": str(protocol == "seed" and dataset.windowed).lower(),
                **source_tags(),
            }
        )
        mlflow.log_params(
            {
                "model.name": model_name,
                "model.features": features,
                "model.transform": transform,
                "cv.protocol": protocol,
                "cv.seed": seed,
                "cv.folds": n_splits,
            }
        )
        mlflow.log_params(model_params(model))
        mlflow.set_tags(dict(tags or {}))
        for document_name, document in (documents or {}).items():
            mlflow.log_dict(document, document_name)

        progress.start(task)
        evaluation = evaluate(
            model, dataset, protocol, n_splits=n_splits, seed=seed, n_jobs=n_jobs, on_fits=progress.advance
        )
        train = dataset.subset(evaluation.train_rows)
        test = None if evaluation.test_rows is None else dataset.subset(evaluation.test_rows)
        if test is None:
            logged = log_dataset(train)
        else:  # the two parts, and the counts of the whole table as a grouped run logs them
            logged = log_dataset(train, name=f"{dataset.name}-train", params=False)
            logged_test = log_dataset(test, context="test", name=f"{dataset.name}-test", params=False)
            mlflow.log_params({**dataset.summary(), "data.rows_outside_split": evaluation.dropped_rows})
        fitted = evaluation.fitted
        _log_evaluation(evaluation, dataset, title=f"{model_name} ({protocol})")
        log_history(fitted, model_name)
        info = log_fitted(fitted, train, name=name) if log_model else None
        summary = evaluation.summary()
        model_id = info.model_id if info else None
        cv = {key: value for key, value in summary.items() if not key.startswith("test_")}
        mlflow.log_metrics(cv, model_id=model_id, dataset=logged)
        if test is not None:
            held_out = {key: value for key, value in summary.items() if key.startswith("test_")}
            mlflow.log_metrics(held_out, model_id=model_id, dataset=logged_test)
            if info is not None:
                _evaluate_on_test(info, logged_test)
        mlflow.set_tag(
            "mlflow.note.content", describe_run(model_name, protocol, dataset, evaluation, features=features)
        )
    progress.finish(_summary_line(summary, dataset, time.perf_counter() - started))
    return TrainResult(run.info.run_id, model_name, evaluation, fitted)


def progress_label(model_name: str, protocol: str, features: str = "gtzan57") -> str:
    """How progress lines name a run: ``svm (grouped)``, ``svm on musicnn (filtered)``."""
    return (
        f"{model_name} ({protocol})" if features == "gtzan57" else f"{model_name} on {features} ({protocol})"
    )


def run_name(model_name: str, protocol: str, features: str = "gtzan57") -> str:
    """``svm-grouped``, or ``svm-musicnn-filtered`` on other features than the 57: what a run and its
    logged model are called."""
    return f"{model_name}-{protocol}" if features == "gtzan57" else f"{model_name}-{features}-{protocol}"


def describe_run(
    model_name: str, protocol: str, dataset: Dataset, evaluation: Evaluation, *, features: str = "gtzan57"
) -> str:
    """The run's description in the MLflow UI (markdown): the model, the protocol, the data, the scores."""
    summary = evaluation.summary()
    folds = len(evaluation.folds)
    held_out = "" if evaluation.test is None else f", then tested on {HELD_OUT[protocol]}"
    lines = [
        f"**{model_name}** ({models.describe(model_name, features)}) under the **{protocol}** protocol: "
        f"{folds}-fold CV, {PROTOCOLS[protocol]}{held_out}.",
        "",
        f"Data: `{dataset.name}`, {len(dataset.frame)} {'windows' if dataset.windowed else 'rows'} of "
        f"{dataset.frame['track'].nunique()} tracks, {len(dataset.labels)} classes.",
        "",
        "| score | cv (mean ± std) | test |",
        "|---|---|---|",
    ]
    for score in evaluation.folds.columns.drop("fold"):
        test = summary.get(f"test_{score}")
        lines.append(
            f"| {score} | {summary[f'cv_{score}_mean']:.3f} ± {summary[f'cv_{score}_std']:.3f} | "
            f"{'-' if test is None else f'{test:.3f}'} |"
        )
    if protocol == "seed" and dataset.windowed:
        lines += ["", "Leaky on windows: windows of one track fall on both sides of the split."]
    if evaluation.dropped_rows:
        lines += ["", f"{evaluation.dropped_rows} rows of tracks outside GTZAN's lists were left out."]
    return "\n".join(lines)


def _summary_line(summary: Mapping[str, float], dataset: Dataset, seconds: float) -> str:
    track = f", track accuracy {summary['cv_track_accuracy_mean']:.3f}" if dataset.windowed else ""
    return (
        f"cv accuracy {summary['cv_accuracy_mean']:.3f} ± {summary['cv_accuracy_std']:.3f}{track} "
        f"({seconds:.1f} s)"
    )


def _evaluate_on_test(info: ModelInfo, test: PandasDataset) -> None:
    """``mlflow.models.evaluate`` of the logged model on the held-out rows: MLflow's classifier metrics
    (accuracy, F1, log loss, ROC AUC...) and plots, on the logged model and the test data."""
    with warnings.catch_warnings():  # SHAP and similar optional extras it does not find
        warnings.simplefilter("ignore")
        mlflow.models.evaluate(
            info.model_uri,
            test,
            model_type="classifier",
            evaluators="default",
            evaluator_config={"log_model_explainability": False},  # SHAP needs numeric labels
        )


def _log_evaluation(evaluation: Evaluation, dataset: Dataset, *, title: str) -> None:
    folds = evaluation.folds.drop(columns="fold")
    log_series({f"cv_{name}": folds[name].tolist() for name in folds.columns})
    what = "held-out test" if evaluation.test is not None else "out-of-fold predictions"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        reports.confusion_matrix_png(
            evaluation.y_true,
            evaluation.y_pred,
            dataset.labels,
            folder / "confusion_matrix.png",
            title=f"{title}: {what}",
        )
        reports.class_report_files(evaluation.y_true, evaluation.y_pred, dataset.labels, folder)
        evaluation.folds.to_csv(folder / "cv_folds.csv", index=False)
        mlflow.log_artifacts(tmp)
