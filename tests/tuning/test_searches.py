"""Grid and Optuna searches as MLflow runs: nesting, interruption, resume, nested CV, the tuned stack."""

from __future__ import annotations

import json
from dataclasses import replace

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV

from genre.data import from_frame
from genre.data.schema import FEATURE_COLUMNS, GTZAN_GENRES
from genre.errors import ConfigError
from genre.evaluation import evaluate, fit_model, grouped_folds
from genre.jobs.train import tune_stacking_job
from genre.models import KNNClassifier, make_model
from genre.tuning import (
    LiveGridSearchCV,
    best_tuning_run,
    grid_search,
    load_search_config,
    nested_cv,
    open_study,
    search_estimator,
    tune_grid_run,
    tune_optuna_run,
    tuned_stack_params,
)


def _frame(n_per_class: int = 12, seed: int = 0) -> pd.DataFrame:
    X, y = make_classification(  # noqa: N806
        n_samples=10 * n_per_class,
        n_features=len(FEATURE_COLUMNS),
        n_informative=10,
        n_classes=10,
        n_clusters_per_class=1,
        class_sep=2.0,
        random_state=seed,
    )
    frame = pd.DataFrame(X, columns=FEATURE_COLUMNS)
    labels = np.array(GTZAN_GENRES)[y]
    frame.insert(0, "filename", [f"{label}.{i:05d}.wav" for i, label in enumerate(labels)])
    frame["label"] = labels
    return frame


@pytest.fixture
def dataset():
    return from_frame(_frame(), source="synthetic.csv", windowed=False)


@pytest.fixture
def data_csv(tmp_path):
    path = tmp_path / "synthetic.csv"
    _frame().to_csv(path, index=False)
    return path


def _config(tmp_path, text, kind="grid", name="search.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_search_config(path, kind)


def _children(parent_id):
    return mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        output_format="list",
    )


KNN_GRID = "model: knn\ngrid:\n  n_neighbors: [1, 3, 5]\n  weights: [uniform, inverse_square]\n"


def test_live_grid_search_scores_like_grid_search(dataset):
    model = make_model("knn")
    grid = {"knn__n_neighbors": [1, 3, 5], "knn__p": [1, 2]}
    folds = grouped_folds(dataset, n_splits=3)
    seen = []
    live = LiveGridSearchCV(model, grid, cv=folds, refit=False, on_candidate=lambda i, r: seen.append(i))
    live.fit(dataset.X, dataset.y)
    plain = GridSearchCV(model, grid, cv=folds, refit=False).fit(dataset.X, dataset.y)
    # Equal bits on any CPU: the same pipelines fitted on the same folds in this process, one thread per
    # pool, so the same predictions, scores and GridSearchCV's own averaging of them.
    np.testing.assert_array_equal(live.cv_results_["mean_test_score"], plain.cv_results_["mean_test_score"])
    assert live.cv_results_["params"] == plain.cv_results_["params"]
    assert seen == list(range(6))  # reported one at a time, as each finished


def test_grid_run_logs_a_child_per_candidate_under_its_parent(tracking, tmp_path, dataset):
    config = _config(tmp_path, KNN_GRID)
    result = tune_grid_run(config, dataset, n_splits=3, log_model=False)
    parent = mlflow.get_run(result.run_id)
    children = _children(result.run_id)
    assert len(children) == config.n_candidates == 6
    assert {c.data.tags["genre.job"] for c in children} == {"tune_grid.candidate"}
    scores = {c.data.params["model.weights"] + c.data.params["model.n_neighbors"]: c for c in children}
    assert "inverse_square3" in scores  # the alias, logged by the name the config used
    best_child = max(children, key=lambda c: c.data.metrics["cv_accuracy_mean"])
    assert parent.data.tags["genre.best_run_id"] == best_child.info.run_id
    assert best_child.data.tags["genre.best"] == "true"
    # The same float, logged on the child and copied to the parent (MLflow keeps float64 as logged).
    assert parent.data.metrics["best_cv_accuracy"] == best_child.data.metrics["cv_accuracy_mean"]
    assert parent.data.tags["best.n_neighbors"] == best_child.data.params["model.n_neighbors"]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id)}
    assert {"cv_results.csv", "search_heatmap.png", "best_params.json", "config"} <= artifacts
    table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{result.run_id}/cv_results.csv"))
    assert len(table) == 6 and set(table["run_id"]) == {c.info.run_id for c in children}
    assert parent.info.status == "FINISHED"


