"""A small champion for the catalog's tests: k-NN on the 57 features of a few synthetic clips, logged as
the serving model and registered as ``genre-classifier@champion`` in a tracking store of its own (a few
seconds; no trained champion of the project is needed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from genre import settings
from genre.data.schema import FEATURE_COLUMNS, SAMPLE_RATE
from genre.data.synthesis import synthesize_clip
from genre.features import extract_features
from genre.models import make_model
from genre.serving.pyfunc import log_serving_model
from tests.conftest import use_store

#: The champion's genres, and the synthetic style each learns from ("hiphop" is spelled "Hip-Hop" in tags).
STYLES = {"blues": "swing_bass", "hiphop": "breakbeat", "classical": "bowed_pad"}


@dataclass(frozen=True)
class Champion:
    uri: str  # the tracking store: MLFLOW_TRACKING_URI for genre commands
    root: Path


def _rows() -> tuple[pd.DataFrame, list[str]]:
    rows, labels = [], []
    for genre, style in STYLES.items():
        for seed in range(4):
            y = synthesize_clip(
                style, rng=np.random.default_rng(seed), n_samples=3 * SAMPLE_RATE, sr=SAMPLE_RATE
            )
            rows.append(extract_features(y, sr=SAMPLE_RATE))
            labels.append(genre)
    return pd.DataFrame(rows, columns=list(FEATURE_COLUMNS)), labels


@pytest.fixture(scope="session")
def champion(tmp_path_factory) -> Champion:
    """``genre-classifier`` version 1 as @champion, in its own store; the store stays selected for the
    tests that use it (``use_champion``)."""
    root = tmp_path_factory.mktemp("champion")
    rows, labels = _rows()
    estimator = make_model("knn", {"n_neighbors": 3}).fit(rows, labels)
    with pytest.MonkeyPatch.context() as patch:
        uri = use_store(root, patch)
        with mlflow.start_run():
            info = log_serving_model(
                estimator,
                windowed=True,
                input_example=rows.head(3),
                registered_model_name=settings.MODEL_NAME,
            )
        MlflowClient().set_registered_model_alias(
            settings.MODEL_NAME, settings.CHAMPION, info.registered_model_version
        )
    mlflow.set_tracking_uri(None)
    return Champion(uri, root)


@pytest.fixture
def use_champion(champion, monkeypatch, tmp_path) -> Champion:
    """Select the champion's store for this test, working in ``tmp_path``."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion.uri)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(champion.uri)
    yield champion
    mlflow.set_tracking_uri(None)
