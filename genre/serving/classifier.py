"""Answering prediction requests: feature rows or raw audio in, the genre and its probabilities out.

``GenreClassifier`` holds the request logic of the served model for any fitted genre pipeline (the
stacking ensemble in production), free of MLflow: ``genre.serving.pyfunc.GenrePyfunc`` wraps it for
``mlflow models serve``, and ``genre predict``, the web page and Spark scoring call it directly.

A request is one of two forms, told apart by its columns:

* **features**: the columns of the model's feature sets (the 57 ``FEATURE_COLUMNS``, musicnn's 100, or
  both; the signature lists them), matched by name in any order, finite numbers;
* **audio**: one column ``audio`` holding a whole audio file per row (WAV, AIFF, FLAC, OGG/Vorbis or
  Opus, MP3, AU, M4A/AAC), base64 encoded in JSON (or raw ``bytes`` in-process). The file is decoded
  in memory, never read from a path, cut into the windows the model was trained on (3-s windows, or
  30-s clips) and the windows' probabilities are averaged; the answer says how many windows were used,
  and for a model of musicnn's features the file's strongest musicnn tags (``tags``).

Columns outside the model's signature are ignored: MLflow drops them before ``predict`` runs (and the
server logs their names), so a row of a GTZAN CSV with its ``filename``, ``length`` and ``label`` is
scored as is. Mixing the two forms in one request is refused. Every other problem -- missing or repeated
features, non-numeric or non-finite values, an empty batch, bad base64, bytes that are not audio, audio
shorter than a window, silent or whose samples are not numbers, a request over the limits below --
raises ``RequestError`` in-process and becomes an HTTP 400 whose message names the row and column at
fault.

Limits per request (HTTP 400 beyond them): ``MAX_ROWS`` feature rows, ``MAX_AUDIO_BYTES`` of audio
files in all and ``MAX_AUDIO_SECONDS`` of audio per file. Behind ``mlflow models serve``, a body over
``MAX_REQUEST_BYTES`` or ``MAX_ROWS`` rows is refused before MLflow parses it (``genre.serving.guard``).
"""

from __future__ import annotations

import base64
import binascii
import reprlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genre import settings
from genre.data import numeric_features
from genre.data.schema import (
    FEATURE_SETS,
    MSD_TAGS,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
    WINDOW_STEP,
    feature_columns,
)
from genre.data.tables import FEATURE_LIMIT
from genre.errors import AudioError, GenreError, RequestError
from genre.features import check_clip, load_audio_bytes, warm_up
from genre.features.sets import extract_set_windows, spread, window_starts
from genre.serving.compiled import compile_or_none
from genre.threads import single_threaded

__all__ = [
    "AUDIO_COLUMN",
    "LAYOUTS",
    "CLIP_WINDOW_SAMPLES",
    "EXCERPT_SECONDS",
    "MAX_AUDIO_BYTES",
    "MAX_AUDIO_SECONDS",
    "MAX_REQUEST_BYTES",
    "MAX_ROWS",
    "MIN_AUDIO_SECONDS",
    "GenreClassifier",
    "Windows",
    "audio_windows",
    "encode_audio",
    "file_windows",
    "feature_sets_of",
    "windowing",
]