def test_an_interrupted_grid_keeps_finished_children_and_marks_the_parent_killed(
    tracking, tmp_path, dataset, monkeypatch
):
    config = _config(tmp_path, KNN_GRID)
    fits = {"n": 0}
    original = KNNClassifier.fit

    def interrupting_fit(self, X, y):  # noqa: N803 - the estimator API
        fits["n"] += 1
        if fits["n"] > 7:  # 3 folds per candidate: two candidates finish, the third is interrupted
            raise KeyboardInterrupt
        return original(self, X, y)

    monkeypatch.setattr(KNNClassifier, "fit", interrupting_fit)
    with pytest.raises(KeyboardInterrupt):
        tune_grid_run(config, dataset, n_splits=3, log_model=False)
    (parent,) = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.`genre.job` = 'tune_grid'", output_format="list"
    )
    assert parent.info.status == "KILLED"
    children = _children(parent.info.run_id)
    assert len(children) == 2
    assert all(c.info.status == "FINISHED" and "cv_accuracy_mean" in c.data.metrics for c in children)


def test_a_stack_can_be_searched_on_windowed_data_and_keeps_tracks_together(tmp_path, dataset):
    """The stack cuts its own inner folds over tracks, so a grid search may call its fit directly."""
    config = _config(tmp_path, "model: stacking\ngrid: {final_estimator__C: [0.1, 1]}\n")
    config = replace(
        config, fixed={"nn__hidden_layers": 1, "nn__units": 8, "nn__epochs": 2, "nn__patience": 1}
    )
    frame = _frame(n_per_class=10)
    windows = pd.concat(
        [frame.assign(filename=frame["filename"].str.replace(".wav", f".{k}.wav")) for k in range(3)]
    )
    windowed = from_frame(windows.reset_index(drop=True), source="w.csv", windowed=True)
    search = grid_search(config, windowed, n_splits=2)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    stack = fit_model(make_model("stacking", config.fixed), windowed)
    groups = windowed.groups
    for train, test in stack[-1].folds_:
        assert not set(groups[train]) & set(groups[test])


SVM_SPACE = "model: svm\nspace:\n  C: {type: float, low: 0.01, high: 100, log: true}\n"


def test_optuna_trials_are_children_and_a_persistent_study_resumes(tracking, tmp_path, dataset, monkeypatch):
    config = _config(tmp_path, SVM_SPACE, "optuna")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = tune_optuna_run(config, dataset, n_trials=3, storage=storage, n_splits=3, log_model=False)
    assert len(_children(first.run_id)) == 3

    # A second process with the same command and a larger budget resumes: same study, same parent run.
    study = open_study(config, dataset, storage=storage, n_splits=3)
    assert len(study.trials) == 3
    fits = {"n": 0}
    from genre.models import CalibratedSVC

    original = CalibratedSVC.fit

    def interrupting_fit(self, X, y):  # noqa: N803 - the estimator API
        fits["n"] += 1
        if fits["n"] == 5:  # in the second trial of this process
            raise KeyboardInterrupt
        return original(self, X, y)

    monkeypatch.setattr(CalibratedSVC, "fit", interrupting_fit)
    with pytest.raises(KeyboardInterrupt):
        tune_optuna_run(config, dataset, n_trials=6, storage=storage, n_splits=3, log_model=False)
    assert mlflow.get_run(first.run_id).info.status == "KILLED"
    study = open_study(config, dataset, storage=storage, n_splits=3)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 4 and states[-1] == optuna.trial.TrialState.FAIL

    monkeypatch.setattr(CalibratedSVC, "fit", original)
    final = tune_optuna_run(config, dataset, n_trials=6, storage=storage, n_splits=3, log_model=False)
    assert final.run_id == first.run_id  # every trial under one parent
    study = open_study(config, dataset, storage=storage, n_splits=3)
    assert (
        sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 6
    )  # only what was missing
    children = _children(first.run_id)
    assert len(children) == 7  # 6 complete + the interrupted one, kept and marked
    assert sorted(c.info.status for c in children).count("KILLED") == 1
    assert mlflow.get_run(first.run_id).info.status == "FINISHED"
    # The resumed sampler does not replay the first trials' parameters.
    values = [round(t.params["C"], 9) for t in study.trials]
    assert len(set(values)) == len(values)
    assert final.best_score == study.best_value  # the study's own float, not recomputed
    # Once the study holds its trials, the same command again adds nothing: no trial, no second refit.
    logged = len(mlflow.MlflowClient().get_metric_history(first.run_id, "search_seconds"))
    again = tune_optuna_run(config, dataset, n_trials=6, storage=storage, n_splits=3, log_model=False)
    assert again.best_params == final.best_params and len(_children(first.run_id)) == 7
    assert len(mlflow.MlflowClient().get_metric_history(first.run_id, "search_seconds")) == logged


