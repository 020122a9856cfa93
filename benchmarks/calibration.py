"""How far the champion's probabilities can be trusted: its calibration on the filtered test tracks; on
the training side's cross-validation what a ``--min-confidence`` threshold keeps and how often what it
keeps is right; and the threshold the rule below chooses, ``genre catalog``'s default.

Usage (in a folder whose tracking store has a champion, e.g. after ``genre main``)::

    python benchmarks/calibration.py [--name genre-classifier] [--alias champion] [--folds 5]
                                     [--log] [--json OUT] [--plot OUT.png]

* Test: the champion (as registered: fitted on the train and valid tracks) answers the 290 test tracks
  of GTZAN's artist-aware split from the shipped musicnn taggrams (one row per clip). Expected calibration
  error (ECE, 15 equal-width bins of the top probability: the gap between confidence and accuracy,
  weighted by the bin's share of tracks), accuracy, mean top probability, and a reliability plot.
* Training side: a clone of the champion's estimator (same parameters) is cross-validated on the train
  and valid tracks in ``ContiguousTrackFolds`` (neighbouring tracks, mostly one artist's, kept
  together), as the filtered protocol does; out-of-fold top probabilities give the ECE there and, per
  threshold, the share of tracks at or above it (coverage) and their accuracy. That table is what a
  ``--min-confidence`` default is chosen from, without looking at the test tracks.
* The rule (``choose_min_confidence``): the largest threshold, in steps of 0.01, at which the
  training side's songs below it are right less often than 70 % of the time (the whole training side
  is right 84 % of the time). The same rule on 1000 resamples of the tracks shows how firm the choice
  is. Then, as a report and never as an input to the choice, what the chosen threshold marks unsure
  among the test tracks and how often those are right.
* ``--log`` records the test figures (``test_ece``, ``test_mean_confidence``) and the plot
  (``calibration/reliability.png``) in the run that logged the registered version.

Prints JSON, then markdown tables.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import cross_val_predict

BINS = 15
THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)
#: The rule's share: songs below the chosen threshold are right less often than this. At 0.7 one unsure
#: answer in three or more is wrong, about twice the training side's error rate (0.16).
RIGHT_BELOW = 0.7
#: The rule's grid: thresholds are multiples of this.
STEP = 0.01
RESAMPLES = 1000


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> tuple[float, list[dict]]:
    """Expected calibration error over equal-width bins of confidence, and the bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    table, total = [], 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            gap = abs(float(correct[inside].mean()) - float(confidence[inside].mean()))
            total += inside.mean() * gap
            table.append(
                {
                    "low": round(edges[b], 3),
                    "high": round(edges[b + 1], 3),
                    "tracks": int(inside.sum()),
                    "confidence": round(float(confidence[inside].mean()), 3),
                    "accuracy": round(float(correct[inside].mean()), 3),
                }
            )
    return float(total), table


def choose_min_confidence(
    confidence: np.ndarray, correct: np.ndarray, *, right_below: float = RIGHT_BELOW, step: float = STEP
) -> float:
    """The largest multiple of ``step`` below 1 at which the answers below it (``unsure``, as ``genre
    catalog`` compares) are right less often than ``right_below``; 0.0 (nothing unsure) when there is
    none. A threshold with no answer below it says nothing and is never chosen."""
    chosen = 0.0
    for k in range(1, round(1 / step)):
        threshold = round(k * step, 10)
        below = confidence < threshold
        if below.any() and correct[below].mean() < right_below:
            chosen = threshold
    return chosen


def resampled_choices(confidence: np.ndarray, correct: np.ndarray, *, seed: int = 0) -> dict[float, int]:
    """How often the rule chooses each threshold on ``RESAMPLES`` bootstrap resamples of the tracks: how
    firm the choice is against which songs happened to be in the training side."""
    rng = np.random.default_rng(seed)
    counts: dict[float, int] = {}
    for _ in range(RESAMPLES):
        pick = rng.integers(0, len(confidence), len(confidence))
        chosen = choose_min_confidence(confidence[pick], correct[pick])
        counts[chosen] = counts.get(chosen, 0) + 1
    return dict(sorted(counts.items()))


def coverage(confidence: np.ndarray, correct: np.ndarray, thresholds: tuple[float, ...]) -> list[dict]:
    rows = []
    for threshold in thresholds:
        kept = confidence >= threshold
        rows.append(
            {
                "min_confidence": threshold,
                "unsure": int((~kept).sum()),
                "kept": round(float(kept.mean()), 3),
                "accuracy_kept": round(float(correct[kept].mean()), 3) if kept.any() else None,
                "accuracy_unsure": round(float(correct[~kept].mean()), 3) if (~kept).any() else None,
            }
        )
    return rows


