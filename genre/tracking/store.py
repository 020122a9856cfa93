"""Where runs go, and how they are opened and closed.

The Model Registry needs a database store, and MLflow 3.17 refuses a plain ``./mlruns`` file store
unless opted in, so the default is ``sqlite:///mlflow.db`` in the working directory (artifacts in
``./mlruns``). ``MLFLOW_TRACKING_URI`` overrides it, as MLflow users expect, and ``mlflow run`` sets it
for the entry points it launches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
from mlflow.entities import RunStatus

__all__ = ["DEFAULT_TRACKING_URI", "configure_tracking", "tracked_run"]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def configure_tracking(experiment: str | None = None) -> str:
    """Point MLflow at ``$MLFLOW_TRACKING_URI`` or the local SQLite default; select ``experiment``.

    Returns the tracking URI in use. When running under ``mlflow run`` the runner has already chosen
    the experiment (``MLFLOW_EXPERIMENT_ID``), and ``MLFLOW_EXPERIMENT_NAME`` wins over ``experiment``.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    mlflow.set_tracking_uri(uri)
    chosen_by_env = any(
        os.environ.get(v) for v in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")
    )
    if experiment and not chosen_by_env:
        mlflow.set_experiment(experiment)
    return uri


@contextmanager
def tracked_run(*, keep_open: bool = False, **kwargs: object) -> Iterator[mlflow.ActiveRun]:
    """``mlflow.start_run(**kwargs)`` that ends an interrupted run as KILLED rather than FAILED.

    Every run genre opens goes through here. ``mlflow.start_run`` marks every exception FAILED; a job
    stopped by Ctrl-C or ``kill`` (the CLI turns SIGTERM into ``KeyboardInterrupt``) was killed, and the
    UI should say so. Children finished before the interruption keep their FINISHED status. With
    ``keep_open`` a block that ends normally leaves the run RUNNING (an Optuna study's parent, which its
    trials, in any worker, name explicitly).
    """
    run = mlflow.start_run(**kwargs)
    try:
        yield run
    except KeyboardInterrupt:
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    mlflow.end_run(RunStatus.to_string(RunStatus.RUNNING if keep_open else RunStatus.FINISHED))
