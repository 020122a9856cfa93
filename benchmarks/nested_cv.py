"""Nested cross-validation of every model x tuning strategy on the same outer folds: the honest table.

Each row is a whole procedure (defaults, a grid search, an Optuna study, a stack built from tuned base
models) run inside every outer fold on that fold's training tracks only, then scored on its held-out
tracks. The numbers are therefore not any search's own best score. Outer folds are the project's
track-grouped stratified folds (``splits.grouped_folds``), identical for every row, so per-fold
results compare directly. Prints JSON, then a markdown table and the stack's per-fold record.

    python benchmarks/nested_cv.py                                  # every row, 10 outer folds, 30-s CSV
    python benchmarks/nested_cv.py --rows knn/grid svm/grid --outer-folds 5
    python benchmarks/nested_cv.py --out docs/bench/nested_cv.json  # also write the JSON there
    python benchmarks/nested_cv.py --merge docs/bench/nested_cv_*.json  # one table from several runs

Search spaces are the shipped ones in ``experiments/``; inner searches use ``--inner-folds`` grouped
folds. No MLflow: this measures, it does not record runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from genre.data import Dataset
from genre.evaluation import markdown_table
from genre.features import load_data
from genre.models import make_model
from genre.tuning import TunedStackCV, load_search_config, nested_cv, search_estimator

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtzan" / "features_30_sec.csv"


def procedures(args: argparse.Namespace) -> dict[str, BaseEstimator]:
    """Every row of the table: ``model/strategy`` -> the estimator each outer fold fits (the procedure).

    ``+logvar`` rows put ``models.LogVariances`` (log of the ``*_var`` columns) before the scaler.
    """

    def search(model: str, strategy: str, transform: str = "standard", **kwargs: object) -> BaseEstimator:
        config = replace(load_search_config(model, strategy), transform=transform)
        return search_estimator(config, strategy, n_splits=args.inner_folds, seed=args.seed, **kwargs)

    def default(model: str) -> BaseEstimator:
        return make_model(model, random_state=args.seed)

    def tuned_stack(strategy: str, transform: str = "standard", **kwargs: object) -> BaseEstimator:
        bases = {name: search(name, strategy, transform, **kwargs) for name in ("knn", "svm")}
        return TunedStackCV(bases, seed=args.seed, transform=transform)

    trials = {"n_trials": args.trials}
    return {
        "knn/default": default("knn"),
        "knn/grid": search("knn", "grid"),
        "knn/optuna": search("knn", "optuna", **trials),
        "svm/default": default("svm"),
        "svm/grid": search("svm", "grid"),
        "svm/optuna": search("svm", "optuna", **trials),
        "svm/grid+logvar": search("svm", "grid", "logvar"),
        "nn/early-stopping": default("nn"),
        "nn/optuna": search("nn", "optuna", n_trials=args.nn_trials),
        "stacking/default": default("stacking"),
        "stacking/grid-bases": tuned_stack("grid"),
        "stacking/grid-bases+logvar": tuned_stack("grid", "logvar"),
        "stacking/optuna-bases": tuned_stack("optuna", **trials),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="GTZAN-schema CSV or 'embedded'")
    parser.add_argument("--rows", nargs="+", default=None, help="model/strategy rows (default: all)")
    parser.add_argument("--outer-folds", type=int, default=10)
    parser.add_argument("--inner-folds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=30, help="Optuna trials per inner study (knn, svm)")
    parser.add_argument("--nn-trials", type=int, default=10, help="Optuna trials per inner MLP study")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="print one table from these JSON files, run nothing",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.merge:
        results = [row for path in args.merge for row in json.loads(path.read_text())["results"]]
        _print_tables(results)
        return 0
    dataset = load_data(args.data, windows=False if args.data != "embedded" else True, seed=args.seed)
    table = procedures(args)
    rows = args.rows or list(table)
    unknown = sorted(set(rows) - set(table))
    if unknown:
        print(f"unknown rows {unknown}; choose from {list(table)}", file=sys.stderr)
        return 2
    results = []
    for row in rows:
        started = time.perf_counter()
        folds = nested_cv(dataset, table[row], outer_splits=args.outer_folds, seed=args.seed)
        model, strategy = row.split("/")
        results.append(
            {
                "model": model,
                "strategy": strategy,
                "accuracy": float(folds["accuracy"].mean()),
                "accuracy_std": float(folds["accuracy"].std(ddof=0)),
                "f1_macro": float(folds["f1_macro"].mean()),
                "seconds": round(time.perf_counter() - started, 1),
                "fold_accuracy": folds["accuracy"].round(4).tolist(),
                "params": folds["params"].map(json.loads).tolist(),
            }
        )
        print(
            f"{row}: {results[-1]['accuracy']:.3f} ({results[-1]['seconds']} s)", file=sys.stderr, flush=True
        )
        if args.out:  # written after every row, so an interrupted run keeps what it measured
            args.out.write_text(json.dumps(_report(args, dataset, results), indent=1) + "\n")
    report = _report(args, dataset, results)
    print(json.dumps(report, indent=1))
    print()
    _print_tables(results)
    return 0


def _print_tables(results: list[dict]) -> None:
    print(markdown_table(pd.DataFrame(results).drop(columns=["fold_accuracy", "params"])))
    for line in _wins(results):
        print(line)


def _report(args: argparse.Namespace, dataset: Dataset, results: list[dict]) -> dict:
    return {
        "command": "python benchmarks/nested_cv.py " + " ".join(sys.argv[1:]),
        "data": dataset.name,
        "rows": len(dataset.frame),
        "outer_folds": args.outer_folds,
        "inner_folds": args.inner_folds,
        "protocol": "track-grouped stratified folds, outer and inner (nested CV)",
        "results": results,
    }


def _wins(results: list[dict]) -> list[str]:
    """Per-fold record of each stacking row against the best non-stacking row."""
    bases = [r for r in results if r["model"] != "stacking"]
    if not bases:
        return []
    best = max(bases, key=lambda r: r["accuracy"])
    lines = []
    for stack in (r for r in results if r["model"] == "stacking"):
        diff = np.array(stack["fold_accuracy"]) - np.array(best["fold_accuracy"])
        won, tied, lost = int((diff > 0).sum()), int((diff == 0).sum()), int((diff < 0).sum())
        lines.append(
            f"stacking/{stack['strategy']} vs {best['model']}/{best['strategy']}: "
            f"{stack['accuracy'] - best['accuracy']:+.3f} mean; folds won {won}, tied {tied}, lost {lost}"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
