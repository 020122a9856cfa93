"""Batch feature extraction: audio files and folders in, one GTZAN-schema table out (the 57 features,
musicnn's tags, or both, from one decode of each file).

A library of thousands of files takes a while, and some of them will be broken. So this layer runs
files in parallel (joblib), shows progress (tqdm), caches each file's features on disk (joblib.Memory,
keyed by path, size and modification time, and by everything the features depend on) so a rerun only
does new or changed files -- a batch killed halfway resumes where it stopped, and an entry damaged on
disk is extracted again -- and never lets one bad file sink the batch: failures are collected in a
report beside the good rows.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import librosa
import pandas as pd
from joblib import Memory, Parallel, delayed
from joblib.memory import MemorizedFunc
from tqdm.auto import tqdm

import genre
from genre import settings
from genre.data import schema
from genre.data.schema import SAMPLE_RATE, WINDOW_SAMPLES, feature_columns
from genre.errors import AudioError, DataError
from genre.features.audio import AUDIO_EXTENSIONS, check_clip, load_audio
from genre.features.sets import extract_set_windows, extract_sets
from genre.workers import process_backend

__all__ = [
    "ExtractionResult",
    "find_audio_files",
    "extract_paths",
    "scan_audio",
]

_FAILURE_COLUMNS = ["path", "kind", "message"]


@dataclass(frozen=True)
class ExtractionResult:
    """What a batch produced.

    Attributes
    ----------
    features : pandas.DataFrame
        GTZAN schema: ``filename``, ``length``, the columns of the feature sets asked for, ``label``
        (the file's folder name); one row per file, or per window with ``windows=True``
        (``name.<k>.ext``).
    failures : pandas.DataFrame
        ``path``, ``kind`` (empty, unreadable, silent, too_short, error) and ``message`` per failed file.
    files_done : int
    seconds : float
        Wall time of the batch.
    """

    features: pd.DataFrame
    failures: pd.DataFrame
    files_done: int
    seconds: float

    def raise_if_empty(self) -> None:
        """Raise ``DataError`` when not a single file could be extracted, quoting the first failures."""
        if self.files_done == 0:
            detail = "; ".join(f"{r.path}: {r.message}" for r in self.failures.head(3).itertuples())
            raise DataError(f"no audio could be extracted ({len(self.failures)} failed): {detail}")


def find_audio_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (recursively) into the sorted list of audio files to extract.

    Raises ``DataError`` for a path that does not exist, or when nothing with an audio extension is found,
    so that a typo does not produce an empty CSV.
    """
    return scan_audio(paths)[0]


def scan_audio(paths: Iterable[str | Path], *, missing_ok: bool = False) -> tuple[list[Path], list[Path]]:
    """``find_audio_files``, and the files inside the folders that were skipped for not being audio
    (by extension: cover art, playlists, notes). A file named on its own is always taken, and with
    ``missing_ok`` so is a path that does not exist (its reader reports it beside the other answers).

    Raises ``DataError`` for a path that does not exist (unless ``missing_ok``), or when nothing with an
    audio extension is found.
    """
    paths = list(paths)
    found: list[Path] = []
    skipped: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.is_file():
                    (found if p.suffix.lower() in AUDIO_EXTENSIONS else skipped).append(p)
        elif path.is_file() or missing_ok:
            found.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    if not found:
        raise DataError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {', '.join(map(str, paths))}")
    return found, skipped


def extract_paths(
    paths: Sequence[str | Path],
    *,
    windows: bool = False,
    features: Sequence[str] = ("gtzan57",),
    n_jobs: int = 1,
    cache_dir: str | Path | None = "default",
    progress: bool = False,
) -> ExtractionResult:
    """Extract the feature sets ``features`` from every audio file under ``paths``.

    Parameters
    ----------
    paths : sequence of str or Path
        Files and folders; folders are searched recursively for ``AUDIO_EXTENSIONS``.
    windows : bool, default False
        One row per complete 3-second window (Kaggle's ``features_3_sec.csv``) instead of one per file.
    features : sequence of str, default ("gtzan57",)
        Feature sets, each file decoded once for all of them: ``gtzan57`` (the 57 GTZAN features) and
        ``musicnn`` (musicnn's 50 MSD tags, mean and std over the 3-s patches).
    n_jobs : int, default 1
        Worker processes (joblib; -1 for all cores). Each worker compiles librosa's numba code once.
    cache_dir : str, Path or None, default "default"
        Feature cache folder; ``"default"`` is ``settings.cache_dir() / "features"``, None disables it.
    progress : bool, default False
        Show a progress bar on stderr.

    Returns
    -------
    ExtractionResult
        Good rows and the failures report; every good file lands even when others fail.

    Raises
    ------
    DataError
        When a path does not exist, no audio is found, or two files share a base name (the ``filename``
        column, and the track ids derived from it, must be unique).
    """
    sets = tuple(name for name in ("gtzan57", "musicnn") if name in features)
    files = find_audio_files(paths)
    _check_unique_names(files)
    digest = _extractor_digest(sets)
    if cache_dir == "default":
        cache_dir = settings.cache_dir() / "features"
    extract_file = Memory(cache_dir, verbose=0).cache(_extract_file) if cache_dir else _extract_file

    start = time.perf_counter()
    jobs = (delayed(_extract_or_report)(extract_file, path, windows, sets, digest) for path in files)
    outcomes = Parallel(n_jobs=n_jobs, backend=process_backend(), return_as="generator")(jobs)
    rows: list[dict[str, object]] = []
    failures: list[dict[str, str]] = []
    bar = tqdm(outcomes, total=len(files), disable=not progress, unit="file", desc="extracting features")
    for file_rows, failure in bar:
        rows.extend(file_rows)
        if failure:
            failures.append(failure)
    table = pd.DataFrame(rows, columns=["filename", "length", *feature_columns(sets), "label"])
    return ExtractionResult(
        features=table,
        failures=pd.DataFrame(failures, columns=_FAILURE_COLUMNS),
        files_done=len(files) - len(failures),
        seconds=time.perf_counter() - start,
    )


def _check_unique_names(files: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for path in files:
        if path.name in seen:
            raise DataError(
                f"two files are both named {path.name!r} ({seen[path.name]} and {path}); file names "
                "identify tracks in the output, so rename one"
            )
        seen[path.name] = path


def _extract_or_report(
    extract_file, path: Path, windows: bool, sets: tuple[str, ...], digest: str
) -> tuple[list[dict], dict | None]:
    """Run one file; turn any failure into a report row so the batch carries on."""
    try:
        stat = path.stat()
        args = (str(path), stat.st_size, stat.st_mtime_ns, windows, sets, digest)
        return _cached_rows(extract_file, args, sets), None
    except AudioError as exc:
        return [], {"path": str(path), "kind": exc.kind, "message": str(exc)}
    except Exception as exc:  # one broken file must not lose the others' results
        return [], {"path": str(path), "kind": "error", "message": f"{path}: {type(exc).__name__}: {exc}"}


def _cached_rows(extract_file, args: tuple, sets: tuple[str, ...]) -> list[dict]:
    """The rows of one file: from the cache when its entry is intact, else extracted (and cached).

    An entry damaged on disk (an ``output.pkl`` truncated by a full disk or a crash, or holding anything
    but rows of these feature sets) is dropped and the file extracted again: never a failed file, wrong
    rows, or joblib's traceback on the console.
    """
    if isinstance(extract_file, MemorizedFunc) and extract_file.check_call_in_cache(*args):
        entry = extract_file.call_and_shelve(*args)  # a reference to the stored rows, not loaded yet
        try:
            rows = entry.get()
        except Exception:  # unpickling a truncated or corrupt file raises anything from EOFError on
            rows = None
        if _well_formed(rows, sets):
            return rows
        entry.clear()
    return extract_file(*args)


def _well_formed(rows: object, sets: tuple[str, ...]) -> bool:
    """Whether a cache entry holds what ``_extract_file`` returns: one or more rows of these columns."""
    columns = {"filename", "length", *feature_columns(sets), "label"}
    return (
        isinstance(rows, list)
        and len(rows) > 0
        and all(isinstance(row, dict) and row.keys() == columns for row in rows)
    )


def _extract_file(
    path: str, size: int, mtime_ns: int, windows: bool, sets: tuple[str, ...], digest: str
) -> list[dict]:
    """The rows of one file, with the feature sets ``sets``. ``size``, ``mtime_ns`` and ``digest`` only
    key the cache.

    Raises ``AudioError`` for a file shorter than one window or silent throughout; a failure is never
    cached, so a fixed file is retried.
    """
    del size, mtime_ns, digest
    name = Path(path)
    y = load_audio(name, sr=SAMPLE_RATE)
    check_clip(y, min_samples=WINDOW_SAMPLES, name=path)
    label = name.parent.name
    if windows:
        return [
            {"filename": f"{name.stem}.{k}{name.suffix}", "length": WINDOW_SAMPLES, **row, "label": label}
            for k, row in enumerate(extract_set_windows(y, sets=sets, sr=SAMPLE_RATE))
        ]
    return [
        {
            "filename": name.name,
            "length": len(y),
            **extract_sets(y, sets=sets, sr=SAMPLE_RATE),
            "label": label,
        }
    ]


def _extractor_digest(sets: tuple[str, ...]) -> str:
    """What a cached row depends on besides the file: genre's and librosa's versions, the source of every
    module of this layer and of the schema (sample rate, frames, windows, columns), and with musicnn
    the digest of its weights.

    Part of each cache entry's key, so a change to any of them recomputes instead of serving stale rows.
    """
    digest = hashlib.sha256(f"genre {genre.__version__}; librosa {librosa.__version__}".encode())
    for module in [*sorted(Path(__file__).parent.glob("*.py")), Path(schema.__file__)]:
        digest.update(module.name.encode() + module.read_bytes())
    if "musicnn" in sets:
        from genre.features import musicnn_weights

        digest.update(musicnn_weights.WEIGHTS_SHA256.encode())
    return digest.hexdigest()[:16]
