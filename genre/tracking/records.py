"""What a run records besides its scores: the dataset it read, a model's parameters, curves and the model.

Every job logs these the same way, so runs of different jobs compare column for column in the MLflow UI.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FunctionType
from typing import Any

import mlflow
from mlflow.data.pandas_dataset import PandasDataset, from_pandas
from mlflow.entities import Metric, Run
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo
from sklearn.pipeline import Pipeline

import genre
from genre import settings
from genre.data import LABEL_COLUMN, Dataset
from genre.evaluation import reports

__all__ = [
    "LOGGED_MODEL_TAG",
    "log_dataset",
    "log_fitted",
    "log_history",
    "log_series",
    "loggable",
    "logged_model_uri",
    "model_params",
    "plain",
    "trusted_pickle",
]

#: The run tag naming the model a run logged.
LOGGED_MODEL_TAG = "genre.logged_model"

_BATCH = 1000  # metrics per log_batch request, MLflow's limit


def log_dataset(
    dataset: Dataset, *, context: str = "train", name: str | None = None, params: bool = True
) -> PandasDataset:
    """Record ``dataset`` as an input of the active run in ``context`` (``train``, ``test``), and return it.

    The MLflow dataset (source, digest, the label column as targets) can then be linked to metrics and
    evaluated on. With ``params``, the counts (rows, tracks, classes, windowed) are logged as run
    parameters too, so runs on different data can be told apart in the runs table.
    """
    with warnings.catch_warnings():
        # A local path matches MLflow's local-artifact resolver twice; it picks the right one and warns.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        logged = from_pandas(
            dataset.frame.loc[:, [*dataset.X.columns, LABEL_COLUMN]],  # what a model sees, and its target
            source=str(Path(dataset.source).resolve()),
            targets=LABEL_COLUMN,
            name=name or dataset.name,
        )
    mlflow.log_input(logged, context=context)
    if params:
        mlflow.log_params(dataset.summary())
    return logged


def plain(value: Any) -> Any:
    """A parameter value as configurations and run params spell it: a function by its name, a
    cross-validation splitter (a stack's inner folds) by its ``repr``."""
    if isinstance(value, FunctionType):
        return value.__name__
    if hasattr(value, "split") and hasattr(value, "get_n_splits"):
        return repr(value)
    return value


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


def log_fitted(fitted: Pipeline, train: Dataset, *, name: str) -> ModelInfo:
    """Log ``fitted`` as the run's logged model ``name``, with a signature and an input example.

    The name says what the model is (``stacking-grouped``, ``svm-grid``): the MLflow UI lists logged
    models by name. The run records it (tag ``genre.logged_model``) for ``logged_model_uri``.
    """
    example = train.X.head(5)
    signature = infer_signature(example, fitted.predict(example))
    with trusted_pickle():
        info = mlflow.sklearn.log_model(
            fitted,
            name=name,
            serialization_format="cloudpickle",
            signature=signature,
            input_example=example,
            pip_requirements=settings.MODEL_REQUIREMENTS,
            code_paths=[str(Path(genre.__file__).parent)],
        )
    mlflow.set_tag(LOGGED_MODEL_TAG, name)
    return info


def logged_model_uri(run: Run) -> str:
    """The URI of the model a training run logged (``runs:/<id>/<name>``)."""
    return f"runs:/{run.info.run_id}/{run.data.tags.get(LOGGED_MODEL_TAG, 'model')}"


@contextmanager
def trusted_pickle() -> Iterator[None]:
    """Leave out MLflow's warning that pickled models can run code when loaded, while genre logs its own.

    The warning is about unpickling models from untrusted sources; the models logged here are the
    package's own estimators, and the registry docs say once who may register a model (docs/registry.md).
    """
    quiet = _WithoutPickleWarning()
    loggers = [logging.getLogger(name) for name in ("mlflow.sklearn", "mlflow.pyfunc")]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


class _WithoutPickleWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "requires exercising caution" not in record.getMessage()
