"""Tracking: the MLflow store every job uses, runs opened one way, and what a run records.

``store`` says where runs go (``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``) and opens runs that
end KILLED on an interrupt; ``records`` logs a dataset, a model's parameters, its curves and the model.
"""

from genre.tracking.records import (
    log_dataset,
    log_fitted,
    log_history,
    log_series,
    loggable,
    model_params,
    plain,
)
from genre.tracking.store import DEFAULT_TRACKING_URI, configure_tracking, tracked_run

__all__ = [
    "DEFAULT_TRACKING_URI",
    "configure_tracking",
    "log_dataset",
    "log_fitted",
    "log_history",
    "log_series",
    "loggable",
    "model_params",
    "plain",
    "tracked_run",
]
