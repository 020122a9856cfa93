"""Optuna's database storage as genre's workers use it: tables made once, heartbeats that outlive an outage.

Several workers share one study through a database (PostgreSQL for a team). The database may go away
for a moment (a restart, a failover); what that costs is bounded here: a lost connection is told
apart from bad data (:func:`connection_lost`), a heartbeat that fails is retried rather than ending,
and a trial whose worker died has its MLflow run closed (:func:`mark_lost_trial`).
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import mlflow
import optuna
import sqlalchemy.exc

from genre.errors import ConfigError, causes

__all__ = [
    "HEARTBEAT_SECONDS",
    "POLL_SECONDS",
    "STORAGE_PATIENCE_SECONDS",
    "connection_lost",
    "mark_lost_trial",
    "rdb_storage",
    "redacted",
]

#: Seconds between a running trial's heartbeats on database storage. A trial silent for three beats is
#: stale: its worker died, and the next worker to look marks it FAIL (and its MLflow run FAILED).
HEARTBEAT_SECONDS = 20

#: How often a worker waiting for the others' last trials looks at the study again.
POLL_SECONDS = 2.0
#: How long a worker waits for the study's database to answer again (connections lost, a restart)
#: before it gives up.
STORAGE_PATIENCE_SECONDS = 120.0

log = logging.getLogger(__name__)


def rdb_storage(storage: str, heartbeat: int, *, attempts: int = 3) -> optuna.storages.RDBStorage:
    """Optuna's storage on the database ``storage``, with its tables created if need be.

    Workers started together on a new database race to create Optuna's tables (PostgreSQL refuses the
    second ``CREATE TYPE``): a worker that loses tries again, and finds them made.
    """
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return _RDBStorage(
                    storage,
                    # A pooled connection that the database dropped (a restart) is replaced, not used.
                    engine_kwargs={"pool_pre_ping": True},
                    heartbeat_interval=heartbeat,
                    grace_period=3 * heartbeat,
                    heartbeat_stale_trial_callback=mark_lost_trial,
                )
        except Exception as error:  # SQLAlchemy raises its own types for bad URLs or unreachable servers
            if attempt + 1 == attempts:
                raise ConfigError(
                    f"storage {redacted(storage)!r}: cannot open it as an Optuna database ({error})"
                ) from None
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


class _RDBStorage(optuna.storages.RDBStorage):
    """Optuna's database storage whose heartbeats outlive a moment without the database.

    Optuna's heartbeat thread ends at its first failed beat; the trial then looks dead to the other
    workers while it still runs, and is failed under it. Here a beat that fails on a lost connection is
    logged and the next one tries again. And a new trial gets its first heartbeat as it is created:
    Optuna never fails a running trial without one, so a trial whose first beat was lost, and whose
    result could not be stored either, would hold its place in the budget for ever.
    """

    def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        if template_trial is None:  # a running trial, from ``study.ask``
            started = time.monotonic()
            while True:
                try:
                    super().record_heartbeat(trial_id)
                    break
                except Exception as error:
                    if not connection_lost(error) or time.monotonic() - started > STORAGE_PATIENCE_SECONDS:
                        raise
                    time.sleep(POLL_SECONDS)
        return trial_id

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as error:
            if not connection_lost(error):
                raise
            log.warning("heartbeat of trial id %d not recorded: the database did not answer", trial_id)


def connection_lost(error: BaseException) -> bool:
    """Whether ``error`` comes from a lost or refused database connection (not from bad data)."""
    lost = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
    return any(isinstance(link, lost) for link in causes(error))


def mark_lost_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Close the MLflow run of a trial whose worker died (Optuna has just marked the trial FAIL).

    A worker that died between creating the run and recording its id on the trial left only the run's
    tags: it is found by the study's parent and the trial number.
    """
    client = mlflow.MlflowClient()
    run_id = trial.user_attrs.get("mlflow_run_id")
    parent_id = study.user_attrs.get("mlflow_run_id")
    if run_id is None and parent_id is not None:
        found = mlflow.search_runs(
            search_all_experiments=True,
            filter_string=(
                f"tags.mlflow.parentRunId = '{parent_id}' and tags.`optuna.trial` = '{trial.number}'"
            ),
            output_format="list",
        )
        run_id = found[0].info.run_id if found else None
    if run_id is None:
        return  # it died before its run existed
    client.set_tag(run_id, "optuna.state", "FAIL")
    client.set_tag(
        run_id,
        "genre.error",
        f"worker {trial.user_attrs.get('genre.worker', '?')} lost: no heartbeat from this trial",
    )
    client.set_terminated(run_id, "FAILED")


def redacted(url: str | None) -> str:
    """A storage URL without its password, for logging."""
    if not url:
        return "memory"
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "unparsable URL"
