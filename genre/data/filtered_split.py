"""GTZAN's fault-filtered partition: which side (train, valid, test) each listed track is on.

Kereliuk, Sturm & Larsen (2015) cut GTZAN into 443 train, 197 valid and 290 test tracks with no artist
on two sides, and left out 70 tracks that are replicas, distortions or badly mislabelled. It is the
split musicnn, the Jukebox probes, CLMR and MARBLE report on, so a score on its test side is the one
comparable with the literature, and the closest GTZAN has to "songs by artists the model never heard".
The lists ship with the package (``splits/``, ISC licence in ``splits/LICENSE``), so a user with their
own GTZAN download can run the ``filtered`` protocol.

``filtered_sides`` maps a table's tracks onto the lists and refuses data it cannot honestly split:
data that is not GTZAN's (no GTZAN track names), and data missing tracks of the train or test lists.
The valid tracks may be absent as a whole (musicnn's published taggrams have none), not in part.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from importlib.resources import files

import numpy as np

from genre.errors import DataError

__all__ = ["SIDES", "filtered_sides", "filtered_tracks"]

#: The three lists, in the order a model meets them.
SIDES: tuple[str, ...] = ("train", "valid", "test")

_GTZAN_TRACK = re.compile(r"^(blues|classical|country|disco|hiphop|jazz|metal|pop|reggae|rock)\.\d{5}$")
_REPORTED = 5


@cache
def filtered_tracks() -> dict[str, str]:
    """Every listed track id (``blues.00012``) and its side, read from the package's lists."""
    sides: dict[str, str] = {}
    for side in SIDES:
        text = files("genre.data").joinpath("splits", f"{side}_filtered.txt").read_text(encoding="ascii")
        for line in text.split():
            sides[line.rsplit("/", 1)[-1].rsplit(".", 1)[0]] = side
    return sides


def filtered_sides(tracks: Sequence[str], *, source: str) -> np.ndarray:
    """Each row's side (``"train"``, ``"valid"``, ``"test"``), or ``""`` for a track outside the lists.

    Parameters
    ----------
    tracks : sequence of str
        Each row's track id, as ``Dataset.frame["track"]`` holds it (``blues.00012``).
    source : str
        The data's name, for error messages.

    Raises
    ------
    DataError
        When no track has a GTZAN name (the protocol needs them; ``grouped`` and ``seed`` apply to any
        data), or when listed train or test tracks are missing, or only some of the valid ones are:
        names how many and the first few.
    """
    tracks = np.asarray(tracks, dtype=str)
    if not any(_GTZAN_TRACK.match(track) for track in np.unique(tracks)):
        raise DataError(
            f"{source}: the filtered protocol needs GTZAN's track names (blues.00000 ... rock.00099) and "
            "this data has none; it is GTZAN's artist-aware split, so it applies only to GTZAN. Use "
            "protocol grouped (track-grouped k-fold, any data) or seed (random split of rows)"
        )
    listed = filtered_tracks()
    present = set(tracks)
    for side in SIDES:
        wanted = sorted(track for track, s in listed.items() if s == side)
        missing = [track for track in wanted if track not in present]
        if missing and not (side == "valid" and len(missing) == len(wanted)):
            raise DataError(
                f"{source}: the filtered protocol's {side} list has {len(wanted)} tracks and "
                f"{len(missing)} of them are not in the data (first: {', '.join(missing[:_REPORTED])}); "
                "it needs every train and test track, and the valid tracks all or none"
            )
    return np.array([listed.get(track, "") for track in tracks], dtype=object)
