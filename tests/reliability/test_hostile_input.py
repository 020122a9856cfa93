"""Hostile input, property by property (Hypothesis): whatever comes in, the package answers or refuses
with a ``GenreError`` that says what is wrong -- never another exception, a 500, an unbounded decode, a
file opened from a path in the request, or a temporary file left behind.

``pytest -m reliability`` runs this file (the default run deselects it; ``.ci/run`` runs it). Every
property is bounded (``max_examples``), derandomized (the same cases on every machine, so CI is
reproducible) and without an example database. Each test counts the cases its property ran (explicit
examples included), asserts the count and the outcomes it must reach, and prints them with its run time
(``-s`` shows them; junit XML records ``cases`` and ``seconds``). Measured on 2 cores shared with
benchmarks (``python -m pytest -m reliability tests/reliability/test_hostile_input.py -s``): the file in
55 s on a quiet machine, 122 s under load; the seconds below are the loaded run's.

======================================================  =====  ======  =================================
property (test)                                         cases  time s  what it covers
======================================================  =====  ======  =================================
1a feature requests (``test_feature_requests...``)        405    16.7  ``GenrePyfunc.predict``: columns
                                                                       missing, extra, repeated, unicode,
                                                                       empty; cells of every type
1b audio requests (``test_audio_requests...``)            258    37.4  base64 of bytes, of truncated,
                                                                       bit-flipped, lying WAV/FLAC/OGG/
                                                                       MP3/AU files, of a 20-min FLAC
2  bounded decoding (``test_decoding_is_bounded...``)     308     4.6  ``load_audio_bytes``: length and
                                                                       memory whatever the header says
2  an hour of FLAC (``test_an_hour_of_flac...``)            5     0.2  refused before decoding (tracemalloc)
3a CSV tables, one fault (``test_csv_tables...``)         303    28.8  ``load_csv`` / ``from_frame``
3b CSV chaos (``test_any_bytes_as_a_csv...``)             202     6.2  binary, encodings, delimiters
4a web uploads (``test_web_uploads...``)                  203     9.2  ``POST /api/analyse``: bodies,
                                                                       names, lying Content-Length
4b web upload limit (``test_uploads_over_the_limit...``)  100     2.0  413 before reading past the limit
5a paths (``test_no_path_from_a_request_is_opened``)      122     1.7  ``/etc/passwd``, ``file://``,
                                                                       ``../`` in cells, names, bodies
                                                                       (all 120 combinations)
5b temp files (``test_requests_leave_no_temp...``)         60     1.9  no temporary file, even on failure
======================================================  =====  ======  =================================

Bugs these properties found, each kept as an explicit ``@example`` (all fail on the code before the
fixes): a huge Python integer in a feature cell (``OverflowError``) and a boolean one (read as 1.0 and
answered), in requests and in ``from_frame``; a feature column sent twice (``ValueError``: shape); two
``audio`` columns (their names decoded as base64); a ``pd.NA`` or array ``audio`` cell (``TypeError``,
``ValueError``); feature values near the float64 limit (scikit-learn's ``ValueError``); NaN, infinite or
huge float samples in a WAV (librosa's ``ParameterError``: a 500 on the web page too); a 200-kB FLAC
whose header claims 599 s at 1 MHz on 8 channels (numpy asked for 19 GiB before a sample was decoded);
a non-ASCII digit in ``Content-Length`` (``"²".isdigit()``: a 500).

Not covered: libsndfile's own C-level file access (``tmpfile()``) is invisible to Python's audit hooks;
the hooks and a wrapped ``soundfile.SoundFile`` see every file Python opens.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import functools
import io
import json
import math
import os
import re
import sys
import tempfile
import time
import tracemalloc
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mlflow.exceptions import MlflowException

from genre.data import FEATURE_COLUMNS, load_csv
from genre.data.schema import LABEL_COLUMN, SAMPLE_RATE, WINDOW_SAMPLES
from genre.data.tables import FEATURE_LIMIT, from_frame
from genre.errors import AudioError, DataError, GenreError, RequestError
from genre.features import load_audio_bytes
from genre.models import make_model
from genre.serving import GenreClassifier, GenrePyfunc
from genre.web import app as web
from tests.rounding import sums_apart

pytestmark = pytest.mark.reliability

FEATURES = list(FEATURE_COLUMNS)
CLASSES = ["blues", "jazz", "rock"]
#: What ``RequestError.kind`` can be (genre.errors): the audio kinds, ``too_large`` and ``invalid``.
REQUEST_KINDS = {"invalid", "too_large", "unreadable", "empty", "too_long", "too_short", "silent"}
#: A refusal is a sentence or two, never the request echoed back.
MAX_MESSAGE = 1000

#: Cases run and outcomes, per property (what the tests print and assert).
RAN: Counter[str] = Counter()
OUTCOMES: dict[str, Counter[str]] = {}


def bounded(max_examples: int) -> Callable:
    """The settings of every property: bounded, reproducible, no example database, no deadline (a
    decode or the first feature extraction can take a second)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )


def tally(name: str, outcome: str) -> None:
    RAN[name] += 1
    OUTCOMES.setdefault(name, Counter())[outcome] += 1


def run_property(name: str, prop: Callable[[], None], *, minimum: int, record: Callable, expect=()) -> None:
    """Run ``prop`` (a Hypothesis test), then check it ran at least ``minimum`` cases and reached every
    outcome in ``expect``; print and record the count, the time and the outcomes."""
    before = RAN[name]
    OUTCOMES[name] = Counter()
    start = time.perf_counter()
    prop()
    seconds = time.perf_counter() - start
    ran = RAN[name] - before
    outcomes = dict(OUTCOMES[name].most_common())
    print(f"\n[{name}] {ran} cases in {seconds:.1f} s: {outcomes}")
    record("cases", ran)
    record("seconds", round(seconds, 2))
    assert ran >= minimum, f"{name}: only {ran} cases ran (expected at least {minimum})"
    for outcome in expect:
        assert OUTCOMES[name][outcome] > 0, f"{name}: no case reached {outcome!r}: {outcomes}"


# --------------------------------------------------------------------------------------------------------
# A small fitted model, and audio files to mutate
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier() -> GenreClassifier:
    """k-NN on random 57-column rows, warmed up (the extractor's compilation is not a case's time)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 57)), columns=FEATURES)  # noqa: N806 - scikit-learn's name
    model = GenreClassifier(make_model("knn").fit(X, np.repeat(CLASSES, 20)))
    model.warm_up()
    model.predict_audio([base_file("wav")])  # the first decode and extraction import their modules
    return model


@pytest.fixture(scope="module")
def pyfunc(classifier) -> GenrePyfunc:
    """The served model's ``predict`` around it, as ``load_context`` leaves it."""
    model = GenrePyfunc()
    model.classifier = classifier
    model.layout = "records"
    return model


def encode(y: np.ndarray, sr: int, format: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, y, sr, format=format, subtype=subtype)
    return buffer.getvalue()


def long_file(seconds: int, *, value: float, sr: int = 8000, format: str = "FLAC") -> bytes:
    """``seconds`` of a constant signal, written a minute at a time: a FLAC of it is a few kilobytes."""
    buffer = io.BytesIO()
    minute = np.full(60 * sr, value, dtype=np.float32)
    with sf.SoundFile(buffer, "w", sr, 1, format=format) as out:
        for start in range(0, seconds, 60):
            out.write(minute[: min(60, seconds - start) * sr])
    return buffer.getvalue()


