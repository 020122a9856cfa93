"""The MLproject entry points, run the way users run them: ``mlflow run . -e <name> --env-manager local``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from genre.data.schema import FEATURE_COLUMNS, SAMPLE_RATE
from genre.models import make_model
from tests.conftest import GTZAN_30, require

ROOT = Path(__file__).resolve().parents[1]
PROJECT = yaml.safe_load((ROOT / "MLproject").read_text())


def _mlflow_run(
    entry_point: str, tracking: str, *, experiment: str | None = None, **params: object
) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)  # mlflow and genre as installed beside this interpreter
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_EXPERIMENT_")}
    env.update({"PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "MLFLOW_TRACKING_URI": tracking})
    command = [f"{bin_dir}/mlflow", "run", str(ROOT), "-e", entry_point, "--env-manager", "local"]
    if experiment:
        command += ["--experiment-name", experiment]
    for name, value in params.items():
        command += ["-P", f"{name}={value}"]
    return subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.gtzan
def test_knn_entry_point_on_the_real_csv(tracking):
    done = _mlflow_run("knn", tracking, data=require(GTZAN_30), folds=3, n_neighbors=7, leaf_size=20)
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = mlflow.search_runs(experiment_names=["genre"], output_format="list")
    params = run.data.params
    assert params["n_neighbors"] == "7"  # logged by mlflow run, as given
    assert params["model.knn__n_neighbors"] == "7" and params["model.knn__leaf_size"] == "20"  # as used
    assert params["cv.folds"] == "3" and run.data.tags["genre.model"] == "knn"
    assert 0.6 < run.data.metrics["cv_accuracy_mean"] < 0.8


def test_extract_features_entry_point(tracking, tmp_path):
    folder = tmp_path / "audio" / "tone"
    folder.mkdir(parents=True)
    t = np.arange(int(3.5 * SAMPLE_RATE)) / SAMPLE_RATE
    sf.write(folder / "a.wav", 0.3 * np.sin(2 * np.pi * 440 * t), SAMPLE_RATE)
    (folder / "bad.wav").write_bytes(b"nope")
    out = tmp_path / "features.csv"
    done = _mlflow_run("extract_features", tracking, data=tmp_path / "audio", out=out)
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = mlflow.search_runs(experiment_names=["genre"], output_format="list")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["files_done"] == 1 and run.data.metrics["files_failed"] == 1
    assert out.exists()


def test_impossible_value_fails_the_run_with_a_clear_message(tracking):
    done = _mlflow_run("svm", tracking, C=-1)
    assert done.returncode != 0
    assert "genre: error: svm model, parameter 'C'" in done.stderr
    assert "Traceback (most recent call last)" not in done.stderr.split("genre: error:")[0][-500:]


@pytest.mark.parametrize("name", ["knn", "svm", "nn", "stacking"])
def test_declared_hyperparameters_default_to_the_models_own(name):
    """So `mlflow run -e <model>` without -P trains exactly the model `genre train <model>` does."""
    entry = PROJECT["entry_points"][name]
    common = {"data", "protocol", "features", "transform", "seed", "folds", "windows"}
    declared = {k: v for k, v in entry["parameters"].items() if k not in common}
    assert declared
    defaults = make_model(name).get_params()
    command = " ".join(entry["command"].split())
    for param, spec in declared.items():
        assert f"--set {param}={{{param}}}" in command
        assert defaults[f"{name}__{param}"] == spec["default"], param


def test_every_parameter_is_typed_with_a_default():
    for name, entry in PROJECT["entry_points"].items():
        for param, spec in entry["parameters"].items():
            assert set(spec) == {"type", "default"}, (name, param)
            assert f"{{{param}}}" in entry["command"], (name, param)


@pytest.mark.gtzan
def test_tune_grid_entry_point_nests_candidates_under_one_parent(tracking, tmp_path):
    config = tmp_path / "grid.yaml"
    config.write_text("model: knn\ngrid: {n_neighbors: [3, 7], p: [1, 2]}\n")
    done = _mlflow_run("tune_grid", tracking, config=config, data=require(GTZAN_30), folds=3)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = mlflow.search_runs(experiment_names=["genre"], output_format="list")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 and parent.data.tags["genre.job"] == "tune_grid"
    assert parent.data.params["config"] == str(config)  # logged by mlflow run
    assert 0.6 < parent.data.metrics["best_cv_accuracy"] < 0.8


@pytest.mark.gtzan
def test_tune_optuna_entry_point_resumes_its_study(tracking, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    for n_trials in (2, 3):
        done = _mlflow_run(
            "tune_optuna",
            tracking,
            config="experiments/optuna/knn.yaml",
            data=require(GTZAN_30),
            n_trials=n_trials,
            storage=storage,
            folds=3,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")  # workers sit in Default
    trials = [r for r in runs if r.data.tags.get("genre.job") == "tune_optuna.trial"]
    (parent,) = [r for r in runs if r.data.tags.get("genre.job") == "tune_optuna"]
    assert len(trials) == 3 and {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
    assert parent.info.status == "FINISHED" and "best.n_neighbors" in parent.data.tags
    # mlflow run opens a run per invocation: each is filed under the study's parent as a worker.
    workers = [r for r in runs if r.data.tags.get("genre.job") == "tune_optuna.worker"]
    assert sorted(w.data.params["n_trials"] for w in workers) == ["2", "3"]
    assert {w.data.tags["mlflow.parentRunId"] for w in workers} == {parent.info.run_id}


def test_conda_env_pins_what_pyproject_pins() -> None:
    """``mlflow run`` with conda builds from conda.yaml (untested here: no conda); it must not drift."""
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    python = [dep for dep in conda["dependencies"] if isinstance(dep, str) and dep.startswith("python=")]
    pip = next(dep["pip"] for dep in conda["dependencies"] if isinstance(dep, dict))
    assert sorted(pip) == sorted(pyproject["dependencies"])  # genre itself runs from the checkout
    assert python == ["python=3.11"]


def _small_csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(rng.normal(size=(24, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))
    rows.insert(0, "filename", [f"t{i}.wav" for i in range(24)])
    rows["label"] = np.repeat(["a", "b", "c"], 8)
    rows.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("experiment", [None, "my-experiment"])
def test_a_model_trained_by_mlflow_run_is_registered_by_mlflow_run(tracking, tmp_path, experiment):
    """``mlflow run -e knn`` then ``mlflow run -e register``, with or without ``--experiment-name``: both
    entry points work in the same experiment (``genre`` unless one is named), so register finds the run."""
    data = _small_csv(tmp_path / "rows.csv")
    trained = _mlflow_run("knn", tracking, experiment=experiment, data=data, folds=2)
    assert trained.returncode == 0, trained.stderr[-2000:]
    registered = _mlflow_run("register", tracking, experiment=experiment, model="knn")
    assert registered.returncode == 0, registered.stderr[-2000:]
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("genre-classifier", "champion")
    source = client.get_run(version.tags["genre.source_run_id"])
    assert client.get_experiment(source.info.experiment_id).name == (experiment or "genre")
    assert source.data.tags["genre.model"] == "knn" and source.info.status == "FINISHED"
    if experiment is None:  # mlflow run's own runs sit in Default and say where the work went
        launchers = client.search_runs(["0"])
        assert source.info.run_id in {run.data.tags.get("genre.run_id") for run in launchers}
        assert source.data.tags["mlflow.project.entryPoint"] == "knn"  # copied from the launcher


@pytest.mark.integration
def test_an_entry_point_runs_in_an_isolated_uv_environment(tracking, tmp_path):
    """``mlflow run . -e knn --env-manager uv``: MLflow builds a virtual environment from conda.yaml with
    uv (no conda), and the entry point runs in it."""
    if shutil.which("uv", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("uv is not installed beside this interpreter (pip install uv)")
    data = _small_csv(tmp_path / "rows.csv")
    bin_dir = str(Path(sys.executable).parent)
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_EXPERIMENT_")}
    env.update({"PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "MLFLOW_TRACKING_URI": tracking})
    command = [f"{bin_dir}/mlflow", "run", str(ROOT), "-e", "knn", "--env-manager", "uv"]
    command += ["-P", f"data={data}", "-P", "folds=2"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    activated = re.search(r"source (\S+)/bin/activate && python -m genre train knn", done.stderr)
    assert activated, done.stderr[-3000:]  # the command ran inside the environment
    # ... on this checkout's code: the environment holds no genre of its own (MLflow reuses environments
    # by requirements, so an installed copy would be whichever checkout built it first).
    probe = "import importlib.util; print(importlib.util.find_spec('genre'))"
    found = subprocess.run(
        [f"{activated[1]}/bin/python", "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert found.stdout.strip() == "None"
    (run,) = mlflow.search_runs(experiment_names=["genre"], output_format="list")
    assert run.data.tags["genre.model"] == "knn" and run.info.status == "FINISHED"
    launcher = mlflow.MlflowClient().get_run(run.data.tags["genre.launcher_run_id"])
    assert launcher.data.tags["mlflow.project.env"] == "uv"
