"""A stack from tuned base models: the best parameters of earlier tuning runs, and where they came from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlflow

from genre.errors import ConfigError
from genre.models import check_params

__all__ = ["STACK_BASES", "best_tuning_run", "tuned_stack_params"]


#: The stack's base models, whose tuned parameters ``tuned_stack_params`` collects.
STACK_BASES: tuple[str, ...] = ("knn", "svm", "nn")


def best_tuning_run(model: str, *, metric: str = "best_cv_accuracy", data: str | None = None) -> str:
    """The id of the finished ``tune_grid``/``tune_optuna`` parent run of ``model`` with the highest
    ``metric`` in the active experiment, among runs on the dataset named ``data`` if given.

    Scores on different data do not compare (the embedded set is far easier than GTZAN), so callers
    that know their data should pass its name.

    Raises
    ------
    ConfigError
        No finished tuning run of ``model`` (on ``data``) has ``metric``.
    """
    on_data = f" AND params.`data.name` = '{data}'" if data else ""
    runs = mlflow.search_runs(  # in the active experiment
        filter_string=(
            f"tags.`genre.model` = '{model}' AND tags.`genre.strategy` != '' "  # only search parents have it
            f"AND attributes.status = 'FINISHED'{on_data}"
        ),
        order_by=[f"metrics.`{metric}` DESC"],
        output_format="list",
    )
    runs = [run for run in runs if metric in run.data.metrics]
    if not runs:
        raise ConfigError(
            f"no finished tune_grid or tune_optuna run of {model} with metric {metric!r} in this "
            f"experiment{f' on data {data!r}' if data else ''}; tune {model} first, pass its run id, "
            "or 'default' for its default parameters"
        )
    return runs[0].info.run_id


def tuned_stack_params(
    sources: Mapping[str, str], *, metric: str = "best_cv_accuracy", data: str | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Stacking parameters from earlier tuning runs, and where each base model's came from.

    ``sources`` maps each of ``STACK_BASES`` to a tuning run id, ``"best"`` (the best finished tuning
    run of that model in the active experiment by ``metric``, on the dataset named ``data`` if given)
    or ``"default"`` (the model's defaults). Returns ``make_model("stacking", ...)`` parameters
    (``svm__C``...) and the provenance: per base model the run id, its search strategy, data, score
    and parameters.
    """
    unknown = sorted(set(sources) - set(STACK_BASES))
    if unknown:
        raise ConfigError(
            f"the stack has no base model {unknown[0]!r}; its bases are {', '.join(STACK_BASES)}"
        )
    params: dict[str, Any] = {}
    provenance: dict[str, dict[str, Any]] = {}
    client = mlflow.MlflowClient()
    for base in STACK_BASES:
        source = sources.get(base, "default")
        if source == "default":
            provenance[base] = {"run_id": None, "params": {}}
            continue
        run_id = best_tuning_run(base, metric=metric, data=data) if source == "best" else source
        try:
            run = client.get_run(run_id)
            best = mlflow.artifacts.load_dict(f"runs:/{run_id}/best_params.json")
        except mlflow.exceptions.MlflowException as error:
            raise ConfigError(
                f"{base}: run {run_id!r} is not a finished tuning run here ({error.message})"
            ) from None
        if best.get("model") != base:
            raise ConfigError(f"{base}: run {run_id} tuned {best.get('model')!r}, not {base}")
        checked = check_params(base, best["params"])
        params.update({f"{base}__{name}": value for name, value in checked.items()})
        provenance[base] = {
            "run_id": run_id,
            "strategy": run.data.tags.get("genre.strategy"),
            "data": run.data.params.get("data.name"),
            "score": best.get("score"),
            "scoring": best.get("scoring"),
            "params": best["params"],
        }
    return params, provenance