#: Real seconds of audio in each base file (what a truthful header says).
BASE_SECONDS = {
    "wav": 3.2,
    "wav_float": 3.2,
    "wav_stereo_44k": 3.2,
    "flac": 3.2,
    "flac_8ch": 3.2,
    "ogg": 3.2,
    "mp3": 3.2,
    "au": 3.2,
    "flac_20min_dc": 1200.0,
    "flac_1h_silence": 3600.0,
    "wav_11min_8k": 660.0,
}
SHORT_BASES = [name for name, seconds in BASE_SECONDS.items() if seconds < 10]
LONG_BASES = [name for name, seconds in BASE_SECONDS.items() if seconds >= 10]


@functools.cache
def base_file(name: str) -> bytes:
    """Small real files (3.2 s: one 3-s window, so they are answered) and long ones that compress well."""
    sr = SAMPLE_RATE
    t = np.arange(int(3.2 * sr)) / sr
    noise = np.random.default_rng(7).standard_normal(t.size)
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * noise).astype(np.float32)
    if name == "wav":
        return encode(tone, sr, "WAV", "PCM_16")
    if name == "wav_float":
        return encode(tone, sr, "WAV", "FLOAT")
    if name == "wav_stereo_44k":
        t44 = np.arange(int(3.2 * 44100)) / 44100
        left, right = np.sin(2 * np.pi * 220 * t44), np.sin(2 * np.pi * 330 * t44)
        return encode(0.3 * np.column_stack([left, right]).astype(np.float32), 44100, "WAV", "PCM_16")
    if name == "flac_8ch":
        return encode(np.tile(tone[:, None], (1, 8)), sr, "FLAC")
    if name in ("flac", "ogg", "mp3", "au"):
        return encode(tone, sr, name.upper())
    if name == "flac_20min_dc":  # "a tiny compressed file that decodes to hours"
        return long_file(1200, value=0.5)
    if name == "flac_1h_silence":
        return long_file(3600, value=0.0)
    if name == "wav_11min_8k":
        return long_file(660, value=0.25, format="WAV")
    raise KeyError(name)


def _find(data: bytearray, chunk: bytes) -> int | None:
    at = data.find(chunk, 12)
    return None if at < 0 else at


#: Fields of a WAV header: (chunk, offset from the chunk id, bytes).
WAV_FIELDS = {
    "data_size": (b"data", 4, 4),
    "channels": (b"fmt ", 10, 2),
    "rate": (b"fmt ", 12, 4),
    "byte_rate": (b"fmt ", 16, 4),
    "block_align": (b"fmt ", 20, 2),
    "bits": (b"fmt ", 22, 2),
}


def mutate(data: bytes, ops: Iterable[tuple]) -> bytes:
    """Apply ``ops`` in turn; positions wrap around the file's length, so any integer is a position.

    ``("truncate", fraction)``, ``("flip", position, bit)``, ``("set", position, byte)``,
    ``("set_data", offset, byte)`` (from the start of a WAV's samples), ``("insert", position, bytes)``,
    ``("wav", field, value)`` (``WAV_FIELDS``) and ``("flac", rate, channels, total)`` (STREAMINFO;
    ``None`` keeps a field).
    """
    out = bytearray(data)
    for op, *args in ops:
        if op == "truncate":
            del out[int(len(out) * args[0]) :]
        elif op in ("flip", "set") and out:
            position = args[0] % len(out)
            out[position] = out[position] ^ (1 << args[1]) if op == "flip" else args[1]
        elif op == "set_data":
            chunk = _find(out, b"data")
            if chunk is not None and chunk + 8 + args[0] < len(out):
                out[chunk + 8 + args[0]] = args[1]
        elif op == "insert":
            position = args[0] % (len(out) + 1)
            out[position:position] = args[1]
        elif op == "wav":
            tag, offset, size = WAV_FIELDS[args[0]]
            chunk = _find(out, tag)
            if chunk is not None and chunk + offset + size <= len(out):
                out[chunk + offset : chunk + offset + size] = (args[1] % 256**size).to_bytes(size, "little")
        elif op == "flac" and out[:4] == b"fLaC" and len(out) >= 26:
            # STREAMINFO's 64 bits at byte 18: rate (20), channels - 1 (3), bits - 1 (5), total samples (36).
            bits = int.from_bytes(out[18:26], "big")
            rate, channels, total = args
            if rate is not None:
                bits = (bits & ~(0xFFFFF << 44)) | (rate << 44)
            if channels is not None:
                bits = (bits & ~(0x7 << 41)) | ((channels - 1) << 41)
            if total is not None:
                bits = (bits & ~(2**36 - 1)) | total
            out[18:26] = bits.to_bytes(8, "big")
    return bytes(out)


def recipe_bytes(recipe: tuple[str, tuple]) -> bytes:
    base, ops = recipe
    return mutate(base_file(base), ops)


positions = st.one_of(st.integers(0, 64), st.integers(0, 2**20))
mutations = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("flip"), positions, st.integers(0, 7)),
    st.tuples(st.just("set"), positions, st.integers(0, 255)),
    st.tuples(st.just("set_data"), st.integers(0, 4096), st.integers(0, 255)),
    st.tuples(st.just("insert"), positions, st.binary(max_size=64)),
    st.tuples(
        st.just("wav"),
        st.sampled_from(sorted(WAV_FIELDS)),
        st.one_of(
            st.sampled_from([0, 1, 2, 100, 8000, 44100, 2**31 - 1, 2**32 - 1]), st.integers(0, 2**32 - 1)
        ),
    ),
    st.tuples(
        st.just("flac"),
        st.none() | st.sampled_from([1, 100, 8000, 655350, 2**20 - 1]) | st.integers(0, 2**20 - 1),
        st.none() | st.integers(1, 8),
        st.none() | st.sampled_from([0, 1, 40000, 2**36 - 1]) | st.integers(0, 2**36 - 1),
    ),
)


def recipes(bases: list[str]) -> st.SearchStrategy:
    """(base file, mutations): a real file, damaged in up to three ways."""
    return st.tuples(st.sampled_from(bases), st.lists(mutations, max_size=3).map(tuple))


# --------------------------------------------------------------------------------------------------------
# 1. The served model's request handling
# --------------------------------------------------------------------------------------------------------

hostile_cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**64, 10**15, 10**15 + 1, -1]),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 1.7976931348623157e308, -1e300, 5e-324, 1e16, -0.0]),
    st.text(max_size=12),
    st.sampled_from(["", " ", "nan", "inf", "1e400", "0x10", "١٢", "1,5", "True", "null", "1e5"]),
    st.sampled_from([pd.NA, np.nan, np.bool_(True), np.int64(7), np.float32(np.inf)]),
    st.recursive(
        st.none() | st.integers() | st.text(max_size=3),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=5,
    ),
)
column_names = st.one_of(
    st.text(max_size=10),
    st.sampled_from(
        ["", " ", "audio", "filename", "label", "length", "ｔｅｍｐｏ", "tempo ", "Tempo", "\x00"]
    ),
    st.integers(-2, 2),
)


def verdict(value: object) -> str:
    """Whether a feature cell must be refused (``bad``), must be accepted (``good``), or either (text,
    which may or may not parse as a number)."""
    if value is None or value is pd.NA or isinstance(value, (bool, np.bool_)):
        return "bad"
    if isinstance(value, (int, np.integer)):
        return "good" if abs(int(value)) <= FEATURE_LIMIT else "bad"
    if isinstance(value, (float, np.floating)):
        return "good" if math.isfinite(value) and abs(value) <= FEATURE_LIMIT else "bad"
    if isinstance(value, (str, bytes)):
        return "either"
    return "bad"


