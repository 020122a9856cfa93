"""The ``data`` parameter of every job resolved to a ``Dataset``: the embedded set, a CSV, or audio.

A CSV is read as it is (``genre.data``); the embedded set and a folder of labelled audio laid out like
GTZAN's ``genres_original/<label>/<file>`` go through the batch extractor first, cached, so a rerun is
quick.
"""

from __future__ import annotations

from pathlib import Path

from genre import settings
from genre.data import EMBEDDED, Dataset, from_frame, load_csv
from genre.data.synthetic import generate_dataset
from genre.errors import DataError
from genre.features.extraction import extract_paths

__all__ = ["embedded_audio", "load_data", "resolve_audio_paths"]


def load_data(
    spec: str | Path, *, windows: bool = True, seed: int = 0, n_jobs: int = 1, progress: bool = False
) -> Dataset:
    """Resolve ``spec``: ``"embedded"``, a feature CSV, or an audio folder.

    Audio is extracted as 3-second windows when ``windows`` is true, else one row per file, with a
    progress bar on stderr when ``progress``. ``seed`` only matters for the embedded dataset.
    """
    if str(spec) == EMBEDDED:
        root = embedded_audio(seed)
        result = extract_paths([root], windows=windows, n_jobs=n_jobs, progress=progress)
        result.raise_if_empty()
        return from_frame(result.features, source=str(root), name=f"{EMBEDDED}-seed{seed}", windowed=windows)

    path = Path(spec)
    if path.is_dir():
        result = extract_paths([path], windows=windows, n_jobs=n_jobs, progress=progress)
        result.raise_if_empty()
        return from_frame(result.features, source=str(path), windowed=windows)
    if path.suffix.lower() == ".csv" or path.is_file():
        return load_csv(path)
    raise DataError(f"{spec}: neither {EMBEDDED!r}, a CSV file, nor a folder of audio")


def embedded_audio(seed: int = 0) -> Path:
    """The embedded audio set for ``seed``, generated into the cache on first use (a no-op after)."""
    return generate_dataset(settings.cache_dir() / "embedded" / f"seed{seed}", seed=seed)


def resolve_audio_paths(paths: list[str | Path], *, seed: int = 0) -> list[Path]:
    """Audio files and folders to extract or score; ``"embedded"`` stands for the generated audio set."""
    return [embedded_audio(seed) if str(path) == EMBEDDED else Path(path) for path in paths]