#: The column of the audio form: one base64-encoded audio file per row.
AUDIO_COLUMN = "audio"
#: How an answer can be laid out: a row per request row (labelled maps), or a dictionary of columns.
LAYOUTS: tuple[str, ...] = ("records", "columns")
#: Feature rows per request. 100,000 rows are ~45 MB of JSON and about 10 s of work; more is a batch job.
MAX_ROWS = 100_000
#: Audio file bytes per request, all rows together (before base64, which adds a third).
MAX_AUDIO_BYTES = 32 * 2**20
#: Bytes of one request body, refused before MLflow parses it (``genre.serving.guard``). Room for the
#: largest request within the other limits: base64 of MAX_AUDIO_BYTES of audio is 42.7 MiB plus a few
#: bytes of JSON, and 100,000 rows of the 57 features with floats written in full were 193 MiB as JSON
#: ``dataframe_records``, 108 MiB as ``dataframe_split`` and 103 MiB as CSV (GTZAN's rows, measured).
#: A model of musicnn's features too (157 columns) fits ~90,000 such rows as CSV or ``dataframe_split``;
#: as Parquet (8 bytes a value) all 100,000.
MAX_REQUEST_BYTES = 256 * 2**20
#: Length of one audio file. Ten minutes is a long song, about 200 3-s windows, a few seconds of work.
MAX_AUDIO_SECONDS = 600.0
#: Seconds of a long file analysed by default: its windows spread evenly from start to end (three 30-s
#: windows of a clip model, thirty 3-s windows of a window model), so a song's cost does not grow with its
#: length. ``full`` analyses every window.
EXCERPT_SECONDS = 90.0
#: The shortest audio file answered: one 3-s window (Kaggle's rows, and one musicnn patch). A file
#: between this and a model's longer window is scored over what it has (``partial``).
MIN_AUDIO_SAMPLES = WINDOW_SAMPLES
MIN_AUDIO_SECONDS = MIN_AUDIO_SAMPLES / SAMPLE_RATE
#: Window of a model trained on whole 30-s clips: GTZAN's shortest clip (29.93 s), so every GTZAN clip
#: gives one window and a song gives one per 30 s.
CLIP_WINDOW_SAMPLES = 660_000

_REPORTED = 5  # bad cells quoted in one message
#: musicnn tags an audio answer names: the strongest, by mean probability over the file's windows.
TOP_TAGS = 5


def feature_sets_of(estimator: Any) -> tuple[str, ...]:
    """The feature sets a fitted estimator was trained on, from the column names it saw in ``fit``
    (estimators fitted on arrays, without names: the 57 GTZAN features)."""
    names = set(getattr(estimator, "feature_names_in_", ()))
    sets = tuple(name for name, columns in FEATURE_SETS.items() if set(columns) <= names)
    return sets or ("gtzan57",)


def windowing(windowed: bool) -> dict[str, int]:
    """How audio is cut for a model trained on 3-s windows (``windowed``) or on whole 30-s clips.

    A model must see features computed over the span it was trained on: a variance over 3 s is not a
    variance over 30 s. Windows of 3-s models start every 3 s and hold 66,149 samples, Kaggle's layout
    (``genre.features.gtzan57.extract_windows``); a clip model's windows tile the audio by
    ``CLIP_WINDOW_SAMPLES``.
    """
    if windowed:
        return {"window_samples": WINDOW_SAMPLES, "window_step": WINDOW_STEP}
    return {"window_samples": CLIP_WINDOW_SAMPLES, "window_step": CLIP_WINDOW_SAMPLES}


def encode_audio(data: bytes) -> str:
    """An audio file's bytes as the ``audio`` column expects them in JSON: standard base64, one line."""
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Windows:
    """One audio file cut for a model: the feature rows of its windows, the samples a window spans (the
    model's window, or the whole file when it is shorter: one partial window), where each starts, and the
    file's length in seconds."""

    rows: list[dict[str, float]]
    span: int
    starts: list[int]
    seconds: float