def test_a_study_for_another_search_is_not_mixed_in(tmp_path, dataset):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    config = _config(tmp_path, SVM_SPACE, "optuna")
    open_study(config, dataset, storage=storage, study_name="shared", n_splits=3)
    other = _config(tmp_path, SVM_SPACE.replace("100", "1000"), "optuna", name="other.yaml")
    with pytest.raises(ConfigError, match="created for another search"):
        open_study(other, dataset, storage=storage, study_name="shared", n_splits=3)


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tracking, tmp_path, dataset, monkeypatch):
    config = _config(tmp_path, SVM_SPACE, "optuna")
    from genre.models import CalibratedSVC

    original = CalibratedSVC.fit
    calls = {"n": 0}

    def flaky_fit(self, X, y):  # noqa: N803 - the estimator API
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("flaky")
        return original(self, X, y)

    monkeypatch.setattr(CalibratedSVC, "fit", flaky_fit)
    result = tune_optuna_run(config, dataset, n_trials=2, n_splits=3, log_model=False)
    children = _children(result.run_id)
    failed = [c for c in children if c.data.tags.get("optuna.state") == "FAIL"]
    assert len(children) == 3 and len(failed) == 1
    assert failed[0].data.tags["genre.error"] == "ValueError: flaky"
    assert mlflow.get_run(result.run_id).data.metrics["trials_complete"] == 2


def test_the_network_is_pruned_on_its_validation_loss(tracking, tmp_path, dataset):
    # ThresholdPruner(lower=0) prunes any negative value: the reported -val_loss always is.
    text = (
        "model: nn\nfixed: {hidden_layers: 1, units: 8, epochs: 40}\n"
        "space:\n  learning_rate: {type: float, low: 0.001, high: 0.01, log: true}\n"
        "pruner: {type: threshold, lower: 0.0, n_warmup_steps: 3}\n"
    )
    config = _config(tmp_path, text, "optuna")
    with pytest.raises(ConfigError, match="no trial completed"):
        tune_optuna_run(config, dataset, n_trials=2, n_splits=3, log_model=False)
    (parent,) = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.`genre.job` = 'tune_optuna'", output_format="list"
    )
    children = _children(parent.info.run_id)
    assert len(children) == 2
    assert {c.data.tags["optuna.state"] for c in children} == {"PRUNED"}
    assert {c.data.tags["optuna.pruned_at"] for c in children} == {"step 3"}  # fold 0, epoch 3: warm-up over


def test_nested_cv_uses_the_outer_grouped_folds(dataset):
    fixed = make_model("knn", {"n_neighbors": 3})
    table = nested_cv(dataset, fixed, outer_splits=3)
    plain = evaluate(fixed, dataset, "grouped", n_splits=3)
    # Equal bits: the same model on the same folds in this process, one thread per pool.
    np.testing.assert_array_equal(table["accuracy"], plain.folds["accuracy"])
    assert json.loads(table["params"][0])["n_neighbors"] == 3


def test_nested_cv_of_a_search_picks_from_the_grid(tmp_path, dataset):
    config = _config(tmp_path, "model: knn\ngrid: {n_neighbors: [1, 7]}\n")
    table = nested_cv(dataset, search_estimator(config, "grid", n_splits=3), outer_splits=3)
    assert len(table) == 3
    assert {json.loads(p)["n_neighbors"] for p in table["params"]} <= {1, 7}
    optuna_config = _config(
        tmp_path, "model: knn\nspace: {n_neighbors: {type: int, low: 1, high: 9}}\n", "optuna"
    )
    table = nested_cv(
        dataset, search_estimator(optuna_config, "optuna", n_splits=3, n_trials=2), outer_splits=2
    )
    assert len(table) == 2 and table["accuracy"].between(0, 1).all()


