"""``genre train``, ``main``, ``tune-grid``, ``tune-optuna`` and ``tune-stacking``: runs in MLflow."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from genre.cli.arguments import add_data, names, optional_seconds, parse_param, whole_number
from genre.settings import GTZAN_MUSICNN

if TYPE_CHECKING:
    from genre.tuning import SearchResult

__all__ = ["COMMANDS"]


def _train_parser(parser: argparse.ArgumentParser, *, with_model: bool = True) -> None:
    if with_model:
        parser.add_argument("model", help="knn, svm, nn or stacking")
    parser.add_argument(
        "--protocol",
        default="grouped",
        help="filtered (GTZAN's artist-aware split), grouped (track-grouped k-fold) or seed (random split)",
    )
    parser.add_argument(
        "--transform",
        default="standard",
        help="feature transform before the scaler: standard, logvar (log of the variances) or levelfree "
        "(the recording's level divided out: the same song louder or quieter gives the same row)",
    )
    parser.add_argument(
        "--set",
        dest="params",
        type=parse_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a model hyperparameter, e.g. --set n_neighbors=7 (any --NAME VALUE left over counts too)",
    )
    add_data(parser)
    _add_force(parser)


def _add_force(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--force", action="store_true", help="run again even if a finished run answers the same question"
    )


def _train(args: argparse.Namespace) -> int:
    from mlflow.entities import Run

    from genre.jobs.train import train_job
    from genre.progress import Progress

    result = train_job(
        args.model,
        args.data,
        params=dict(args.params),
        protocol=args.protocol,
        features=args.features,
        transform=args.transform,
        n_splits=args.folds,
        seed=args.seed,
        windows=args.windows,
        n_jobs=args.jobs,
        force=args.force,
        progress=Progress(quiet=args.quiet),
    )
    if isinstance(result, Run):  # reused
        run_id, metrics = result.info.run_id, result.data.metrics
        summary = {k: v for k, v in sorted(metrics.items()) if k.startswith(("cv_", "test_")) and "_" in k}
    else:
        run_id, summary = result.run_id, result.evaluation.summary()
    print(f"run {run_id}: {args.model} on {args.features} ({args.protocol})")
    for name, value in summary.items():
        print(f"  {name:28s} {value:.4f}")
    _print_ui_link(quiet=args.quiet)
    return 0


def _print_ui_link(*, quiet: bool) -> None:
    """Where to see the runs: MLflow's UI opens an experiment in its GenAI view unless the link says not."""
    from genre.tracking import configure_tracking, runs_url

    if not quiet:
        print(
            f"in the MLflow UI (mlflow ui): {runs_url(configure_tracking().experiment_id)}", file=sys.stderr
        )


def _main_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="knn,svm,nn,stacking", help="comma-separated models")
    parser.add_argument(
        "--protocols",
        default="auto",
        help="comma-separated protocols (auto: filtered and grouped on GTZAN data, else grouped and seed)",
    )
    add_data(parser, folds=5, features="auto", data=GTZAN_MUSICNN, windows=None)
    _add_force(parser)


def _main(args: argparse.Namespace) -> int:
    from genre.evaluation import markdown_table
    from genre.jobs.train import main_job
    from genre.progress import Progress

    table = main_job(
        args.data,
        models=names(args.models),
        protocols="auto" if args.protocols == "auto" else names(args.protocols),
        features="auto" if args.features == "auto" else names(args.features),
        n_splits=args.folds,
        seed=args.seed,
        windows=args.windows,
        n_jobs=args.jobs,
        force=args.force,
        champion=True,
        progress=Progress(quiet=args.quiet),
    )
    print(markdown_table(table.drop(columns="run_id")))
    _print_ui_link(quiet=args.quiet)
    return 0


def _add_search(parser: argparse.ArgumentParser, kind: str) -> None:
    parser.add_argument("config", help=f"a YAML file, or a name in experiments/{kind}/ (knn, svm, nn)")
    parser.add_argument(
        "--outer-folds",
        type=whole_number,
        default=0,
        help="also score the whole search by nested CV with this many outer folds (0: off)",
    )
    parser.add_argument(
        "--protocol",
        default="grouped",
        help="grouped (track-grouped folds of all rows) or filtered (folds of the train and valid tracks of "
        "GTZAN's artist-aware split; the winner is tested on its test tracks)",
    )
    add_data(parser, folds=5, features="config")


def _tune_grid_parser(parser: argparse.ArgumentParser) -> None:
    _add_search(parser, "grid")


def _tune_grid(args: argparse.Namespace) -> int:
    from genre.jobs.tune import tune_grid_job

    result = tune_grid_job(
        args.config,
        args.data,
        n_splits=args.folds,
        outer_splits=args.outer_folds,
        seed=args.seed,
        windows=args.windows,
        n_jobs=args.jobs,
        protocol=args.protocol,
        features=args.features,
    )
    _print_search(result)
    return 0


