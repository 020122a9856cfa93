"""Loading and validating feature tables: the real Kaggle CSVs, and every kind of broken one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genre.data import from_frame, load_csv, track_id
from genre.data.schema import FEATURE_COLUMNS, GTZAN_GENRES
from genre.errors import DataError
from tests.conftest import GTZAN_3_SUBSET, GTZAN_30, require


@pytest.fixture(scope="module")
def gtzan30() -> pd.DataFrame:
    """A table shaped like Kaggle's features_30_sec.csv: 100 rows per genre in file order, made up values."""
    rng = np.random.default_rng(0)
    names = [f"{genre}.{i:05d}.wav" for genre in GTZAN_GENRES for i in range(100)]
    table = pd.DataFrame(rng.normal(size=(len(names), len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))
    table.insert(0, "filename", names)
    table.insert(1, "length", 661794)
    table["label"] = [name.split(".")[0] for name in names]
    return table


def _write(df: pd.DataFrame, tmp_path, name: str = "bad.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


@pytest.mark.gtzan
def test_loads_real_30_sec_csv():
    dataset = load_csv(require(GTZAN_30), labels=GTZAN_GENRES)
    assert len(dataset.frame) == 1000
    assert dataset.labels == sorted(GTZAN_GENRES)
    assert dataset.frame["label"].value_counts().eq(100).all()
    assert list(dataset.X.columns) == list(FEATURE_COLUMNS)
    assert dataset.X.dtypes.eq("float64").all()
    assert not dataset.windowed
    assert dataset.frame.loc[0, "track"] == "blues.00000"
    # GTZAN's exact repeats (e.g. disco.00099 = disco.00098) share a group; everything else is its own.
    groups = dataset.frame.set_index("track")["group"]
    assert groups["disco.00099"] == groups["disco.00098"] == "disco.00098"
    assert groups["rock.00016"] == groups["metal.00058"]
    assert dataset.frame["group"].nunique() == 1000 - 14


@pytest.mark.gtzan
def test_loads_real_3_sec_subset_as_windows():
    dataset = load_csv(require(GTZAN_3_SUBSET))
    assert len(dataset.frame) == 2996
    assert dataset.labels == ["classical", "jazz", "rock"]
    assert dataset.windowed
    assert dataset.frame["track"].nunique() == 300
    first = dataset.frame[dataset.frame["track"] == "classical.00000"]
    assert first["filename"].tolist() == [f"classical.00000.{k}.wav" for k in range(10)]


@pytest.mark.parametrize(
    ("filename", "windowed", "expected"),
    [
        ("blues.00000.3.wav", True, "blues.00000"),
        ("blues.00000.wav", False, "blues.00000"),
        ("my.song.12.mp3", True, "my.song"),
        ("track.wav", True, "track"),
    ],
)
def test_track_id(filename, windowed, expected):
    assert track_id(filename, windowed=windowed) == expected


def test_columns_in_any_order_and_without_length(gtzan30, tmp_path):
    shuffled = gtzan30.drop(columns="length").iloc[::20]
    shuffled = shuffled[list(reversed(shuffled.columns))]
    dataset = load_csv(_write(shuffled, tmp_path))
    assert list(dataset.X.columns) == list(FEATURE_COLUMNS)
    np.testing.assert_array_equal(dataset.X.to_numpy(), gtzan30.iloc[::20][list(FEATURE_COLUMNS)].to_numpy())


def test_missing_column_is_named(gtzan30, tmp_path):
    with pytest.raises(DataError, match=r"bad\.csv: missing column\(s\) mfcc7_var"):
        load_csv(_write(gtzan30.drop(columns="mfcc7_var"), tmp_path))


def test_extra_column_is_named(gtzan30, tmp_path):
    with pytest.raises(DataError, match=r"unexpected column\(s\) loudness"):
        load_csv(_write(gtzan30.assign(loudness=1.0), tmp_path))


def test_non_numeric_value_names_line_column_and_value(gtzan30, tmp_path):
    bad = gtzan30.astype({"tempo": object})
    bad.loc[7, "tempo"] = "fast"
    with pytest.raises(DataError, match=r"line 9 \(blues\.00007\.wav\), column tempo: 'fast'"):
        load_csv(_write(bad, tmp_path))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_rejected(gtzan30, tmp_path, value):
    bad = gtzan30.copy()
    bad.loc[3, "rms_mean"] = value
    with pytest.raises(DataError, match=r"line 5 .*column rms_mean"):
        load_csv(_write(bad, tmp_path))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        load_csv(path)


def test_header_only(gtzan30, tmp_path):
    with pytest.raises(DataError, match="no data rows"):
        load_csv(_write(gtzan30.iloc[:0], tmp_path))


def test_single_class(gtzan30, tmp_path):
    with pytest.raises(DataError, match=r"only one class \('blues'\)"):
        load_csv(_write(gtzan30.iloc[:100], tmp_path))


def test_duplicate_rows_name_the_file_and_lines(gtzan30, tmp_path):
    bad = pd.concat([gtzan30.iloc[:20], gtzan30.iloc[[5]], gtzan30.iloc[100:120]])
    with pytest.raises(
        DataError, match=r"duplicate rows: filename 'blues\.00005\.wav' appears on lines 7, 22"
    ):
        load_csv(_write(bad, tmp_path))


def test_unknown_label_when_a_label_set_is_given(gtzan30, tmp_path):
    bad = gtzan30.copy()
    bad.loc[150, "label"] = "polka"
    with pytest.raises(DataError, match=r"unknown label\(s\) polka \(first on line 152\)"):
        load_csv(_write(bad, tmp_path), labels=GTZAN_GENRES)
    assert "polka" in load_csv(_write(bad, tmp_path)).labels  # no label set: any label is fine


def test_missing_label(gtzan30, tmp_path):
    bad = gtzan30.copy()
    bad.loc[2, "label"] = ""
    with pytest.raises(DataError, match=r"empty label on line\(s\) 4"):
        load_csv(_write(bad, tmp_path))


def test_not_a_csv(tmp_path):
    path = tmp_path / "noise.csv"
    path.write_bytes(b"\x00\xff\xfe" * 100)
    with pytest.raises(DataError, match="noise.csv"):
        load_csv(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_csv(tmp_path / "nope.csv")


def test_repeats_across_windows_merge_whole_tracks():
    """A window of track b equal to a window of track a joins all of a's and b's windows in one group."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(6, len(FEATURE_COLUMNS)))
    rows[4] = rows[1]  # b.1 repeats a.1
    frame = pd.DataFrame(rows, columns=list(FEATURE_COLUMNS))
    frame.insert(0, "filename", ["a.0.wav", "a.1.wav", "c.0.wav", "b.0.wav", "b.1.wav", "c.1.wav"])
    frame["label"] = ["x", "x", "y", "x", "x", "y"]
    dataset = from_frame(frame, source="memory", windowed=True)
    assert dataset.frame["group"].tolist() == ["a", "a", "c", "a", "a", "c"]