def audio_windows(
    data: bytes,
    name: str,
    *,
    sets: Sequence[str],
    window_samples: int,
    window_step: int,
    full: bool = False,
    threads: int = 1,
) -> Windows:
    """Decode one audio file (bytes, in memory) and compute the feature sets ``sets`` of its windows.

    Unless ``full``, at most ``EXCERPT_SECONDS`` worth of windows, spread evenly from the file's start to
    its end. A plain function of its arguments, so batch jobs run it in worker processes and answer in
    one; ``threads`` computes windows side by side (the same bits as one by one: ``extract_set_windows``).

    Raises
    ------
    RequestError
        The file is not audio, too long, too short for a window, or silent (named by ``name``).
    """
    try:
        y = load_audio_bytes(data, sr=SAMPLE_RATE, name=name, max_seconds=MAX_AUDIO_SECONDS)
        check_clip(y, min_samples=min(window_samples, MIN_AUDIO_SAMPLES), name=name)
    except AudioError as exc:
        raise RequestError(exc.detail, kind=exc.kind, subject=exc.subject) from None
    span = min(len(y), window_samples)
    limit = None if full else max(1, round(EXCERPT_SECONDS * SAMPLE_RATE / window_samples))
    starts = spread(window_starts(len(y), window=span, step=window_step), limit)
    rows = extract_set_windows(y, sets=sets, sr=SAMPLE_RATE, window=span, starts=starts, threads=threads)
    return Windows(rows, span, starts, len(y) / SAMPLE_RATE)


