# ruff: noqa: N803 - X is scikit-learn's name, part of the splitter API
"""Folds of neighbouring tracks: ``ContiguousTrackFolds``, GTZAN's nearest thing to artist-grouped folds.

Lives with the models because a stack may cut its own inner folds this way (``cv`` of
``GroupedStackingClassifier``); the ``filtered`` protocol (``genre.evaluation``) cuts its
cross-validation folds with it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator

from genre.errors import ConfigError

__all__ = ["ContiguousTrackFolds", "check_enough"]


class ContiguousTrackFolds(BaseCrossValidator):
    """Stratified k-fold over tracks in file-name order: each fold holds a contiguous run of every
    class's tracks.

    GTZAN numbers most of an artist's tracks together (``reggae.00050`` to ``reggae.00084`` are Bob
    Marley's), so neighbouring tracks on one side is the nearest thing to artist-grouped folds that
    needs no artist list. Scores on these folds are still above a test on unseen artists, but far
    closer to it than shuffled folds' (measured in ``docs/results.md``). Deterministic (nothing is
    shuffled). Requests ``groups`` (tracks; a track's windows stay together) through metadata routing,
    like ``TrackFolds``.

    Parameters
    ----------
    n_splits : int, default=10
    source : str, default="the data"
        Names the data in the error raised when a class has fewer tracks than folds.
    """

    __metadata_request__split = {"groups": True}

    def __init__(self, n_splits: int = 10, *, source: str = "the data") -> None:
        if n_splits < 2:
            raise ConfigError(f"n_splits must be at least 2, got {n_splits}")
        self.n_splits = n_splits
        self.source = source

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits

    def _iter_test_masks(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[np.ndarray]:
        if groups is None:
            raise ConfigError("contiguous track folds need the rows' groups (tracks)")
        groups, y = np.asarray(groups, dtype=str), np.asarray(y)
        first = pd.DataFrame({"group": groups, "label": y}).drop_duplicates("group").sort_values("group")
        check_enough(first["label"].value_counts(), self.n_splits, "tracks", self.source)
        fold_of: dict[str, int] = {}
        for _, members in first.groupby("label", sort=True):
            for fold, chunk in enumerate(np.array_split(members["group"].to_numpy(), self.n_splits)):
                fold_of.update(dict.fromkeys(chunk, fold))
        folds = np.array([fold_of[g] for g in groups])
        for fold in range(self.n_splits):
            yield folds == fold


def check_enough(counts: pd.Series, n_splits: int, what: str, source: str) -> None:
    """Raise ``ConfigError`` unless every class (``counts``: how many ``what`` each has) fills the folds."""
    if n_splits < 2:
        raise ConfigError(f"n_splits must be at least 2, got {n_splits}")
    short = counts[counts < n_splits]
    if not short.empty:
        detail = ", ".join(f"{label}: {count}" for label, count in short.items())
        raise ConfigError(
            f"{source}: {n_splits} folds need at least {n_splits} {what} per class; got {detail}"
        )
