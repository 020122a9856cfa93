"""Feature tables in the GTZAN schema: loading, validation, track ids and the ``Dataset`` they become.

Every source of data ends here as one validated ``Dataset``: Kaggle's ``features_30_sec.csv`` /
``features_3_sec.csv`` (or any CSV of that schema, with the 57 features, the 100 musicnn columns or
both: see ``genre.data.schema``), or the features of a folder of labelled audio or of the embedded
synthetic set (``genre.features.sources`` extracts them). Validation happens once, at load time,
and names the file, row and column of the first problems found, so a bad CSV never reaches a model as
a numpy error.

Two facts about GTZAN shape this module:

* its 3-second rows are windows of 30-second tracks, so each row carries the ``track`` it was cut from
  (``blues.00000.3.wav`` -> ``blues.00000``) and splits can keep a track's windows together;
* it contains exact repeats (Sturm, 2013: the same audio under two file names, once under two labels).
  Rows with identical features share a ``group`` so a grouped split never puts one copy on each side.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from genre.data.schema import (
    FEATURE_COLUMNS,
    FEATURE_SETS,
    ID_COLUMNS,
    LABEL_COLUMN,
    WINDOW_SAMPLES,
    feature_columns,
)
from genre.errors import DataError
from genre.settings import EMBEDDED

__all__ = ["EMBEDDED", "FEATURE_LIMIT", "Dataset", "from_frame", "load_csv", "numeric_features", "track_id"]

log = logging.getLogger(__name__)


#: Feature values beyond this magnitude count as not finite. No feature comes near it (GTZAN's largest,
#: the variance of the spectral rolloff, stays under 1.3e7), and the models break far above it: the
#: network's float32 layers overflow from about 1e38 times a feature's standard deviation, the scaler's
#: float64 arithmetic at 1.8e308.
FEATURE_LIMIT = 1e15

_WINDOW_SUFFIX = re.compile(r"\.\d+$")
_MAX_REPORTED = 5


@dataclass(frozen=True)
class Dataset:
    """A validated feature table and where it came from.

    Attributes
    ----------
    frame : pandas.DataFrame
        Columns ``filename``, ``track``, ``group``, ``label`` and the columns of its feature sets
        (float64), one row per clip or per window, index 0..n-1.
    source : str
        The file or folder it was read from (for the embedded set, the folder it was generated in);
        logged with every run.
    windowed : bool
        True when rows are fixed windows of longer tracks (several rows per track).
    name : str
        A short name for run parameters and dataset logging (the file or folder name, or
        ``embedded-seed<n>``).
    feature_sets : tuple of str
        The feature sets its frame holds (``gtzan57``, ``musicnn``), in canonical order.
    """

    frame: pd.DataFrame
    source: str
    windowed: bool
    name: str
    feature_sets: tuple[str, ...] = ("gtzan57",)

    @property
    def X(self) -> pd.DataFrame:  # noqa: N802 - scikit-learn's name for the design matrix
        """The features of every set it holds, in canonical order."""
        return self.frame.loc[:, feature_columns(self.feature_sets)]

    @property
    def y(self) -> np.ndarray:
        """The labels, as strings."""
        return self.frame[LABEL_COLUMN].to_numpy(dtype=object)

    @property
    def groups(self) -> np.ndarray:
        """Group ids for track-grouped splits: the track, merged across exact repeats."""
        return self.frame["group"].to_numpy(dtype=object)

    @property
    def labels(self) -> list[str]:
        """The sorted distinct labels."""
        return sorted(self.frame[LABEL_COLUMN].unique())

    def subset(self, rows: np.ndarray) -> Dataset:
        """The rows at positions ``rows`` as a dataset of their own (e.g. a protocol's training part)."""
        frame = self.frame.iloc[rows].reset_index(drop=True)
        return replace(self, frame=frame)

    def with_features(self, sets: Sequence[str]) -> Dataset:
        """The same rows with only the feature sets ``sets`` (what a model trained on them is given).

        Raises ``DataError`` naming the sets the data lacks and the ones it has.
        """
        missing = [name for name in sets if name not in self.feature_sets]
        if missing:
            raise DataError(
                f"{self.source}: no {' or '.join(missing)} features in this data (it holds "
                f"{', '.join(self.feature_sets)}); extract them with `genre extract --features "
                f"{','.join(sets)}` or choose features={','.join(self.feature_sets)}"
            )
        kept = tuple(name for name in FEATURE_SETS if name in sets)
        dropped = [c for c in feature_columns(self.feature_sets) if c not in set(feature_columns(kept))]
        return replace(self, frame=self.frame.drop(columns=dropped), feature_sets=kept)

    @classmethod
    def from_rows(
        cls,
        X: pd.DataFrame,  # noqa: N803 - scikit-learn's name
        y: np.ndarray,
        groups: np.ndarray,
        *,
        source: str,
        windowed: bool = False,
    ) -> Dataset:
        """A dataset of rows already validated, as an estimator's ``fit`` receives them: ``X`` (the
        features of one or more complete sets, in canonical order), ``y`` and the track ``groups`` (each
        group its own track, repeats already merged).

        How a search running inside an outer cross-validation fold (``genre.tuning``) gets back a
        ``Dataset`` for its own inner folds.
        """
        groups = np.asarray(groups, dtype=object)
        ids = pd.DataFrame(
            {"filename": groups, "track": groups, "group": groups, LABEL_COLUMN: np.asarray(y)}
        )
        sets = tuple(name for name, columns in FEATURE_SETS.items() if set(columns) <= set(X.columns))
        features = X.loc[:, feature_columns(sets)].reset_index(drop=True)
        frame = pd.concat([ids, features], axis=1)
        return cls(frame=frame, source=source, windowed=windowed, name=source, feature_sets=sets)

    def summary(self) -> dict[str, int | bool | str]:
        """Counts worth logging as run parameters (``data.*``: never the name of an MLproject parameter)."""
        return {
            "data.name": self.name,
            "data.source": self.source,
            "data.rows": len(self.frame),
            "data.tracks": int(self.frame["track"].nunique()),
            "data.classes": len(self.labels),
            "data.windowed": self.windowed,
            "data.features": ",".join(self.feature_sets),
        }


def track_id(filename: str, *, windowed: bool) -> str:
    """The track a row belongs to: the base name without extension, and without the window number.

    ``blues.00000.wav`` -> ``blues.00000``; with ``windowed=True``, ``blues.00000.3.wav`` -> ``blues.00000``.
    Whether a trailing ``.<n>`` is a window number cannot be told from one name (``blues.00000`` itself
    ends in digits), so the caller says whether the table is windowed.
    """
    stem = Path(filename).stem
    return _WINDOW_SUFFIX.sub("", stem) if windowed else stem


def load_csv(
    path: str | Path, *, labels: Sequence[str] | None = None, windowed: bool | None = None
) -> Dataset:
    """Load and validate a feature CSV in the GTZAN schema.

    Parameters
    ----------
    path : str or Path
        A CSV with ``filename``, ``label`` and the columns of one or more complete feature sets (the 57
        GTZAN features, the 100 musicnn columns; any order); ``length`` is allowed.
    labels : sequence of str, optional
        The allowed label set; a row with any other label is an error.
    windowed : bool, optional
        Whether rows are windows of longer tracks. By default, True when every row's ``length`` is one
        window (66149 samples, as in Kaggle's ``features_3_sec.csv``).

    Raises
    ------
    DataError
        Naming the file and the rows/columns at fault: unreadable or empty file, missing or extra
        columns (including a feature set given in part), non-numeric or non-finite values, missing
        labels, duplicate file names, a single class, or labels outside ``labels``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (expected a header and data rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    return from_frame(raw, source=str(path), labels=labels, windowed=windowed)


def from_frame(
    raw: pd.DataFrame,
    *,
    source: str,
    name: str | None = None,
    labels: Sequence[str] | None = None,
    windowed: bool | None = None,
) -> Dataset:
    """Validate a table in the GTZAN schema (cells may still be strings) and build a ``Dataset``.

    This is ``load_csv`` without the file: audio extraction and tests build tables in memory and go
    through the same checks. ``source`` names the table in error messages; ``name`` defaults to its stem.
    """
    raw = raw.reset_index(drop=True)  # rows by position: a filtered table keeps its old labels
    sets = _check_columns(raw, source)
    if raw.empty:
        raise DataError(f"{source}: no data rows (only a header)")

    features = _numeric_features(raw, source, feature_columns(sets))
    label = raw[LABEL_COLUMN].astype(str).str.strip()
    filename = raw["filename"].astype(str).str.strip()
    _check_labels(label, source, labels)
    _check_filenames(filename, source)

    if windowed is None:
        windowed = "length" in raw and bool(
            (pd.to_numeric(raw["length"], errors="coerce") == WINDOW_SAMPLES).all()
        )
    tracks = filename.map(lambda name: track_id(name, windowed=windowed))
    frame = pd.concat(
        [
            pd.DataFrame({"filename": filename, "track": tracks, "label": label}),
            features,
        ],
        axis=1,
    ).reset_index(drop=True)
    frame.insert(2, "group", _groups_merging_repeats(frame, source, feature_columns(sets)))
    return Dataset(
        frame=frame, source=source, windowed=windowed, name=name or Path(source).stem, feature_sets=sets
    )


def _check_columns(raw: pd.DataFrame, source: str) -> tuple[str, ...]:
    """The feature sets ``raw`` holds, or an error naming missing, unexpected and repeated columns.

    A set counts as present when any of its columns is; then all of them are required. The 57 GTZAN
    features are required when no other set is present.
    """
    columns = [str(c).strip() for c in raw.columns]
    raw.columns = columns
    sets = tuple(name for name, names in FEATURE_SETS.items() if set(names) & set(columns)) or ("gtzan57",)
    required = {"filename", LABEL_COLUMN, *feature_columns(sets)}
    allowed = required | set(ID_COLUMNS)
    missing = [c for c in ("filename", *feature_columns(sets), LABEL_COLUMN) if c not in columns]
    extra = [c for c in columns if c not in allowed]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {_list(missing)}")
    if extra:
        problems.append(f"unexpected column(s) {_list(extra)}")
    if duplicated:
        problems.append(f"repeated column(s) {_list(duplicated)}")
    if problems:
        raise DataError(
            f"{source}: {'; '.join(problems)} (expected the GTZAN schema: filename, optional length, "
            f"the 57 features and/or the 100 musicnn columns, label)"
        )
    return sets


def _numeric_features(raw: pd.DataFrame, source: str, columns: Sequence[str]) -> pd.DataFrame:
    """The feature columns as float64, or an error naming the first bad cells (CSV line numbers)."""
    values, bad, first = numeric_features(raw, columns=columns, limit=_MAX_REPORTED)
    if bad:
        cells = [
            f"line {row + 2} ({raw['filename'].iloc[row]}), column {column}: {value!r}"
            for row, column, value in first
        ]
        more = f" and {bad - len(first)} more" if bad > len(first) else ""
        raise DataError(
            f"{source}: {bad} feature value(s) are not finite numbers within ±{FEATURE_LIMIT:g}: "
            + "; ".join(cells)
            + more
        )
    return pd.DataFrame(values, columns=list(columns))


def numeric_features(
    table: pd.DataFrame, *, columns: Sequence[str] = FEATURE_COLUMNS, limit: int = 5
) -> tuple[np.ndarray, int, list[tuple[int, str, object]]]:
    """The feature ``columns`` of ``table`` (default the 57) as float64, how many cells are not finite
    numbers, and the first ``limit`` of those as (row position, column, the value as given).

    The one finiteness rule for a CSV being loaded and a request being served: text that is not a
    number, a missing value, NaN, an infinity, a number beyond ±``FEATURE_LIMIT`` and a boolean
    (``True`` is not a tempo) are all refused. Numeric tables take a fast path: a served batch is
    checked in microseconds.
    """
    values = _numeric_columns(table, columns)
    given = None
    if values is None:
        features = table.loc[:, list(columns)]
        given = features.astype(object)
        values = np.column_stack(
            [
                np.full(len(features), np.nan)
                if column.dtype.kind == "b"
                else pd.to_numeric(_numbers_only(column), errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
                for _, column in features.items()
            ]
        )
    rows, cols = np.nonzero(~(np.abs(values) <= FEATURE_LIMIT))  # NaN included
    first = [
        (
            int(row),
            columns[col],
            given.iat[row, col] if given is not None else float(values[row, col]),
        )
        for row, col in zip(rows[:limit], cols[:limit], strict=True)
    ]
    return values, len(rows), first


def _numeric_columns(table: pd.DataFrame, columns: Sequence[str]) -> np.ndarray | None:
    """The ``columns`` of ``table`` as float64 when each is named once and of a numeric dtype, else None.

    The fast path of a served request: positions found in a dict of the names rather than by label
    indexing, which costs about a millisecond for 57 names on pandas' string index (the 1-row request's
    largest part). A frame of numbers only is converted whole, as one block, then its columns taken.
    """
    names = table.columns.to_numpy(dtype=object)
    where = {name: i for i, name in enumerate(names)}
    if len(where) != len(names) or any(column not in where for column in columns):
        return None
    positions = [where[column] for column in columns]
    dtypes = table.dtypes.to_numpy()
    if not all(getattr(dtypes[i], "kind", "O") in "fiu" for i in positions):
        return None
    if len(positions) == len(names):
        return table.to_numpy(dtype=np.float64)[:, positions]
    return table.iloc[:, positions].to_numpy(dtype=np.float64)


def _numbers_only(column: pd.Series) -> pd.Series:
    """``column`` with the cells ``pd.to_numeric`` must not see blanked (NaN): in a column of mixed
    objects, booleans (which it reads as 0 and 1) and integers beyond float64 (which make it raise)."""
    if column.dtype != object:
        return column
    return column.mask(column.map(_not_a_number))


def _not_a_number(value: object) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return True
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            return True
    return False


def _check_labels(label: pd.Series, source: str, allowed: Sequence[str] | None) -> None:
    empty = np.flatnonzero((label == "").to_numpy())
    if empty.size:
        raise DataError(f"{source}: empty label on line(s) {_list(empty[:_MAX_REPORTED] + 2)}")
    if allowed is not None:
        unknown = sorted(set(label) - set(allowed))
        if unknown:
            first = int(np.flatnonzero(label.isin(unknown).to_numpy())[0])
            raise DataError(
                f"{source}: unknown label(s) {_list(unknown)} (first on line {first + 2}); "
                f"allowed: {_list(allowed)}"
            )
    if label.nunique() < 2:
        raise DataError(
            f"{source}: only one class ({label.iloc[0]!r}); a classifier needs at least two labels"
        )


def _check_filenames(filename: pd.Series, source: str) -> None:
    if (filename == "").any():
        line = int(np.flatnonzero((filename == "").to_numpy())[0]) + 2
        raise DataError(f"{source}: empty filename on line {line}")
    duplicated = filename[filename.duplicated(keep=False)]
    if not duplicated.empty:
        name = duplicated.iloc[0]
        lines = np.flatnonzero((filename == name).to_numpy()) + 2
        raise DataError(
            f"{source}: duplicate rows: filename {name!r} appears on lines {_list(lines)} "
            f"({duplicated.nunique()} duplicated name(s) in all)"
        )


def _groups_merging_repeats(frame: pd.DataFrame, source: str, columns: Sequence[str]) -> pd.Series:
    """Track ids, merged across tracks that share a row of identical features.

    GTZAN holds the same audio under several names; left apart, a copy in train and one in test would
    leak exactly as windows of one track do. Tracks linked by a repeated row form one group (the
    connected components of the "shares a row with" graph), named after its first track.
    """
    tracks, track_codes = np.unique(frame["track"].to_numpy(dtype=str), return_inverse=True)
    copy_of = frame.groupby(list(columns), sort=False).ngroup().to_numpy()
    first_track_of_copy = pd.Series(track_codes).groupby(copy_of).transform("first").to_numpy()
    repeats = first_track_of_copy != track_codes
    if repeats.any():
        conflicts = pd.Series(frame["label"].to_numpy()).groupby(copy_of).transform("nunique") > 1
        examples = [
            f"{frame['filename'].iat[i]} = {tracks[first_track_of_copy[i]]}"
            for i in np.flatnonzero(repeats)[:3]
        ]
        log.warning(
            "%s: %d row(s) repeat another track's features exactly (%s); their tracks are grouped so no "
            "split separates them%s",
            source,
            int(repeats.sum()),
            ", ".join(examples),
            f"; {int(conflicts.sum())} of the copies disagree on the label" if conflicts.any() else "",
        )
    links = coo_matrix(
        (np.ones(len(track_codes)), (track_codes, first_track_of_copy)), shape=(len(tracks), len(tracks))
    )
    _, component = connected_components(links, directed=False)
    representative = pd.Series(tracks).groupby(component).transform("first").to_numpy()
    return pd.Series(representative[track_codes], index=frame.index, dtype=object)


def _list(items: Sequence[object]) -> str:
    return ", ".join(str(item) for item in items)