@st.composite
def feature_requests(draw) -> dict[str, Any]:
    """A request spec: columns (name, kind, cells) around the 57 features, and the request parameters.

    Most columns hold clean numbers from a seed; a few are hostile: typed (float columns with NaN or
    huge values, bool columns) or object columns of ``hostile_cells``.
    """
    rows = draw(st.integers(0, 3))
    dropped = draw(st.one_of(st.just(set()), st.sets(st.sampled_from(FEATURES), max_size=3)))
    order = draw(st.permutations([f for f in FEATURES if f not in dropped]))
    hostile = draw(st.sets(st.sampled_from(FEATURES), max_size=3))
    seed = draw(st.integers(0, 2**32 - 1))
    clean = np.random.default_rng(seed).normal(size=(rows, len(FEATURES))) * 1e3
    columns = []
    for name in order:
        if name not in hostile:
            columns.append((name, "float", tuple(clean[:, FEATURES.index(name)].tolist())))
            continue
        kind = draw(st.sampled_from(["float", "bool", "object"]))
        cell = {"float": st.floats(), "bool": st.booleans(), "object": hostile_cells}[kind]
        columns.append((name, kind, tuple(draw(st.lists(cell, min_size=rows, max_size=rows)))))
    for name in draw(st.lists(column_names, max_size=2)):  # extras: ignored, or 'audio'
        columns.append((name, "object", tuple(draw(st.lists(hostile_cells, min_size=rows, max_size=rows)))))
    for name in draw(st.lists(st.sampled_from(FEATURES), max_size=2)):  # a feature sent twice
        columns.append((name, "float", tuple(float(v) for v in range(rows))))
    layout = draw(st.sampled_from([None, "", "records", "columns", "xml"]))
    return {"rows": rows, "columns": tuple(columns), "layout": layout, "timeline": draw(st.booleans())}


def build_frame(spec: dict[str, Any]) -> pd.DataFrame:
    """The DataFrame of a spec, with its column dtypes (float64, bool, object) and repeated names."""
    series = []
    for _, kind, cells in spec["columns"]:
        if kind == "float":
            series.append(pd.Series(cells, dtype=np.float64))
        elif kind == "bool":
            series.append(pd.Series(cells, dtype=bool))
        else:
            values = np.empty(len(cells), dtype=object)
            values[:] = list(cells) if cells else []
            series.append(pd.Series(values, dtype=object))
    frame = pd.concat(series, axis=1) if series else pd.DataFrame(index=range(spec["rows"]))
    frame.columns = [name for name, _, _ in spec["columns"]]
    return frame


def serve(pyfunc: GenrePyfunc, frame: pd.DataFrame, params: dict[str, Any]) -> tuple[Any, GenreError | None]:
    """What ``mlflow models serve`` does with a request: the answer, or the refusal (HTTP 400) as the
    ``GenreError`` behind it. Any other exception is the bug these properties look for."""
    try:
        return pyfunc.predict(None, frame, params), None
    except MlflowException as exc:
        assert exc.error_code == "INVALID_PARAMETER_VALUE" and exc.get_http_status_code() == 400, exc
        cause = exc.__context__
        assert isinstance(cause, RequestError), f"an MlflowException not from a RequestError: {exc!r}"
        assert exc.json_kwargs["genre_kind"] == cause.kind and exc.json_kwargs["genre_detail"] == cause.detail
        assert cause.kind in REQUEST_KINDS, cause.kind
        assert 0 < len(str(cause)) <= MAX_MESSAGE, f"a {len(str(cause))}-character message"
        return None, cause


def check_answer(answer: Any, rows: int, layout: str, *, audio: bool) -> None:
    if layout == "columns":
        genres = answer["genre"]
        table = np.array([answer["probabilities"][c] for c in CLASSES]).T
        windows = answer.get("windows")
    else:
        assert isinstance(answer, pd.DataFrame)
        genres = answer["genre"].tolist()
        table = np.array([[row[c] for c in CLASSES] for row in answer["probabilities"]])
        windows = answer["windows"].tolist() if "windows" in answer else None
    assert len(genres) == rows and set(genres) <= set(CLASSES)
    # Rows of probabilities, each normalised by its sum (for audio, the mean of its m windows' rows): 1
    # within the roundings of a row's sum, its normalisation and the mean, (2 n_classes + m + 1) u.
    assert np.isfinite(table).all()
    m = max(windows) if windows else 1
    assert (np.abs(table.sum(axis=1) - 1.0) <= sums_apart(len(CLASSES) + m + 1, 1.0)).all()
    if audio:
        assert windows is not None and all(w >= 1 for w in windows)


def features_row(row: int = 0, **cells: object) -> dict[str, Any]:
    """An explicit example: one or two rows of clean features with ``cells`` replaced (row ``row``)."""
    columns = []
    for name in FEATURES:
        values = [0.5, 0.25]
        kind = "float"
        if name in cells:
            values[row] = cells[name]
            kind = "object"
        columns.append((name, kind, tuple(values)))
    return {"rows": 2, "columns": tuple(columns), "layout": None, "timeline": False}


def with_extra(spec: dict[str, Any], name: str, kind: str, cells: tuple) -> dict[str, Any]:
    return {**spec, "columns": (*spec["columns"], (name, kind, cells))}


def test_feature_requests_are_answered_or_refused_naming_the_row_and_column(pyfunc, record_property):
    """Property 1a: feature-form requests through ``GenrePyfunc.predict``. A request is answered (a
    genre and finite probabilities per row) exactly when it holds each feature once, no ``audio``, at
    least one row and only finite numbers within ``FEATURE_LIMIT``; otherwise it is refused with a
    ``RequestError`` (HTTP 400) naming the repeated or missing column, or the row and column of the
    first bad cells."""

    @bounded(400)
    @given(spec=feature_requests())
    @example(spec=features_row(tempo=10**400))  # OverflowError from pd.to_numeric
    @example(spec=features_row(row=1, tempo=True))  # read as 1.0 and answered
    @example(spec=features_row(**dict.fromkeys(FEATURES, 1.7976931348623157e308)))  # scaled: ValueError (inf)
    @example(spec=with_extra(features_row(), "tempo", "float", (1.0, 2.0)))  # ValueError: shape
    @example(spec=features_row(tempo=[1, {"a": None}]))
    def prop(spec: dict[str, Any]) -> None:
        frame = build_frame(spec)
        params = {"layout": spec["layout"], "timeline": spec["timeline"]}
        answer, refusal = serve(pyfunc, frame, params)
        names = [name for name, _, _ in spec["columns"]]
        repeated = [n for n in dict.fromkeys(names) if names.count(n) > 1 and (n in FEATURES or n == "audio")]
        missing = [f for f in FEATURES if f not in names]
        outcome = refusal.kind if refusal else "answered"
        if spec["layout"] not in (None, "", "records", "columns"):
            assert refusal and refusal.subject == "params" and spec["layout"] in str(refusal)
        elif repeated:
            assert refusal and "repeated column(s)" in str(refusal) and str(repeated[0]) in str(refusal)
        elif "audio" in names:  # both forms (refused), or an audio request: see property 1b
            outcome = "audio"
            assert refusal or answer is not None
            if len(missing) < len(FEATURES):
                assert refusal and "not both" in str(refusal)
        elif missing:
            assert refusal and f"missing feature column(s) {missing[0]}" in str(refusal)
        elif spec["rows"] == 0:
            assert refusal and "empty batch" in str(refusal)
        else:
            verdicts = {
                (row, name): verdict(cells[row])
                for name, _, cells in spec["columns"]
                if name in FEATURES
                for row in range(spec["rows"])
            }
            reported = {
                (int(row), column) for row, column in re.findall(r"row (\d+), column (\w+): ", str(refusal))
            }
            if refusal:
                outcome = "refused: bad cells"
                assert refusal.kind == "invalid" and "not finite numbers" in str(refusal)
                assert reported and all(verdicts[cell] != "good" for cell in reported), (reported, verdicts)
            else:
                check_answer(answer, spec["rows"], spec["layout"] or "records", audio=False)
            if "bad" in verdicts.values():
                assert refusal, "a request with a bad cell was answered"
            if set(verdicts.values()) == {"good"}:
                assert not refusal, f"clean numbers refused: {refusal}"
        tally("1a features", outcome)

    run_property(
        "1a features",
        prop,
        minimum=400,
        record=record_property,
        expect=["answered", "refused: bad cells", "invalid"],
    )


