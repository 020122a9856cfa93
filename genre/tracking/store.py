"""Where runs go, and how they are opened and closed.

The Model Registry needs a database store, and MLflow 3.17 refuses a plain ``./mlruns`` file store
unless opted in, so the default is ``sqlite:///mlflow.db`` in the working directory (artifacts in
``./mlruns``). ``MLFLOW_TRACKING_URI`` overrides it, as MLflow users expect, and ``mlflow run`` sets it
for the entry points it launches.

A run whose process cannot close it -- killed with SIGKILL, or ending while the tracking server is
unreachable -- would stay RUNNING forever. So every top-level run records the process that opened it
(``genre.process``, ``host:pid``), and the next job to start on that host (``configure_tracking``) marks
the runs of processes that no longer exist FAILED, their open child runs with them
(``close_abandoned_runs``). Runs of other hosts are left alone: no one here can tell whether they still
run.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.entities import Experiment, Run, RunStatus
from mlflow.exceptions import MlflowException

from genre import settings
from genre.errors import TrackingError, causes

__all__ = [
    "DEFAULT_TRACKING_URI",
    "PROCESS_TAG",
    "close_abandoned_runs",
    "configure_tracking",
    "process_id",
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
#: The tag naming the process (``host:pid``) that opened a top-level run and is to close it.
PROCESS_TAG = "genre.process"

log = logging.getLogger(__name__)


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
    Runs left RUNNING in the experiment by ended processes of this host are marked FAILED
    (``close_abandoned_runs``). Raises ``TrackingError``, naming the server, when it does not answer.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    mlflow.set_tracking_uri(uri)
    with _server_errors():
        experiment = _select_experiment()
        close_abandoned_runs(experiment.experiment_id)
    return experiment


def _select_experiment() -> Experiment:
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
        try:
            experiment = client.get_experiment(client.create_experiment(name, tags={_KIND: _MODEL_TRAINING}))
        except MlflowException as error:  # jobs started together on a new store: another one created it
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(name)
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

    A new top-level run records this process (``genre.process``), so that if the process dies without
    closing it, the next job on this host does (``close_abandoned_runs``); a ``keep_open`` run outlives
    its process on purpose and is not recorded. When the tracking server stops answering, the block
    ends with a ``TrackingError`` naming the server and the run (instead of MLflow's traceback): FAILED
    if the server still took that, else left RUNNING for the next job to close.
    """
    top_level = not kwargs.get("nested") and not kwargs.get("run_id")
    if top_level and not keep_open:
        kwargs["tags"] = {**dict(kwargs.get("tags") or {}), PROCESS_TAG: process_id()}
    with _server_errors():
        run = mlflow.start_run(**kwargs)
    try:
        if top_level:  # a new top-level run
            follow_launcher(run)
            _record_origin()
        yield run
    except KeyboardInterrupt as error:
        _end(run, RunStatus.KILLED, error)
        raise
    except BaseException as error:
        _end(run, RunStatus.FAILED, error)
        reason = _server_failure(error)
        if reason and not isinstance(error, TrackingError):
            raise _unreachable(reason, f"run {run.info.run_id} is marked FAILED") from error
        raise
    _end(run, RunStatus.RUNNING if keep_open else RunStatus.FINISHED)


def close_abandoned_runs(experiment_id: str) -> list[str]:
    """Mark FAILED the RUNNING runs of ``experiment_id`` whose process, on this host, no longer exists.

    Such a run was opened by a process killed outright, or one that ended while the tracking server was
    unreachable, so nothing else will ever close it. Its RUNNING descendants (a ``main`` run's children)
    are closed with it, and each gets a ``genre.error`` tag saying why. A process id reused since only
    leaves a run RUNNING longer; a live process's run is never touched. Returns the closed runs' ids.
    """
    host, me = socket.gethostname(), process_id()
    client = MlflowClient()
    try:
        candidates = client.search_runs(
            [experiment_id],
            f"attributes.status = 'RUNNING' and tags.`{PROCESS_TAG}` LIKE '{host}:%'",
            max_results=1000,
        )
    except MlflowException as error:
        if _server_failure(error):
            raise
        log.warning("could not look for abandoned runs: %s", error)
        return []
    closed: list[str] = []
    for run in candidates:
        owner = run.data.tags[PROCESS_TAG]
        owner_host, _, pid = owner.rpartition(":")
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        for abandoned in [run, *_open_descendants(client, run)]:
            client.set_tag(
                abandoned.info.run_id,
                "genre.error",
                f"process {owner} ended without closing this run (killed, or the tracking server did not "
                f"answer when it ended); marked FAILED by process {me}",
            )
            client.set_terminated(abandoned.info.run_id, RunStatus.to_string(RunStatus.FAILED))
            closed.append(abandoned.info.run_id)
    if closed:
        log.warning("marked %d run(s) of ended processes FAILED: %s", len(closed), ", ".join(closed))
    return closed


def _open_descendants(client: MlflowClient, run: Run) -> list[Run]:
    children = client.search_runs(
        [run.info.experiment_id],
        f"attributes.status = 'RUNNING' and tags.`mlflow.parentRunId` = '{run.info.run_id}'",
    )
    return [found for child in children for found in (child, *_open_descendants(client, child))]


def process_id() -> str:
    """This process as runs and trials record it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _end(run: mlflow.ActiveRun, status: int, error: BaseException | None = None) -> None:
    """End the active run ``run`` with ``status``; a ``TrackingError`` if the server does not answer."""
    try:
        mlflow.end_run(RunStatus.to_string(status))
    except MlflowException as failure:
        reason = _server_failure(failure)
        if reason is None:
            raise
        left = f"run {run.info.run_id} is left RUNNING; the next genre job on this host marks it FAILED"
        raise _unreachable(reason, left) from (error or failure)


@contextmanager
def _server_errors() -> Iterator[None]:
    """Turn a tracking server that does not answer into a ``TrackingError`` naming it."""
    try:
        yield
    except MlflowException as error:
        reason = _server_failure(error)
        if reason is None:
            raise
        raise _unreachable(reason) from error


def _unreachable(reason: str, consequence: str | None = None) -> TrackingError:
    detail = f"did not answer ({reason}, after MLflow's retries)"
    return TrackingError(
        f"{detail}; {consequence}" if consequence else detail,
        subject=f"MLflow tracking server {mlflow.get_tracking_uri()}",
    )


def _server_failure(error: BaseException) -> str | None:
    """Why the tracking server failed ``error``'s request, when that is what it is about; else None."""
    for link in causes(error):
        if isinstance(link, TrackingError):
            return link.detail
        if isinstance(link, requests.exceptions.Timeout):
            return "timed out"
        if isinstance(link, requests.exceptions.RetryError):
            return "it kept answering with server errors"
        if isinstance(link, requests.exceptions.ConnectionError):
            return "no connection"
    return None
