"""The ``score`` entry point: a serving model over feature tables or audio files on Spark, to Parquet."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import mlflow
import pandas as pd

from genre.batch import DEFAULT_MASTER, BatchResult, score_batch
from genre.features import resolve_audio_paths
from genre.tracking import configure_tracking, tracked_run

__all__ = ["score_job"]


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
        configure_tracking()
        with tracked_run(run_name="score"):
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
