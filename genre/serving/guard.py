"""Refusing over-limit requests before ``mlflow models serve`` parses them.

Why: MLflow's scoring server (written against MLflow 3.17.2, ``mlflow/pyfunc/scoring_server/__init__.py``)
reads a request's whole body, parses it -- JSON into Python objects, then a DataFrame, then the
signature's schema enforcement -- and only then calls ``GenrePyfunc.predict``, where ``GenreClassifier``
checks ``MAX_ROWS``. Refused that way, a request of 100,001 feature rows took up to 64 s under 8
concurrent clients, 6 of 16 such requests got MLflow's 504 (its request timeout) instead of the 400,
other requests queued behind them, and the server's memory doubled.

How: the server's ``/invocations`` handler reads the body, then calls the module-level function
``scoring_server.invocations(data, content_type, model, input_schema)`` in a thread, looking the name up
at request time. ``install`` (called by ``GenrePyfunc.load_context``) replaces it with ``guarded``, which
refuses a body over ``MAX_REQUEST_BYTES`` or holding more than ``MAX_ROWS`` rows, counted without
parsing (``count_rows``: CSV lines, Parquet's footer, JSON's brackets), with the model's own 400
(``invalid_request``), and hands everything else to MLflow's function. Counting costs about a tenth of
a second per 100 MB; MLflow's parse of the same body takes seconds to a minute. On the way back it
shortens MLflow's error messages, which quote a body that is not JSON, or a cell that is not a number,
in full (a 21.7 MB broken body was answered with 21.7 MB), and it gives a request without a
Content-Type MLflow's 415 instead of a 500.

It acts only inside the scoring server: MLflow sets the environment variable named by
``scoring_server._SERVER_MODEL_PATH`` for the uvicorn process it starts (each ``--workers`` process
loads the model, so each installs it). Loading the model anywhere else (``mlflow.pyfunc.load_model``,
``genre web``, Spark) leaves MLflow untouched. If a later MLflow renames ``invocations`` or changes its
parameters, ``install`` logs a warning and does nothing: the model's own checks still refuse the same
requests, slowly.

MLflow 3.17.2 has no supported hook for this: the FastAPI app is built by ``scoring_server.init``
after the model is loaded (a model cannot add middleware to it), ``mlflow models serve`` passes uvicorn
no body limit (uvicorn has none), and a model with a type-hint signature still has its JSON parsed.

What it cannot do: the body is already in memory when ``invocations`` is called (uvicorn and Starlette
read it whole, whatever its size), so a body far over the limit costs its size in memory while it lasts;
a proxy in front of the server (a body size limit) bounds that. Once a large body is answered, the guard
tells ``genre.serving.memory``, which has glibc hand what it freed back to the system.
"""

from __future__ import annotations

import functools
import inspect
import io
import logging
import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from mlflow.exceptions import MlflowException

from genre.errors import GenreError, RequestError
from genre.serving import memory
from genre.serving.classifier import MAX_REQUEST_BYTES, MAX_ROWS

__all__ = ["count_rows", "guarded", "install", "invalid_request", "refusal"]

log = logging.getLogger(__name__)

#: ``scoring_server.invocations``'s parameters in MLflow 3.17.2; anything else and ``install`` stands back.
EXPECTED_PARAMETERS = ["data", "content_type", "model", "input_schema"]
#: MLflow's JSON input formats (``scoring_server.SUPPORTED_FORMATS``) as keys of a body.
_FORMAT_KEY = re.compile(rb'"(dataframe_split|dataframe_records|inputs|instances)"\s*:')
#: Characters of an error message answered in full; a longer one keeps its first and last
#: ``MESSAGE_KEEP`` (MLflow's own messages are under 1,000 characters, the genre error at their end).
MAX_MESSAGE = 4000
MESSAGE_KEEP = 1000

