"""The ``extract_features`` entry point: audio files and folders to a features CSV, optionally tracked.

MLflow is imported only when the batch is recorded (``track=True``): ``genre extract`` on its own is a
librosa job and starts without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from genre.data import from_frame
from genre.data.schema import resolve_features
from genre.errors import ConfigError, DataError
from genre.features import ExtractionResult, extract_paths, resolve_audio_paths

__all__ = ["extract_job"]


def extract_job(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    features: str | Sequence[str] = "gtzan57",
    windows: bool = False,
    n_jobs: int = 1,
    cache: bool = True,
    track: bool = False,
    progress: bool = False,
) -> ExtractionResult:
    """Extract the feature sets ``features`` (``gtzan57``, ``musicnn``, both: each file decoded once)
    from audio ``paths`` into the CSV ``out``; its failures beside it.

    The failures report goes to ``<out stem>.failures.csv`` (only when something failed). With
    ``track=True`` the batch is one MLflow run: parameters, the CSV as an artifact and as a dataset,
    and ``files_done``, ``files_failed`` and ``seconds_per_track`` as metrics.
    """
    out = Path(out)
    try:
        sets = resolve_features(features)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    result = extract_paths(
        resolve_audio_paths(paths),
        features=sets,
        windows=windows,
        n_jobs=n_jobs,
        cache_dir="default" if cache else None,
        progress=progress,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    result.features.to_csv(out, index=False)
    failures_path = out.with_name(f"{out.stem}.failures.csv")
    failures_path.unlink(missing_ok=True)
    if len(result.failures):
        result.failures.to_csv(failures_path, index=False)
    if track:
        _log_extraction(
            result,
            paths=paths,
            out=out,
            failures_path=failures_path,
            windows=windows,
            n_jobs=n_jobs,
            features=sets,
        )
    return result


def _log_extraction(
    result: ExtractionResult,
    *,
    paths: Sequence[str | Path],
    out: Path,
    failures_path: Path,
    windows: bool,
    n_jobs: int,
    features: Sequence[str],
) -> None:
    import mlflow

    from genre.tracking import configure_tracking, log_dataset, tracked_run

    configure_tracking()
    with tracked_run(run_name="extract_features"):
        mlflow.set_tags({"genre.job": "extract_features"})
        mlflow.log_params(
            {
                "extract.paths": ",".join(map(str, paths)),
                "extract.features": ",".join(features),
                "extract.windows": windows,
                "extract.n_jobs": n_jobs,
            }
        )
        files_done = result.files_done
        mlflow.log_metrics(
            {
                "files_done": files_done,
                "files_failed": len(result.failures),
                "rows": len(result.features),
                "seconds": result.seconds,
                "seconds_per_track": result.seconds / max(files_done + len(result.failures), 1),
            }
        )
        mlflow.log_artifact(str(out))
        if failures_path.exists():
            mlflow.log_artifact(str(failures_path))
        if files_done:
            try:
                dataset = from_frame(result.features, source=str(out), windowed=windows)
            except DataError as exc:  # e.g. a single class: still a valid extraction, not a training set
                mlflow.set_tag("genre.dataset_warning", str(exc))
            else:
                log_dataset(dataset, context="extracted")
