"""Every model under every protocol in one parent run: the comparison table ``genre main`` prints.

The parent run (``main``) holds the dataset, the table as ``comparison.csv`` / ``comparison.md`` and, as
its description in the MLflow UI, the same table; each (model, features, protocol) is a nested child run
with the full record of ``train_run``, so the runs table lists the children with their scores and the
chart view compares ``cv_accuracy_mean`` across them.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import mlflow
import pandas as pd

from genre.data import Dataset
from genre.evaluation import markdown_table
from genre.progress import Progress
from genre.tracking import log_dataset, source_tags, tracked_run
from genre.training.runs import TrainResult, progress_label, train_run

__all__ = ["compare", "comparison_note"]


def compare(
    dataset: Dataset,
    *,
    models: Sequence[str],
    protocols: Sequence[str],
    features: Sequence[str] = ("gtzan57",),
    n_splits: int,
    seed: int,
    n_jobs: int = 1,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Train every model on every choice of ``features`` under every protocol as children of a ``main``
    run; return the table.

    Protocols come first in the loop, so the table reads one protocol at a time, and the second
    protocol's runs are timed exactly by the first's (``progress``).
    """
    progress = progress or Progress(quiet=True)
    plan = [
        (protocol, choice, name, progress.plan(progress_label(name, protocol, choice), name, n_splits + 1))
        for protocol in protocols
        for choice in features
        for name in models
    ]
    rows = []
    with tracked_run(run_name="main") as parent:
        mlflow.set_tags({"genre.job": "main", **source_tags(), **(tags or {})})
        mlflow.log_params(
            {
                "main.models": ",".join(models),
                "main.protocols": ",".join(protocols),
                "main.features": ",".join(features),
                "cv.seed": seed,
                "cv.folds": n_splits,
            }
        )
        log_dataset(dataset)
        for protocol, choice, name, task in plan:
            started = time.perf_counter()
            result = train_run(
                name,
                dataset,
                protocol=protocol,
                features=choice,
                n_splits=n_splits,
                seed=seed,
                n_jobs=n_jobs,
                progress=progress,
                task=task,
            )
            rows.append(_comparison_row(result, choice, dataset, time.perf_counter() - started))
        table = pd.DataFrame(rows)
        with tempfile.TemporaryDirectory() as tmp:
            table.to_csv(Path(tmp) / "comparison.csv", index=False)
            (Path(tmp) / "comparison.md").write_text(markdown_table(table) + "\n")
            mlflow.log_artifacts(tmp)
        mlflow.set_tag("mlflow.note.content", comparison_note(table, dataset))
    progress.note(f"main run {parent.info.run_id}: {len(rows)} runs")
    return table


def comparison_note(table: pd.DataFrame, dataset: Dataset) -> str:
    """The parent run's description: what was compared, and the table."""
    leaky = (
        " `seed (leaky)` rows split windows of one track across train and test." if dataset.windowed else ""
    )
    filtered = (
        " `filtered` is GTZAN's artist-aware split: its `test_accuracy` is on artists never trained on, the "
        "number comparable with the literature and with what a user gets."
        if "filtered" in set(table["protocol"])
        else ""
    )
    return (
        f"Every model under every protocol on `{dataset.name}` ({len(dataset.frame)} rows, "
        f"{dataset.frame['track'].nunique()} tracks).{filtered} `grouped`: no track on both sides of a "
        f"fold (an artist may be).{leaky}\n\n" + markdown_table(table.drop(columns="run_id"))
    )


def _comparison_row(
    result: TrainResult, features: str, dataset: Dataset, seconds: float
) -> dict[str, object]:
    summary = result.evaluation.summary()
    protocol = result.evaluation.protocol
    row: dict[str, object] = {
        "model": result.model_name,
        "features": features,
        "protocol": protocol + (" (leaky)" if protocol == "seed" and dataset.windowed else ""),
        # First: the held-out test, under filtered the accuracy on artists never trained on.
        "test_accuracy": summary.get("test_accuracy", float("nan")),
        "cv_accuracy": summary["cv_accuracy_mean"],
        "cv_accuracy_std": summary["cv_accuracy_std"],
        "cv_f1_macro": summary["cv_f1_macro_mean"],
    }
    if dataset.windowed:
        row["cv_track_accuracy"] = summary["cv_track_accuracy_mean"]
    row["seconds"] = seconds
    row["run_id"] = result.run_id
    return row
