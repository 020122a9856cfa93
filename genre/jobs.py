"""The MLflow-tracked jobs behind the ``MLproject`` entry points: one function per entry point.

Each job takes plain Python values (the CLI parses them), does its work through the package's
modules, and records it in one MLflow run. Nothing here needs ``mlflow run``: tests call these
functions directly against a temporary tracking store.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from genre.batch import DEFAULT_MASTER, BatchResult, score_batch
from genre.data import EMBEDDED, Dataset, embedded_audio, from_frame, load_data
from genre.errors import ConfigError, DataError
from genre.experiments import load_search_config
from genre.extraction import ExtractionResult, extract_paths
from genre.models import MODEL_NAMES, make_model
from genre.reports import markdown_table
from genre.splits import check_protocols
from genre.tracking import configure_tracking, log_dataset
from genre.training import TrainResult, train_run
from genre.tuning import HEARTBEAT_SECONDS, SearchResult, tune_grid_run, tune_optuna_run, tuned_stack_params

__all__ = [
    "EXPERIMENT",
    "extract_job",
    "main_job",
    "resolve_audio_paths",
    "score_job",
    "train_job",
    "tune_grid_job",
    "tune_optuna_job",
    "tune_stacking_job",
]

log = logging.getLogger(__name__)

#: The experiment runs go to when neither ``mlflow run`` nor the environment chose one.
EXPERIMENT = "genre"


def resolve_audio_paths(paths: Sequence[str | Path], *, seed: int = 0) -> list[Path]:
    """Audio files/folders to extract; ``"embedded"`` stands for the generated default audio set."""
    return [embedded_audio(seed) if str(path) == EMBEDDED else Path(path) for path in paths]


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
        _log_extraction(
            result, paths=paths, out=out, failures_path=failures_path, windows=windows, n_jobs=n_jobs
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
) -> None:
    configure_tracking(EXPERIMENT)
    with mlflow.start_run(run_name="extract_features"):
        mlflow.set_tags({"genre.job": "extract_features"})
        mlflow.log_params(
            {"extract.paths": ",".join(map(str, paths)), "extract.windows": windows, "extract.n_jobs": n_jobs}
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


def score_job(
    model_uri: str,
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    audio: bool = False,
    id_column: str = "filename",
    master: str = DEFAULT_MASTER,
    overwrite: bool = False,
    track: bool = False,
) -> BatchResult:
    """Score feature tables or audio files with a serving model on Spark into the Parquet ``out``.

    See ``genre.batch.score_batch``; ``"embedded"`` among audio inputs stands for the generated audio
    set. With ``track=True`` the batch is one MLflow run: ``score.*`` parameters, ``rows_scored``,
    ``rows_failed``, ``seconds`` and ``rows_per_s`` (Spark start-up included), and the first failures
    as ``failures.csv`` (all of them are in the output's ``error`` column).
    """
    paths = resolve_audio_paths(inputs) if audio else list(inputs)
    result = score_batch(
        model_uri, paths, out, audio=audio, id_column=id_column, master=master, overwrite=overwrite
    )
    if track:
        configure_tracking(EXPERIMENT)
        with mlflow.start_run(run_name="score"):
            mlflow.set_tags({"genre.job": "score"})
            mlflow.log_params(
                {
                    "score.model_uri": model_uri,
                    "score.inputs": ",".join(map(str, paths)),
                    "score.audio": audio,
                    "score.master": master,
                    "score.out": str(out),
                }
            )
            mlflow.log_metrics(
                {
                    "rows_scored": result.scored,
                    "rows_failed": result.failed,
                    "seconds": result.seconds,
                    "rows_per_s": result.rows_per_s,
                }
            )
            if result.failures:
                failures = pd.DataFrame(result.failures, columns=["id", "error"])
                mlflow.log_text(failures.to_csv(index=False), "failures.csv")
    return result


def train_job(
    model_name: str,
    data: str = EMBEDDED,
    *,
    params: Mapping[str, Any] | None = None,
    protocol: str = "grouped",
    n_splits: int = 10,
    seed: int = 0,
    windows: bool = True,
    n_jobs: int = 1,
) -> TrainResult:
    """The ``knn``, ``svm``, ``nn`` and ``stacking`` entry points: train and record one model.

    The model and its ``params`` are checked before the data is even loaded, so an unknown option or an
    impossible value fails at once with a ``ConfigError``.
    """
    make_model(model_name, params, random_state=seed)
    check_protocols([protocol])
    configure_tracking(EXPERIMENT)
    dataset = load_data(data, windows=windows, seed=seed, n_jobs=n_jobs)
    return train_run(model_name, dataset, params=params, protocol=protocol, n_splits=n_splits, seed=seed)


def main_job(
    data: str = EMBEDDED,
    *,
    models: Sequence[str] = MODEL_NAMES,
    protocols: Sequence[str] = ("grouped", "seed"),
    n_splits: int = 10,
    seed: int = 0,
    windows: bool = True,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """The README's main command: every model under every protocol, one parent run, a comparison table.

    Each (model, protocol) pair is a nested child run with the full record of ``train_run``; the parent
    holds the dataset and ``comparison.csv`` / ``comparison.md``, and the table is returned. Default
    data is the embedded set; protocols default to both, so the leaky ``seed`` figure always stands
    beside the honest ``grouped`` one.
    """
    for name in models:
        make_model(name, random_state=seed)
    check_protocols(protocols)
    configure_tracking(EXPERIMENT)
    dataset = load_data(data, windows=windows, seed=seed, n_jobs=n_jobs)
    rows = []
    with mlflow.start_run(run_name="main"):
        mlflow.set_tags({"genre.job": "main"})
        mlflow.log_params(
            {
                "main.models": ",".join(models),
                "main.protocols": ",".join(protocols),
                "cv.seed": seed,
                "cv.folds": n_splits,
            }
        )
        log_dataset(dataset)
        for protocol in protocols:
            for name in models:
                started = time.perf_counter()
                result = train_run(name, dataset, protocol=protocol, n_splits=n_splits, seed=seed)
                rows.append(_comparison_row(result, dataset, time.perf_counter() - started))
        table = pd.DataFrame(rows)
        with tempfile.TemporaryDirectory() as tmp:
            table.to_csv(Path(tmp) / "comparison.csv", index=False)
            (Path(tmp) / "comparison.md").write_text(markdown_table(table) + "\n")
            mlflow.log_artifacts(tmp)
    return table


def _comparison_row(result: TrainResult, dataset: Dataset, seconds: float) -> dict[str, object]:
    summary = result.evaluation.summary()
    protocol = result.evaluation.protocol
    row: dict[str, object] = {
        "model": result.model_name,
        "protocol": protocol + (" (leaky)" if protocol == "seed" and dataset.windowed else ""),
        "cv_accuracy": summary["cv_accuracy_mean"],
        "cv_accuracy_std": summary["cv_accuracy_std"],
        "cv_f1_macro": summary["cv_f1_macro_mean"],
        "test_accuracy": summary.get("test_accuracy", float("nan")),
    }
    if dataset.windowed:
        row["cv_track_accuracy"] = summary["cv_track_accuracy_mean"]
    row["seconds"] = seconds
    row["run_id"] = result.run_id
    return row


def tune_grid_job(
    config: str | Path,
    data: str = EMBEDDED,
    *,
    n_splits: int = 5,
    outer_splits: int = 0,
    seed: int = 0,
    windows: bool = True,
    n_jobs: int = 1,
) -> SearchResult:
    """The ``tune_grid`` entry point: an exhaustive search over ``config``'s grid (see ``genre.tuning``).

    The configuration is read and validated before the data is loaded.
    """
    search = load_search_config(config, "grid")
    _check_folds(n_splits, outer_splits)
    configure_tracking(EXPERIMENT)
    dataset = load_data(data, windows=windows, seed=seed, n_jobs=n_jobs)
    return tune_grid_run(
        search, dataset, n_splits=n_splits, outer_splits=outer_splits, seed=seed, n_jobs=n_jobs
    )


def tune_optuna_job(
    config: str | Path,
    data: str = EMBEDDED,
    *,
    n_trials: int = 20,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    n_splits: int = 5,
    outer_splits: int = 0,
    seed: int = 0,
    windows: bool = True,
    n_jobs: int = 1,
    heartbeat: int | None = None,
) -> SearchResult:
    """The ``tune_optuna`` entry point: an Optuna study over ``config``'s space (see ``genre.tuning``).

    ``n_trials`` is the study's total: rerunning the same command on persistent ``storage`` resumes
    the study and runs only the trials still missing.
    """
    search = load_search_config(config, "optuna")
    _check_folds(n_splits, outer_splits)
    if n_trials < 1:
        raise ConfigError(f"n_trials must be at least 1, got {n_trials}")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout}")
    heartbeat = HEARTBEAT_SECONDS if heartbeat is None else heartbeat
    if heartbeat < 1:
        raise ConfigError(f"heartbeat must be at least 1 second, got {heartbeat}")
    configure_tracking(EXPERIMENT)
    dataset = load_data(data, windows=windows, seed=seed, n_jobs=n_jobs)
    return tune_optuna_run(
        search,
        dataset,
        n_trials=n_trials,
        timeout=timeout,
        storage=storage,
        study_name=study_name,
        n_splits=n_splits,
        outer_splits=outer_splits,
        seed=seed,
        n_jobs=n_jobs,
        heartbeat=heartbeat,
    )


def tune_stacking_job(
    data: str = EMBEDDED,
    *,
    sources: Mapping[str, str] | None = None,
    metric: str = "best_cv_accuracy",
    params: Mapping[str, Any] | None = None,
    protocol: str = "grouped",
    n_splits: int = 10,
    seed: int = 0,
    windows: bool = True,
    n_jobs: int = 1,
) -> TrainResult:
    """The ``tune_stacking`` entry point: the stack built from earlier tuning runs' best parameters.

    ``sources`` maps ``knn``/``svm``/``nn`` to a run id, ``"best"`` or ``"default"`` (see
    ``tuning.tuned_stack_params``); ``params`` adds or overrides stacking parameters such as
    ``final_estimator__C``. ``"best"`` only considers tuning runs on the same data. The run is an
    ordinary ``stacking`` training run plus its provenance: tags ``genre.source.<base>`` with the run
    ids and ``stack_sources.json``; a base tuned on other data is flagged in ``genre.warning``.
    """
    check_protocols([protocol])
    make_model("stacking", params, random_state=seed)
    configure_tracking(EXPERIMENT)
    dataset = load_data(data, windows=windows, seed=seed, n_jobs=n_jobs)
    tuned, provenance = tuned_stack_params(sources or {}, metric=metric, data=dataset.name)
    stack_params = {**tuned, **dict(params or {})}
    tags = {f"genre.source.{base}": entry["run_id"] or "default" for base, entry in provenance.items()}
    tags["genre.job"] = "tune_stacking"
    elsewhere = [
        base for base, entry in provenance.items() if entry["run_id"] and entry["data"] != dataset.name
    ]
    if elsewhere:
        tags["genre.warning"] = f"{', '.join(elsewhere)} tuned on other data than {dataset.name}"
        log.warning("%s", tags["genre.warning"])
    return train_run(
        "stacking",
        dataset,
        params=stack_params,
        protocol=protocol,
        n_splits=n_splits,
        seed=seed,
        tags=tags,
        documents={"stack_sources.json": provenance},
    )


def _check_folds(n_splits: int, outer_splits: int) -> None:
    if n_splits < 2:
        raise ConfigError(f"folds must be at least 2, got {n_splits}")
    if outer_splits and outer_splits < 2:
        raise ConfigError(f"outer folds must be 0 (no nested CV) or at least 2, got {outer_splits}")