# Every byte but quotes, brackets, braces (and commas): what ``_structure`` deletes. Numbers, names and
# base64 are made of deleted bytes only.
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_NOT_BRACKETS_OR_COMMAS = bytes(sorted(set(range(256)) - set(b'"[]{},')))
#: +1 for an opening bracket or brace, -1 for a closing one, 0 for a comma: the running sum is the depth.
_STEP = np.zeros(256, np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1


def invalid_request(exc: GenreError) -> MlflowException:
    """The scoring server's HTTP 400 for ``exc``: ``INVALID_PARAMETER_VALUE`` with the message and the
    error's ``kind``, ``subject`` and ``detail`` as ``genre_kind``, ``genre_subject`` and ``genre_detail``
    (the fields clients read; ``GenrePyfunc.predict`` answers its errors with the same)."""
    return MlflowException.invalid_parameter_value(
        str(exc), genre_kind=exc.kind, genre_subject=exc.subject, genre_detail=exc.detail
    )


def refusal(data: bytes, content_type: str | None) -> RequestError | None:
    """Why a request body must be refused before it is parsed, or None: over ``MAX_REQUEST_BYTES``,
    or more than ``MAX_ROWS`` rows by ``count_rows``."""
    if len(data) > MAX_REQUEST_BYTES:
        return RequestError(
            f"request too large: {len(data) / 2**20:.1f} MiB, the limit is {MAX_REQUEST_BYTES / 2**20:g} MiB "
            f"per request; send large batches of feature rows as CSV or Parquet, or in several requests",
            kind="too_large",
        )
    rows = count_rows(data, content_type)
    if rows is not None and rows > MAX_ROWS:
        # The words of GenreClassifier's own check, so a client sees one message whichever refuses.
        return RequestError(f"too many rows: {rows} in one request, the limit is {MAX_ROWS}")
    return None


def count_rows(data: bytes, content_type: str | None) -> int | None:
    """The rows a request body holds, counted without parsing it; None when it cannot tell.

    Never more than the rows MLflow would parse from a well-formed body, so the guard refuses only what
    the model would refuse; exact for every body a client would send:

    * CSV (``text/csv``): lines after the header. A body with quotes (a quoted field may hold a line
      break) or blank lines (pandas skips them) is not counted if it is over the limit.
    * Parquet: ``num_rows`` from the file's footer (pyarrow reads only the footer).
    * JSON: the rows of ``dataframe_split`` (lists inside ``data``), ``dataframe_records`` (objects) and
      ``inputs`` / ``instances`` (objects or lists; for a dictionary of columns, the values per column,
      one for columns of none) from the nesting of brackets and braces, strings left out
      (``_structure``). A body too short to hold more than ``MAX_ROWS`` rows (two bytes a row at the
      least) is not looked at.
    """
    mime_type = (content_type or "").split(";")[0].strip()
    try:
        if mime_type == "text/csv":
            return _csv_rows(data)
        if mime_type == "application/vnd.apache.parquet":
            import pyarrow.parquet as pq

            return int(pq.read_metadata(io.BytesIO(data)).num_rows)
        if mime_type == "application/json" and len(data) > 2 * MAX_ROWS:
            return _json_rows(data)
    except Exception:  # not countable: MLflow's parser says what is wrong with it
        return None
    return None


def _csv_rows(data: bytes) -> int | None:
    codes = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(codes == ord("\n"))
    rows = max(len(ends) + (not data.endswith(b"\n")) - 1, 0)  # lines after the header
    if rows <= MAX_ROWS:
        return rows
    # pandas skips blank and whitespace-only lines, and a quoted field may hold line breaks: an
    # over-limit count stands only if no line starts with whitespace and there are no quotes.
    starts = codes[np.r_[0, ends[ends + 1 < len(codes)] + 1]]
    if b'"' in data or np.isin(starts, list(b" \t\r\n")).any():
        return None
    return rows


def _json_rows(data: bytes) -> int | None:
    # The input format: the first format key followed by a colon. A key of the body's top level comes
    # before its value, which holds the rows, and "params" (which a client may send first) is short.
    found = _FORMAT_KEY.search(data, 0, 65536) or _FORMAT_KEY.search(data)
    if found is None:
        return None
    key = found.group(1)
    codes, depth = _structure(data, commas=False)
    opens = _STEP[codes] > 0
    if key == b"dataframe_split":  # {"dataframe_split": {"columns": [..], "data": [[row], ..]}}
        return int(np.count_nonzero(opens & (depth == 4) & (codes == ord("["))))
    if key == b"dataframe_records":  # {"dataframe_records": [{row}, ..]}
        return int(np.count_nonzero(opens & (depth == 3) & (codes == ord("{"))))
    if np.any(opens & (depth == 2) & (codes == ord("["))):  # {"inputs": [{row} or [row], ..]}
        return int(np.count_nonzero(opens & (depth == 3)))
    # {"inputs": {"column": [value, ..], ..}}: values per column, from the commas between them (columns
    # of no values count one row: a value leaves no trace here)
    codes, depth = _structure(data, commas=True)
    lists = np.count_nonzero((codes == ord("[")) & (depth == 3))
    commas = np.count_nonzero((codes == ord(",")) & (depth == 3))
    return int(commas // lists + 1) if lists else None


def _structure(data: bytes, *, commas: bool) -> tuple[np.ndarray, np.ndarray]:
    """The brackets and braces of a JSON body (and its commas) outside strings, and the nesting depth
    after each.

    Escapes go first (``_unescaped``), then every byte but quotes, brackets and braces (``translate``,
    the one pass over the whole body); a string is then its two quotes around whatever brackets it
    held, and goes too.
    """
    if b"\\" in data:
        data = _unescaped(data)
    skeleton = data.translate(None, _NOT_BRACKETS_OR_COMMAS if commas else _NOT_BRACKETS)
    bare = skeleton.replace(b'""', b"")  # strings with nothing left inside: pairs of quotes
    codes = np.frombuffer(bare, np.uint8)
    if b'"' in bare:  # some string held a bracket: drop what lies between odd and even quotes
        codes = np.frombuffer(skeleton, np.uint8)
        quotes = codes == ord('"')
        codes = codes[~quotes & (np.cumsum(quotes, dtype=np.uint8) % 2 == 0)]  # parity survives wrapping
    return codes, np.cumsum(_STEP[codes], dtype=np.int32)


def _unescaped(data: bytes) -> bytearray:
    """``data`` with its backslash escapes blanked: backslashes, and the character after an escaping
    one, become spaces, so an escaped quote does not end a string. A run of backslashes escapes in
    pairs; an odd run also escapes the character after it."""
    blanked = bytearray(data)
    codes = np.frombuffer(blanked, np.uint8)
    at = np.flatnonzero(codes == ord("\\"))
    first = np.r_[True, np.diff(at) != 1]
    starts = at[first]
    lengths = np.diff(np.r_[np.flatnonzero(first), len(at)])
    escaped = (starts + lengths)[lengths % 2 == 1]
    codes[at] = ord(" ")
    codes[escaped[escaped < len(codes)]] = ord(" ")
    return blanked


def guarded(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (MLflow's ``invocations``) behind the limits: a refusal is raised as the model's own
    400, which the server's handler answers as it answers the model's errors."""

    @functools.wraps(original)
    def invocations(data: Any, content_type: str | None, model: Any, input_schema: Any) -> Any:
        try:
            return _answer(data, content_type, model, input_schema)
        finally:  # glibc keeps what a large body's parse freed until it is told to hand it back
            memory.answered(len(data) if isinstance(data, (bytes, bytearray, str)) else 0)

    def _answer(data: Any, content_type: str | None, model: Any, input_schema: Any) -> Any:
        if isinstance(data, (bytes, bytearray)):
            problem = refusal(bytes(data), content_type)
            if problem is not None:
                raise invalid_request(problem)
        # MLflow 3.17.2 answers a request without a Content-Type with a 500 (None.split); "" gets its
        # 415 naming the content types it takes.
        try:
            return original(data, content_type or "", model, input_schema)
        except MlflowException as exc:
            if len(exc.message) > MAX_MESSAGE:
                cut = len(exc.message) - 2 * MESSAGE_KEEP
                exc.message = (
                    f"{exc.message[:MESSAGE_KEEP]} [... {cut} characters ...] {exc.message[-MESSAGE_KEEP:]}"
                )
            raise

    invocations.genre_guard = True  # type: ignore[attr-defined]
    return invocations


def install() -> bool:
    """Put ``guarded`` in front of the scoring server's ``invocations``, inside the scoring server only.

    Returns whether the guard is in place (installing twice keeps one guard).
    """
    from mlflow.pyfunc import scoring_server

    if not os.environ.get(getattr(scoring_server, "_SERVER_MODEL_PATH", "__pyfunc_model_path__")):
        return False
    original = getattr(scoring_server, "invocations", None)
    if getattr(original, "genre_guard", False):
        return True
    try:
        parameters = list(inspect.signature(original).parameters)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        parameters = []
    if parameters != EXPECTED_PARAMETERS:
        log.warning(
            "genre: mlflow.pyfunc.scoring_server.invocations is not the function this guard was written "
            "for (MLflow 3.17.2); requests over the limits are refused by the model, after MLflow parsed them"
        )
        return False
    scoring_server.invocations = guarded(original)
    log.info("genre: bodies over %d rows or %d bytes are refused before parsing", MAX_ROWS, MAX_REQUEST_BYTES)
    return True
