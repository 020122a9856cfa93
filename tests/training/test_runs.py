"""What a training run records in MLflow, under every protocol, and that it is reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn import config_context
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from genre.data import from_frame, load_csv
from genre.data.schema import MUSICNN_COLUMNS
from genre.errors import ConfigError
from genre.evaluation import evaluate, fit_model, grouped_folds, track_accuracy
from genre.features import load_data
from genre.jobs.train import main_job, train_job
from genre.models import KerasMLPClassifier, make_model
from genre.tracking import configure_tracking
from genre.training import train_run
from tests.conftest import GTZAN_3_SUBSET, gtzan_like, require
from tests.rounding import sums_apart

#: A network small and short enough for tests; the defaults are exercised by benchmarks.
TINY_NN = {"hidden_layers": 1, "units": 16, "epochs": 5, "patience": 2}


@pytest.fixture(scope="module")
def windows_small(cache_dir):
    """The embedded set as 3-s windows: 10 synthetic classes x 8 tracks x 2 windows, quick to fit."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_CACHE_DIR", str(cache_dir))
        return load_data("embedded")


@pytest.fixture(scope="module")
def clips(cache_dir):
    """The embedded set, one row per clip."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_CACHE_DIR", str(cache_dir))
        return load_data("embedded", windows=False)


def _client() -> mlflow.MlflowClient:
    return mlflow.MlflowClient()


def test_grouped_run_logs_params_fold_metrics_artifacts_and_model(tracking, windows_small):
    result = train_run("knn", windows_small, protocol="grouped", n_splits=5, seed=0)
    run = _client().get_run(result.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["model.name"] == "knn" and params["cv.protocol"] == "grouped" and params["cv.folds"] == "5"
    assert params["model.knn__n_neighbors"] == "5" and params["model.knn__weights"] == "distance"
    assert params["data.rows"] == str(len(windows_small.frame))
    assert tags["genre.model"] == "knn" and tags["genre.leaky"] == "false"

    history = _client().get_metric_history(result.run_id, "cv_accuracy")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]  # step 0 is the summaries'
    # The logged mean and NumPy's of the logged folds: a sum of 5 positive terms and a division each.
    mean = np.mean([m.value for m in history])
    assert metrics["cv_accuracy_mean"] == pytest.approx(mean, rel=sums_apart(5 + 1, 1.0), abs=0)
    for name in ("cv_f1_macro_mean", "cv_precision_macro_std", "cv_track_accuracy_mean"):
        assert name in metrics
    assert not any(name.startswith("test_") for name in metrics)  # grouped has no held-out set

    artifacts = {a.path for a in _client().list_artifacts(result.run_id)}
    assert {
        "confusion_matrix.png",
        "classification_report.json",
        "classification_report.txt",
        "cv_folds.csv",
    } <= artifacts
    report = json.loads(
        open(mlflow.artifacts.download_artifacts(f"runs:/{result.run_id}/classification_report.json")).read()
    )
    assert set(report) >= {*windows_small.labels, "macro avg"}

    # MLflow 3 keeps the model as a logged model of the run, reachable as runs:/<id>/model.
    loaded = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/knn-grouped")  # named for what it is
    assert loaded.metadata.signature is not None
    rows = windows_small.X.head(7)
    assert list(loaded.predict(rows)) == list(result.model.predict(rows))
    assert run.inputs.dataset_inputs[0].dataset.name == windows_small.name


def test_seed_run_has_a_held_out_test_and_is_labelled_leaky(tracking, windows_small):
    result = train_run("svm", windows_small, protocol="seed", n_splits=3, seed=0)
    run = _client().get_run(result.run_id)
    assert run.data.tags["genre.leaky"] == "true"
    assert {"test_accuracy", "test_f1_macro", "test_track_accuracy"} <= set(run.data.metrics)
    # trained on the 80 % only
    assert len(result.evaluation.train_rows) == pytest.approx(0.8 * len(windows_small.frame), abs=1)


def test_same_params_twice_give_the_same_metrics(tracking, windows_small):
    params = {"nn__hidden_layers": 1, "nn__units": 16, "nn__epochs": 5, "nn__patience": 2}
    first = train_run("stacking", windows_small, params=params, n_splits=3, seed=1, log_model=False)
    second = train_run("stacking", windows_small, params=params, n_splits=3, seed=1, log_model=False)
    # Equal bits on any CPU: one process (the same kernels), one thread per pool, the same shapes.
    pd.testing.assert_frame_equal(first.evaluation.folds, second.evaluation.folds, check_exact=True)
    a, b = (_client().get_run(r.run_id).data.metrics for r in (first, second))
    assert a == b


def test_nn_run_logs_epoch_curves(tracking, windows_small):
    result = train_run("nn", windows_small, params=TINY_NN, n_splits=3, seed=0, log_model=False)
    client = _client()
    losses = client.get_metric_history(result.run_id, "epoch_val_loss")
    stopped = client.get_run(result.run_id).data.metrics["stopped_epoch"]
    assert len(losses) == stopped and sorted(m.step for m in losses) == list(range(1, int(stopped) + 1))
    assert "training_curves.png" in {a.path for a in client.list_artifacts(result.run_id)}


@pytest.mark.gtzan
def test_leak_shows_on_gtzan_windows():
    """The same model scored under both protocols: the row-wise split reads higher on GTZAN's 3-sec
    windows (60 tracks of the real subset)."""
    full = load_csv(require(GTZAN_3_SUBSET))
    keep = full.frame["track"].isin(full.frame["track"].unique()[::5])
    windows = full.subset(np.flatnonzero(keep.to_numpy()))
    model = make_model("knn", {"n_neighbors": 1})
    leaky = evaluate(model, windows, "seed", n_splits=5, seed=0).summary()["test_accuracy"]
    honest = evaluate(model, windows, "grouped", n_splits=5, seed=0).summary()["cv_accuracy_mean"]
    assert leaky > honest + 0.05


def test_track_accuracy_averages_window_probabilities():
    classes = np.array(["a", "b"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.7, 0.3]])
    tracks = np.array(["t1", "t1", "t1", "t2", "t2"])
    labels = np.array(["a", "a", "a", "b", "b"])
    # t1: mean (0.467, 0.533) -> b (wrong); t2: mean (0.65, 0.35) -> a (wrong)
    assert track_accuracy(proba, classes, tracks, labels) == 0.0
    assert track_accuracy(proba[[0, 3, 4]], classes, tracks[[0, 3, 4]], np.array(["a", "a", "a"])) == 1.0


@pytest.mark.parametrize(
    ("model", "params", "message"),
    [
        ("forest", {}, "unknown model 'forest'"),
        ("knn", {"n_neighbours": 3}, "did you mean 'n_neighbors'"),
        ("svm", {"C": -1.0}, "parameter 'C'"),
        ("knn", {"weights": "cubic"}, "parameter 'weights'"),
    ],
)
def test_bad_model_options_fail_before_loading_data(tracking, model, params, message):
    with pytest.raises(ConfigError, match=message):
        train_job(model, "/no/such/data.csv", params=params)
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_n_neighbors_larger_than_training_rows_is_clear(tracking, clips):
    tiny = clips.subset(np.r_[0:10, 10:20])
    with pytest.raises(ValueError, match="n_neighbors"):
        train_run("knn", tiny, params={"n_neighbors": 50}, protocol="grouped", n_splits=2)


def test_main_runs_every_model_as_nested_children(tracking, clips):
    small = clips.subset(np.flatnonzero(clips.frame["label"].isin(clips.labels[:3]).to_numpy()))
    small_csv = Path("small.csv")
    small.frame.drop(columns=["track", "group"]).to_csv(small_csv, index=False)
    table = main_job(str(small_csv), models=("knn", "svm"), protocols=("grouped", "seed"), n_splits=3)
    assert len(table) == 4 and set(table["protocol"]) == {"grouped", "seed"}
    runs = mlflow.search_runs(experiment_names=["genre"])
    parent = runs[runs["tags.mlflow.runName"] == "main"]
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"].iloc[0]]
    assert len(parent) == 1 and len(children) == 4
    assert set(children["tags.genre.model"]) == {"knn", "svm"}
    assert (table["cv_accuracy"] > 0.6).all()


def test_stack_inner_folds_keep_tracks_together(windows_small):
    params = {"nn__hidden_layers": 1, "nn__units": 8, "nn__epochs": 2, "nn__patience": 1}
    fitted = fit_model(make_model("stacking", params), windows_small)
    splits = fitted[-1].folds_
    assert len(splits) == 5
    groups = windows_small.groups
    for train, test in splits:
        assert not set(groups[train]) & set(groups[test])
    assert not hasattr(make_model("stacking", params)[-1], "folds_")  # the caller's model is left as it was


class _RecordingMLP(KerasMLPClassifier):
    """Records the rows and groups of every fit, and which groups its early stopping held out."""

    fits: list[dict] = []

    def _split_groups(self, rows, y, groups, seed):
        train, y_train, validation = super()._split_groups(rows, y, groups, seed)
        held_out = np.isin(rows, validation[0]).all(axis=1)
        _RecordingMLP.fits.append(
            {"rows": len(rows), "train": set(groups[~held_out]), "validation": set(groups[held_out])}
        )
        return train, y_train, validation


def test_networks_hold_out_whole_tracks_for_early_stopping_on_windows(windows_small, clips):
    """Alone, inside a stack (final fit and every inner fold) and inside a grid search."""
    _RecordingMLP.fits = []
    network = _RecordingMLP(**TINY_NN, random_state=0)
    fit_model(make_model("nn").set_params(nn=network), windows_small)
    stack = make_model("stacking").set_params(stacking__nn=clone(network))
    fit_model(stack, windows_small)
    search = GridSearchCV(
        make_model("nn").set_params(nn=clone(network)),
        {"nn__units": [8]},
        cv=grouped_folds(windows_small, n_splits=2, seed=0),
        refit=False,
    )
    with config_context(enable_metadata_routing=True):  # scikit-learn's routing hands the groups on
        search.fit(windows_small.X, windows_small.y, groups=windows_small.groups)
    assert len(_RecordingMLP.fits) == 1 + (1 + 5) + 2
    for fit in _RecordingMLP.fits:
        assert fit["validation"] and not fit["train"] & fit["validation"]  # no track on both sides
    rows = [fit["rows"] for fit in _RecordingMLP.fits]
    assert rows[0] == rows[1] == len(windows_small.frame)  # alone, the stack's final fit
    assert all(n < len(windows_small.frame) for n in rows[2:])  # inner and search folds: their own rows

    _RecordingMLP.fits = []
    fit_model(make_model("nn").set_params(nn=clone(network)), clips)
    assert _RecordingMLP.fits == []  # one row per track: rows are held out one by one


def test_grouped_early_stopping_refuses_groups_it_cannot_split() -> None:
    rows = np.random.default_rng(0).normal(size=(40, 3))
    y = np.repeat(["a", "b"], 20)
    with pytest.raises(ValueError, match="class 'b' has a single group"):
        KerasMLPClassifier(**TINY_NN).fit(rows, y, groups=np.repeat(["a1", "a2", "b1", "b1"], 10))


def test_grouped_early_stopping_keeps_a_group_of_several_classes_whole() -> None:
    """GTZAN's repeats under two genres are one group: it trains, and stays on one side of the split."""
    rows = np.random.default_rng(0).normal(size=(60, 3))
    y = np.repeat(["a", "b", "a", "b"], [20, 20, 10, 10])
    groups = np.repeat([f"g{i}" for i in range(12)], 5)
    groups[40:60] = "x"  # one group holding both classes
    network = KerasMLPClassifier(**TINY_NN, random_state=0)
    _, _, (validation, _) = network.fit(rows, y, groups=groups)._split(
        rows, np.searchsorted(network.classes_, y), groups, 0
    )
    held_out = {tuple(row) for row in validation}
    x_rows = {tuple(row) for row in rows[40:60]}
    assert x_rows <= held_out or not x_rows & held_out


