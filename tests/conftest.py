"""Shared fixtures: where the real GTZAN files are, an isolated MLflow store and cache per test, and the
libsvm reference path that fast prediction paths are compared with."""

from __future__ import annotations

import atexit
import contextlib
import copy
import functools
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.svm import SVC

from genre.data.filtered_split import filtered_tracks
from genre.data.schema import GTZAN_GENRES, feature_columns
from genre.models import VectorizedSVC

#: ../shared beside the repository (CI clones the repo with shared/ beside it); GENRE_SHARED_DIR overrides.
SHARED_DIR = Path(os.environ.get("GENRE_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
GTZAN_DIR = SHARED_DIR / "data" / "gtzan"
GTZAN_30 = GTZAN_DIR / "features_30_sec.csv"
GTZAN_3_SUBSET = GTZAN_DIR / "features_3_sec_subset_classical_jazz_rock.csv"
GTZAN_AUDIO = GTZAN_DIR / "audio"
GTZAN_MUSICNN = GTZAN_DIR / "musicnn"


def require(path: Path) -> Path:
    """Skip the calling test, naming the missing file, when the real GTZAN data is not beside the repo."""
    if not path.exists():
        pytest.skip(f"real GTZAN data not found at {path} (set GENRE_SHARED_DIR)")
    return path


def with_libsvm(estimator: object) -> object:
    """A copy of a fitted estimator whose ``VectorizedSVC``s evaluate through libsvm: the reference path.

    Walks scikit-learn's and genre's objects and their containers only (a Keras model's object graph is
    large and cyclic, and holds no SVC).
    """
    reference = copy.deepcopy(estimator)
    stack, seen = [reference], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, VectorizedSVC):
            node.__class__ = SVC
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif type(node).__module__.split(".")[0] in ("sklearn", "genre"):
            stack.extend(vars(node).values())
    return reference


@functools.cache
def _empty_store() -> Path:
    """A new SQLite tracking store, made once per session: MLflow creates a store's tables by running
    every one of its migrations, 3-7 s on 2 cores, where copying the file takes milliseconds."""
    folder = Path(tempfile.mkdtemp(prefix="genre-empty-store-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with contextlib.chdir(folder):  # MLflow puts the Default experiment's artifacts under the cwd
        mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


def use_store(root: Path, patch: pytest.MonkeyPatch) -> str:
    """Select a fresh SQLite tracking store in ``root`` the way users select theirs, and work in ``root``.

    For fixtures of any scope: function-scoped ones pass ``monkeypatch``, module-scoped ones a
    ``pytest.MonkeyPatch.context()``; either undoes the environment afterwards, and the caller resets
    ``mlflow.set_tracking_uri(None)``. The store is a copy of ``_empty_store()`` whose ``Default``
    experiment keeps its artifacts in ``root``, as if MLflow had created the store there.
    """
    if not (root / "mlflow.db").exists():
        template = _empty_store()
        shutil.copyfile(template, root / "mlflow.db")
        with sqlite3.connect(root / "mlflow.db") as db:
            db.execute(
                "update experiments set artifact_location = replace(artifact_location, ?, ?)",
                (str(template.parent), str(root)),
            )
        db.close()
    uri = f"sqlite:///{root / 'mlflow.db'}"
    patch.setenv("MLFLOW_TRACKING_URI", uri)
    patch.chdir(root)
    for var in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        patch.delenv(var, raising=False)
    # A URI set in-process by an earlier test (jobs call mlflow.set_tracking_uri) would win over the env.
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("genre")  # also replaces an experiment id cached from an earlier test's store
    return uri


@pytest.fixture
def tracking(tmp_path, monkeypatch) -> Iterator[str]:
    """A fresh SQLite tracking store for one test."""
    yield use_store(tmp_path, monkeypatch)
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One feature/embedded-data cache for the whole session, so generated audio is extracted once."""
    return tmp_path_factory.mktemp("genre-cache")


@pytest.fixture(autouse=True)
def _isolated_cache(cache_dir, monkeypatch) -> None:
    monkeypatch.setenv("GENRE_CACHE_DIR", str(cache_dir))


def gtzan_like(*, sets: tuple[str, ...] = ("gtzan57",), extra: int = 0, seed: int = 0) -> pd.DataFrame:
    """A table with every track of GTZAN's filtered lists (and ``extra`` of the 70 outside them), named as
    GTZAN names them, with made-up features of the sets ``sets`` that carry their genre: for testing the
    filtered protocol without the real data."""
    listed = sorted(filtered_tracks())
    outside = sorted({f"{g}.{i:05d}" for g in GTZAN_GENRES for i in range(100)} - set(listed))[:extra]
    tracks = listed + outside
    labels = [track.split(".")[0] for track in tracks]
    rng = np.random.default_rng(seed)
    columns = feature_columns(sets)
    centres = rng.normal(size=(len(GTZAN_GENRES), len(columns)))
    codes = np.array([GTZAN_GENRES.index(label) for label in labels])
    values = centres[codes] + rng.normal(scale=2.0, size=(len(tracks), len(columns)))
    table = pd.DataFrame(values, columns=columns)
    table.insert(0, "filename", [f"{track}.wav" for track in tracks])
    table["label"] = labels
    return table