@st.composite
def audio_cells(draw) -> tuple[str, Any]:
    """One ``audio`` cell as (form, payload); ``audio_value`` makes the value."""
    form = draw(
        st.sampled_from(
            ["file", "file", "file", "file_mime", "b64_bytes", "raw_bytes", "text", "value", "path"]
        )
    )
    if form in ("file", "file_mime"):
        return form, draw(recipes(SHORT_BASES + LONG_BASES))
    if form in ("b64_bytes", "raw_bytes"):
        return form, draw(st.binary(max_size=512))
    if form == "text":
        return form, draw(st.text(max_size=40))
    if form == "path":
        return form, draw(
            st.sampled_from(["/etc/passwd", "file:///etc/passwd", "../../../etc/passwd", "~/x.wav"])
        )
    return form, draw(hostile_cells.filter(lambda v: not isinstance(v, str)))


def audio_value(cell: tuple[str, Any]) -> Any:
    form, payload = cell
    if form == "file":
        return base64.b64encode(recipe_bytes(payload)).decode()
    if form == "file_mime":  # base64 as MIME writes it: 76-character lines
        return base64.encodebytes(recipe_bytes(payload)).decode()
    if form == "b64_bytes":
        return base64.b64encode(payload).decode()
    return payload  # raw bytes, text, a path, any other value


@st.composite
def audio_requests(draw) -> dict[str, Any]:
    cells = draw(st.lists(audio_cells(), max_size=2))
    extras = draw(st.lists(column_names.filter(lambda n: n not in FEATURES), max_size=2))
    return {"cells": tuple(cells), "extras": tuple(extras), "timeline": draw(st.booleans())}


def audio_frame(spec: dict[str, Any]) -> pd.DataFrame:
    """The ``audio`` column (object cells, whatever they are) and the extra columns, names repeated."""
    rows = len(spec["cells"])
    values = np.empty(rows, dtype=object)
    values[:] = [audio_value(cell) for cell in spec["cells"]]
    series = [pd.Series(values, dtype=object)] + [
        pd.Series(["x"] * rows, dtype=object) for _ in spec["extras"]
    ]
    frame = pd.concat(series, axis=1)
    frame.columns = ["audio", *spec["extras"]]
    return frame


def audio_request(*cells: tuple[str, Any]) -> dict[str, Any]:
    return {"cells": cells, "extras": (), "timeline": False}


def _nan_sample(offset: int = 4000) -> tuple:
    """Ops writing a NaN (0x7FC00000) over one float32 sample of a WAV's data."""
    return (("set_data", offset + 2, 0xC0), ("set_data", offset + 3, 0x7F))


def test_audio_requests_are_answered_or_refused_naming_the_row(pyfunc, record_property):
    """Property 1b: audio-form requests through ``GenrePyfunc.predict``. Every request is answered (a
    genre, finite probabilities and at least one window per row) or refused with a ``RequestError`` whose
    kind says why and whose message names the row; a file longer than the limit (a 20-min FLAC of a few
    kilobytes) is refused as ``too_long`` without being decoded."""

    @bounded(250)
    @given(spec=audio_requests())
    @example(spec=audio_request(("value", pd.NA)))  # TypeError: boolean value of NA is ambiguous
    @example(spec=audio_request(("value", np.array([1, 2]))))  # ValueError: truth value of an array
    @example(spec=audio_request(("file", ("wav_float", _nan_sample()))))  # librosa's ParameterError
    @example(spec=audio_request(("file", ("wav_float", (("set_data", 4003, 0x71),)))))  # 1e30-ish sample
    @example(spec=audio_request(("file", ("flac_20min_dc", ()))))
    @example(spec=audio_request(("file", ("flac_8ch", (("flac", 2**20 - 1, None, 599 * (2**20 - 1)),)))))
    @example(spec={**audio_request(("file", ("wav", ()))), "extras": ("audio",)})
    @example(spec=audio_request(("path", "/etc/passwd"), ("file", ("mp3", ()))))
    def prop(spec: dict[str, Any]) -> None:
        frame = audio_frame(spec)
        rows = len(spec["cells"])
        answer, refusal = serve(pyfunc, frame, {"timeline": spec["timeline"]})
        if "audio" in spec["extras"]:
            assert refusal and "repeated column(s) audio" in str(refusal)
        elif rows == 0:
            assert refusal and "empty batch" in str(refusal)
        elif refusal:
            named = [int(row) for row in re.findall(r"\brow (\d+)\b", str(refusal))]
            assert refusal.kind == "too_large" or (named and named[0] < rows), str(refusal)
        else:
            check_answer(answer, rows, "records", audio=True)
        first = spec["cells"][0] if spec["cells"] else None
        if rows == 1 and first[0] == "file" and first[1][0] in LONG_BASES and not first[1][1]:
            assert refusal and refusal.kind == "too_long", refusal
        if first and first[0] in ("value", "path", "text"):
            assert refusal, f"{first} was answered"
        tally("1b audio", refusal.kind if refusal else "answered")

    run_property(
        "1b audio",
        prop,
        minimum=250,
        record=record_property,
        expect=["answered", "unreadable", "invalid", "too_long", "too_short"],
    )


# --------------------------------------------------------------------------------------------------------
# 2. Decoding is bounded whatever the header says
# --------------------------------------------------------------------------------------------------------


@functools.cache
def base_header(name: str) -> tuple[int, int, int]:
    """(frames, sample rate, channels) of an unmutated base file."""
    with sf.SoundFile(io.BytesIO(base_file(name))) as audio:
        return audio.frames, audio.samplerate, audio.channels


def _header(data: bytes) -> tuple[int, int] | None:
    """The (sample rate, channels) libsndfile reads from a file's header, or None."""
    try:
        with sf.SoundFile(io.BytesIO(data)) as audio:
            return audio.samplerate, audio.channels
    except Exception:
        return None


