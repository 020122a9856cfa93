# ruff: noqa: N803, N806 - X is scikit-learn's name
"""One thread per native pool where genre computes: the same input gives the same bits everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from threadpoolctl import threadpool_info, threadpool_limits

from genre.features import gtzan57
from genre.models import SingleThreadedPipeline, import_keras
from genre.threads import single_threaded


def _threads() -> dict[str, int]:
    """The widest pool of each kind right now."""
    widest: dict[str, int] = {}
    for pool in threadpool_info():
        widest[pool["user_api"]] = max(widest.get(pool["user_api"], 0), pool["num_threads"])
    return widest


def test_single_threaded_limits_every_pool_and_keeps_blas_at_one():
    with threadpool_limits(limits=2):
        assert set(_threads().values()) == {2}
        with single_threaded():
            assert set(_threads().values()) == {1}
        assert _threads() == {"blas": 1, "openmp": 2}  # OpenMP's limit is the thread's, BLAS's the process's


def test_one_thread_ending_never_widens_blas_under_another():
    """A block ending on one thread must not give BLAS its threads back under a block on another."""
    inside_b, a_done, seen = threading.Event(), threading.Event(), {}

    def b() -> None:
        with single_threaded():
            inside_b.set()
            a_done.wait(10)
            seen.update(_threads())

    with threadpool_limits(limits=2):
        worker = threading.Thread(target=b)
        with single_threaded():
            worker.start()
            assert inside_b.wait(10)
        a_done.set()
        worker.join(10)
    assert seen == {"blas": 1, "openmp": 1}


def test_feature_math_runs_single_threaded(monkeypatch):
    seen = []
    mfcc = gtzan57.mfcc

    def recording(**kwargs):
        seen.append(_threads())
        return mfcc(**kwargs)

    monkeypatch.setattr(gtzan57, "mfcc", recording)
    t = np.arange(gtzan57.SAMPLE_RATE, dtype=np.float32) / gtzan57.SAMPLE_RATE
    with threadpool_limits(limits=2):
        gtzan57.extract_features(np.sin(2 * np.pi * 220 * t), sr=gtzan57.SAMPLE_RATE)
    assert seen and all(set(pools.values()) == {1} for pools in seen)


class _Recorder(ClassifierMixin, BaseEstimator):
    """Records the pools' widths whenever scikit-learn calls it."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.seen_ = [_threads()]
        return self

    def predict_proba(self, X):
        self.seen_.append(_threads())
        return np.full((len(X), len(self.classes_)), 1 / len(self.classes_))

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def test_models_fit_and_predict_single_threaded():
    pipeline = SingleThreadedPipeline([("model", _Recorder())])
    X, y = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}), np.array([0, 0, 1, 1])
    with threadpool_limits(limits=2):
        pipeline.fit(X, y).predict_proba(X)
        pipeline.predict(X)
    assert [set(pools.values()) for pools in pipeline[-1].seen_] == [{1}] * 3
    assert not hasattr(pipeline, "decision_function")  # what the final estimator lacks stays absent


def test_tensorflow_runs_one_thread_per_pool():
    _, tf = import_keras()
    assert tf.config.threading.get_intra_op_parallelism_threads() == 1
    assert tf.config.threading.get_inter_op_parallelism_threads() == 1


def _run_main(root: Path, *, threads: int, jobs: int) -> dict[str, dict[str, float]]:
    """``genre main`` on the embedded set in a process of its own; every logged metric by run name."""
    root.mkdir()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "OPENBLAS_NUM_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
    }
    for var in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(var, None)
    command = [sys.executable, "-m", "genre.cli", "main", "--data", "embedded", "--models", "knn,svm,nn"]
    command += ["--folds", "3"]
    command += ["--jobs", str(jobs)]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("genre")
    logged = {}
    for run in client.search_runs([experiment.experiment_id]):
        history = {}
        for key in run.data.metrics:
            if key.endswith("seconds"):
                continue  # wall time
            history[key] = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
        logged[run.info.run_name] = history
    return logged


def test_a_training_job_logs_the_same_metrics_in_two_processes(tmp_path):
    """The same job twice: two threads per pool allowed and folds one after another, then one thread
    per pool and two folds at a time in worker processes. Every logged metric is equal, bit for bit, on
    any CPU: both runs are on this machine (the same BLAS and TensorFlow kernels), every computation in
    every process runs with one thread per native pool (``single_threaded``, ``configure_tensorflow``)
    whatever the environment allows, and each fold fits and scores the same shapes, so every sum runs in
    the same order. The same job on another machine may differ in the last bits."""
    first = _run_main(tmp_path / "two-threads", threads=2, jobs=1)
    second = _run_main(tmp_path / "parallel-folds", threads=1, jobs=2)
    assert set(first) == {"main", *(f"{m}-{p}" for m in ("knn", "svm", "nn") for p in ("grouped", "seed"))}
    assert first == second
