"""musicnn's published GTZAN taggrams (``.npz``) as feature tables, and joining tables by track.

The full GTZAN audio is not something every user has, but musicnn's authors published the taggrams
of the fault-filtered train and test clips (``X``: one row of 50 MSD tag probabilities per 3-s patch,
patches every 1 s; ``Y``: the genre index; ``IDS``: ``genre/genre.NNNNN.au``). ``read_taggrams``
turns them into the ``musicnn`` feature set exactly as ``genre extract --features musicnn`` computes it
from audio: per clip the mean and standard deviation of each tag over its patches, or, with
``windowed=True``, one row per patch (a 3-s window holds one patch, so its standard deviation is 0).
``join_tables`` then puts them beside ``features_30_sec.csv``'s 57 features, track by track.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from genre.data.schema import FEATURE_SETS, GTZAN_GENRES, LABEL_COLUMN, MUSICNN_COLUMNS
from genre.data.tables import Dataset, from_frame
from genre.errors import DataError
from genre.settings import GTZAN_MUSICNN

__all__ = ["GTZAN_MUSICNN", "SHIPPED_TAGGRAMS", "join_tables", "read_taggrams"]

log = logging.getLogger(__name__)

#: The taggrams shipped in the package (ISC, notice beside them), ``data`` name ``GTZAN_MUSICNN``:
#: musicnn's own taggrams of GTZAN's filtered train and test clips, 733 tracks. Every job can train on
#: real music with nothing downloaded.
SHIPPED_TAGGRAMS = Path(__file__).parent / "musicnn"


def read_taggrams(path: str | Path, *, windowed: bool = False) -> pd.DataFrame:
    """A table in the GTZAN schema (``filename``, the 100 ``musicnn`` columns, ``label``) from a ``.npz``
    of musicnn taggrams, or from every ``.npz`` in a folder.

    Rows are clips (``blues.00029.wav``), or patches (``blues.00029.<k>.wav``) with ``windowed``.

    Raises
    ------
    DataError
        Naming the file: unreadable, without the arrays ``X`` (n x 50), ``Y`` and ``IDS``, with a
        genre index that disagrees with the file name, or a track found in two files.
    """
    path = Path(path)
    paths = sorted(path.glob("*.npz")) if path.is_dir() else [path]
    if not paths:
        raise DataError(f"{path}: no .npz files of musicnn taggrams in this folder")
    frames = [_read_one(p, windowed=windowed) for p in paths]
    table = pd.concat(frames, ignore_index=True)
    twice = table["filename"][table["filename"].duplicated()]
    if not twice.empty:
        raise DataError(f"{path}: {twice.iloc[0]} is in more than one file")
    return table


def _read_one(path: Path, *, windowed: bool) -> pd.DataFrame:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            X, Y, ids = arrays["X"], arrays["Y"], arrays["IDS"]  # noqa: N806 - the files' own names
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"{path}: not a musicnn taggram file with arrays X, Y and IDS ({error})") from None
    n_tags = len(MUSICNN_COLUMNS) // 2
    if X.ndim != 2 or X.shape[1] != n_tags or not len(X) == len(Y) == len(ids):
        raise DataError(
            f"{path}: X must be patches x {n_tags} tag probabilities with one Y and IDS per patch; got "
            f"X {X.shape}, Y {Y.shape}, IDS {ids.shape}"
        )
    tracks = np.array([Path(str(i)).stem for i in ids], dtype=object)
    labels = np.array([t.split(".")[0] for t in tracks], dtype=object)
    expected = np.array(GTZAN_GENRES, dtype=object)[np.clip(Y, 0, len(GTZAN_GENRES) - 1)]
    wrong = np.flatnonzero((labels != expected) | (Y < 0) | (Y >= len(GTZAN_GENRES)))
    if wrong.size:
        raise DataError(
            f"{path}: patch {wrong[0]} of {ids[wrong[0]]} has genre index {Y[wrong[0]]}, which is not "
            f"its folder's genre (expected GTZAN's alphabetical order: {', '.join(GTZAN_GENRES)})"
        )
    means = pd.DataFrame(X.astype(np.float64), columns=list(MUSICNN_COLUMNS[0::2]))
    if windowed:
        patch = pd.Series(tracks).groupby(tracks).cumcount().to_numpy()
        stds = pd.DataFrame(0.0, index=means.index, columns=list(MUSICNN_COLUMNS[1::2]))
        names = [f"{t}.{k}.wav" for t, k in zip(tracks, patch, strict=True)]
        features, label = pd.concat([means, stds], axis=1), labels
    else:
        grouped = means.groupby(tracks, sort=False)
        stds = grouped.std(ddof=0).set_axis(list(MUSICNN_COLUMNS[1::2]), axis=1)
        features = pd.concat([grouped.mean(), stds], axis=1).reset_index(drop=True)
        names = [f"{t}.wav" for t in grouped.mean().index]
        label = [t.split(".")[0] for t in grouped.mean().index]
    table = pd.DataFrame({"filename": names})
    table = pd.concat([table, features.loc[:, list(MUSICNN_COLUMNS)]], axis=1)
    table[LABEL_COLUMN] = list(label)
    return table


def join_tables(datasets: Sequence[Dataset], *, source: str) -> Dataset:
    """One dataset with every feature set of ``datasets``, joined row by row on the track.

    Only the tracks every table holds are kept (how many each table lost is logged); a track labelled
    differently in two tables, a feature set in two tables, or windowed tables are refused, since their
    windows would have to line up exactly.
    """
    if any(d.windowed for d in datasets):
        raise DataError(
            f"{source}: only whole-clip tables can be joined by track (windowed rows of two sources need "
            "not cover the same spans); use windows=false"
        )
    sets = [s for d in datasets for s in d.feature_sets]
    if len(set(sets)) < len(sets):
        raise DataError(f"{source}: two of the joined tables hold the same feature set ({', '.join(sets)})")
    joined = datasets[0].frame.loc[:, ["filename", "track", LABEL_COLUMN, *datasets[0].X.columns]]
    for dataset in datasets[1:]:
        other = dataset.frame.loc[:, ["track", LABEL_COLUMN, *dataset.X.columns]]
        merged = joined.merge(other, on="track", how="inner", suffixes=("", "_other"), validate="1:1")
        disagree = merged[merged[LABEL_COLUMN] != merged[f"{LABEL_COLUMN}_other"]]
        if not disagree.empty:
            row = disagree.iloc[0]
            raise DataError(
                f"{source}: track {row['track']} is {row[LABEL_COLUMN]!r} in one table and "
                f"{row[f'{LABEL_COLUMN}_other']!r} in {dataset.source}"
            )
        joined = merged.drop(columns=f"{LABEL_COLUMN}_other")
    for dataset in datasets:
        lost = len(dataset.frame) - len(joined)
        if lost:
            log.warning(
                "%s: %d of its %d tracks are not in every joined table",
                dataset.source,
                lost,
                len(dataset.frame),
            )
    if joined.empty:
        raise DataError(f"{source}: the tables share no track")
    ordered = [c for name in FEATURE_SETS for c in FEATURE_SETS[name] if c in joined.columns]
    table = joined.loc[:, ["filename", *ordered, LABEL_COLUMN]]
    return from_frame(table, source=source, name="+".join(d.name for d in datasets), windowed=False)
