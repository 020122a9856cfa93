"""Batch scoring on Spark in local mode: the registered pyfunc over feature rows and audio files.

One tracking store with a small registered stack (trained on GTZAN's 30-s features, so one window per
clip) and one local[2] SparkSession per module: Spark's answers must be the in-process pyfunc's, and a
bad row or file must be reported by name without losing the good ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from genre.batch import ERROR_COLUMN, PROBABILITY_PREFIX, find_java, score_batch, spark_session
from genre.data import load_csv
from genre.data.schema import FEATURE_COLUMNS
from genre.errors import BatchError, DataError
from genre.evaluation import fit_model
from genre.models import make_model
from genre.serving import encode_audio, log_serving_model
from genre.serving.classifier import audio_windows
from tests.conftest import GTZAN_30, GTZAN_AUDIO, require, use_store
from tests.rounding import probability_bound

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        find_java() is None, reason="Spark needs a Java 17+ runtime: no $JAVA_HOME/bin/java, no java on PATH"
    ),
]

#: A stack that trains in seconds: a one-layer network, 20 epochs.
SMALL_STACK = {"nn__hidden_layers": 1, "nn__units": 32, "nn__epochs": 20, "nn__patience": 5}
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[str, str]:
    """(tracking URI, model URI) of a small stack fitted on features_30_sec.csv, registered."""
    dataset = load_csv(require(GTZAN_30))
    root = tmp_path_factory.mktemp("batch")
    with pytest.MonkeyPatch.context() as patch:
        uri = use_store(root, patch)
        fitted = fit_model(make_model("stacking", SMALL_STACK), dataset)
        with mlflow.start_run():
            log_serving_model(
                fitted, windowed=False, input_example=dataset.X.head(2), registered_model_name="batch-test"
            )
        yield uri, "models:/batch-test/1"
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def in_process(model):
    return mlflow.pyfunc.load_model(model[1])


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]")
    yield session
    session.stop()


def _probabilities(frame: pd.DataFrame, classes: list[str]) -> np.ndarray:
    return frame[[f"{PROBABILITY_PREFIX}{c}" for c in classes]].to_numpy(dtype=float)


def _assert_same_answers(scored: np.ndarray, expected: pd.Series, in_process, rows: pd.DataFrame) -> None:
    """Spark's probabilities against the model's in this process: the same code on the same machine,
    one thread per pool, but in other batches (Spark's Arrow batches; one file per call for audio), so
    the model's matrix products have other shapes and their kernels sum in other orders. Per row,
    within the bound on two evaluations of the model's float64 sums in any orders."""
    estimator = in_process.unwrap_python_model().classifier.estimator
    difference = np.abs(scored - np.array([list(p.values()) for p in expected]))
    assert (difference.max(axis=1) <= probability_bound(estimator, rows)).all()


def test_feature_rows_match_the_model_in_process_and_bad_rows_are_named(model, in_process, spark, tmp_path):
    rows = pd.read_csv(GTZAN_30, dtype=str, keep_default_na=False).sample(300, random_state=0)
    rows.iloc[3, rows.columns.get_loc("tempo")] = "fast"
    rows.iloc[7, rows.columns.get_loc("rms_mean")] = ""
    rows.iloc[7, rows.columns.get_loc("mfcc3_var")] = "inf"
    source = tmp_path / "rows.csv"
    rows.to_csv(source, index=False)

    result = score_batch(model[1], source, tmp_path / "out.parquet", spark=spark)

    out = pd.read_parquet(tmp_path / "out.parquet").set_index("filename").loc[rows["filename"]]
    assert (result.scored, result.failed) == (298, 2)
    bad = out.iloc[[3, 7]]
    assert bad["genre"].isna().all() and np.isnan(_probabilities(bad, ["blues", "rock"])).all()
    assert "column tempo: 'fast'" in bad[ERROR_COLUMN].iloc[0]
    assert "column rms_mean: missing" in bad[ERROR_COLUMN].iloc[1]
    assert "column mfcc3_var: 'inf'" in bad[ERROR_COLUMN].iloc[1]
    assert dict(result.failures) == bad[ERROR_COLUMN].to_dict()

    good = rows.drop(rows.index[[3, 7]])
    expected = in_process.predict(good[list(FEATURE_COLUMNS)].astype(float))
    classes = list(expected["probabilities"].iloc[0])
    scored = out.loc[good["filename"]]
    assert scored[ERROR_COLUMN].isna().all()
    assert scored["genre"].tolist() == expected["genre"].tolist()
    rows = good[list(FEATURE_COLUMNS)].astype(float)
    _assert_same_answers(_probabilities(scored, classes), expected["probabilities"], in_process, rows)


def test_parquet_input_with_another_id_column(model, in_process, spark, tmp_path):
    rows = pd.read_csv(GTZAN_30).head(50).rename(columns={"filename": "track"})
    rows.to_parquet(tmp_path / "rows.parquet")
    result = score_batch(
        model[1], tmp_path / "rows.parquet", tmp_path / "out", spark=spark, id_column="track"
    )
    out = pd.read_parquet(tmp_path / "out").set_index("track").loc[rows["track"]]
    expected = in_process.predict(rows[list(FEATURE_COLUMNS)])
    assert (result.scored, result.failed) == (50, 0)
    assert out["genre"].tolist() == expected["genre"].tolist()
    with pytest.raises(DataError, match="missing column.*id_column='filename'"):
        score_batch(model[1], tmp_path / "rows.parquet", tmp_path / "again", spark=spark)


def test_audio_files_land_and_a_bad_file_is_reported_by_name(model, in_process, spark, tmp_path):
    clips = sorted(require(GTZAN_AUDIO).glob("*/*.wav"))
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "broken.wav").write_text("this is a text file, not a WAV")
    (folder / "notes.txt").write_text("not an audio extension: not read from a folder")
    shutil.copy(clips[0], folder / "copy.wav")

    result = score_batch(model[1], [*clips[1:4], folder], tmp_path / "audio.parquet", spark=spark, audio=True)

    out = pd.read_parquet(tmp_path / "audio.parquet")
    out.index = out["path"].str.removeprefix("file:")
    good = [*clips[1:4], folder / "copy.wav"]
    assert sorted(out.index) == sorted([*map(str, good), str(folder / "broken.wav")])
    assert (result.scored, result.failed) == (4, 1)
    error = out.loc[str(folder / "broken.wav"), ERROR_COLUMN]
    assert error.startswith(f"file:{folder / 'broken.wav'}: ") and "not audio" in error
    expected = in_process.predict(pd.DataFrame({"audio": [encode_audio(p.read_bytes()) for p in good]}))
    scored = out.loc[list(map(str, good))]
    assert scored[ERROR_COLUMN].isna().all() and scored["windows"].tolist() == [1] * 4
    assert scored["genre"].tolist() == expected["genre"].tolist()
    classes = list(expected["probabilities"].iloc[0])
    options = in_process.unwrap_python_model().classifier.window_options
    rows = pd.DataFrame([audio_windows(p.read_bytes(), str(p), **options).rows[0] for p in good])
    _assert_same_answers(_probabilities(scored, classes), expected["probabilities"], in_process, rows)


