"""What every search records: its result, the header and the winner on the parent run.

Both strategies (``grid``, ``optuna``) log the same parameters, tags and artifacts under the same names,
so their parent runs compare side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
import optuna
import pandas as pd

from genre.data import Dataset
from genre.evaluation import filtered_split, fit_model, score_fold
from genre.tracking import log_dataset, log_fitted, log_history, plain, source_tags
from genre.tuning.configs import SearchConfig

__all__ = [
    "FINISHED_STATES",
    "SearchResult",
    "log_search_header",
    "log_search_result",
    "search_sides",
]


#: Optuna trial states that count towards a study's ``n_trials`` (a failed trial is retried).
FINISHED_STATES = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclass(frozen=True)
class SearchResult:
    """A finished search: its parent run, the winner, and one row per candidate or trial."""

    run_id: str | None
    best_params: dict[str, Any]
    best_score: float
    table: pd.DataFrame


def search_sides(dataset: Dataset, protocol: str) -> tuple[Dataset, Dataset | None]:
    """The rows a search may look at, and the held-out test it never sees: all rows and no test
    (``grouped``), or the train and valid tracks and the test tracks of GTZAN's filtered split."""
    if protocol != "filtered":
        return dataset, None
    train, test, _ = filtered_split(dataset)
    return dataset.subset(train), dataset.subset(test)


def log_search_header(
    config: SearchConfig,
    dataset: Dataset,
    strategy: str,
    *,
    n_splits: int,
    seed: int,
    protocol: str = "grouped",
) -> None:
    mlflow.set_tags(
        {
            "genre.job": f"tune_{strategy}",
            "genre.model": config.model,
            "genre.features": config.features,
            "genre.strategy": strategy,
            "genre.protocol": protocol,
            **source_tags(),  # the commit genre reproduce checks out
        }
    )
    mlflow.log_params(
        {
            "tune.config": str(config.path),
            "tune.scoring": config.scoring,
            "tune.transform": config.transform,
            "model.name": config.model,
            "model.features": config.features,
            "cv.protocol": protocol,
            "cv.folds": n_splits,
            "cv.seed": seed,
        }
    )
    log_dataset(dataset)
    mlflow.log_text(config.text(), f"config/{config.path.name}")


def log_search_result(
    config: SearchConfig,
    dataset: Dataset,
    result: SearchResult,
    best_child: str | None,
    *,
    seconds: float,
    seed: int,
    log_model: bool,
    test: Dataset | None = None,
) -> None:
    """The winner on the parent: params, score, where it came from, and the model refitted on all rows.

    The best parameters are tags (``best.<name>``), not params: a resumed or shared Optuna study logs
    to the same parent again, and its winner may have changed, which MLflow forbids for params. With a
    held-out ``test`` (the filtered protocol's test tracks), the refitted winner is scored on it once,
    after the search chose it: ``test_<score>``.
    """
    mlflow.set_tags({f"best.{k}": str(plain(v)) for k, v in result.best_params.items()})
    mlflow.log_metrics({f"best_cv_{config.scoring}": result.best_score, "search_seconds": seconds})
    if best_child:
        mlflow.set_tag("genre.best_run_id", best_child)
    mlflow.log_dict(
        {
            "model": config.model,
            "transform": config.transform,
            "params": {k: plain(v) for k, v in result.best_params.items()},
            "score": result.best_score,
            "scoring": config.scoring,
            "run_id": best_child,
        },
        "best_params.json",
    )
    if not log_model and test is None:
        return
    fitted = fit_model(config.build(result.best_params, random_state=seed), dataset)
    info = None
    if log_model:
        log_history(fitted, config.model)
        info = log_fitted(fitted, dataset, name=f"{config.model}-{config.kind}")
        mlflow.log_metrics({f"best_cv_{config.scoring}": result.best_score}, model_id=info.model_id)
    if test is not None:
        logged = log_dataset(test, context="test", name=f"{test.name}-test", params=False)
        _, scores = score_fold(fitted, test)
        mlflow.log_metrics(
            {f"test_{name}": value for name, value in scores.items()},
            model_id=info.model_id if info else None,
            dataset=logged,
        )