def file_windows(path: str, **options: Any) -> Windows | str:
    """``audio_windows`` of the file at ``path``, or what is wrong with it, as text: batch jobs call it in
    worker processes, where one bad file must come back as an answer, not as an exception."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"cannot read the file ({exc.strerror})"
    try:
        return audio_windows(data, path, **options)
    except GenreError as exc:
        return exc.detail


class GenreClassifier:
    """Answers prediction requests (feature rows or audio files) with a fitted genre classifier.

    The request logic of the served model, free of MLflow, so ``genre predict`` on a training run and the
    server share it.

    Parameters
    ----------
    estimator : fitted classifier
        Anything with ``predict_proba`` and ``classes_`` fitted on a DataFrame of the columns of one or
        more feature sets: a pipeline from ``genre.models.make_model``.
    window_samples : int, default WINDOW_SAMPLES
        Length of the audio windows the estimator was trained on (see ``windowing``).
    window_step : int, default WINDOW_STEP
        Samples from one window's start to the next.
    features : sequence of str, optional
        The feature sets the estimator takes; default what its ``feature_names_in_`` say
        (``feature_sets_of``). Audio is turned into exactly these.

    Notes
    -----
    The estimator runs with its native thread pools (OpenBLAS for the SVM's and the network's matrix
    products, OpenMP for the neighbour search) limited to one thread per call. Each pool's idle workers
    spin for a while after a call, so when the stack alternates between them on two cores they fight:
    a 1000-row ``predict_proba`` of the default stack measured 149 ms with the default two threads per
    pool and 35 ms with one, a one-row request 21 ms and 3 ms, with another job busy on the machine
    (``benchmarks/predict_profile.py`` measures both). A served model also answers concurrent requests
    on several threads, where per-call pools only oversubscribe the cores.

    Examples
    --------
    >>> from genre.data import FEATURE_COLUMNS
    >>> from genre.models import make_model
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(rng.normal(size=(40, 57)), columns=FEATURE_COLUMNS)
    >>> y = np.repeat(["jazz", "rock"], 20)
    >>> classifier = GenreClassifier(make_model("knn").fit(X, y))
    >>> answer = classifier.predict(X.head(2))
    >>> list(answer.columns), sorted(answer["probabilities"][0])
    (['genre', 'probabilities'], ['jazz', 'rock'])
    >>> classifier.predict(X.drop(columns="tempo").head(1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    genre.errors.RequestError: missing feature column(s) tempo; send all 57 features ... or 'audio'
    """

    def __init__(
        self,
        estimator: Any,
        *,
        window_samples: int = WINDOW_SAMPLES,
        window_step: int = WINDOW_STEP,
        features: Sequence[str] | None = None,
    ) -> None:
        self.estimator = estimator
        self.window_samples = window_samples
        self.window_step = window_step
        self.feature_sets = tuple(features) if features is not None else feature_sets_of(estimator)
        self.columns = feature_columns(self.feature_sets)
        self.classes = [str(label) for label in estimator.classes_]
        self.compiled = compile_or_none(estimator, self.columns)

    def warm_up(self) -> float:
        """Run the extractor and the estimator once, so the first request pays no compilation or import.

        Returns the seconds taken (about 2 s with numba's cache warm, 30 s in a brand-new environment).
        """
        start = time.perf_counter()
        warm_up()
        if "musicnn" in self.feature_sets:
            from genre.features import musicnn

            musicnn.warm_up()
        zeros = pd.DataFrame(np.zeros((1, len(self.columns))), columns=self.columns)
        self.predict_proba(zeros)
        return time.perf_counter() - start

    def predict_proba(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Class probabilities of valid feature rows (``columns``, a DataFrame or a float64 array in
        their order), with the native thread pools at one thread.

        The compiled model computes them (``compiled``, ``genre.serving.compiled``): scikit-learn's
        arithmetic without its checks, which a request has passed once already. A model the compiler
        does not know answers through its own ``predict_proba``. One thread per pool is set here too
        (about 20 us), so any estimator served this way answers with the bits it would give in
        training, on whichever request thread calls.
        """
        with single_threaded():
            if self.compiled is not None:
                if isinstance(rows, pd.DataFrame):
                    same = rows.columns.to_numpy(dtype=object).tolist() == self.columns
                    ordered = rows if same else rows.loc[:, self.columns]
                    rows = ordered.to_numpy(dtype=np.float64)
                return self.compiled.predict_proba(rows)
            if not isinstance(rows, pd.DataFrame):
                rows = pd.DataFrame(rows, columns=self.columns)
            return self.estimator.predict_proba(rows)

    def predict(
        self, request: pd.DataFrame, *, timeline: bool = False, layout: str = "records"
    ) -> pd.DataFrame | dict[str, Any]:
        """The genre and every genre's probability per row; for audio, also the windows used.

        ``layout`` is how the answer is laid out (``LAYOUTS``): ``records``, one row per request row
        with a ``probabilities`` map, or ``columns``, a dictionary of columns (``genre``, a list per
        genre under ``probabilities``, for audio ``windows``), the same numbers in fewer pieces, which a
        scoring server writes as JSON in half the time. With ``timeline``, an audio answer also holds
        each window's probabilities (start and end in seconds): how a song's genre drifts.

        Raises
        ------
        RequestError
            Naming the row, column, limit or option at fault (see the module's docstring).
        """
        if layout not in LAYOUTS:
            raise RequestError(f"layout {layout!r}: expected one of {', '.join(LAYOUTS)}", subject="params")
        if not isinstance(request, pd.DataFrame):
            raise RequestError(f"expected a table of rows (a DataFrame), got {type(request).__name__}")
        given = request.columns
        repeated = [
            str(c)
            for c in ([] if given.is_unique else given[given.duplicated()].unique())
            if c == AUDIO_COLUMN or c in self.columns
        ]
        if repeated:
            raise RequestError(f"repeated column(s) {_names(repeated)}: send each column once")
        names = set(given.to_numpy(dtype=object))  # a set: pandas' string index looks names up slowly
        present = [c for c in self.columns if c in names]
        if AUDIO_COLUMN in names:
            if present:
                raise RequestError(
                    f"send either the feature columns or {AUDIO_COLUMN!r}, not both (got {AUDIO_COLUMN!r} "
                    f"and {_names(present)})"
                )
            self._check_rows(request, limit=None)
            files = [_audio_bytes(value, row) for row, value in enumerate(request[AUDIO_COLUMN])]
            return self.predict_audio(files, timeline=timeline, layout=layout)
        missing = [c for c in self.columns if c not in names]
        if missing:
            raise RequestError(
                f"missing feature column(s) {_names(missing)}; send all {len(self.columns)} features "
                f"(any order) or {AUDIO_COLUMN!r}"
            )
        self._check_rows(request, limit=MAX_ROWS)
        return self._answer(self.predict_proba(_finite_features(request, self.columns)), layout=layout)

    def predict_audio(
        self,
        files: Sequence[bytes],
        *,
        names: Sequence[str] | None = None,
        timeline: bool = False,
        layout: str = "records",
        full: bool = False,
    ) -> pd.DataFrame | dict[str, Any]:
        """``predict`` for audio files given as bytes; ``names`` label them in errors (default ``row <i>``).

        Each file is cut into the model's windows (``audio_windows``: a long file is analysed in at most
        ``EXCERPT_SECONDS`` of windows spread over all of it, every window with ``full``) and the
        windows' probabilities are averaged: the track-level prediction that ``cv_track_accuracy``
        scores. See ``answer_windows`` for the answer.
        """
        names = [f"row {i}" for i in range(len(files))] if names is None else list(names)
        total = sum(len(data) for data in files)
        if total > MAX_AUDIO_BYTES:
            raise RequestError(
                f"audio payload too large: {total / 2**20:.1f} MiB of audio files in one request, the "
                f"limit is {MAX_AUDIO_BYTES / 2**20:g} MiB",
                kind="too_large",
            )
        threads = settings.default_jobs()  # a long song alone on the server uses both cores
        found = [
            audio_windows(data, name, full=full, threads=threads, **self.window_options)
            for data, name in zip(files, names, strict=True)
        ]
        return self.answer_windows(found, timeline=timeline, layout=layout)

    @property
    def window_options(self) -> dict[str, Any]:
        """How ``audio_windows`` cuts audio for this model."""
        return {
            "sets": self.feature_sets,
            "window_samples": self.window_samples,
            "window_step": self.window_step,
        }

    def answer_windows(
        self, found: Sequence[Windows], *, timeline: bool = False, layout: str = "records"
    ) -> pd.DataFrame | dict[str, Any]:
        """The answer for files already cut into windows (``audio_windows``, possibly in other processes).

        ``agreement`` is the share of a file's windows whose own top genre is the file's. A model of
        musicnn's features also names each file's ``TOP_TAGS`` strongest musicnn tags, averaged over its
        windows. A file shorter than the model's window (a 29.5-s store preview for a model of 30-s
        clips) but at least ``MIN_AUDIO_SECONDS`` long is scored as one window over all it has, and its
        answer says so (``partial``): its features summarise less time than the model was trained on.
        """
        counts = np.array([len(windows.rows) for windows in found])
        starts = np.cumsum(counts) - counts
        features = pd.DataFrame([row for windows in found for row in windows.rows], columns=self.columns)
        per_window = self.predict_proba(features)
        proba = np.add.reduceat(per_window, starts, axis=0) / counts[:, None]
        agree = np.add.reduceat(
            (per_window.argmax(axis=1) == np.repeat(proba.argmax(axis=1), counts)).astype(float), starts
        )
        tags = self._tags(features, starts, counts) if "musicnn" in self.feature_sets else None
        timelines = (
            [
                self._timeline(per_window[start : start + count], windows)
                for start, count, windows in zip(starts, counts, found, strict=True)
            ]
            if timeline
            else None
        )
        partial = [windows.span < self.window_samples for windows in found]
        return self._answer(proba, counts, timelines, tags, partial, agree / counts, layout=layout)

    def _check_rows(self, request: pd.DataFrame, *, limit: int | None) -> None:
        if len(request) == 0:
            raise RequestError("empty batch: the request holds no rows")
        if limit is not None and len(request) > limit:
            raise RequestError(f"too many rows: {len(request)} in one request, the limit is {limit}")

    def _tags(self, features: pd.DataFrame, starts: np.ndarray, counts: np.ndarray) -> list[dict[str, float]]:
        """Each file's strongest musicnn tags (as musicnn spells them) with their mean probability."""
        means = features.loc[:, list(FEATURE_SETS["musicnn"][0::2])].to_numpy()
        per_file = np.add.reduceat(means, starts, axis=0) / counts[:, None]
        strongest = np.argsort(-per_file, axis=1, kind="stable")[:, :TOP_TAGS]
        return [
            {MSD_TAGS[i]: round(float(row[i]), 4) for i in order}
            for row, order in zip(per_file, strongest, strict=True)
        ]

    def _timeline(self, proba: np.ndarray, windows: Windows) -> list[dict[str, Any]]:
        """One entry per window of a file: its start and end in seconds and its probabilities."""
        length = windows.span / SAMPLE_RATE
        return [
            {
                "start_s": start / SAMPLE_RATE,
                "end_s": start / SAMPLE_RATE + length,
                "probabilities": dict(zip(self.classes, row, strict=True)),
            }
            for start, row in zip(windows.starts, proba.tolist(), strict=True)
        ]

    def _answer(
        self,
        proba: np.ndarray,
        windows: np.ndarray | None = None,
        timelines: list[list[dict[str, Any]]] | None = None,
        tags: list[dict[str, float]] | None = None,
        partial: list[bool] | None = None,
        agreement: np.ndarray | None = None,
        *,
        layout: str,
    ) -> pd.DataFrame | dict[str, Any]:
        genres = [self.classes[i] for i in proba.argmax(axis=1)]
        if layout == "columns":
            answer: dict[str, Any] = {
                "genre": genres,
                "probabilities": dict(zip(self.classes, proba.T.tolist(), strict=True)),
            }
        else:
            answer = {
                "genre": genres,
                "probabilities": [dict(zip(self.classes, row, strict=True)) for row in proba.tolist()],
            }
        if windows is not None:
            answer["windows"] = windows.astype(np.int64).tolist()
        if agreement is not None:
            answer["agreement"] = agreement.tolist()
        if timelines is not None:
            answer["timeline"] = timelines
        if partial is not None:
            answer["partial"] = partial
        if tags is not None:
            answer["tags"] = tags
        return answer if layout == "columns" else pd.DataFrame(answer)


def _finite_features(request: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The feature ``columns`` as float64 in that order, or a ``RequestError`` quoting the first bad
    cells."""
    values, bad, first = numeric_features(request, columns=columns, limit=_REPORTED)
    if bad:
        # reprlib: a cell quoted in the message is cut short (a megabyte of text is not echoed back)
        cells = [f"row {row}, column {column}: {reprlib.repr(value)}" for row, column, value in first]
        more = f" and {bad - len(first)} more" if bad > len(first) else ""
        raise RequestError(
            f"{bad} feature value(s) are not finite numbers within ±{FEATURE_LIMIT:g}: "
            f"{'; '.join(cells)}{more}"
        )
    return values


def _audio_bytes(value: object, row: int) -> bytes:
    """One cell of the audio column as file bytes: base64 text (whitespace allowed) or raw bytes."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        raise RequestError(
            f"row {row}, column {AUDIO_COLUMN!r}: expected a base64-encoded audio file, got "
            f"{'nothing' if pd.api.types.is_scalar(value) and pd.isna(value) else type(value).__name__}"
        )
    text = "".join(value.split())
    if len(text) * 3 // 4 > MAX_AUDIO_BYTES:
        raise RequestError(
            f"audio payload too large: {len(text) * 3 / 4 / 2**20:.1f} MiB of audio in this row alone, the "
            f"limit is {MAX_AUDIO_BYTES / 2**20:g} MiB per request",
            kind="too_large",
            subject=f"row {row}",
        )
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(
            f"row {row}, column {AUDIO_COLUMN!r}: not valid base64 ({len(text)} characters starting "
            f"{text[:20]!r}); send the file's bytes as standard base64 (base64 -w0 FILE)"
        ) from None


def _names(columns: list[str]) -> str:
    shown = ", ".join(columns[:_REPORTED])
    return shown + (f" and {len(columns) - _REPORTED} more" if len(columns) > _REPORTED else "")
