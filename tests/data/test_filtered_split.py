"""GTZAN's fault-filtered split as shipped with the package, and what it refuses."""

from __future__ import annotations

from collections import Counter
from importlib.resources import files

import numpy as np
import pytest

from genre.data import from_frame
from genre.data.filtered_split import SIDES, filtered_sides, filtered_tracks
from genre.errors import DataError
from tests.conftest import GTZAN_DIR, gtzan_like, require


def test_the_lists_ship_with_their_licence_and_counts():
    sides = filtered_tracks()
    assert Counter(sides.values()) == {"train": 443, "valid": 197, "test": 290}
    notice = files("genre.data").joinpath("splits", "LICENSE").read_text()
    assert "ISC License" in notice and "Jordi Pons and Xavier Favory" in notice
    assert sides["blues.00012"] == "test" and sides["blues.00029"] == "train"


@pytest.mark.gtzan
def test_the_shipped_lists_are_the_shared_ones_byte_for_byte():
    for side in SIDES:
        shared = require(GTZAN_DIR / "splits" / f"{side}_filtered.txt").read_bytes()
        assert files("genre.data").joinpath("splits", f"{side}_filtered.txt").read_bytes() == shared


def test_rows_follow_their_track_and_unlisted_tracks_are_outside():
    table = gtzan_like(extra=5)
    sides = filtered_sides(from_frame(table, source="t").frame["track"], source="t")
    assert Counter(sides) == {"train": 443, "valid": 197, "test": 290, "": 5}


def test_valid_tracks_may_be_missing_as_a_whole_but_not_in_part():
    table = gtzan_like()
    tracks = table["filename"].str.removesuffix(".wav")
    valid = tracks.map(filtered_tracks()) == "valid"
    sides = filtered_sides(tracks[~valid], source="no-valid")
    assert "valid" not in set(sides) and Counter(sides)["test"] == 290
    partial = tracks.drop(np.flatnonzero(valid.to_numpy())[:3])
    with pytest.raises(DataError, match=r"valid list has 197 tracks and 3 of them are not in the data"):
        filtered_sides(partial, source="partial")


def test_missing_test_tracks_are_named_and_counted():
    tracks = gtzan_like()["filename"].str.removesuffix(".wav")
    kept = tracks[~tracks.isin(["rock.00011", "rock.00012"])]
    with pytest.raises(
        DataError, match=r"test list has 290 tracks and 2 of them .*first: rock.00011, rock.00012"
    ):
        filtered_sides(kept, source="x")


def test_data_that_is_not_gtzan_is_refused_with_the_protocols_that_apply():
    with pytest.raises(DataError, match=r"needs GTZAN's track names .* Use protocol grouped .* or seed"):
        filtered_sides(np.array(["drone.00000", "breakbeat.00003"]), source="embedded-seed0")
