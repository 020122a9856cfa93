"""Filling the catalog from ``genre score --audio``'s Parquet: a library classified on Spark, then tagged
and put in playlists here like a scanned one.

Spark's output has one row per file: ``path`` (as Spark names it, ``file:/...`` locally), ``genre``, a
``p_<genre>`` probability per genre, ``windows`` and ``error``. Each row becomes the file's catalog row,
with what the file is on this machine (size, time, digest, format and tag, read here) and the model
the user names (the Parquet does not say which model wrote it: import it with the model options that
scored it). It has no share of windows that agree (``agreement`` stays empty). A file that is not on
this machine is catalogued as missing. Rows are committed in batches, so a million of them take
minutes, and an import killed halfway keeps the batches it finished; importing again replaces rows,
never duplicates them.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from genre.library.classify import ModelRef
from genre.library.scan import file_digest, file_format
from genre.library.store import Catalog, CatalogError, Entry
from genre.library.walk import display_path

__all__ = ["ERROR_COLUMN", "ID_COLUMN", "PROBABILITY_PREFIX", "ImportReport", "import_scores"]

#: The columns of ``genre score --audio``'s output (``genre.batch.spark``, whose layer the library does
#: not import: a test holds the names equal).
ID_COLUMN, ERROR_COLUMN, PROBABILITY_PREFIX = "path", "error", "p_"
#: Rows committed per transaction.
BATCH = 1000


@dataclass
class ImportReport:
    rows: int = 0
    answered: int = 0
    failed: int = 0
    missing: int = 0


def import_scores(
    catalog: Catalog,
    parquet: str | os.PathLike[str],
    model: ModelRef,
    *,
    min_confidence: float,
    on_batch: Callable[[int], None] | None = None,
) -> ImportReport:
    """Record every row of the Parquet file or folder ``parquet`` in ``catalog``, answered by ``model``.

    Raises
    ------
    CatalogError
        The Parquet cannot be read, or lacks the columns of ``genre score --audio``'s output.
    """
    try:
        table = pd.read_parquet(parquet)
    except (OSError, ValueError) as exc:
        raise CatalogError(
            f"cannot read it as Parquet ({str(exc).splitlines()[0]})", subject=str(parquet)
        ) from None
    genres = [c[len(PROBABILITY_PREFIX) :] for c in table.columns if c.startswith(PROBABILITY_PREFIX)]
    missing = [c for c in (ID_COLUMN, "genre", ERROR_COLUMN) if c not in table.columns]
    if missing or not genres:
        raise CatalogError(
            f"not the output of genre score --audio: no column(s) {', '.join(missing or ['p_<genre>'])}",
            subject=str(parquet),
        )
    report = ImportReport()
    batch: list[Entry] = []
    gone: list[str] = []
    for row in table.itertuples(index=False):
        values = row._asdict()
        entry = _entry(values, genres, model, min_confidence)
        report.rows += 1
        report.answered += entry.error is None
        report.failed += entry.error is not None
        if entry.size is None and not os.path.exists(entry.path):
            gone.append(entry.path)
        batch.append(entry)
        if len(batch) == BATCH:
            _flush(catalog, batch, gone, report, on_batch)
    _flush(catalog, batch, gone, report, on_batch)
    catalog.set_unsure(min_confidence)
    return report


def _flush(
    catalog: Catalog,
    batch: list[Entry],
    gone: list[str],
    report: ImportReport,
    on_batch: Callable[[int], None] | None,
) -> None:
    catalog.record_many(batch, missing=gone)
    report.missing += len(gone)
    if on_batch is not None:
        on_batch(len(batch))
    batch.clear()
    gone.clear()


def local_path(spark_path: str) -> str:
    """The file a Spark path names on this machine: ``file:/a/b.mp3`` -> ``/a/b.mp3`` (percent-escapes
    undone when the path as written does not exist)."""
    path = spark_path
    if path.startswith("file:"):
        path = "/" + path[len("file:") :].lstrip("/")
    if not os.path.exists(path) and "%" in path:
        unquoted = urllib.parse.unquote(path)
        path = unquoted if os.path.exists(unquoted) else path
    return path


def _entry(values: dict, genres: list[str], model: ModelRef, min_confidence: float) -> Entry:
    spark_path = str(values[ID_COLUMN])
    path = local_path(spark_path)
    real = os.path.realpath(path)
    found: dict = {}
    if os.path.isfile(real):
        status = os.stat(real)
        fmt, tag = file_format(real)
        found = {"size": status.st_size, "mtime_ns": status.st_mtime_ns, "digest": file_digest(real),
                 "format": fmt, "genre_tag": tag}  # fmt: skip
    common = {"model_name": model.name, "model_version": model.version, **found}
    error = values[ERROR_COLUMN]
    if error is not None and not (isinstance(error, float) and pd.isna(error)):
        error = str(error)
        prefix = f"{spark_path}: "
        return Entry(
            display_path(real), error=error[len(prefix) :] if error.startswith(prefix) else error, **common
        )
    probabilities = {g: float(values[f"{PROBABILITY_PREFIX}{g}"]) for g in genres}
    top = sorted(probabilities.items(), key=lambda item: -item[1])[:3]
    windows = values.get("windows")
    return Entry(
        display_path(real),
        genre=str(values["genre"]),
        confidence=top[0][1],
        top3=json.dumps([[g, round(p, 4)] for g, p in top]),
        windows=None if windows is None or pd.isna(windows) else int(windows),
        unsure=int(top[0][1] < min_confidence),
        **common,
    )