def plot(bins: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    ax.bar(centres, [b["accuracy"] for b in bins], width=1 / BINS, alpha=0.6, edgecolor="k", label="accuracy")
    ax.plot(
        [b["confidence"] for b in bins],
        [b["accuracy"] for b in bins],
        "o",
        color="C3",
        label="mean confidence",
    )
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="top probability", ylabel="share right", title=title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--name", default="genre-classifier")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--log", action="store_true", help="log the test figures and plot to the model's run")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()

    from mlflow import MlflowClient

    from genre.evaluation.protocols import filtered_folds, filtered_split
    from genre.features import load_data
    from genre.registry import load_classifier
    from genre.threads import single_threaded

    classifier = load_classifier(name=args.name, alias=args.alias)
    version = MlflowClient().get_model_version_by_alias(args.name, args.alias)
    data = load_data("gtzan-musicnn", windows=None, features=classifier.feature_sets)
    train, test, _ = filtered_split(data)
    x, y = data.X, data.frame["label"].to_numpy()
    classes = np.array(classifier.classes)

    proba = classifier.predict_proba(x.iloc[test])
    confidence, correct = proba.max(axis=1), classes[proba.argmax(axis=1)] == y[test]
    test_ece, test_bins = ece(confidence, correct)

    side = data.frame.iloc[train].reset_index(drop=True)
    training = type(data)(side, data.source, data.windowed, data.name, data.feature_sets)
    folds = filtered_folds(training, n_splits=args.folds)
    with single_threaded():
        cv_proba = cross_val_predict(clone(classifier.estimator), training.X, training.y, cv=folds,
                                     method="predict_proba")  # fmt: skip
    cv_classes = np.unique(training.y)
    cv_conf, cv_correct = cv_proba.max(axis=1), cv_classes[cv_proba.argmax(axis=1)] == training.y
    cv_ece, cv_bins = ece(cv_conf, cv_correct)
    chosen = choose_min_confidence(cv_conf, cv_correct)
    near = tuple(round(chosen + d * STEP, 10) for d in (-2, -1, 0, 1, 2))
    test_unsure = confidence < chosen

    figures = {
        "model": f"{args.name} version {version.version} (run {version.run_id})",
        "test_tracks": int(len(test)),
        "test_accuracy": round(float(correct.mean()), 3),
        "test_mean_confidence": round(float(confidence.mean()), 3),
        "test_ece": round(test_ece, 3),
        "test_bins": test_bins,
        "cv_tracks": int(len(train)),
        "cv_folds": args.folds,
        "cv_accuracy": round(float(cv_correct.mean()), 3),
        "cv_mean_confidence": round(float(cv_conf.mean()), 3),
        "cv_ece": round(cv_ece, 3),
        "cv_bins": cv_bins,
        "cv_thresholds": coverage(cv_conf, cv_correct, tuple(sorted({*THRESHOLDS, *near}))),
        "rule": f"largest multiple of {STEP} at which the training side's songs below it are right "
        f"less often than {RIGHT_BELOW}",
        "chosen_min_confidence": chosen,
        "cv_unsure": int((cv_conf < chosen).sum()),
        "cv_unsure_accuracy": _share(cv_correct[cv_conf < chosen]),
        "cv_kept_accuracy": _share(cv_correct[cv_conf >= chosen]),
        "resampled_choices": resampled_choices(cv_conf, cv_correct),
        "report_not_choice": {
            "test_unsure": int(test_unsure.sum()),
            "test_unsure_share": round(float(test_unsure.mean()), 3),
            "test_unsure_accuracy": _share(correct[test_unsure]),
            "test_kept_accuracy": _share(correct[~test_unsure]),
        },
    }
    out = args.plot or Path(tempfile.mkdtemp()) / "reliability.png"
    plot(test_bins, out, f"{args.name} v{version.version}: filtered test, ECE {test_ece:.3f}")
    if args.log:
        client = MlflowClient()
        client.log_metric(version.run_id, "test_ece", test_ece)
        client.log_metric(version.run_id, "test_mean_confidence", float(confidence.mean()))
        client.log_artifact(version.run_id, str(out), artifact_path="calibration")
    text = json.dumps(figures, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    print("\n| bin | tracks | mean top probability | share right |\n|---|---|---|---|")
    for b in test_bins:
        span = f"{b['low']:.2f}-{b['high']:.2f}"
        print(f"| {span} | {b['tracks']} | {b['confidence']:.3f} | {b['accuracy']:.3f} |")
    print(
        "\n| --min-confidence | unsure (CV) | kept (CV) | right among kept | right among unsure |"
        "\n|---|---|---|---|---|"
    )
    for r in figures["cv_thresholds"]:
        mark = " (chosen)" if r["min_confidence"] == chosen else ""
        print(
            f"| {r['min_confidence']}{mark} | {r['unsure']} | {r['kept']:.1%} | {r['accuracy_kept']} | "
            f"{r['accuracy_unsure']} |"
        )
    firm = figures["resampled_choices"]
    shown = ", ".join(f"{t} {n}x" for t, n in firm.items())
    print(f"\nrule: {figures['rule']}: {chosen}; on {RESAMPLES} resamples of the tracks: {shown}")
    report = figures["report_not_choice"]
    print(
        f"report (not used in the choice): {chosen} marks {report['test_unsure']} of {len(test)} test "
        f"tracks unsure ({report['test_unsure_share']:.1%}), right {report['test_unsure_accuracy']}; the "
        f"others right {report['test_kept_accuracy']}"
    )


def _share(correct: np.ndarray) -> float | None:
    return round(float(correct.mean()), 3) if len(correct) else None


if __name__ == "__main__":
    main()
