"""The evaluation protocols: determinism, stratification, and no track (or, for filtered, no test track in
training) on both sides."""

from __future__ import annotations

import numpy as np
import pytest

from genre.data import from_frame, load_csv
from genre.data.filtered_split import filtered_tracks
from genre.errors import ConfigError
from genre.evaluation import (
    ContiguousTrackFolds,
    check_protocols,
    evaluate,
    filtered_folds,
    filtered_split,
    grouped_folds,
    row_folds,
    seed_split,
)
from genre.features import load_data
from genre.models import make_model
from tests.conftest import GTZAN_3_SUBSET, GTZAN_30, gtzan_like, require


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
    with pytest.raises(
        ConfigError, match=r"unknown protocol\(s\) \['random'\]; choose from: filtered, grouped, seed"
    ):
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


@pytest.fixture(scope="module")
def gtzan_named():
    """Every track of GTZAN's filtered lists and 20 of the 70 outside them, with made-up features."""
    return from_frame(gtzan_like(extra=20), source="gtzan-like")


def test_the_filtered_protocol_tests_on_the_test_tracks_and_never_trains_on_them(gtzan_named):
    train, test, dropped = filtered_split(gtzan_named)
    sides = gtzan_named.frame["track"].map(filtered_tracks())
    assert dropped == 20 and len(test) == 290 and len(train) == 443 + 197
    assert set(sides.iloc[test]) == {"test"} and set(sides.iloc[train]) == {"train", "valid"}
    evaluation = evaluate(make_model("knn"), gtzan_named, "filtered", n_splits=4)
    assert evaluation.dropped_rows == 20
    assert set(evaluation.test) >= {"accuracy", "f1_macro"}
    assert list(evaluation.test_rows) == list(test) and list(evaluation.train_rows) == list(train)
    assert len(evaluation.y_true) == 290  # the confusion matrix is the test's
    assert len(evaluation.folds) == 4


def test_contiguous_folds_hold_runs_of_neighbouring_tracks_per_class(gtzan_named):
    train, _, _ = filtered_split(gtzan_named)
    side = gtzan_named.subset(train)
    folds = filtered_folds(side, n_splits=4)
    tracks = side.frame["track"].to_numpy()
    seen = np.concatenate([test for _, test in folds])
    assert sorted(seen) == list(range(len(tracks)))  # every row tested once
    for genre in ("blues", "reggae"):
        numbers = [sorted(int(t[-5:]) for t in set(tracks[test]) if t.startswith(genre)) for _, test in folds]
        # each fold a contiguous run of the genre's tracks in file order, the runs one after another
        ordered = sorted(int(t[-5:]) for t in set(tracks) if t.startswith(genre))
        assert [n for run in numbers for n in run] == ordered
        assert max(len(run) for run in numbers) - min(len(run) for run in numbers) <= 1


def test_contiguous_folds_keep_a_tracks_windows_together():
    rows = np.repeat([f"{g}.{i:05d}" for g in ("jazz", "rock") for i in range(6)], 3)
    y = np.array([r.split(".")[0] for r in rows])
    for train, test in ContiguousTrackFolds(3).split(np.zeros(len(rows)), y, rows):
        assert not set(rows[train]) & set(rows[test])
    with pytest.raises(ConfigError, match=r"4 folds need at least 4 tracks per class"):
        list(ContiguousTrackFolds(4).split(np.zeros(6), np.repeat(["a", "b"], 3), np.arange(6)))


def test_the_filtered_protocol_refuses_data_that_is_not_gtzan():
    from genre.errors import DataError

    dataset = load_data("embedded")
    with pytest.raises(DataError, match="needs GTZAN's track names"):
        evaluate(make_model("knn"), dataset, "filtered", n_splits=3)