def test_refused_before_any_work(model, spark, tmp_path):
    with pytest.raises(DataError, match="nowhere.csv: no such file or folder"):
        score_batch(model[1], tmp_path / "nowhere.csv", tmp_path / "out", spark=spark)
    (tmp_path / "out").mkdir()
    with pytest.raises(BatchError, match="already exists; pass overwrite=True"):
        score_batch(model[1], GTZAN_30, tmp_path / "out", spark=spark)
    with pytest.raises(DataError, match="no audio files"):
        score_batch(model[1], tmp_path / "out", tmp_path / "audio", spark=spark, audio=True)


def test_score_entry_point(model, tmp_path):
    """`mlflow run -e score` runs `genre score` in its own Spark, records the batch, keeps the good file."""
    clip = sorted(require(GTZAN_AUDIO).glob("*/*.wav"))[0]
    folder = tmp_path / "audio"
    folder.mkdir()
    shutil.copy(clip, folder / clip.name)
    (folder / "bad.wav").write_bytes(b"RIFF nope")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MLFLOW_TRACKING_URI": model[0]}
    command = [str(BIN / "mlflow"), "run", str(ROOT), "-e", "score", "--env-manager", "local"]
    params = {"model_uri": model[1], "data": folder, "out": tmp_path / "scores.parquet"}
    for name, value in params.items():
        command += ["-P", f"{name}={value}"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 row(s) scored, 1 failed" in done.stdout
    assert f"failed file:{folder / 'bad.wav'}: 9 bytes that are not audio" in done.stderr
    (run,) = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.`genre.job` = 'score'", output_format="list"
    )
    assert run.data.params["score.audio"] == "True" and run.data.params["score.master"] == "local[2]"
    assert run.data.metrics["rows_scored"] == 1 and run.data.metrics["rows_failed"] == 1
    assert len(pd.read_parquet(tmp_path / "scores.parquet")) == 2
