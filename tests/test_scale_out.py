"""A team's setup on one machine: PostgreSQL, an MLflow tracking server on it with its own artifact root,
the entry points and the registry against that server, and Optuna workers sharing a study.

Real services on loopback, started once per module: PostgreSQL from Debian's packages (by
``scripts/local-postgres.sh``) and ``mlflow server``. Marked ``integration``: ``pytest -m integration``,
which ``.ci/run`` runs after installing what it needs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from genre.data.schema import FEATURE_COLUMNS
from genre.features import load_data
from genre.tuning import load_search_config, open_study, optimize
from tests.conftest import GTZAN_30, GTZAN_AUDIO, require
from tests.processes import BIN, child_env, free_port, wait_http

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@dataclass(frozen=True)
class Services:
    postgres: str  # postgresql://user@host:port, databases "mlflow" and "optuna"
    tracking_uri: str
    artifacts: Path  # the server's artifact root, apart from its database
    work: Path


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    """PostgreSQL and ``mlflow server --backend-store-uri postgresql://... --artifacts-destination DIR``."""
    if shutil.which("initdb") is None and not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.skip("no PostgreSQL server installed (apt-get install postgresql; .ci/run does this)")
    # PostgreSQL runs as its own user when we are root, so its directory is not under pytest's tmp_path.
    base = Path(tempfile.mkdtemp(prefix="genre-scale-"))
    base.chmod(0o755)
    script = ROOT / "scripts" / "local-postgres.sh"
    started = subprocess.run(
        [str(script), "start", str(base / "pg"), str(free_port())],
        capture_output=True,
        text=True,
        check=False,
    )
    if started.returncode:
        pytest.fail(f"PostgreSQL did not start:\n{started.stderr}")
    postgres = started.stdout.strip()
    port = free_port()
    log = base / "mlflow-server.log"
    server = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"{postgres}/mlflow",
            "--artifacts-destination",
            str(base / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=base,
        env=child_env(),
    )
    tracking_uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{tracking_uri}/health", server, log)
        work = base / "work"
        work.mkdir()
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
            patch.chdir(work)
            mlflow.set_tracking_uri(tracking_uri)
            yield Services(postgres, tracking_uri, base / "artifacts", work)
    finally:
        mlflow.set_tracking_uri(None)
        _stop(server)
        subprocess.run([str(script), "stop", str(base / "pg")], check=False)
        shutil.rmtree(base, ignore_errors=True)


def _mlflow_run(services: Services, entry_point: str, **params: object) -> subprocess.CompletedProcess:
    command = [str(BIN / "mlflow"), "run", str(ROOT), "-e", entry_point, "--env-manager", "local"]
    for name, value in params.items():
        command += ["-P", f"{name}={value}"]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        cwd=services.work,
        env=child_env(MLFLOW_TRACKING_URI=services.tracking_uri),
        timeout=900,
    )


def _runs(**tags: str) -> list[mlflow.entities.Run]:
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    return mlflow.search_runs(search_all_experiments=True, filter_string=query, output_format="list")


# --- the entry points and the registry against the server -------------------------------------------


@pytest.fixture(scope="module")
def small_csv(services) -> Path:
    """Ten tracks per genre of the real GTZAN CSV: every entry point in seconds, not minutes."""
    frame = pd.read_csv(require(GTZAN_30))
    small = frame.groupby("label", group_keys=False).head(10)
    path = services.work / "gtzan_small.csv"
    small.to_csv(path, index=False)
    return path


@dataclass(frozen=True)
class EntryPoints:
    done: dict[str, subprocess.CompletedProcess]
    stack_run_id: str  # the stacking run that the register entry point registered


@pytest.fixture(scope="module")
def entry_points(services, small_csv) -> EntryPoints:
    """Every MLproject entry point run by ``mlflow run`` against the server, two at a time."""
    data = str(small_csv)
    fast_nn = {"hidden_layers": 2, "units": 32, "epochs": 20}
    first = {
        "main": {"data": data, "models": "knn,svm", "protocols": "grouped", "folds": 3},
        "extract_features": {"data": str(require(GTZAN_AUDIO) / "blues"), "out": "features.csv"},
        "knn": {"data": data, "folds": 3},
        "svm": {"data": data, "folds": 3},
        "nn": {"data": data, "folds": 3, **fast_nn},
        "stacking": {"data": data, "folds": 3, "nn__epochs": 20},
        "tune_grid": {"config": "experiments/grid/knn.yaml", "data": data, "folds": 3},
        "tune_optuna": {
            "config": "experiments/optuna/svm.yaml",
            "data": data,
            "n_trials": 4,
            "folds": 3,
            "storage": f"{services.postgres}/optuna",
        },
    }
    with ThreadPoolExecutor(2) as pool:
        done = dict(
            zip(first, pool.map(lambda name: _mlflow_run(services, name, **first[name]), first), strict=True)
        )
    failed = {name: run.stderr[-2000:] for name, run in done.items() if run.returncode}
    assert not failed, failed
    (stack,) = _runs(**{"genre.job": "train", "genre.model": "stacking"})
    second = {
        "tune_stacking": {
            "data": data,
            "folds": 3,
            "knn_run": "best",
            "svm_run": "best",
            "nn_run": "default",
        },
        "register": {"run_id": stack.info.run_id},
    }
    with ThreadPoolExecutor(2) as pool:
        done |= dict(
            zip(
                second,
                pool.map(lambda name: _mlflow_run(services, name, **second[name]), second),
                strict=True,
            )
        )
    return EntryPoints(done, stack.info.run_id)


