"""The leak, measured: the same models scored under the seed and the grouped protocol, side by side.

On GTZAN's 3-second rows the seed protocol (a random 80/20 split of rows) puts windows of one track on
both sides; the grouped protocol (track-grouped stratified k-fold) never does. This script prints both
for each model on each dataset, as JSON and as a markdown table.

    python benchmarks/protocols.py                      # knn and svm on the two real CSVs in ../shared
    python benchmarks/protocols.py --models knn,svm,nn,stacking --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from genre.data import load_csv
from genre.evaluation import evaluate, markdown_table
from genre.models import make_model

GTZAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtzan"
DEFAULT_DATA = [GTZAN / "features_3_sec_subset_classical_jazz_rock.csv", GTZAN / "features_30_sec.csv"]


def measure(data: list[Path], models: list[str], folds: int, seed: int) -> list[dict[str, object]]:
    rows = []
    for path in data:
        dataset = load_csv(path)
        for name in models:
            for protocol in ("seed", "grouped"):
                started = time.perf_counter()
                result = evaluate(
                    make_model(name, random_state=seed), dataset, protocol, n_splits=folds, seed=seed
                )
                summary = result.summary()
                rows.append(
                    {
                        "data": dataset.name,
                        "windowed": dataset.windowed,
                        "model": name,
                        "protocol": protocol
                        + (" (leaky)" if protocol == "seed" and dataset.windowed else ""),
                        "cv_accuracy": summary["cv_accuracy_mean"],
                        "cv_accuracy_std": summary["cv_accuracy_std"],
                        "test_accuracy": summary.get("test_accuracy", float("nan")),
                        "cv_f1_macro": summary["cv_f1_macro_mean"],
                        "cv_track_accuracy": summary.get("cv_track_accuracy_mean", float("nan")),
                        "seconds": time.perf_counter() - started,
                    }
                )
                print(f"{dataset.name} {name} {protocol}: {summary['cv_accuracy_mean']:.3f}", file=sys.stderr)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--models", default="knn,svm")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    rows = measure(args.data, args.models.split(","), args.folds, args.seed)
    blob = {"folds": args.folds, "seed": args.seed, "results": rows}
    print(json.dumps(blob, indent=2))
    print(markdown_table(pd.DataFrame(rows)))
    if args.json:
        args.json.write_text(json.dumps(blob, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
