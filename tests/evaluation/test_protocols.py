"""The two evaluation protocols: determinism, stratification, and no track on both sides."""

from __future__ import annotations

import numpy as np
import pytest

from genre.data import load_csv
from genre.errors import ConfigError
from genre.evaluation import check_protocols, grouped_folds, row_folds, seed_split
from genre.features import load_data
from tests.conftest import GTZAN_3_SUBSET, GTZAN_30, require


@pytest.fixture(scope="module")
def windows():
    return load_csv(require(GTZAN_3_SUBSET))


@pytest.mark.gtzan
def test_grouped_folds_never_share_a_track(windows):
    folds = grouped_folds(windows, n_splits=10, seed=0)
    assert len(folds) == 10
    tracks = windows.frame["track"].to_numpy()
    seen_in_test = np.concatenate([test for _, test in folds])
    assert sorted(seen_in_test) == list(range(len(windows.frame)))  # every row tested exactly once
    for train, test in folds:
        assert not set(tracks[train]) & set(tracks[test])
        # stratified: each class holds about a third of every test fold
        shares = windows.frame["label"].iloc[test].value_counts(normalize=True)
        assert shares.between(0.2, 0.45).all()


@pytest.mark.gtzan
def test_grouped_folds_keep_gtzan_repeats_together():
    dataset = load_csv(require(GTZAN_30))
    tracks = dataset.frame["track"].to_numpy()
    for _, test in grouped_folds(dataset, n_splits=10, seed=3):
        test_tracks = set(tracks[test])
        assert ("disco.00098" in test_tracks) == ("disco.00099" in test_tracks)
        assert ("metal.00058" in test_tracks) == ("rock.00016" in test_tracks)


@pytest.mark.gtzan
def test_splits_are_deterministic_given_a_seed(windows):
    for a, b in zip(grouped_folds(windows, seed=1), grouped_folds(windows, seed=1), strict=True):
        np.testing.assert_array_equal(a[1], b[1])
    differ = [
        not np.array_equal(a[1], b[1])
        for a, b in zip(grouped_folds(windows, seed=1), grouped_folds(windows, seed=2), strict=True)
    ]
    assert any(differ)
    np.testing.assert_array_equal(seed_split(windows, seed=5)[1], seed_split(windows, seed=5)[1])


@pytest.mark.gtzan
def test_seed_split_is_stratified_and_leaks_on_windows(windows):
    train, test = seed_split(windows, test_size=0.2, seed=0)
    assert len(test) == pytest.approx(0.2 * len(windows.frame), abs=1)
    assert not set(train) & set(test)
    tracks = windows.frame["track"].to_numpy()
    # The point of labelling it: nearly every test window has a sibling window in train.
    assert len(set(tracks[train]) & set(tracks[test])) > 250


@pytest.mark.gtzan
def test_row_folds_are_stratified(windows):
    for _, test in row_folds(windows, n_splits=5, seed=0):
        assert (
            windows.frame["label"].iloc[test].value_counts().max()
            - windows.frame["label"].iloc[test].value_counts().min()
            <= 1
        )


@pytest.mark.gtzan
def test_too_many_folds_is_a_clear_error(windows):
    small = type(windows)(
        frame=windows.frame[windows.frame["track"].isin(windows.frame["track"].unique()[::30])].reset_index(
            drop=True
        ),
        source="small",
        windowed=True,
        name="small",
    )
    with pytest.raises(ConfigError, match=r"10 folds need at least 10 tracks per class; got classical: \d"):
        grouped_folds(small, n_splits=10)
    with pytest.raises(ConfigError, match="n_splits must be at least 2"):
        grouped_folds(windows, n_splits=1)
    with pytest.raises(ConfigError, match="test_size"):
        seed_split(windows, test_size=1.5)


def test_unknown_or_empty_protocols_are_refused():
    check_protocols(["grouped", "seed"])
    with pytest.raises(ConfigError, match=r"unknown protocol\(s\) \['random'\]; choose from: filtered, grouped, seed"):
        check_protocols(["grouped", "random"])
    with pytest.raises(ConfigError, match="unknown protocol"):
        check_protocols([])


@pytest.fixture(scope="module")
def embedded(cache_dir):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_CACHE_DIR", str(cache_dir))
        return load_data("embedded")


def test_protocols_on_the_embedded_windows(embedded):
    """The protocols' properties on data every machine has: no track on both sides of a grouped fold,
    every row tested once, the same folds for the same seed; the seed split is stratified and leaks."""
    tracks = embedded.frame["track"].to_numpy()
    folds = grouped_folds(embedded, n_splits=5, seed=0)
    assert sorted(np.concatenate([test for _, test in folds])) == list(range(len(embedded.frame)))
    for (train, test), (_, again) in zip(folds, grouped_folds(embedded, n_splits=5, seed=0), strict=True):
        assert not set(tracks[train]) & set(tracks[test])
        np.testing.assert_array_equal(test, again)
    train, test = seed_split(embedded, seed=0)
    counts = embedded.frame["label"].iloc[test].value_counts()
    assert len(counts) == len(embedded.labels) and counts.max() - counts.min() <= 1  # stratified
    assert set(tracks[train]) & set(tracks[test])
    with pytest.raises(ConfigError, match=r"9 folds need at least 9 tracks per class"):
        grouped_folds(embedded, n_splits=9)  # 8 tracks of each class