def test_runs_read_right_in_the_mlflow_ui(tracking, windows_small):
    """Names, descriptions, the data's contexts, and metrics linked to a logged model named for what it is."""
    experiment = configure_tracking()  # what every job does first
    result = train_run("knn", windows_small, protocol="seed", n_splits=3, seed=0)
    client = _client()
    run = client.get_run(result.run_id)
    assert run.info.run_name == "knn-seed"
    assert client.get_experiment(experiment.experiment_id).tags["mlflow.experimentKind"] == (
        "custom_model_development"  # the UI opens it in model-training mode, not GenAI
    )
    note = run.data.tags["mlflow.note.content"]
    assert "**knn**" in note and "**seed**" in note and "Leaky on windows" in note
    assert {i.tags[0].value for i in run.inputs.dataset_inputs} == {"train", "test"}
    assert (
        client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"]
        == "custom_model_development"
    )
    (model,) = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert model.name == "knn-seed" and model.source_run_id == result.run_id
    linked = {m.key: m for m in model.metrics}
    assert linked["cv_accuracy_mean"].value == run.data.metrics["cv_accuracy_mean"]
    assert linked["cv_accuracy_mean"].dataset_name == f"{windows_small.name}-train"
    assert "cv_accuracy" not in linked  # the per-fold series stays on the run (steps 1..k)
    assert "accuracy_score" in linked  # mlflow.models.evaluate on the held-out rows
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert any("confusion_matrix" in path for path in artifacts)


