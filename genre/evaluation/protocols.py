"""Evaluation protocols: GTZAN's artist-aware split, track-grouped cross-validation, a random split.

GTZAN repeats songs and artists. Its 3-second windows of one track are near-duplicates, and many tracks
share an artist (35 of the reggae clips are Bob Marley). Three protocols, each labelled wherever a
number appears, show what each kind of leak is worth:

* ``filtered``: GTZAN's fault-filtered partition (``genre.data.filtered_split``): no artist on both
  sides. The model is fitted on the train and valid tracks and tested once on the 290 test tracks;
  its cross-validation runs on the training side only, in ``ContiguousTrackFolds`` that keep
  neighbouring tracks (mostly one artist's) together. The number comparable to the literature, and to
  what a user gets on music by artists that are not in GTZAN.
* ``grouped``: stratified k-fold over *groups* (tracks, merged across GTZAN's exact repeats, see
  ``genre.data.tables``), so no track is on both sides; an artist still is. Works on any data.
* ``seed``: a random split of rows, kept because the project's starting point reported it and so that
  the leak shows side by side: on windows it puts windows of one song on both sides.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from genre.data import Dataset
from genre.data.filtered_split import filtered_sides
from genre.errors import ConfigError
from genre.models.folds import ContiguousTrackFolds, check_enough

__all__ = [
    "HELD_OUT",
    "PROTOCOLS",
    "ContiguousTrackFolds",
    "TrackFolds",
    "check_protocols",
    "filtered_folds",
    "filtered_split",
    "grouped_folds",
    "row_folds",
    "search_folds",
    "seed_split",
]

#: Protocol names as they appear in run parameters and tags, with what each one measures, in the order
#: tables list them (the artist-aware one first).
PROTOCOLS: dict[str, str] = {
    "filtered": "GTZAN's fault-filtered split: no artist on both sides, tested on its 290 test tracks "
    "(comparable with the literature)",
    "grouped": "track-grouped stratified k-fold (no track on both sides; an artist may be)",
    "seed": "stratified 80/20 random split of rows (leaks windows of one track across the split)",
}
#: What the held-out test of a protocol with one is, for run descriptions and model cards.
HELD_OUT: dict[str, str] = {
    "filtered": "the 290 test tracks of GTZAN's fault-filtered split, by artists never trained on",
    "seed": "a random 20 % of the rows",
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
        check_enough(counts, self.n_splits, "tracks", self.source)
        yield from super().split(X, y, groups)


def search_folds(dataset: Dataset, protocol: str, *, n_splits: int = 5, seed: int = 0) -> list[Split]:
    """The folds a search scores its candidates on under ``protocol``: ``TrackFolds`` (``grouped``) or,
    on the training side of the ``filtered`` split, ``ContiguousTrackFolds``; the test side of the split
    never reaches a search.
    """
    if protocol == "grouped":
        return grouped_folds(dataset, n_splits=n_splits, seed=seed)
    if protocol == "filtered":
        return filtered_folds(dataset, n_splits=n_splits)
    raise ConfigError(f"searches run under the grouped or filtered protocol, not {protocol!r}")


def filtered_split(dataset: Dataset) -> tuple[np.ndarray, np.ndarray, int]:
    """The filtered protocol's training rows (train and valid tracks), test rows, and how many rows lie
    outside the lists (dropped: GTZAN's 70 faulty tracks, or another source's extra rows).

    Raises ``DataError`` for data it cannot split honestly (see ``genre.data.filtered_split``).
    """
    sides = filtered_sides(dataset.frame["track"].to_numpy(), source=dataset.source)
    train = np.flatnonzero((sides == "train") | (sides == "valid"))
    test = np.flatnonzero(sides == "test")
    return train, test, int((sides == "").sum())


def filtered_folds(dataset: Dataset, *, n_splits: int = 10) -> list[Split]:
    """The filtered protocol's cross-validation folds of its training rows ``dataset``."""
    return list(
        ContiguousTrackFolds(n_splits, source=dataset.source).split(dataset.X, dataset.y, dataset.groups)
    )


def row_folds(dataset: Dataset, *, n_splits: int = 10, seed: int = 0) -> list[Split]:
    """Stratified k-fold over rows, ignoring tracks: the seed protocol's cross-validation.

    Used to report per-fold scores for the seed protocol beside the grouped ones on the same data.
    """
    check_enough(dataset.frame["label"].value_counts(), n_splits, "rows", dataset.source)
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(dataset.X, dataset.y))
