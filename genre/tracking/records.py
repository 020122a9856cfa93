"""What a run records besides its scores: the dataset it read, a model's parameters, curves and the model.

Every job logs these the same way, so runs of different jobs compare column for column in the MLflow UI.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FunctionType
from typing import Any

import mlflow
from mlflow.data.pandas_dataset import from_pandas
from mlflow.entities import Metric
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline

import genre
from genre import settings
from genre.data import Dataset
from genre.evaluation import reports

__all__ = ["log_dataset", "log_fitted", "log_history", "log_series", "loggable", "model_params", "plain"]

_BATCH = 1000  # metrics per log_batch request, MLflow's limit


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


def plain(value: Any) -> Any:
    """A parameter value as configurations and run params spell it: a function by its name."""
    return value.__name__ if isinstance(value, FunctionType) else value


def loggable(params: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar ``params`` (functions by name), in key order: what a run can log as parameters.

    Estimator objects among them (a stack's members) are left out; ``get_params(deep=True)`` lists their
    own parameters individually.
    """
    spelled = {key: plain(value) for key, value in sorted(params.items())}
    return {
        key: value
        for key, value in spelled.items()
        if value is None or isinstance(value, (str, int, float, bool))
    }


def model_params(model: Pipeline) -> dict[str, Any]:
    """The estimator's effective hyperparameters as loggable scalars, prefixed ``model.``."""
    return {f"model.{key}": value for key, value in loggable(model.get_params(deep=True)).items()}


def log_series(series: Mapping[str, Sequence[float]], *, run_id: str | None = None) -> None:
    """Metrics with one value per fold or per epoch, at steps 1..n, in as few requests as MLflow takes.

    Step 0 is left to the run's summary metrics (``cv_accuracy_mean``...), which MLflow links to the
    model logged in the run. ``run_id`` defaults to the active run. MLflow takes 1000 metrics a call.
    """
    run_id = run_id or mlflow.active_run().info.run_id
    now = int(time.time() * 1000)
    metrics = [
        Metric(key, float(value), now, step)
        for key, values in series.items()
        for step, value in enumerate(values, start=1)
    ]
    client = mlflow.MlflowClient()
    for start in range(0, len(metrics), _BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + _BATCH])


def log_history(fitted: Pipeline, model_name: str) -> None:
    """Per-epoch curves of a network (the final fit's), as metrics and a PNG; nothing for others."""
    history = getattr(fitted[-1], "history_", None)
    if not history:
        return
    log_series({f"epoch_{key}": values for key, values in history.items()})
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