def test_a_filtered_run_on_musicnn_features_is_named_tested_and_described(tracking):
    """GTZAN's artist-aware split: fitted on train and valid tracks, tested on the 290 test tracks."""
    dataset = from_frame(gtzan_like(sets=("gtzan57", "musicnn"), extra=10), source="gtzan-like.csv")
    result = train_run("svm", dataset, protocol="filtered", features="musicnn", n_splits=3)
    run = _client().get_run(result.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert run.info.run_name == "svm-musicnn-filtered"
    assert params["model.features"] == "musicnn" and tags["genre.features"] == "musicnn"
    assert params["cv.protocol"] == "filtered" and params["data.rows_outside_split"] == "10"
    assert params["data.rows"] == "940" and params["data.features"] == "musicnn"
    assert metrics["test_accuracy"] > 0.3  # the made-up musicnn features carry the genre
    assert {i.tags[0].value: i.dataset.name for i in run.inputs.dataset_inputs} == {
        "train": "gtzan-like-train",
        "test": "gtzan-like-test",
    }
    assert "290 test tracks of GTZAN's fault-filtered split" in tags["mlflow.note.content"]
    assert "10 rows of tracks outside GTZAN's lists were left out" in tags["mlflow.note.content"]
    model = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/svm-musicnn-filtered")
    assert model.metadata.signature.inputs.input_names() == list(MUSICNN_COLUMNS)
    assert len(result.evaluation.y_true) == 290


def test_a_model_on_features_the_data_lacks_is_refused_before_training(tracking, clips):
    from genre.errors import DataError

    with pytest.raises(DataError, match=r"no musicnn features in this data \(it holds gtzan57\)"):
        train_run("knn", clips, features="musicnn", n_splits=2)
