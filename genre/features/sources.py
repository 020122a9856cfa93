"""The ``data`` parameter of every job resolved to a ``Dataset``: the embedded set, a CSV, audio,
musicnn's published taggrams, or several of these joined by track.

A CSV is read as it is (``genre.data``); the embedded set and a folder of labelled audio laid out like
GTZAN's ``genres_original/<label>/<file>`` go through the batch extractor first (the feature sets the job
needs), cached, so a rerun is quick. A ``.npz`` of musicnn taggrams, or a folder of them, is read by
``genre.data.taggrams``. Several sources separated by commas
(``features_30_sec.csv,musicnn/``) are joined track by track into one table with every feature set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from genre import settings
from genre.data import EMBEDDED, Dataset, from_frame, load_csv
from genre.data.synthetic import generate_dataset
from genre.data.taggrams import join_tables, read_taggrams
from genre.errors import DataError
from genre.features.extraction import extract_paths

__all__ = ["embedded_audio", "load_data", "resolve_audio_paths"]


def load_data(
    spec: str | Path,
    *,
    windows: bool = True,
    seed: int = 0,
    n_jobs: int = 1,
    progress: bool = False,
    features: Sequence[str] = ("gtzan57",),
) -> Dataset:
    """Resolve ``spec``: ``"embedded"``, a feature CSV, an audio folder, musicnn taggrams (a ``.npz`` or
    a folder of them), or several of these separated by commas, joined by track.

    Audio is extracted as 3-second windows when ``windows`` is true, else one row per file, with the
    feature sets ``features`` and a progress bar on stderr when ``progress``; taggrams become one row
    per clip, or per patch with ``windows``. A CSV holds what it holds. ``seed`` only matters for the
    embedded dataset.
    """
    parts = [part.strip() for part in str(spec).split(",") if part.strip()]
    if len(parts) > 1:
        loaded = [
            _load_one(part, windows=windows, seed=seed, n_jobs=n_jobs, progress=progress, features=features)
            for part in parts
        ]
        return join_tables(loaded, source=str(spec))
    return _load_one(
        str(spec), windows=windows, seed=seed, n_jobs=n_jobs, progress=progress, features=features
    )


def _load_one(
    spec: str, *, windows: bool, seed: int, n_jobs: int, progress: bool, features: Sequence[str]
) -> Dataset:
    extract = {"windows": windows, "n_jobs": n_jobs, "progress": progress, "features": features}
    if spec == EMBEDDED:
        root = embedded_audio(seed)
        result = extract_paths([root], **extract)
        result.raise_if_empty()
        return from_frame(result.features, source=str(root), name=f"{EMBEDDED}-seed{seed}", windowed=windows)

    path = Path(spec)
    if path.suffix.lower() == ".npz" or (path.is_dir() and any(path.glob("*.npz"))):
        return from_frame(read_taggrams(path, windowed=windows), source=str(path), windowed=windows)
    if path.is_dir():
        result = extract_paths([path], **extract)
        result.raise_if_empty()
        return from_frame(result.features, source=str(path), windowed=windows)
    if path.suffix.lower() == ".csv" or path.is_file():
        return load_csv(path)
    raise DataError(
        f"{spec}: neither {EMBEDDED!r}, a CSV file, a folder of audio, nor musicnn taggrams (.npz)"
    )


def embedded_audio(seed: int = 0) -> Path:
    """The embedded audio set for ``seed``, generated into the cache on first use (a no-op after)."""
    return generate_dataset(settings.cache_dir() / "embedded" / f"seed{seed}", seed=seed)


def resolve_audio_paths(paths: list[str | Path], *, seed: int = 0) -> list[Path]:
    """Audio files and folders to extract or score; ``"embedded"`` stands for the generated audio set."""
    return [embedded_audio(seed) if str(path) == EMBEDDED else Path(path) for path in paths]
