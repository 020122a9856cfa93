# ruff: noqa: N803, N806 - X is scikit-learn's name for the feature matrix
"""Cross-validated accuracy, macro-F1 and log-loss of the genre models with their defaults, on the same folds.

Every model is scored on identical ``StratifiedKFold(shuffle=True)`` splits, so per-fold numbers compare
directly (the stack is meant to beat each of its base models). Prints a JSON blob, then a markdown table.

    python benchmarks/model_cv.py                       # all four models, 10 folds, GTZAN 30-s features
    python benchmarks/model_cv.py --models knn svm --params '{"knn": {"n_neighbors": 7}}'

This is a measurement of the defaults, not a tuning run: no MLflow, nothing written but stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, cross_validate

from genre.data.schema import FEATURE_COLUMNS, LABEL_COLUMN
from genre.models import MODEL_NAMES, make_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtzan" / "features_30_sec.csv"
SCORES = {"accuracy": "accuracy", "f1_macro": "f1_macro", "log_loss": "neg_log_loss"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="GTZAN-schema CSV (default: %(default)s)"
    )
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES))
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="fold shuffling and the networks' random_state")
    parser.add_argument(
        "--params", type=json.loads, default={}, help='JSON overrides per model, e.g. \'{"svm": {"C": 10}}\''
    )
    return parser.parse_args(argv)


def evaluate(name: str, X: pd.DataFrame, y: np.ndarray, args: argparse.Namespace) -> dict:
    """Scores of one model on ``args.folds`` shuffled stratified folds, per fold and summarised."""
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    model = make_model(name, args.params.get(name), random_state=args.seed)
    start = time.perf_counter()
    scores = cross_validate(model, X, y, cv=folds, scoring=SCORES, error_score="raise")
    result: dict = {"seconds": round(time.perf_counter() - start, 1)}
    for score in SCORES:
        values = scores[f"test_{score}"] * (-1 if score == "log_loss" else 1)
        result[score] = {"mean": float(values.mean()), "std": float(values.std()), "folds": values.tolist()}
    return result


def markdown(results: dict[str, dict]) -> str:
    lines = [
        "| model | accuracy | macro-F1 | log-loss | time (s) |",
        "|---|---|---|---|---|",
    ]
    for name, result in results.items():
        cells = [f"{result[score]['mean']:.3f} ± {result[score]['std']:.3f}" for score in SCORES]
        lines.append(f"| {name} | {' | '.join(cells)} | {result['seconds']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    table = pd.read_csv(args.data)
    X, y = table[list(FEATURE_COLUMNS)], table[LABEL_COLUMN].to_numpy()
    results = {}
    for name in args.models:
        results[name] = evaluate(name, X, y, args)
        print(f"{name}: accuracy {results[name]['accuracy']['mean']:.3f}", file=sys.stderr, flush=True)
    blob = {
        "data": str(args.data),
        "rows": len(y),
        "folds": args.folds,
        "seed": args.seed,
        "params": args.params,
    }
    if "stacking" in results:
        stack = np.array(results["stacking"]["accuracy"]["folds"])
        blob["stacking_beats"] = {
            name: {
                "mean": bool(stack.mean() > result["accuracy"]["mean"]),
                "folds_won": int((stack > np.array(result["accuracy"]["folds"])).sum()),
                "folds_lost": int((stack < np.array(result["accuracy"]["folds"])).sum()),
            }
            for name, result in results.items()
            if name != "stacking"
        }
    blob["results"] = results
    print(json.dumps(blob, indent=2))
    print()
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