def test_the_tuned_stack_records_where_its_parameters_came_from(tracking, tmp_path, dataset, data_csv):
    one = tune_grid_run(_config(tmp_path, "model: knn\ngrid: {n_neighbors: [1]}\n"), dataset, n_splits=3)
    two = tune_grid_run(
        _config(tmp_path, "model: knn\ngrid: {n_neighbors: [9]}\n", name="k.yaml"), dataset, n_splits=3
    )
    assert one.best_score != two.best_score
    better = max(one, two, key=lambda result: result.best_score)
    svm = tune_grid_run(
        _config(tmp_path, "model: svm\ngrid: {C: [0.5]}\n", name="s.yaml"), dataset, n_splits=3
    )

    params, provenance = tuned_stack_params({"knn": "best", "svm": svm.run_id, "nn": "default"})
    assert provenance["knn"]["run_id"] == better.run_id  # the best run of the experiment by the metric
    assert params["knn__n_neighbors"] == better.best_params["n_neighbors"] and params["svm__C"] == 0.5
    assert provenance["nn"]["run_id"] is None and not any(k.startswith("nn__") for k in params)

    result = tune_stacking_job(
        str(data_csv),
        sources={"knn": "best", "svm": svm.run_id, "nn": "default"},
        params={"nn__hidden_layers": 1, "nn__units": 16, "nn__epochs": 5, "cv": 3},
        n_splits=3,
    )
    run = mlflow.get_run(result.run_id)
    assert run.data.tags["genre.source.knn"] == better.run_id
    assert run.data.tags["genre.source.svm"] == svm.run_id
    assert run.data.tags["genre.source.nn"] == "default"
    assert run.data.params["model.stacking__knn__n_neighbors"] == str(better.best_params["n_neighbors"])
    sources = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/stack_sources.json")
    assert sources["svm"]["params"] == {"C": 0.5} and sources["svm"]["strategy"] == "grid"


def test_a_stack_source_that_is_not_a_tuning_run_is_refused(tracking):
    with pytest.raises(ConfigError, match="no finished tune_grid or tune_optuna run of knn"):
        tuned_stack_params({"knn": "best"})
    with pytest.raises(ConfigError, match="has no base model 'forest'"):
        tuned_stack_params({"forest": "best"})
    with mlflow.start_run() as run:
        pass
    with pytest.raises(ConfigError, match="not a finished tuning run"):
        tuned_stack_params({"svm": run.info.run_id})


def test_best_only_compares_tuning_runs_on_the_same_data(tracking, tmp_path, dataset):
    frame = _frame(seed=1)
    columns = list(FEATURE_COLUMNS)
    frame[columns] = frame["label"].factorize()[0][:, None] + 0.01 * frame[columns].to_numpy()
    easy = from_frame(frame, source="easy.csv", windowed=False)  # every feature gives the label away
    config = _config(tmp_path, "model: knn\ngrid: {n_neighbors: [3]}\n")
    on_easy = tune_grid_run(config, easy, n_splits=3, log_model=False)
    on_ours = tune_grid_run(config, dataset, n_splits=3, log_model=False)
    assert on_easy.best_score > on_ours.best_score
    assert best_tuning_run("knn") == on_easy.run_id
    assert best_tuning_run("knn", data=dataset.name) == on_ours.run_id


def test_network_trials_log_where_each_fold_stopped_and_the_curve(tracking, tmp_path, dataset):
    text = (
        "model: nn\nfixed: {hidden_layers: 1, units: 8, epochs: 30}\n"
        "space:\n  patience: {type: int, low: 2, high: 3}\n"
    )
    result = tune_optuna_run(_config(tmp_path, text, "optuna"), dataset, n_trials=1, n_splits=3)
    (trial,) = _children(result.run_id)
    client = mlflow.MlflowClient()
    stopped = client.get_metric_history(trial.info.run_id, "stopped_epoch")
    assert sorted(m.step for m in stopped) == [1, 2, 3] and all(1 <= m.value <= 30 for m in stopped)
    curve = client.get_metric_history(trial.info.run_id, "epoch_val_loss")
    first_fold = next(m.value for m in stopped if m.step == 1)
    assert [m.step for m in sorted(curve, key=lambda m: m.step)] == list(range(1, int(first_fold) + 1))
    # The winner refitted on all rows: its stopping epoch and curves on the parent.
    parent_artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert "training_curves.png" in parent_artifacts
    assert "stopped_epoch" in mlflow.get_run(result.run_id).data.metrics


def test_a_filtered_search_never_sees_the_test_tracks_and_tests_its_winner(tracking, tmp_path):
    from tests.conftest import gtzan_like

    dataset = from_frame(gtzan_like(), source="gtzan-like.csv")
    config = _config(tmp_path, "model: knn\ngrid: {n_neighbors: [3, 9]}\n")
    result = tune_grid_run(config, dataset, n_splits=3, protocol="filtered", log_model=False)
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert run.data.tags["genre.protocol"] == "filtered" and run.data.params["cv.protocol"] == "filtered"
    assert run.data.params["data.rows"] == str(443 + 197)  # the search's data: train and valid tracks
    assert 0.0 < run.data.metrics["test_accuracy"] <= 1.0
    with pytest.raises(ConfigError, match="outer folds are the grouped protocol's"):
        from genre.jobs.tune import tune_grid_job

        tune_grid_job(str(config.path), "embedded", outer_splits=3, protocol="filtered")