def test_decoding_is_bounded_whatever_the_header_says(record_property):
    """Property 2: ``load_audio_bytes`` never returns more than ``max_seconds * sr`` samples (rounded
    up), returns finite float32, refuses a file whose header is longer than ``max_seconds`` as
    ``too_long``, and its memory (tracemalloc's peak) stays within a few blocks plus what ``max_seconds``
    of audio takes -- whatever length, rate or channels the header claims. Before the fix, a 200-kB FLAC
    claiming 599 s at 1 MHz on 8 channels had numpy allocate 19 GiB for it."""

    @bounded(300)
    @given(
        recipe=st.one_of(recipes(SHORT_BASES), recipes(LONG_BASES)),
        sr=st.sampled_from([8000, 16000, 22050, 44100]),
        max_seconds=st.one_of(st.sampled_from([0.5, 3.0, 60.0]), st.floats(0.01, 60.0)),
    )
    @example(recipe=("flac_1h_silence", ()), sr=22050, max_seconds=60.0)
    @example(recipe=("flac_1h_silence", (("flac", None, None, 0),)), sr=22050, max_seconds=60.0)  # no length
    @example(recipe=("flac_1h_silence", (("flac", None, None, 40000),)), sr=22050, max_seconds=60.0)  # 5 s
    @example(recipe=("flac_8ch", (("flac", 2**20 - 1, None, 59 * (2**20 - 1)),)), sr=22050, max_seconds=60.0)
    @example(recipe=("flac_8ch", (("flac", 655350, None, 59 * 655350),)), sr=22050, max_seconds=60.0)
    @example(recipe=("wav_11min_8k", (("wav", "data_size", 2**32 - 1),)), sr=22050, max_seconds=60.0)
    @example(recipe=("wav_11min_8k", (("wav", "rate", 100),)), sr=22050, max_seconds=60.0)
    @example(recipe=("wav_float", _nan_sample()), sr=22050, max_seconds=60.0)
    def prop(recipe: tuple, sr: int, max_seconds: float) -> None:
        data = recipe_bytes(recipe)
        header = _header(data)
        tracemalloc.start()
        try:
            y = load_audio_bytes(data, sr=sr, name="probe", max_seconds=max_seconds)
            outcome = "decoded"
        except AudioError as exc:
            y, outcome = None, exc.kind
            assert exc.kind in {"unreadable", "empty", "too_long"} and exc.subject == "probe", exc
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        if y is not None:
            assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all()
            assert 0 < len(y) <= math.ceil(max_seconds * sr), (len(y), max_seconds * sr)
        real = base_header(recipe[0])
        if not recipe[1]:  # a true header: refused exactly when it says more than max_seconds
            assert (outcome == "too_long") == (real[0] / real[1] > max_seconds), outcome
        native_rate, channels = header or (sr, 1)
        # Decoded samples: what max_seconds is at the header's rate and channels, and never more than
        # the file holds (x16: a header may say 8-bit samples or 8 channels for 16-bit mono data).
        decoded = min(max_seconds * native_rate * channels, 16 * real[0] * real[2])
        budget = 2 * 8 * 2**20 + 3 * 4 * (decoded + max_seconds * sr) + 4 * 2**20  # + a block and its mix
        assert peak <= budget, (
            f"{peak / 2**20:.0f} MiB for {max_seconds:g} s at {native_rate} Hz x {channels}"
        )
        tally("2 decode", outcome)

    run_property(
        "2 decode", prop, minimum=300, record=record_property, expect=["decoded", "too_long", "unreadable"]
    )


def test_an_hour_of_flac_is_refused_before_it_is_decoded(record_property):
    """Property 2, by hand: an hour of silence as FLAC (88 kB; 115 MB of float32 decoded) is refused at
    the served limit from its header, in milliseconds and without decoding a block; with no length in the
    header, or a false one, at most ``max_seconds`` are decoded."""
    hour = base_file("flac_1h_silence")
    whole = 3600 * 8000 * 4
    cases = {
        "true header": (hour, "too_long", 2**20),
        "no length (total samples 0)": (mutate(hour, [("flac", None, None, 0)]), "too_long", None),
        "says 5 s": (mutate(hour, [("flac", None, None, 40000)]), "decoded", None),
        "says 599 s at 1 MHz x 8": (
            mutate(base_file("flac_8ch"), [("flac", 2**20 - 1, None, 599 * (2**20 - 1))]),
            "unreadable",
            64 * 2**20,
        ),
        "20 minutes of DC": (base_file("flac_20min_dc"), "too_long", 2**20),
    }
    for name, (data, expected, limit) in cases.items():
        tracemalloc.start()
        start = time.perf_counter()
        try:
            y = load_audio_bytes(data, max_seconds=600.0)
            outcome = "decoded"
            assert len(y) <= 600 * SAMPLE_RATE
        except AudioError as exc:
            outcome = exc.kind
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"\n[2 hour] {name}: {outcome} in {seconds * 1000:.1f} ms, peak {peak / 2**20:.1f} MiB")
        assert outcome == expected, name
        assert peak < (limit or whole / 2), f"{name}: {peak / 2**20:.1f} MiB"
        if limit and expected == "too_long":
            assert seconds < 0.5, name
        tally("2 hour", outcome)
    record_property("cases", len(cases))


# --------------------------------------------------------------------------------------------------------
# 3. The CSV loader
# --------------------------------------------------------------------------------------------------------

SCHEMA = ["filename", *FEATURES, LABEL_COLUMN]
bad_texts = st.one_of(
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-Infinity", "1e400", "-1e999", "abc", "1,5", "0x10"]),
    st.sampled_from(["١٢٣", "None", "null", "True", "1e16", "--1", "1e", "\u2212" + "1"]),
    st.text(max_size=8).map(lambda text: "x" + text),
)
table_faults = st.one_of(
    st.just(("none",)),
    st.tuples(st.just("bad_cell"), st.integers(0, 4), st.sampled_from(FEATURES), bad_texts),
    st.tuples(st.just("drop_column"), st.sampled_from(SCHEMA)),
    st.tuples(st.just("extra_column"), st.text(max_size=8)),
    st.tuples(st.just("repeat_column"), st.sampled_from(SCHEMA)),
    st.tuples(st.just("empty_label"), st.integers(0, 4)),
    st.just(("single_class",)),
    st.tuples(st.just("duplicate_filename"), st.integers(0, 4), st.integers(0, 4)),
    st.tuples(st.just("short_row"), st.integers(0, 4), st.integers(1, 3)),
    st.tuples(st.just("long_row"), st.integers(0, 4), st.text(max_size=5)),
    st.tuples(st.just("delimiter"), st.sampled_from([";", "\t", "|", " "])),
    st.tuples(st.just("stray_quote"), st.integers(0, 4), st.sampled_from(FEATURES)),
    st.just(("crlf",)),
    st.just(("bom",)),
    st.just(("empty_file",)),
    st.just(("header_only",)),
    st.tuples(st.just("object_cell"), st.integers(0, 4), st.sampled_from(FEATURES), hostile_cells),
)


#: Faults a table built in memory can have (the others are faults of a file's text).
IN_MEMORY_FAULTS = {
    "none",
    "bad_cell",
    "object_cell",
    "drop_column",
    "extra_column",
    "repeat_column",
    "empty_label",
    "single_class",
    "duplicate_filename",
    "header_only",
}


@st.composite
def tables(draw) -> dict[str, Any]:
    """A valid table in the GTZAN schema (random column order, optional ``length``), with one fault."""
    rows = draw(st.integers(2, 5))
    columns = draw(st.permutations(SCHEMA + (["length"] if draw(st.booleans()) else [])))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = np.logspace(-4, 7, len(FEATURES))
    values = np.random.default_rng(seed).normal(size=(rows, len(FEATURES))) * scale
    labels = [CLASSES[i % 2] for i in range(rows)]
    length = draw(st.sampled_from([WINDOW_SAMPLES, 661794]))
    return {
        "columns": columns,
        "values": values,
        "labels": labels,
        "length": length,
        "fault": draw(table_faults),
        "as_frame": draw(st.booleans()),
        "allowed": draw(st.sampled_from([None, CLASSES])),
    }


