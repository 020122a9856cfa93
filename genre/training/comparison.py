"""Every model under every protocol in one parent run: the comparison table ``genre main`` prints.

The parent run (``main``) holds the dataset, the table as ``comparison.csv`` / ``comparison.md`` and, as
its description in the MLflow UI, the same table; each (model, protocol) is a nested child run with the
full record of ``train_run``, so the runs table lists the children with their scores and the chart view
compares ``cv_accuracy_mean`` across them.
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
from genre.training.runs import TrainResult, train_run

__all__ = ["compare", "comparison_note"]


def compare(
    dataset: Dataset,
    *,
    models: Sequence[str],
    protocols: Sequence[str],
    n_splits: int,
    seed: int,
    n_jobs: int = 1,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Train every model under every protocol as children of a ``main`` run; return the table.

    Protocols come first in the loop, so the table reads one protocol at a time, and the second
    protocol's runs are timed exactly by the first's (``progress``).
    """
    progress = progress or Progress(quiet=True)
    plan = [
        (protocol, name, progress.plan(f"{name} ({protocol})", name, n_splits + 1))
        for protocol in protocols
        for name in models
    ]
    rows = []
    with tracked_run(run_name="main") as parent:
        mlflow.set_tags({"genre.job": "main", **source_tags(), **(tags or {})})
        mlflow.log_params(
            {
                "main.models": ",".join(models),
                "main.protocols": ",".join(protocols),
                "cv.seed": seed,
                "cv.folds": n_splits,
            }
        )
        log_dataset(dataset)
        for protocol, name, task in plan:
            started = time.perf_counter()
            result = train_run(
                name,
                dataset,
                protocol=protocol,
                n_splits=n_splits,
                seed=seed,
                n_jobs=n_jobs,
                progress=progress,
                task=task,
            )
            rows.append(_comparison_row(result, dataset, time.perf_counter() - started))
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
    return (
        f"Every model under every protocol on `{dataset.name}` ({len(dataset.frame)} rows, "
        f"{dataset.frame['track'].nunique()} tracks). `grouped` is the honest estimate: no track on both "
        f"sides of a fold.{leaky}\n\n" + markdown_table(table.drop(columns="run_id"))
    )


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
