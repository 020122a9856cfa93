"""What a run records besides its scores: the dataset it read, a model's parameters, curves and the model.

Every job logs these the same way, so runs of different jobs compare column for column in the MLflow UI.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from types import FunctionType
from typing import Any

import mlflow
from mlflow.data.pandas_dataset import from_pandas
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline

import genre
from genre import settings
from genre.data import Dataset
from genre.evaluation import reports

__all__ = ["log_dataset", "log_fitted", "log_history", "model_params"]


def log_dataset(dataset: Dataset, *, context: str = "training") -> None:
    """Record ``dataset`` as an input of the active run (source and digest, via ``mlflow.data``).

    Also logs its counts (rows, tracks, classes, windowed) as run parameters so runs on different data
    can be told apart in the runs table.
    """
    with warnings.catch_warnings():
        # A local path matches MLflow's local-artifact resolver twice; it picks the right one and warns.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        logged = from_pandas(
            dataset.frame,
            source=str(Path(dataset.source).resolve()),
            targets="label",
            name=dataset.name,
        )
    mlflow.log_input(logged, context=context)
    mlflow.log_params(dataset.summary())


def model_params(model: Pipeline) -> dict[str, Any]:
    """The estimator's effective hyperparameters as loggable scalars, prefixed ``model.``.

    Nested estimators are expanded by scikit-learn's ``get_params(deep=True)``; estimator objects
    themselves (not loggable) are skipped, their parameters are listed individually. A function value
    (``weights=inverse_square``) is logged by its name, the name a configuration uses for it.
    """
    params = model.get_params(deep=True)
    loggable = {
        key: value.__name__ if isinstance(value, FunctionType) else value for key, value in params.items()
    }
    return {
        f"model.{key}": value
        for key, value in sorted(loggable.items())
        if value is None or isinstance(value, (str, int, float, bool))
    }


def log_history(fitted: Pipeline, model_name: str) -> None:
    """Per-epoch curves of a network (the final fit's), as metrics and a PNG; nothing for others."""
    history = getattr(fitted[-1], "history_", None)
    if not history:
        return
    for key, values in history.items():
        for epoch, value in enumerate(values):
            mlflow.log_metric(f"epoch_{key}", float(value), step=epoch)
    stopped = getattr(fitted[-1], "stopped_epoch_", None)
    if stopped is not None:
        mlflow.log_metric("stopped_epoch", int(stopped))
    with tempfile.TemporaryDirectory() as tmp:
        path = reports.curves_png(
            history, Path(tmp) / "training_curves.png", title=f"{model_name}: final fit"
        )
        mlflow.log_artifact(str(path))


def log_fitted(fitted: Pipeline, train: Dataset) -> None:
    """Log ``fitted`` as the run's ``model``, with a signature and an input example from ``train``."""
    example = train.X.head(5)
    signature = infer_signature(example, fitted.predict(example))
    mlflow.sklearn.log_model(
        fitted,
        name="model",
        serialization_format="cloudpickle",
        signature=signature,
        input_example=example,
        pip_requirements=settings.MODEL_REQUIREMENTS,
        code_paths=[str(Path(genre.__file__).parent)],
    )
