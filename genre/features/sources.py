"""The ``data`` parameter of every job resolved to a ``Dataset``: the shipped GTZAN taggrams, the embedded
set, a CSV, audio, musicnn's published taggrams, or several of these joined by track.

``gtzan-musicnn`` is musicnn's published taggrams of GTZAN's filtered clips, shipped in the package: real
music with nothing downloaded. A CSV is read as it is (``genre.data``); the embedded (synthetic) set and a
folder of labelled audio laid out like GTZAN's ``genres_original/<label>/<file>`` go through the batch
extractor first (the feature sets the job needs), cached, so a rerun is quick. A ``.npz`` of musicnn
taggrams, or a folder of them, is read by ``genre.data.taggrams``. Several sources separated by commas
(``features_30_sec.csv,musicnn/``) are joined track by track into one table with every feature set; a
table of GTZAN tracks without musicnn's features, asked for them, is joined with the shipped taggrams.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from genre import settings
from genre.data import EMBEDDED, GTZAN_MUSICNN, SHIPPED_TAGGRAMS, Dataset, from_frame, load_csv
from genre.data.taggrams import join_tables, read_taggrams
from genre.errors import DataError
from genre.features.extraction import extract_paths

__all__ = ["embedded_audio", "load_data", "resolve_audio_paths"]


def load_data(
    spec: str | Path,
    *,
    windows: bool | None = True,
    seed: int = 0,
    n_jobs: int = 1,
    progress: bool = False,
    features: Sequence[str] = ("gtzan57",),
) -> Dataset:
    """Resolve ``spec``: ``"gtzan-musicnn"``, ``"embedded"``, a feature CSV, an audio folder, musicnn
    taggrams (a ``.npz`` or a folder of them), or several of these separated by commas, joined by track.

    Audio is extracted as 3-second windows when ``windows`` is true, else one row per file, with the
    feature sets ``features`` and a progress bar on stderr when ``progress``; taggrams become one row
    per clip, or per patch with ``windows``. ``windows=None`` is each source's natural rows: windows of
    audio, whole clips of taggrams. A CSV holds what it holds. ``seed`` only matters for the embedded
    dataset. A whole-clip table of GTZAN tracks without musicnn's features, when ``features`` asks for
    them, is joined with the shipped taggrams (``features_30_sec.csv`` alone gives both sets).
    """
    parts = [part.strip() for part in str(spec).split(",") if part.strip()]
    load = {"windows": windows, "seed": seed, "n_jobs": n_jobs, "progress": progress, "features": features}
    loaded = [_load_one(part, **load) for part in parts] if parts else [_load_one(str(spec), **load)]
    if "musicnn" in features and not any("musicnn" in d.feature_sets for d in loaded):
        loaded.append(_shipped_taggrams(windows=False))
        return _joined(loaded, f"{spec},{GTZAN_MUSICNN}", shipped=True)
    return _joined(loaded, str(spec), shipped=False) if len(loaded) > 1 else loaded[0]


def _joined(datasets: list[Dataset], source: str, *, shipped: bool) -> Dataset:
    """``join_tables``, saying what to do when the shipped taggrams cannot be joined to the user's table."""
    if shipped and datasets[0].windowed:
        raise DataError(
            f"{datasets[0].source} holds no musicnn features, and genre's shipped musicnn taggrams of GTZAN "
            "are whole clips: they join a whole-clip table such as features_30_sec.csv, not 3-second "
            "windows; extract musicnn's features from audio with `genre extract --features musicnn`"
        )
    try:
        return join_tables(datasets, source=source)
    except DataError as error:
        if not shipped:
            raise
        raise DataError(
            f"{datasets[0].source} holds no musicnn features, and genre's shipped musicnn taggrams of GTZAN "
            f"cannot be joined to it ({error.detail if error.subject else error}); extract them from audio "
            "with `genre extract --features musicnn`"
        ) from None


def _shipped_taggrams(*, windows: bool) -> Dataset:
    return from_frame(
        read_taggrams(SHIPPED_TAGGRAMS, windowed=windows),
        source=GTZAN_MUSICNN,
        name=GTZAN_MUSICNN + ("-patches" if windows else ""),
        windowed=windows,
    )


def _load_one(
    spec: str, *, windows: bool | None, seed: int, n_jobs: int, progress: bool, features: Sequence[str]
) -> Dataset:
    if spec == GTZAN_MUSICNN:
        return _shipped_taggrams(windows=bool(windows))
    path = Path(spec)
    if path.suffix.lower() == ".npz" or (path.is_dir() and any(path.glob("*.npz"))):
        windows = bool(windows)
        return from_frame(read_taggrams(path, windowed=windows), source=str(path), windowed=windows)
    windows = windows is None or windows
    extract = {"windows": windows, "n_jobs": n_jobs, "progress": progress, "features": features}
    if spec == EMBEDDED:
        root = embedded_audio(seed)
        result = extract_paths([root], **extract)
        result.raise_if_empty()
        return from_frame(result.features, source=str(root), name=f"{EMBEDDED}-seed{seed}", windowed=windows)
    if path.is_dir():
        result = extract_paths([path], **extract)
        result.raise_if_empty()
        return from_frame(result.features, source=str(path), windowed=windows)
    if path.suffix.lower() == ".csv" or path.is_file():
        return load_csv(path)
    raise DataError(
        f"{spec}: neither {GTZAN_MUSICNN!r}, {EMBEDDED!r}, a CSV file, a folder of audio, nor musicnn "
        "taggrams (.npz)"
    )


def embedded_audio(seed: int = 0) -> Path:
    """The embedded audio set for ``seed``, generated into the cache on first use (a no-op after)."""
    # Imported here: the synthesiser loads scipy.signal (0.8 s), which a served model never needs.
    from genre.data.synthetic import generate_dataset

    return generate_dataset(settings.cache_dir() / "embedded" / f"seed{seed}", seed=seed)


def resolve_audio_paths(paths: list[str | Path], *, seed: int = 0) -> list[Path]:
    """Audio files and folders to extract or score; ``"embedded"`` stands for the generated audio set."""
    return [embedded_audio(seed) if str(path) == EMBEDDED else Path(path) for path in paths]
