"""The MLflow-tracked jobs behind the ``MLproject`` entry points: one function per entry point.

Each job takes plain Python values (the CLI parses them), does its work through the package's
modules, and records it in one MLflow run. Nothing here needs ``mlflow run``: tests call these
functions directly against a temporary tracking store.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import mlflow

from genre.data import EMBEDDED, Dataset, from_frame, load_data
from genre.errors import DataError
from genre.extraction import ExtractionResult, default_cache_dir, extract_paths
from genre.tracking import configure_tracking, log_dataset

__all__ = ["EXPERIMENT", "extract_job", "main_job", "resolve_audio_paths"]

#: The experiment runs go to when neither ``mlflow run`` nor the environment chose one.
EXPERIMENT = "genre"


def resolve_audio_paths(paths: Sequence[str | Path], *, seed: int = 0) -> list[Path]:
    """Audio files/folders to extract; ``"embedded"`` stands for the generated default audio set."""
    from genre.synthetic import generate_dataset

    return [
        generate_dataset(default_cache_dir() / "embedded" / f"seed{seed}", seed=seed)
        if str(path) == EMBEDDED
        else Path(path)
        for path in paths
    ]


def extract_job(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    windows: bool = False,
    n_jobs: int = 1,
    cache: bool = True,
    track: bool = False,
    progress: bool = False,
) -> ExtractionResult:
    """Extract features from audio ``paths`` into the CSV ``out``; its failures beside it.

    The failures report goes to ``<out stem>.failures.csv`` (only when something failed). With
    ``track=True`` the batch is one MLflow run: parameters, the CSV as an artifact and as a dataset,
    and ``files_done``, ``files_failed`` and ``seconds_per_track`` as metrics.
    """
    out = Path(out)
    result = extract_paths(
        resolve_audio_paths(paths),
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
        _log_extraction(result, paths=paths, out=out, failures_path=failures_path, windows=windows, n_jobs=n_jobs)
    return result


def _log_extraction(
    result: ExtractionResult,
    *,
    paths: Sequence[str | Path],
    out: Path,
    failures_path: Path,
    windows: bool,
    n_jobs: int,
) -> None:
    configure_tracking(EXPERIMENT)
    with mlflow.start_run(run_name="extract_features"):
        mlflow.set_tags({"genre.job": "extract_features"})
        mlflow.log_params({"paths": ",".join(map(str, paths)), "windows": windows, "n_jobs": n_jobs})
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


def main_job(data: str = EMBEDDED, *, seed: int = 0, windows: bool = True, n_jobs: int = 1) -> Dataset:
    """The README's main command: load ``data`` (embedded by default) and record it in one run.

    Until the models land this is "generate + extract": the embedded audio is generated, its features
    extracted (3-second windows), validated, logged as a dataset and saved as ``features.csv``.
    """
    configure_tracking(EXPERIMENT)
    dataset = load_data(data, windows=windows, seed=seed, n_jobs=n_jobs)
    with mlflow.start_run(run_name="main"):
        mlflow.set_tags({"genre.job": "main"})
        mlflow.log_params({"seed": seed, "windows": windows})
        log_dataset(dataset)
        with tempfile.TemporaryDirectory() as tmp:
            table = Path(tmp) / "features.csv"
            dataset.frame.drop(columns=["track", "group"]).to_csv(table, index=False)
            mlflow.log_artifact(str(table))
    return dataset
