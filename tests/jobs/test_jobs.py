"""The MLflow-tracked jobs, called directly against a temporary tracking store."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genre.data import load_csv
from genre.data.schema import GTZAN_GENRES, SAMPLE_RATE
from genre.jobs.extract import extract_job
from genre.jobs.train import main_job


def _only_run(experiment: str = "genre") -> mlflow.entities.Run:
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    assert len(runs) == 1
    return runs[0]


@pytest.fixture
def small_library(tmp_path):
    rng = np.random.default_rng(0)
    for label, freq in (("low", 220.0), ("high", 1760.0)):
        (tmp_path / "lib" / label).mkdir(parents=True)
        for k in range(2):
            t = np.arange(int(3.5 * SAMPLE_RATE)) / SAMPLE_RATE
            y = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.01 * k) * t) + 0.02 * rng.standard_normal(t.size)
            sf.write(tmp_path / "lib" / label / f"{label}{k}.wav", y, SAMPLE_RATE)
    (tmp_path / "lib" / "low" / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    return tmp_path / "lib"


def test_extract_job_writes_csv_failures_and_logs_a_run(tracking, small_library, tmp_path):
    out = tmp_path / "out" / "features.csv"
    result = extract_job([small_library], out, track=True, cache=False)
    table = pd.read_csv(out)
    assert len(table) == result.files_done == 4
    failures = pd.read_csv(out.with_name("features.failures.csv"))
    assert failures["path"].str.endswith("broken.wav").tolist() == [True]

    run = _only_run()
    assert run.data.metrics["files_done"] == 4
    assert run.data.metrics["files_failed"] == 1
    assert run.data.metrics["seconds_per_track"] > 0
    assert run.data.params["extract.windows"] == "False"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert artifacts == {"features.csv", "features.failures.csv"}
    (logged,) = run.inputs.dataset_inputs
    assert logged.dataset.source_type == "local" and "features.csv" in logged.dataset.source
    # What was written is a valid dataset in the GTZAN schema.
    assert load_csv(out).labels == ["high", "low"]


def test_main_job_on_the_embedded_set(tracking):
    """The main job on the synthetic audio set, two fast models and three folds."""
    table = main_job("embedded", models=("knn", "svm"), protocols=("grouped", "seed"), n_splits=3)
    assert list(table["protocol"]) == ["grouped", "grouped", "seed (leaky)", "seed (leaky)"]
    assert table["cv_accuracy"].between(0.5, 1.0).all()
    runs = mlflow.search_runs(experiment_names=["genre"])
    parent = runs[runs["tags.mlflow.runName"] == "main"].iloc[0]
    assert parent["params.data.name"] == "embedded-seed0"
    assert parent["params.data.windowed"] == "True"
    assert int(parent["params.data.rows"]) == 2 * int(parent["params.data.tracks"]) == 160
    comparison = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{parent['run_id']}/comparison.csv"))
    assert comparison["run_id"].isin(runs["run_id"]).all()


def test_main_job_reuses_its_finished_runs_unless_forced(tracking, capsys):
    """The same command with the same code, data and parameters answers from the finished runs."""
    from genre.progress import Progress

    first = main_job(models=("knn",), protocols=("grouped",), n_splits=2)
    before = len(mlflow.search_runs(experiment_names=["genre"]))
    again = main_job(models=("knn",), protocols=("grouped",), n_splits=2, progress=Progress())
    # The reused table is read back from the runs' metrics, which MLflow stores as the float64s logged.
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    assert len(mlflow.search_runs(experiment_names=["genre"])) == before  # nothing trained
    notes = capsys.readouterr().err
    assert "reusing run" in notes and "--force runs it again" in notes
    main_job(models=("knn",), protocols=("grouped",), n_splits=3)  # another question: trained
    main_job(models=("knn",), protocols=("grouped",), n_splits=2, force=True)
    assert len(mlflow.search_runs(experiment_names=["genre"])) == before + 4


def test_main_job_picks_the_protocols_the_data_allows_and_says_why(tracking, capsys):
    """On the embedded set (not GTZAN) ``auto`` is grouped and seed, and the console says why."""
    from genre.progress import Progress

    table = main_job("embedded", models=("knn",), n_splits=2, progress=Progress())
    assert list(table["protocol"]) == ["grouped", "seed (leaky)"]
    assert list(table["features"]) == ["gtzan57", "gtzan57"]
    assert "no filtered protocol" in capsys.readouterr().err


def test_the_default_main_job_trains_on_real_music_and_leaves_a_champion_once(tracking, capsys):
    """With no data given: musicnn's taggrams of GTZAN shipped in the package, whole clips, under filtered
    and grouped; the first job registers its best filtered model by CV (never by the test) as champion and
    says what to do next; a later job leaves that champion alone and says how to move it."""
    from genre.progress import Progress
    from genre.registry import load_classifier

    table = main_job(models=("knn", "svm"), n_splits=2, champion=True, progress=Progress())
    assert list(table["protocol"]) == ["filtered", "filtered", "grouped", "grouped"]
    assert list(table.columns[:4]) == ["model", "features", "protocol", "test_accuracy"]
    assert set(table["features"]) == {"musicnn"}
    parent = mlflow.search_runs(experiment_names=["genre"], filter_string="tags.mlflow.runName = 'main'")
    assert parent["params.data.name"].tolist() == ["gtzan-musicnn"]
    assert parent["params.data.windowed"].tolist() == ["False"]
    assert parent["params.data.tracks"].tolist() == ["733"]
    filtered = table[table["protocol"] == "filtered"].reset_index(drop=True)
    chosen = filtered.loc[filtered["cv_accuracy"].idxmax()]
    notes = capsys.readouterr().err
    label = f"{chosen['model']} on musicnn (run {chosen['run_id']})"
    assert f"champion: genre-classifier version 1 is {label}" in notes
    assert f"{chosen['test_accuracy']:.3f} (looked at after the choice)" in notes
    next_commands = ("genre predict", "genre web", "mlflow models serve -m models:/")
    assert all(command in notes for command in next_commands)
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("genre-classifier", "champion")
    assert version.run_id != chosen["run_id"] and version.tags["genre.source_run_id"] == chosen["run_id"]
    assert "Accuracy on artists it never heard" in version.description
    assert "GTZAN's ten genres only" in version.description
    assert load_classifier().classes == list(GTZAN_GENRES)

    main_job(models=("knn", "svm"), n_splits=2, champion=True, progress=Progress())  # reused: no new version
    notes = capsys.readouterr().err
    assert "genre-classifier@champion is version 1 and stays so" in notes and "genre promote" in notes
    assert [str(v.version) for v in client.search_model_versions("name = 'genre-classifier'")] == ["1"]
