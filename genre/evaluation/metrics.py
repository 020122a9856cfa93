"""The scores every run reports: accuracy and macro precision, recall and F1, and track accuracy.

Macro averages count every class the same, so a model cannot look good by getting the big classes right.
On windowed data a track's prediction is the argmax of its windows' mean probabilities, which is what
the served model answers for a whole song.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

__all__ = ["SCORES", "score", "track_accuracy"]

#: Score names, in the order they are logged and printed.
SCORES: tuple[str, ...] = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


def score(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-averaged precision, recall and F1 (every class counts the same)."""
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
    }


def track_accuracy(proba: np.ndarray, classes: np.ndarray, tracks: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy per track, each track's prediction being the argmax of its windows' mean probabilities."""
    mean = pd.DataFrame(proba).groupby(tracks, sort=False).mean()
    truth = pd.Series(labels).groupby(tracks, sort=False).first()
    predicted = classes[mean.to_numpy().argmax(axis=1)]
    return float(np.mean(predicted == truth.loc[mean.index].to_numpy()))
