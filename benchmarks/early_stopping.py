"""Early stopping on 3-s windows: the network's validation rows held out one by one, or as whole tracks.

The MLP stops when the loss on its held-out rows stops improving. Held out row by row, those windows
have siblings from the same tracks among the training rows, so the validation loss reads low and says
little about unseen tracks; ``evaluation.fit_model`` now holds out whole tracks on windowed data.
This script scores both on the same track-grouped folds (the outer protocol is the same for both):
window and track accuracy on each test fold, the epochs trained, and the best validation loss.

    python benchmarks/early_stopping.py [--data PATH] [--folds 5] [--seed 0] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from genre.data import load_csv
from genre.evaluation import fit_model, grouped_folds, markdown_table, score, track_accuracy
from genre.models import make_model

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared/data/gtzan/features_3_sec_subset_classical_jazz_rock.csv"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    dataset = load_csv(args.data)
    rows = []
    for fold, (train, test) in enumerate(grouped_folds(dataset, n_splits=args.folds, seed=args.seed)):
        training, held_out = dataset.subset(train), dataset.subset(test)
        for validation in ("rows", "tracks"):
            model = make_model("nn", random_state=args.seed)
            if validation == "tracks":
                fitted = fit_model(model, training)  # routes the track groups to the network
            else:
                fitted = model.fit(training.X, training.y)  # no groups: rows held out one by one
            network = fitted[-1]
            proba = fitted.predict_proba(held_out.X)
            predicted = fitted.classes_[proba.argmax(axis=1)]
            tracks = held_out.frame["track"].to_numpy()
            rows.append(
                {
                    "fold": fold,
                    "validation": validation,
                    "accuracy": score(held_out.y, predicted)["accuracy"],
                    "track_accuracy": track_accuracy(proba, fitted.classes_, tracks, held_out.y),
                    "best_epoch": network.best_epoch_,
                    "stopped_epoch": network.stopped_epoch_,
                    "best_val_loss": float(np.min(network.history_["val_loss"])),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    per_fold = pd.DataFrame(rows)
    summary = per_fold.drop(columns="fold").groupby("validation", sort=False).agg(["mean", "min", "max"])
    summary.columns = [f"{name} {stat}" for name, stat in summary.columns]
    report = {"data": str(args.data), "folds": args.folds, "seed": args.seed, "per_fold": rows}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(markdown_table(summary.reset_index(), floatfmt=".3f"))


if __name__ == "__main__":
    main()