def test_every_entry_point_runs_unchanged_against_the_server(services, entry_points):
    declared = set(yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"])
    assert declared <= set(entry_points.done) | {"score"}, declared - set(entry_points.done)
    for name, done in entry_points.done.items():
        assert done.returncode == 0, f"{name}:\n{done.stderr[-3000:]}"
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert {"train", "tune_grid", "tune_optuna", "tune_stacking", "extract_features"} <= {
        r.data.tags.get("genre.job") for r in runs
    }
    # Artifacts went through the server into its own artifact root, nothing into the client's directory.
    knn = _runs(**{"genre.job": "train", "genre.model": "knn"})[0]
    assert knn.info.artifact_uri.startswith("mlflow-artifacts:")
    names = {f.path for f in mlflow.MlflowClient().list_artifacts(knn.info.run_id)}
    assert "confusion_matrix.png" in names
    assert list(services.artifacts.rglob("confusion_matrix.png"))
    assert not (services.work / "mlruns").exists() and not (services.work / "mlflow.db").exists()


def test_the_registry_aliases_and_serving_work_against_the_server(services, entry_points, small_csv):
    registered = entry_points.done["register"]
    assert registered.returncode == 0, registered.stderr[-3000:]
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias("genre-classifier", "champion")
    source = mlflow.get_run(champion.run_id).data.tags["genre.source_run_id"]
    assert source == entry_points.stack_run_id and "accuracy" in (champion.description or "")
    # genre promote moves champion to another version and keeps the old one as previous.
    second = mlflow.register_model(champion.source, "genre-classifier")
    promoted = subprocess.run(
        [str(BIN / "genre"), "promote", second.version],
        capture_output=True,
        text=True,
        check=False,
        env=child_env(MLFLOW_TRACKING_URI=services.tracking_uri),
        cwd=services.work,
    )
    assert promoted.returncode == 0, promoted.stderr
    assert client.get_model_version_by_alias("genre-classifier", "champion").version == second.version
    assert client.get_model_version_by_alias("genre-classifier", "previous").version == champion.version

    port = free_port()
    log = services.work / "serve.log"
    server = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            "models:/genre-classifier@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=services.work,
        env=child_env(MLFLOW_TRACKING_URI=services.tracking_uri),
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", server, log)
        rows = pd.read_csv(small_csv).sample(5, random_state=0)
        body = json.dumps({"dataframe_split": rows[list(FEATURE_COLUMNS)].to_dict(orient="split")}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            served = json.load(response)["predictions"]
    finally:
        _stop(server)
    local = mlflow.pyfunc.load_model("models:/genre-classifier@champion").predict(rows[list(FEATURE_COLUMNS)])
    assert [row["genre"] for row in served] == local["genre"].tolist()


# --- Optuna workers sharing a study on PostgreSQL -----------------------------------------------------

N_TRIALS = 12


def _study_trials(services: Services, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=f"{services.postgres}/optuna").get_trials(
        deepcopy=False
    )


@pytest.fixture(scope="module")
def shared_study(services) -> dict:
    """Three ``mlflow run -e tune_optuna`` workers on one study; one is killed in the middle of a trial.

    The victim is frozen (SIGSTOP) as soon as it holds a running trial, so the kill lands mid-trial
    whatever the machine's speed, then killed (SIGKILL: no handler runs, as when a machine dies).
    """
    name = "shared-knn"
    params = {
        "config": "experiments/optuna/knn.yaml",
        "n_trials": N_TRIALS,
        "folds": 3,
        "storage": f"{services.postgres}/optuna",
        "study_name": name,
        "heartbeat": 2,
    }
    command = [str(BIN / "mlflow"), "run", str(ROOT), "-e", "tune_optuna", "--env-manager", "local"]
    for key, value in params.items():
        command += ["-P", f"{key}={value}"]
    logs = [services.work / f"worker{i}.log" for i in range(3)]
    workers = [
        subprocess.Popen(
            command,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            cwd=services.work,
            env=child_env(MLFLOW_TRACKING_URI=services.tracking_uri),
            start_new_session=True,
        )
        for log in logs
    ]
    victim_pid = None
    deadline = time.monotonic() + 300
    while victim_pid is None and time.monotonic() < deadline:
        try:
            trials = _study_trials(services, name)
        except KeyError:  # the study is not created yet
            trials = []
        # A trial whose MLflow run exists, so the test can check what happens to that run.
        running = [
            t
            for t in trials
            if t.state == optuna.trial.TrialState.RUNNING and "mlflow_run_id" in t.user_attrs
        ]
        if running:
            host, pid = running[0].user_attrs.get("genre.worker", ":").split(":")
            if pid:
                os.kill(int(pid), signal.SIGSTOP)
                held = optuna.load_study(study_name=name, storage=f"{services.postgres}/optuna").trials
                if held[running[0].number].state == optuna.trial.TrialState.RUNNING:
                    victim_pid = int(pid)
                    os.kill(victim_pid, signal.SIGKILL)
                    victim_trial = running[0].number
                else:  # it finished that trial just before the freeze: try again
                    os.kill(int(pid), signal.SIGCONT)
        time.sleep(0.05)
    assert victim_pid is not None, "no worker ever held a running trial"
    codes = [w.wait(timeout=600) for w in workers]
    return {
        "name": name,
        "codes": codes,
        "victim_pid": victim_pid,
        "victim_trial": victim_trial,
        "logs": [log.read_text() for log in logs],
    }


def test_workers_share_one_study_without_duplicating_trials(services, shared_study):
    trials = _study_trials(services, shared_study["name"])
    assert sorted(shared_study["codes"]).count(0) == 2, shared_study["logs"]  # the victim's launcher failed
    finished = [
        t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]
    assert len(finished) == N_TRIALS  # the budget, not one trial more
    assert len({t.number for t in trials}) == len(trials)
    params = [tuple(sorted(t.params.items())) for t in finished]
    # Workers started together draw different points (a shared seed would repeat the first ones).
    assert len(set(params[:6])) == 6
    workers = {t.user_attrs["genre.worker"] for t in trials}
    assert len(workers) == 3  # all three took part


def test_a_killed_worker_loses_only_its_trial(services, shared_study):
    trials = _study_trials(services, shared_study["name"])
    lost = trials[shared_study["victim_trial"]]
    assert lost.state == optuna.trial.TrialState.FAIL
    assert lost.user_attrs["genre.worker"].endswith(f":{shared_study['victim_pid']}")
    # Besides it, only trials that found the budget already taken fail (unrun, before any MLflow run).
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert [t.number for t in failed if not t.user_attrs.get("genre.surplus")] == [lost.number]
    # Its MLflow run is closed as FAILED, saying why; every other trial's run finished.
    run = mlflow.get_run(lost.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and "lost" in run.data.tags["genre.error"]


def test_all_trials_are_children_of_one_finished_parent(services, shared_study):
    trials = _study_trials(services, shared_study["name"])
    (parent,) = [
        r
        for r in _runs(**{"genre.job": "tune_optuna"})
        if r.data.params.get("tune.study") == shared_study["name"]
    ]
    assert parent.info.status == "FINISHED"
    children = _runs(**{"mlflow.parentRunId": parent.info.run_id, "genre.job": "tune_optuna.trial"})
    assert {c.info.run_id for c in children} == {
        t.user_attrs["mlflow_run_id"] for t in trials if not t.user_attrs.get("genre.surplus")
    }
    assert sorted(c.info.status for c in children).count("FINISHED") == N_TRIALS
    workers = _runs(**{"mlflow.parentRunId": parent.info.run_id, "genre.job": "tune_optuna.worker"})
    assert len(workers) == 3  # each mlflow run invocation, filed under the study
    # The result was logged once, by one worker, and names the study's best trial.
    best = max((t for t in trials if t.value is not None), key=lambda t: t.value)
    assert parent.data.tags["genre.best_run_id"] == best.user_attrs["mlflow_run_id"]
    assert parent.data.metrics["best_cv_accuracy"] == best.value  # the trial's own float, as stored
    history = mlflow.MlflowClient().get_metric_history(parent.info.run_id, "search_seconds")
    assert len(history) == 1


def test_the_shared_study_finds_what_one_process_finds(services, shared_study):
    """Same space, data, folds and budget in one process: the best scores agree within noise (the two
    searches try different parameters, so this bound is about the search, not about rounding)."""
    trials = _study_trials(services, shared_study["name"])
    shared_best = max(t.value for t in trials if t.value is not None)
    config = load_search_config(ROOT / "experiments/optuna/knn.yaml", "optuna")
    dataset = load_data("embedded", windows=True, seed=0)
    alone = open_study(config, dataset, n_splits=3)
    optimize(alone, config, dataset, n_trials=N_TRIALS, n_splits=3)
    assert abs(alone.best_value - shared_best) < 0.05, (alone.best_value, shared_best)
    assert np.isfinite(shared_best)
