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
from mlflow import MlflowClient
from mlflow.entities import Experiment, RunStatus

from genre import settings

__all__ = [
    "DEFAULT_TRACKING_URI",
    "configure_tracking",
    "follow_launcher",
    "runs_url",
    "take_launcher",
    "tracked_run",
]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: MLflow's Default experiment, where ``mlflow run`` puts its launcher run unless told otherwise.
DEFAULT_EXPERIMENT_ID = "0"
#: The experiment tag that names an experiment's kind, and the model-training (not GenAI) one. The MLflow
#: 3.17 UI does not read it (tests/test_mlflow_ui.py): its view comes from the address's
#: ``workflowType`` or the browser's last choice, hence ``runs_url``.
_KIND, _MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
#: Where ``mlflow ui`` listens by default.
DEFAULT_UI = "http://127.0.0.1:5000"
#: ``mlflow run`` launcher runs that ``configure_tracking`` did not adopt, for the next run to follow.
_LAUNCHERS: list[str] = []


def configure_tracking() -> Experiment:
    """Point MLflow at ``$MLFLOW_TRACKING_URI`` or the local SQLite default; select and return the
    experiment every entry point agrees on.

    That is the user's choice when there is one -- ``MLFLOW_EXPERIMENT_NAME``, or an experiment id that
    ``mlflow run --experiment-name/--experiment-id`` passes -- and ``settings.EXPERIMENT`` otherwise.
    MLflow's Default experiment (id 0) counts as no choice: ``mlflow run`` without ``--experiment-name``
    files its launcher run there, and training in one experiment while ``register`` looks in another
    was the first thing a new user met. A launcher run in another experiment than the chosen one is not
    adopted: the job opens its own run there, and the launcher run says where (``follow_launcher``).
    New experiments are tagged as model-training experiments (``runs_url`` opens them in that view).
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    mlflow.set_tracking_uri(uri)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    chosen_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    client = MlflowClient()
    if name:
        experiment = client.get_experiment_by_name(name)
    elif chosen_id and chosen_id != DEFAULT_EXPERIMENT_ID:
        experiment = client.get_experiment(chosen_id)
    else:
        experiment = client.get_experiment_by_name(settings.EXPERIMENT)
        name = settings.EXPERIMENT
    if experiment is None:
        experiment = client.get_experiment(client.create_experiment(name, tags={_KIND: _MODEL_TRAINING}))
    elif _KIND not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, _KIND, _MODEL_TRAINING)
    mlflow.set_experiment(experiment_id=experiment.experiment_id)  # wins over the environment's choice
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if launcher and client.get_run(launcher).info.experiment_id != experiment.experiment_id:
        _LAUNCHERS.append(os.environ.pop("MLFLOW_RUN_ID"))
    return experiment


def runs_url(experiment_id: str, ui: str = DEFAULT_UI) -> str:
    """The MLflow UI's address of an experiment's runs in its model-training view.

    MLflow 3.17's UI opens an experiment in its GenAI view unless the address says otherwise (or the
    browser chose "Model training" before): the jobs print this link so the first click lands right.
    """
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def take_launcher() -> str | None:
    """The ``mlflow run`` launcher run of this process, taken so that no run adopts or follows it.

    For a job that files the launcher itself (an Optuna worker's run goes under the study's parent).
    """
    return _LAUNCHERS.pop() if _LAUNCHERS else os.environ.pop("MLFLOW_RUN_ID", None)


def follow_launcher(run: mlflow.ActiveRun) -> None:
    """Point an ``mlflow run`` launcher run filed elsewhere (see ``configure_tracking``) at ``run``.

    The launcher keeps what ``mlflow run`` logged (its parameters, the project's entry point, source and
    commit); ``run`` gets copies of them, so either run says how to reproduce the work.
    """
    if not _LAUNCHERS:
        return
    client = MlflowClient()
    launcher = client.get_run(_LAUNCHERS.pop())
    experiment = client.get_experiment(run.info.experiment_id).name
    client.set_tag(launcher.info.run_id, "genre.run_id", run.info.run_id)
    client.set_tag(
        launcher.info.run_id,
        "mlflow.note.content",
        f"The work of this `mlflow run` is run `{run.info.run_id}` in experiment `{experiment}`.",
    )
    copied = {
        k: v for k, v in launcher.data.tags.items() if k.startswith(("mlflow.project.", "mlflow.source."))
    }
    mlflow.set_tags({**copied, "genre.launcher_run_id": launcher.info.run_id})
    mlflow.log_params(launcher.data.params)


def _record_origin() -> None:
    """The ``genre`` command and folder a top-level run came from: what ``genre reproduce`` runs again."""
    command = os.environ.get(settings.COMMAND_ENV)
    if command:
        mlflow.set_tags({"genre.command": command, "genre.cwd": os.getcwd()})


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
        if not kwargs.get("nested") and not kwargs.get("run_id"):  # a new top-level run
            follow_launcher(run)
            _record_origin()
        yield run
    except KeyboardInterrupt:
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    mlflow.end_run(RunStatus.to_string(RunStatus.RUNNING if keep_open else RunStatus.FINISHED))
