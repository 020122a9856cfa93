"""A served model of both feature sets: its signature, audio answers with musicnn's tags, feature rows of
157 columns, and a server that needs neither the musicnn wheel nor TensorFlow to compute them."""

from __future__ import annotations

import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genre.data.schema import FEATURE_COLUMNS, MSD_TAGS, MUSICNN_COLUMNS, SAMPLE_RATE
from genre.data.synthesis import synthesize_clip
from genre.errors import RequestError
from genre.features import load_data
from genre.registry import register
from genre.serving import encode_audio
from genre.training import train_run
from tests.conftest import use_store

SMALL_STACK = {"nn__hidden_layers": 1, "nn__units": 32, "nn__epochs": 20, "nn__patience": 5}


@pytest.fixture(scope="module")
def served(tmp_path_factory, cache_dir):
    """A stack of both feature sets, trained on the embedded audio's windows and registered."""
    root = tmp_path_factory.mktemp("both")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_CACHE_DIR", str(cache_dir))
        uri = use_store(root, patch)
        dataset = load_data("embedded", features=("gtzan57", "musicnn"))
        trained = train_run("stacking", dataset, params=SMALL_STACK, features="both", n_splits=2)
        registration = register(trained.run_id)
        yield uri, registration.model_uri, dataset, root
    mlflow.set_tracking_uri(None)


def _clip(tmp_path, name: str = "drone") -> bytes:
    y = synthesize_clip(name, rng=np.random.default_rng(3), n_samples=9 * SAMPLE_RATE, sr=SAMPLE_RATE)
    path = tmp_path / "clip.wav"
    sf.write(path, y, SAMPLE_RATE)
    return path.read_bytes()


def test_the_signature_lists_both_sets_and_audio_answers_name_musicnn_tags(served, tmp_path):
    _, model_uri, dataset, _ = served
    model = mlflow.pyfunc.load_model(model_uri)
    names = model.metadata.signature.inputs.input_names()
    assert names == [*FEATURE_COLUMNS, *MUSICNN_COLUMNS, "audio"]
    answer = model.predict(pd.DataFrame({"audio": [encode_audio(_clip(tmp_path))]})).iloc[0]
    assert answer["genre"] in dataset.labels and answer["windows"] == 3
    tags = answer["tags"]
    assert len(tags) == 5 and set(tags) <= set(MSD_TAGS)
    assert list(tags.values()) == sorted(tags.values(), reverse=True)


def test_feature_rows_need_every_column_of_both_sets(served):
    _, model_uri, dataset, _ = served
    model = mlflow.pyfunc.load_model(model_uri)
    classifier = model.unwrap_python_model().classifier
    rows = dataset.X.head(3)
    expected = classifier.predict_proba(rows)
    answer = model.predict(rows.sample(frac=1.0, axis=1, random_state=0))  # any column order
    got = np.array([[p[c] for c in classifier.classes] for p in answer["probabilities"]])
    # Equal bits: the same classifier in this process, one thread per pool, the same rows in one batch
    # (the columns are put back in the model's order before any arithmetic).
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(RequestError, match=r"missing feature column\(s\) musicnn_rock_mean"):
        classifier.predict(rows.drop(columns="musicnn_rock_mean"))


def test_the_served_model_computes_musicnn_without_the_wheel(served, tmp_path):
    """The registered model carries the converted weights: a process where the musicnn package cannot be
    found, with an empty cache, answers audio the same, and never imports TensorFlow."""
    uri, model_uri, _, root = served
    clip = tmp_path / "clip.wav"
    clip.write_bytes(_clip(tmp_path))
    expected = mlflow.pyfunc.load_model(model_uri).predict(
        pd.DataFrame({"audio": [encode_audio(clip.read_bytes())]})
    )
    script = f"""
import importlib.util, json, sys
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name == "musicnn" else real(name, *a)
import mlflow, pandas as pd
from genre.serving import encode_audio
mlflow.set_tracking_uri({uri!r})
model = mlflow.pyfunc.load_model({model_uri!r})
answer = model.predict(pd.DataFrame({{"audio": [encode_audio(open({str(clip)!r}, "rb").read())]}})).iloc[0]
print(json.dumps({{"p": answer["probabilities"], "tf": "tensorflow" in sys.modules}}))
"""
    env = {"GENRE_CACHE_DIR": str(tmp_path / "empty-cache"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=root, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["tf"] is False
    # Equal bits on any CPU: the child runs the same code on this machine's kernels, one thread per pool
    # in both processes (feature extraction and prediction pin it); json carries floats exactly.
    assert answer["p"] == expected.iloc[0]["probabilities"]
