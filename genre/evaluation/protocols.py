"""Evaluation protocols: the seed's random split, and track-grouped cross-validation.

GTZAN's 3-second windows of one track are near-duplicates. A random split of rows puts windows of
the same song on both sides and inflates accuracy; that is the ``seed`` protocol, kept because the
project's starting point reported it and so that the leak can be shown side by side. The ``grouped``
protocol is the honest one: stratified k-fold over *groups* (tracks, merged across GTZAN's exact
repeats, see ``genre.data.tables``), so no track is ever on both sides.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from genre.data import Dataset
from genre.errors import ConfigError

__all__ = ["PROTOCOLS", "TrackFolds", "check_protocols", "grouped_folds", "row_folds", "seed_split"]

#: Protocol names as they appear in run parameters and tags, with what each one measures.
PROTOCOLS: dict[str, str] = {
    "seed": "stratified 80/20 random split of rows (leaks windows of one track across the split)",
    "grouped": "track-grouped stratified k-fold (no track on both sides)",
}

Split = tuple[np.ndarray, np.ndarray]


def check_protocols(protocols: Sequence[str]) -> None:
    """Raise ``ConfigError`` unless ``protocols`` is a non-empty list of names from ``PROTOCOLS``."""
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise ConfigError(f"unknown protocol(s) {unknown or protocols}; choose from: {', '.join(PROTOCOLS)}")


def seed_split(dataset: Dataset, *, test_size: float = 0.2, seed: int = 0) -> Split:
    """The seed protocol: one stratified random split of rows into train and test indices.

    Deterministic given ``seed``. On windowed data this is leaky by construction; label it so.
    """
    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"test_size must be between 0 and 1, got {test_size}")
    indices = np.arange(len(dataset.frame))
    try:
        train, test = train_test_split(
            indices, test_size=test_size, random_state=seed, stratify=dataset.y, shuffle=True
        )
    except ValueError as exc:  # too few rows of a class to stratify
        raise ConfigError(f"cannot split {dataset.source} with test_size={test_size}: {exc}") from None
    return np.sort(train), np.sort(test)


def grouped_folds(dataset: Dataset, *, n_splits: int = 10, seed: int = 0) -> list[Split]:
    """The grouped protocol's folds of ``dataset``: ``TrackFolds(n_splits, seed=seed)`` over its groups."""
    return list(
        TrackFolds(n_splits, seed=seed, source=dataset.source).split(dataset.X, dataset.y, dataset.groups)
    )


class TrackFolds(StratifiedGroupKFold):
    """The grouped protocol as a scikit-learn splitter: stratified k-fold over groups, shuffled by ``seed``.

    What ``grouped_folds`` cuts, as an object a ``GridSearchCV`` or an outer ``cross_validate`` can hold:
    it requests ``groups`` through metadata routing, and ``split`` raises ``ConfigError`` when a class
    has fewer groups than folds, where ``StratifiedGroupKFold`` would warn and produce folds that miss
    that class. ``source`` names the data in that message.
    """

    def __init__(self, n_splits: int = 10, *, seed: int = 0, source: str = "the data") -> None:
        if n_splits < 2:
            raise ConfigError(f"n_splits must be at least 2, got {n_splits}")
        super().__init__(n_splits=n_splits, shuffle=True, random_state=seed)
        self.seed = seed
        self.source = source

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[Split]:  # noqa: N803
        """Train and test row positions of each fold; ``groups`` is required."""
        if groups is None:
            raise ConfigError("track-grouped folds need the rows' groups (tracks)")
        counts = pd.Series(np.asarray(groups)).groupby(np.asarray(y)).nunique()
        _check_enough(counts, self.n_splits, "tracks", self.source)
        yield from super().split(X, y, groups)


def row_folds(dataset: Dataset, *, n_splits: int = 10, seed: int = 0) -> list[Split]:
    """Stratified k-fold over rows, ignoring tracks: the seed protocol's cross-validation.

    Used to report per-fold scores for the seed protocol beside the grouped ones on the same data.
    """
    _check_enough(dataset.frame["label"].value_counts(), n_splits, "rows", dataset.source)
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(dataset.X, dataset.y))


def _check_enough(counts: pd.Series, n_splits: int, what: str, source: str) -> None:
    if n_splits < 2:
        raise ConfigError(f"n_splits must be at least 2, got {n_splits}")
    short = counts[counts < n_splits]
    if not short.empty:
        detail = ", ".join(f"{label}: {count}" for label, count in short.items())
        raise ConfigError(
            f"{source}: {n_splits} folds need at least {n_splits} {what} per class; got {detail}"
        )
