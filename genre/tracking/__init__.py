"""Tracking: the MLflow store every job uses, runs opened one way, and what a run records.

``store`` says where runs go (``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``) and opens runs that
end KILLED on an interrupt; ``records`` logs a dataset, a model's parameters, its curves and the model;
``reuse`` finds a finished run of the same job on the same code, data and parameters.
"""

from genre.tracking.records import (
    LOGGED_MODEL_TAG,
    log_dataset,
    log_fitted,
    log_history,
    log_series,
    loggable,
    logged_model_uri,
    model_params,
    plain,
    trusted_pickle,
)
from genre.tracking.reuse import code_fingerprint, data_digest, finished_run, run_key, source_tags
from genre.tracking.store import (
    DEFAULT_TRACKING_URI,
    configure_tracking,
    process_id,
    runs_url,
    take_launcher,
    tracked_run,
)

__all__ = [
    "DEFAULT_TRACKING_URI",
    "LOGGED_MODEL_TAG",
    "code_fingerprint",
    "data_digest",
    "finished_run",
    "logged_model_uri",
    "process_id",
    "run_key",
    "runs_url",
    "source_tags",
    "take_launcher",
    "trusted_pickle",
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