def table_cells(table: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The header and the rows of a table spec, fault applied to cells (not yet to the file's text)."""
    header = list(table["columns"])
    rows = []
    for r in range(len(table["labels"])):
        cells = {
            "filename": f"track{r}.wav",
            LABEL_COLUMN: table["labels"][r],
            "length": str(table["length"]),
        }
        cells.update({f: repr(float(table["values"][r, i])) for i, f in enumerate(FEATURES)})
        rows.append([cells[c] for c in header])
    fault = table["fault"]
    kind = fault[0]
    n = len(rows)
    if kind in ("bad_cell", "object_cell"):
        rows[fault[1] % n][header.index(fault[2])] = fault[3]
    elif kind == "drop_column":
        at = header.index(fault[1])
        del header[at]
        for row in rows:
            del row[at]
    elif kind == "extra_column":
        header.append(fault[1])
        for row in rows:
            row.append("1.0")
    elif kind == "repeat_column":
        at = header.index(fault[1])
        header.append(fault[1])
        for row in rows:
            row.append(row[at])
    elif kind == "empty_label":
        rows[fault[1] % n][header.index(LABEL_COLUMN)] = ""
    elif kind == "single_class":
        for row in rows:
            row[header.index(LABEL_COLUMN)] = CLASSES[0]
    elif kind == "duplicate_filename" and fault[1] % n != fault[2] % n:
        at = header.index("filename")
        rows[fault[2] % n][at] = rows[fault[1] % n][at]
    elif kind == "short_row":
        del rows[fault[1] % n][-fault[2] :]
    elif kind == "long_row":
        rows[fault[1] % n].append(fault[2])
    elif kind == "header_only":
        rows = []
    return header, rows


def table_text(table: dict[str, Any]) -> bytes:
    header, rows = table_cells(table)
    fault = table["fault"]
    if fault[0] == "empty_file":
        return b""
    buffer = io.StringIO()
    delimiter = fault[1] if fault[0] == "delimiter" else ","
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n" if fault[0] == "crlf" else "\n")
    writer.writerow(header)
    writer.writerows([[str(cell) for cell in row] for row in rows])
    text = buffer.getvalue()
    if fault[0] == "stray_quote":
        lines = text.split("\n")
        line = 1 + fault[1] % max(1, len(rows))
        if line < len(lines):
            lines[line] = lines[line].replace(",", ',"', 1 + header.index(fault[2]) % 7)
        text = "\n".join(lines)
    return (("\ufeff" if fault[0] == "bom" else "") + text).encode("utf-8")


def check_dataset_or_error(load: Callable[[], Any], source: str) -> tuple[Any, DataError | None]:
    """Property 3's common half: a Dataset of finite float64 features, two classes and unique names, or a
    DataError naming the source (and the line and column of a bad cell)."""
    try:
        dataset = load()
    except DataError as exc:
        message = str(exc)
        assert message.startswith(source), message
        if "not finite numbers" in message:
            assert re.search(r"line \d+ \(.*\), column \S+: ", message), message
        if "empty label" in message or "duplicate rows" in message:
            assert re.search(r"lines?(\(s\))? \d+", message), message
        return None, exc
    X = dataset.X.to_numpy()  # noqa: N806
    assert X.dtype == np.float64 and X.shape[1] == len(FEATURES) and len(X) >= 1
    assert np.isfinite(X).all() and (np.abs(X) <= FEATURE_LIMIT).all()
    labels = dataset.frame[LABEL_COLUMN]
    assert len(set(labels)) >= 2 and (labels.str.len() > 0).all()
    assert dataset.frame["filename"].is_unique and (dataset.frame["filename"].str.len() > 0).all()
    return dataset, None


def test_csv_tables_with_one_fault_load_exactly_or_name_the_fault(tmp_path, record_property):
    """Property 3a: ``load_csv`` (or ``from_frame`` on the same table in memory, cells as Python objects)
    of a valid GTZAN table with one fault. Without a fault the table loads to the very values written;
    a bad cell is refused naming its line and column; missing, extra and repeated columns, an empty or
    single label and duplicate file names are refused naming the file, and nothing else escapes."""
    path = tmp_path / "table.csv"

    @bounded(300)
    @given(table=tables())
    @example(table=_table_example(("object_cell", 0, "tempo", 10**400)))  # OverflowError
    @example(table=_table_example(("object_cell", 1, "tempo", True)))  # read as 1.0
    @example(table=_table_example(("bad_cell", 0, "tempo", "1e16")))
    def prop(table: dict[str, Any]) -> None:
        fault = table["fault"]
        if table["as_frame"] and fault[0] in IN_MEMORY_FAULTS:
            header, rows = table_cells(table)
            frame = pd.DataFrame(rows, columns=header) if rows else pd.DataFrame(columns=header)
            source = "in-memory table"

            def load() -> Any:
                return from_frame(frame, source=source, labels=table["allowed"])

            fault_kind = "frame:" + fault[0]
        else:
            path.write_bytes(table_text(table))
            source = str(path)

            def load() -> Any:
                return load_csv(path, labels=table["allowed"])

            fault_kind = fault[0]
        dataset, error = check_dataset_or_error(load, source)
        if fault[0] == "none" or (fault[0] == "crlf"):
            assert error is None, error
            np.testing.assert_array_equal(dataset.X.to_numpy(), table["values"])
            assert list(dataset.y) == table["labels"]
            assert dataset.windowed == ("length" in table["columns"] and table["length"] == WINDOW_SAMPLES)
        if fault[0] == "bad_cell" or (fault[0] == "object_cell" and verdict(fault[3]) == "bad"):
            row = fault[1] % len(table["labels"])
            assert (
                error is not None
                and f"line {row + 2} " in str(error)
                and f"column {fault[2]}: " in str(error)
            )
        if fault[0] in ("drop_column", "repeat_column", "single_class", "empty_file", "header_only"):
            assert error is not None, fault
        if fault[0] == "empty_label":
            assert error is not None and f"line(s) {fault[1] % len(table['labels']) + 2}" in str(error)
        tally("3a csv", f"{fault_kind}: {'loaded' if error is None else 'refused'}")

    run_property("3a csv", prop, minimum=300, record=record_property)
    outcomes = OUTCOMES["3a csv"]
    assert outcomes["none: loaded"] and outcomes["frame:none: loaded"] and outcomes["bad_cell: refused"]


def _table_example(fault: tuple) -> dict[str, Any]:
    values = np.arange(2 * len(FEATURES), dtype=float).reshape(2, -1) / 7
    return {
        "columns": SCHEMA,
        "values": values,
        "labels": CLASSES[:2],
        "length": 661794,
        "fault": fault,
        "as_frame": fault[0] == "object_cell",
        "allowed": None,
    }


def test_any_bytes_as_a_csv_load_or_get_a_data_error(tmp_path, record_property):
    """Property 3b: any file -- binary garbage, other encodings, random delimiters and quotes, rows of
    random text under a header that may be the schema's -- loads into finite features or raises a
    ``DataError`` naming the file; never a pandas or numpy exception."""
    path = tmp_path / "chaos.csv"
    cells = st.one_of(st.text(max_size=6), bad_texts, st.sampled_from(["0.5", "1", '"', "", "a,b", "\n"]))

    @st.composite
    def files(draw) -> bytes:
        form = draw(st.sampled_from(["binary", "text", "schema", "schema", "encoded"]))
        if form == "binary":
            return draw(st.binary(max_size=300))
        if form == "schema":  # the schema's header and rows of numbers, a few cells replaced
            delimiter = draw(st.sampled_from([",", ",", ",", ";", "\t"]))
            count = draw(st.integers(2, 4))
            rows = [SCHEMA] + [
                [f"f{k}.wav", *(str(k + i / 8) for i in range(57)), "ab"[k % 2]] for k in range(count)
            ]
            for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
                rows[draw(st.integers(0, count))][draw(st.integers(0, len(SCHEMA) - 1))] = draw(cells)
        else:
            delimiter = draw(st.sampled_from([",", ";", "\t", "|", '"', "\n", "\r"]))
            rows = draw(st.lists(st.lists(cells, max_size=6), max_size=4))
        text = "\n".join(delimiter.join(row) for row in rows)
        if form == "encoded":
            return text.encode(draw(st.sampled_from(["utf-16", "latin-1", "utf-32"])), errors="replace")
        return text.encode("utf-8", errors="surrogatepass")

    @bounded(200)
    @given(data=files())
    @example(data=b"\x00" * 10 + b"\n,\n")
    @example(data=("\n".join([",".join(SCHEMA), ",".join(["1e400"] * len(SCHEMA))])).encode())
    def prop(data: bytes) -> None:
        path.write_bytes(data)
        _, error = check_dataset_or_error(lambda: load_csv(path), str(path))
        tally("3b chaos", "refused" if error else "loaded")

    run_property("3b chaos", prop, minimum=200, record=record_property, expect=["refused", "loaded"])


# --------------------------------------------------------------------------------------------------------
# 4. genre web's upload endpoint, called as ASGI in-process
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(classifier) -> tuple[Any, asyncio.AbstractEventLoop]:
    """``create_app`` on the small model, and one event loop to call it on."""
    backend = web.LocalBackend(classifier, label="hostile-input k-NN")
    app = web.create_app(backend, mlflow_ui=None)
    loop = asyncio.new_event_loop()
    yield app, loop
    loop.close()


def post(site, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, Any, int]:
    """POST ``chunks`` as the body of ``/api/analyse``: (status, JSON body, body bytes the app read).

    An exception that escapes the app is a 500, as the server would answer it.
    """
    app, loop = site
    pulled = given = 0
    sent: dict[str, Any] = {"status": None, "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal pulled, given
        if given == len(chunks):
            return {"type": "http.disconnect"}
        chunk = chunks[given]
        given += 1
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": given < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
        elif message["type"] == "http.response.body":
            sent["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/analyse",
        "raw_path": b"/api/analyse",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    try:
        loop.run_until_complete(app(scope, receive, send))
    except Exception as exc:
        return 500, repr(exc), pulled
    try:
        body = json.loads(sent["body"])
    except ValueError:
        body = sent["body"][:200]
    return sent["status"], body, pulled


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` in chunks cut at ``cuts`` (positions wrap), as a client might send it."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a] or [b""]


@st.composite
def uploads(draw) -> dict[str, Any]:
    kind = draw(st.sampled_from(["bytes", "file", "file", "empty", "text"]))
    if kind == "file":
        body = ("recipe", draw(recipes(SHORT_BASES + ["flac_20min_dc"])))
    elif kind == "bytes":
        body = ("bytes", draw(st.binary(max_size=2000)))
    elif kind == "text":
        body = ("bytes", draw(st.text(max_size=200)).encode("utf-8", errors="surrogatepass"))
    else:
        body = ("bytes", b"")
    name = draw(
        st.one_of(
            st.none(),
            st.binary(max_size=60),
            st.text(max_size=30).map(lambda s: urllib.parse.quote(s).encode()),
            st.sampled_from(
                [b"..%2F..%2F..%2Fetc%2Fpasswd", b"C:\\Windows\\win.ini", b"\xff\xfe", b"%00.wav"]
            ),
        )
    )
    length = draw(st.sampled_from(["none", "true", "lie", "junk"]))
    junk = draw(st.sampled_from([b"\xb2", b"-1", b"1e9", b"9" * 30, b" 12", b"0x10", b"", "\u0661".encode()]))
    return {
        "body": body,
        "name": name,
        "length": length,
        "junk": junk,
        "lie": draw(st.integers(0, 10**12)),
        "cuts": draw(st.lists(st.integers(0, 10**6), max_size=4)),
    }


def upload_bytes(upload: dict[str, Any]) -> bytes:
    kind, payload = upload["body"]
    return recipe_bytes(payload) if kind == "recipe" else payload


def upload_headers(upload: dict[str, Any], size: int) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/octet-stream")]
    if upload["name"] is not None:
        headers.append((b"x-filename", upload["name"]))
    length = {
        "none": None,
        "true": str(size).encode(),
        "lie": str(upload["lie"]).encode(),
        "junk": upload["junk"],
    }
    if length[upload["length"]] is not None:
        headers.append((b"content-length", length[upload["length"]]))
    return headers


def upload_example(
    body: bytes | tuple, *, name: bytes | None = b"song.wav", length: str = "true", junk: bytes = b""
) -> dict:
    """An explicit upload: the body as bytes, or a file recipe (base file, mutations)."""
    kind = "bytes" if isinstance(body, bytes) else "recipe"
    return {"body": (kind, body), "name": name, "length": length, "junk": junk, "lie": 0, "cuts": []}


PLAIN = re.compile(r"Traceback|\b\w+(Error|Exception)\b|File \"")


def test_web_uploads_get_an_answer_or_a_4xx_in_plain_words(site, record_property):
    """Property 4a: any body under any name and ``Content-Length`` gets a 200 with a genre, or a 400 or
    413 whose JSON holds a ``kind``, a plain-words ``title`` and a ``detail`` naming the file -- never a
    500. A declared length over the limit is refused before a byte of the body is read."""

    @bounded(200)
    @given(upload=uploads())
    @example(upload=upload_example(b"RIFF", length="junk", junk=b"\xb2"))  # "²".isdigit(): int() failed
    @example(upload=upload_example(b"not audio", name=b"..%2F..%2Fetc%2Fpasswd"))
    @example(upload=upload_example(("wav_float", _nan_sample())))  # librosa's ParameterError: a 500
    def prop(upload: dict[str, Any]) -> None:
        data = upload_bytes(upload)
        headers = upload_headers(upload, len(data))
        status, body, pulled = post(site, split(data, upload["cuts"]), headers)
        assert status in (200, 400, 413), (status, body)
        assert isinstance(body, dict), body
        label = web._display_name(upload["name"].decode("latin-1") if upload["name"] is not None else "")
        if status == 200:
            assert body["genre"] in CLASSES and body["windows"] >= 1 and body["file"] == label
        else:
            assert set(body) == {"title", "detail", "kind"} and all(isinstance(v, str) for v in body.values())
            assert body["kind"] in REQUEST_KINDS and body["title"] and not PLAIN.search(body["detail"])
            assert len(body["detail"]) <= MAX_MESSAGE
            if status == 400:
                assert body["detail"].startswith(f"{label}: "), (label, body)
            else:
                assert body["kind"] == "too_large"
        declared = dict(headers).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > web.MAX_UPLOAD_BYTES:
            assert status == 413 and pulled == 0
        tally("4a web", f"{status} {body.get('kind', '')}".strip())

    run_property(
        "4a web", prop, minimum=200, record=record_property, expect=["200", "400 unreadable", "413 too_large"]
    )


def test_uploads_over_the_limit_are_refused_as_soon_as_it_is_passed(site, monkeypatch, record_property):
    """Property 4b: with the limit at 10,000 bytes, a body of any size above it, in any chunks, with no,
    a true or a false ``Content-Length``, gets 413 after the app has read at most the limit plus one
    chunk -- never the whole body."""
    limit = 10_000
    monkeypatch.setattr(web, "MAX_UPLOAD_BYTES", limit)

    @bounded(100)
    @given(
        size=st.integers(limit + 1, 50 * limit),
        chunk=st.integers(1, 4096),
        declared=st.sampled_from(["none", "true", "small"]),
    )
    def prop(size: int, chunk: int, declared: str) -> None:
        chunks = [b"\0" * chunk] * (size // chunk) + ([b"\0" * (size % chunk)] if size % chunk else [])
        headers = {
            "none": [],
            "true": [(b"content-length", str(size).encode())],
            "small": [(b"content-length", b"10")],
        }
        status, body, pulled = post(site, chunks, headers[declared])
        assert status == 413 and body["kind"] == "too_large", (status, body)
        assert pulled <= limit + chunk, f"read {pulled} bytes of {size} before refusing"
        if declared == "true":
            assert pulled == 0
        tally("4b limit", "refused unread" if pulled == 0 else "refused while streaming")

    run_property(
        "4b limit",
        prop,
        minimum=100,
        record=record_property,
        expect=["refused unread", "refused while streaming"],
    )


# --------------------------------------------------------------------------------------------------------
# 5. No path from a request is opened; no temporary file is left behind
# --------------------------------------------------------------------------------------------------------

#: Paths (or names) Python opened or listed while a request was being answered; None when not recording.
_OPENED: list[str] | None = None
_AUDITED = ("open", "os.listdir", "os.scandir", "os.chdir", "os.rename", "os.remove", "shutil.copyfile")


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event in _AUDITED and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


@pytest.fixture(scope="module")
def opened(monkeypatch_module) -> Callable[[Callable[[], Any]], tuple[Any, list[str]]]:
    """``record(call)``: the call's result and every path Python opened or listed during it (audit
    hooks: ``open``, ``os.open``, ``Path.open``...), plus every path given to ``soundfile.SoundFile``."""
    if not getattr(sys, "_genre_hostile_audit", False):
        sys.addaudithook(_audit)  # hooks cannot be removed; this one does nothing unless recording
        sys._genre_hostile_audit = True
    original = sf.SoundFile.__init__

    def recording_init(self, file, *args, **kwargs):
        if _OPENED is not None and isinstance(file, (str, bytes, os.PathLike)):
            _OPENED.append(os.fsdecode(file))
        return original(self, file, *args, **kwargs)

    monkeypatch_module.setattr(sf.SoundFile, "__init__", recording_init)

    def record(call: Callable[[], Any]) -> tuple[Any, list[str]]:
        global _OPENED
        _OPENED = []
        try:
            result = call()
        finally:
            paths, _OPENED = _OPENED, None
        return result, paths

    return record


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def canary(tmp_path_factory) -> Path:
    """A real, answerable audio file with a unique name: a request naming it must not be answered."""
    folder = tmp_path_factory.mktemp("canary-dir")
    path = folder / f"canary-{os.getpid()}-{time.time_ns()}.wav"
    path.write_bytes(base_file("wav"))
    return path


PATH_FORMS = [
    "{p}",
    "file://{p}",
    "file:{p}",
    "{rel}",
    "../../../../../../../../..{p}",
    "{p}\x00.wav",
    "  {p}\n",
    "~/../../../../../..{p}",
    "{p}/.",
    "{dir}/./../{dirname}/{name}",
]


def test_no_path_from_a_request_is_opened(pyfunc, site, opened, canary, record_property):
    """Property 5a: an ``audio`` cell, an upload's file name or its body holding a path (absolute,
    ``file://``, ``../``-relative, with a NUL, under ``~``) to a real audio file on the server, as text,
    base64, bytes or URL-encoded: the request is refused, and no path holding the file's name is opened,
    listed or given to ``soundfile`` while it is answered."""
    rel = os.path.relpath(canary)
    token = canary.stem
    # The recorder sees what it must: Python's own opens, and paths handed to libsndfile.
    assert any(token in path for path in opened(lambda: canary.open("rb").close())[1])
    assert any(token in path for path in opened(lambda: sf.info(str(canary)))[1])

    def path_text(form: str) -> str:
        return form.format(
            p=str(canary), rel=rel, dir=canary.parent, dirname=canary.parent.name, name=canary.name
        )

    @bounded(150)
    @given(
        form=st.sampled_from(PATH_FORMS),
        encoding=st.sampled_from(["text", "base64", "bytes", "url"]),
        where=st.sampled_from(["cell", "name", "body"]),
    )
    @example(form="{p}", encoding="text", where="cell")
    @example(form="file://{p}", encoding="url", where="name")
    def prop(form: str, encoding: str, where: str) -> None:
        text = path_text(form)
        value: Any = {
            "text": text,
            "base64": base64.b64encode(text.encode()).decode(),
            "bytes": text.encode(),
            "url": urllib.parse.quote(text),
        }[encoding]
        if where == "cell":
            frame = pd.DataFrame({"audio": pd.Series([value], dtype=object)})
            (answer, refusal), paths = opened(lambda: serve(pyfunc, frame, {}))
            assert answer is None and refusal is not None, "a path in a cell was answered"
            outcome = f"cell refused ({refusal.kind})"
        else:
            raw = value if isinstance(value, bytes) else value.encode("utf-8")
            if where == "name":
                headers = [(b"x-filename", raw.replace(b"\n", b" ").replace(b"\x00", b""))]
                body = b"not audio"
            else:
                headers, body = [], raw
            (status, reply, _), paths = opened(lambda: post(site, [body], headers))
            assert status == 400, (status, reply)
            outcome = f"upload {where} refused ({reply['kind']})"
        leaked = [path for path in paths if token in path]
        assert not leaked, f"opened {leaked}"
        tally("5a paths", outcome)

    run_property("5a paths", prop, minimum=120, record=record_property)


def test_requests_leave_no_temporary_file_behind(
    pyfunc, site, opened, tmp_path, monkeypatch, record_property
):
    """Property 5b: uploads and audio requests -- answered, refused, over the limit -- create nothing in
    the temporary folder (a private one for this test, so other processes on the machine do not count),
    open no file under it or under /tmp, and call none of ``tempfile``'s constructors."""
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    made = Counter()
    for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile", "SpooledTemporaryFile"):
        original = getattr(tempfile, name)

        def counting(*args, _name=name, _original=original, **kwargs):
            if _OPENED is not None:  # while a request is answered (Hypothesis has a cache of its own)
                made[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(tempfile, name, counting)
    monkeypatch.setattr(web, "MAX_UPLOAD_BYTES", 200_000)
    temp_roots = (str(private), "/tmp", "/var/tmp", "/dev/shm")
    _, paths = opened(lambda: tempfile.TemporaryFile().close())  # the instruments see a temporary file
    assert made["TemporaryFile"] == 1 and any(path.startswith(str(private)) for path in paths), paths
    made.clear()

    @bounded(60)
    @given(upload=uploads(), through=st.sampled_from(["web", "served"]), oversize=st.booleans())
    def prop(upload: dict[str, Any], through: str, oversize: bool) -> None:
        data = upload_bytes(upload) + (b"\0" * 200_001 if oversize else b"")
        before = sorted(os.listdir(private))
        if through == "web":
            (status, _, _), paths = opened(
                lambda: post(site, split(data, upload["cuts"]), upload_headers(upload, 0))
            )
            outcome = f"web {status}"
        else:
            frame = pd.DataFrame({"audio": pd.Series([base64.b64encode(data).decode()], dtype=object)})
            (answer, refusal), paths = opened(lambda: serve(pyfunc, frame, {}))
            outcome = f"served {'answered' if refusal is None else 'refused'}"
        assert sorted(os.listdir(private)) == before
        in_temp = [path for path in paths if os.path.abspath(path).startswith(temp_roots)]
        assert not in_temp, f"opened {in_temp}"
        assert not made, made
        tally("5b temp", outcome)

    run_property("5b temp", prop, minimum=60, record=record_property, expect=["web 413", "web 400"])
