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
from genre.evaluation import fit_model
from genre.models import make_model
from genre.tracking import log_dataset, log_fitted, log_history, plain
from genre.tuning.configs import SearchConfig

__all__ = [
    "FINISHED_STATES",
    "SearchResult",
    "log_search_header",
    "log_search_result",
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


def log_search_header(
    config: SearchConfig, dataset: Dataset, strategy: str, *, n_splits: int, seed: int
) -> None:
    mlflow.set_tags(
        {
            "genre.job": f"tune_{strategy}",
            "genre.model": config.model,
            "genre.strategy": strategy,
            "genre.protocol": "grouped",
        }
    )
    mlflow.log_params(
        {
            "tune.config": str(config.path),
            "tune.scoring": config.scoring,
            "tune.transform": config.transform,
            "model.name": config.model,
            "cv.protocol": "grouped",
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
) -> None:
    """The winner on the parent: params, score, where it came from, and the model refitted on all rows.

    The best parameters are tags (``best.<name>``), not params: a resumed or shared Optuna study logs
    to the same parent again, and its winner may have changed, which MLflow forbids for params.
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
    if log_model:
        best = make_model(config.model, result.best_params, random_state=seed, transform=config.transform)
        fitted = fit_model(best, dataset)
        log_history(fitted, config.model)
        info = log_fitted(fitted, dataset, name=f"{config.model}-{config.kind}")
        mlflow.log_metrics({f"best_cv_{config.scoring}": result.best_score}, model_id=info.model_id)