def _tune_optuna_parser(parser: argparse.ArgumentParser) -> None:
    _add_search(parser, "optuna")
    parser.add_argument(
        "--trials", type=whole_number, default=20, help="finished trials the study should hold"
    )
    parser.add_argument("--timeout", type=optional_seconds, default=None, help="seconds (none: no limit)")
    parser.add_argument(
        "--storage",
        default="sqlite:///optuna.db",
        help="SQLAlchemy URL of the study's database, shared by workers; 'memory' for none",
    )
    parser.add_argument(
        "--study-name",
        default="auto",
        help="auto: the model and a fingerprint of config, data, folds and seed",
    )
    parser.add_argument(
        "--heartbeat",
        type=whole_number,
        default=None,
        help="seconds between a running trial's heartbeats (default 20); three missed: its worker is dead",
    )


def _tune_optuna(args: argparse.Namespace) -> int:
    from genre.jobs.tune import tune_optuna_job

    result = tune_optuna_job(
        args.config,
        args.data,
        n_trials=args.trials,
        timeout=args.timeout,
        storage=None if args.storage in {"", "memory"} else args.storage,
        study_name=None if args.study_name in {"", "auto"} else args.study_name,
        n_splits=args.folds,
        outer_splits=args.outer_folds,
        seed=args.seed,
        windows=args.windows,
        n_jobs=args.jobs,
        heartbeat=args.heartbeat,
        protocol=args.protocol,
        features=args.features,
    )
    _print_search(result)
    return 0


def _print_search(result: SearchResult) -> None:
    print(f"run {result.run_id}: best mean CV score {result.best_score:.4f} (the search's own, optimistic)")
    for name, value in result.best_params.items():
        print(f"  {name} = {value}")


def _tune_stacking_parser(parser: argparse.ArgumentParser) -> None:
    for base in ("knn", "svm", "nn"):
        parser.add_argument(
            f"--{base}-run",
            default="best",
            help=f"tuning run whose best {base} parameters to use: a run id, 'best' or 'default'",
        )
    parser.add_argument("--metric", default="best_cv_accuracy", help="what 'best' maximises")
    _train_parser(parser, with_model=False)


def _tune_stacking(args: argparse.Namespace) -> int:
    from genre.jobs.train import tune_stacking_job

    result = tune_stacking_job(
        args.data,
        sources={"knn": args.knn_run, "svm": args.svm_run, "nn": args.nn_run},
        metric=args.metric,
        params=dict(args.params),
        protocol=args.protocol,
        features=args.features,
        transform=args.transform,
        n_splits=args.folds,
        seed=args.seed,
        windows=args.windows,
        n_jobs=args.jobs,
    )
    print(f"run {result.run_id}: tuned stacking on {args.features} ({args.protocol})")
    for name, value in result.evaluation.summary().items():
        print(f"  {name:28s} {value:.4f}")
    return 0


def _reproduce_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", help="a finished run started by the genre command (or mlflow run)")


def _reproduce(args: argparse.Namespace) -> int:
    from genre.evaluation import markdown_table
    from genre.jobs.reproduce import reproduce_job

    done = reproduce_job(args.run_id)
    if done.dirty:
        print(
            f"note: run {done.original} came from a working tree with uncommitted changes; its commit "
            "alone may not hold the code it ran",
            file=sys.stderr,
        )
    table = done.metrics.assign(equal=done.metrics["equal"].map({True: "yes", False: "NO"}))
    print(markdown_table(table, floatfmt=".6g"))
    verdict = "every metric equal" if done.equal else "some metrics differ"
    print(f"run {done.original} reproduced as run {done.reproduced}: {verdict}")
    return 0 if done.equal else 4


#: name -> (help, add arguments, run), in the order ``genre --help`` lists them.
COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {
    "train": ("cross-validate, fit and log one model as an MLflow run", _train_parser, _train),
    "main": (
        "every model under every protocol in one parent run, with a comparison table",
        _main_parser,
        _main,
    ),
    "tune-grid": (
        "exhaustive grid search (GridSearchCV), a child run per candidate",
        _tune_grid_parser,
        _tune_grid,
    ),
    "tune-optuna": ("Optuna study (TPE, pruning), a child run per trial", _tune_optuna_parser, _tune_optuna),
    "tune-stacking": (
        "the stack built from the best parameters of earlier tuning runs",
        _tune_stacking_parser,
        _tune_stacking,
    ),
    "reproduce": (
        "run a finished run's command again at its git commit and compare every metric",
        _reproduce_parser,
        _reproduce,
    ),
}
