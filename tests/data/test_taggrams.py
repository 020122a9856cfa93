"""musicnn's published taggrams as feature tables, and tables joined by track."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genre.data import from_frame
from genre.data.schema import FEATURE_COLUMNS, GTZAN_GENRES, MUSICNN_COLUMNS
from genre.data.taggrams import join_tables, read_taggrams
from genre.errors import DataError
from tests.conftest import GTZAN_30, GTZAN_MUSICNN, gtzan_like, require
from tests.rounding import sums_apart


def _npz(path, tracks: list[str], patches: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"{t.split('.')[0]}/{t}.au" for t in tracks], patches)
    y = np.array([GTZAN_GENRES.index(i.split("/")[0]) for i in ids])
    X = rng.random((len(ids), 50)).astype(np.float32)  # noqa: N806 - the files' own name
    np.savez(path, X=X, Y=y, IDS=ids)
    return X


def test_clips_get_the_mean_and_population_std_of_their_patches(tmp_path):
    X = _npz(tmp_path / "a.npz", ["blues.00001", "rock.00002"], patches=4)  # noqa: N806
    table = read_taggrams(tmp_path / "a.npz")
    assert list(table.columns) == ["filename", *MUSICNN_COLUMNS, "label"]
    assert table["filename"].tolist() == ["blues.00001.wav", "rock.00002.wav"]
    rock = table.iloc[1]
    # pandas' group mean and standard deviation against NumPy's, both in float64, other algorithms: a sum
    # of 4 positive terms and a division each; a deviation's rounding is relative to the values, |mean|
    # / std times larger against the spread, and each of the two-pass and one-pass variances is within
    # about (n + 3) u of that.
    patches = X[4:8].astype(np.float64)
    mean, std = patches.mean(axis=0), patches.std(axis=0, ddof=0)
    assert rock["musicnn_rock_mean"] == pytest.approx(mean[0], rel=sums_apart(4 + 1, 1.0), abs=0)
    spread = sums_apart(4 + 3, 1 + mean[33] / std[33])
    assert rock["musicnn_hip_hop_std"] == pytest.approx(std[33], rel=spread, abs=0)
    assert table["label"].tolist() == ["blues", "rock"]


def test_windowed_rows_are_patches_with_zero_spread(tmp_path):
    _npz(tmp_path / "a.npz", ["jazz.00003", "pop.00004"], patches=3)
    dataset = from_frame(read_taggrams(tmp_path, windowed=True), source="t", windowed=True)
    assert dataset.frame["filename"].tolist()[:3] == [f"jazz.00003.{k}.wav" for k in range(3)]
    assert set(dataset.frame["track"]) == {"jazz.00003", "pop.00004"}
    assert (dataset.frame[list(MUSICNN_COLUMNS[1::2])] == 0).all().all()
    assert dataset.feature_sets == ("musicnn",)


def test_a_genre_index_that_disagrees_with_the_file_is_refused(tmp_path):
    np.savez(
        tmp_path / "bad.npz",
        X=np.zeros((2, 50)),
        Y=np.array([0, 3]),
        IDS=np.array(["blues/blues.00000.au"] * 2),
    )
    with pytest.raises(DataError, match=r"bad.npz: patch 1 of blues/blues.00000.au has genre index 3"):
        read_taggrams(tmp_path / "bad.npz")
    np.savez(tmp_path / "short.npz", X=np.zeros((2, 49)), Y=np.zeros(2, int), IDS=np.array(["a"] * 2))
    with pytest.raises(DataError, match=r"X must be patches x 50"):
        read_taggrams(tmp_path / "short.npz")


def test_joined_tables_keep_the_tracks_both_hold_with_every_feature_set(tmp_path):
    table = gtzan_like().iloc[::10].reset_index(drop=True)  # 93 tracks of every genre
    gtzan = from_frame(table.iloc[:50], source="csv")
    tracks = table["filename"].str.removesuffix(".wav").iloc[20:80].tolist()
    _npz(tmp_path / "m.npz", tracks)
    musicnn = from_frame(read_taggrams(tmp_path / "m.npz"), source="npz")
    joined = join_tables([gtzan, musicnn], source="csv,npz")
    assert joined.feature_sets == ("gtzan57", "musicnn")
    assert list(joined.X.columns) == [*FEATURE_COLUMNS, *MUSICNN_COLUMNS]
    assert joined.frame["track"].tolist() == tracks[:30]
    assert joined.with_features(["musicnn"]).X.shape == (30, 100)


def test_a_track_labelled_differently_in_two_tables_is_refused(tmp_path):
    table = gtzan_like().iloc[::100].reset_index(drop=True)
    gtzan = from_frame(table, source="csv")
    relabelled = table.assign(label=["x", *table["label"].iloc[1:]])
    musicnn = from_frame(
        relabelled[["filename", "label"]].join(
            pd.DataFrame(0.5, index=relabelled.index, columns=list(MUSICNN_COLUMNS))
        ),
        source="other",
    )
    with pytest.raises(DataError, match=r"is 'blues' in one table and 'x' in other"):
        join_tables([gtzan, musicnn], source="both")


def test_a_table_missing_a_set_says_what_it_holds():
    dataset = from_frame(gtzan_like().iloc[::50], source="csv")
    with pytest.raises(DataError, match=r"no musicnn features in this data \(it holds gtzan57\)"):
        dataset.with_features(["musicnn"])


def test_a_feature_set_given_in_part_is_refused():
    table = gtzan_like().iloc[::50].assign(musicnn_rock_mean=0.1)
    with pytest.raises(DataError, match=r"missing column\(s\) musicnn_rock_std"):
        from_frame(table, source="partial.csv")


@pytest.mark.gtzan
def test_the_shared_taggrams_join_the_kaggle_csv_on_the_filtered_tracks():
    musicnn = from_frame(read_taggrams(require(GTZAN_MUSICNN)), source="musicnn")
    from genre.data import load_csv

    joined = join_tables([load_csv(require(GTZAN_30)), musicnn], source="both")
    assert len(joined.frame) == 443 + 290  # the train and test clips; musicnn published no valid ones
    assert joined.X.shape[1] == 157 and np.isfinite(joined.X.to_numpy()).all()
