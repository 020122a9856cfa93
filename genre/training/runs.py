"""MLflow-tracked training: one run per model that leaves a complete, comparable record.

``train_run`` is what the ``knn``, ``svm``, ``nn`` and ``stacking`` entry points call. Every run logs
the same things under the same names, so the MLflow UI compares them side by side:

* params: every effective hyperparameter (``model.*``), the data (``data.*``), protocol, seed and folds
  (``cv.*``). The prefixes keep them apart from the raw values ``mlflow run`` logs under the MLproject
  parameter names, which MLflow would refuse to see logged again with another spelling;
* tags: ``genre.model``, ``genre.protocol`` and what the protocol measures;
* metrics: ``cv_<score>`` per fold (steps 1..k), ``cv_<score>_mean`` / ``_std``, ``test_<score>`` when
  the protocol has a held-out set, and for the MLP ``epoch_<loss|accuracy|...>`` (step = epoch);
* artifacts: ``confusion_matrix.png``, ``classification_report.{json,txt}``, ``cv_folds.csv``, the MLP's
  ``training_curves.png``, and the fitted model (trained on all training rows) under ``model``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from sklearn.pipeline import Pipeline

from genre import models
from genre.data import Dataset
from genre.evaluation import PROTOCOLS, Evaluation, evaluate, fit_model, reports
from genre.tracking import log_dataset, log_fitted, log_history, log_series, model_params, tracked_run

__all__ = ["TrainResult", "train_run"]


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
    n_splits: int = 10,
    seed: int = 0,
    n_jobs: int = 1,
    log_model: bool = True,
    tags: Mapping[str, str] | None = None,
    documents: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Evaluate ``model_name`` on ``dataset`` under ``protocol``, fit it on all training rows, log it.

    Opens a run (nested under the active one, if any). The model and its parameters are validated
    before any training, so a bad option fails in a second with a ``ConfigError``. ``tags`` are added
    to the run's, and each of ``documents`` (file name -> JSON-able value) is logged as a JSON
    artifact: how callers record where a model's parameters came from. ``n_jobs`` folds are fitted at
    once, each in its own process; the numbers do not depend on it.
    """
    model = models.make_model(model_name, dict(params or {}), random_state=seed)
    with tracked_run(run_name=f"{model_name}-{protocol}", nested=mlflow.active_run() is not None) as run:
        mlflow.set_tags(
            {
                "genre.job": "train",  # callers' tags (tune_stacking's) replace it
                "genre.model": model_name,
                "genre.protocol": protocol,
                "genre.protocol_description": PROTOCOLS[protocol],
                "genre.leaky": str(protocol == "seed" and dataset.windowed).lower(),
            }
        )
        mlflow.log_params(
            {"model.name": model_name, "cv.protocol": protocol, "cv.seed": seed, "cv.folds": n_splits}
        )
        mlflow.log_params(model_params(model))
        mlflow.set_tags(dict(tags or {}))
        for name, document in (documents or {}).items():
            mlflow.log_dict(document, name)
        log_dataset(dataset)

        evaluation = evaluate(model, dataset, protocol, n_splits=n_splits, seed=seed, n_jobs=n_jobs)
        _log_evaluation(evaluation, dataset, title=f"{model_name} ({protocol})")

        train = dataset.subset(evaluation.train_rows)
        fitted = evaluation.fitted if evaluation.fitted is not None else fit_model(model, train)
        log_history(fitted, model_name)
        if log_model:
            log_fitted(fitted, train)
    return TrainResult(run.info.run_id, model_name, evaluation, fitted)


def _log_evaluation(evaluation: Evaluation, dataset: Dataset, *, title: str) -> None:
    folds = evaluation.folds.drop(columns="fold")
    log_series({f"cv_{name}": folds[name].tolist() for name in folds.columns})
    mlflow.log_metrics(evaluation.summary())
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
