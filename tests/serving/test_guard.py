"""The guard in front of ``mlflow models serve`` (``genre.serving.guard``), without a server: its row
counts against what a body holds, its refusals against the model's own 400, and that it changes MLflow
only inside the scoring server. ``tests/reliability/test_load.py`` runs it in the real server, under load.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server

from genre.data.schema import FEATURE_COLUMNS
from genre.errors import RequestError
from genre.serving import MAX_REQUEST_BYTES, MAX_ROWS, guard

#: A small row limit for the properties, so that bodies over it stay small.
LIMIT = 3
#: Text with everything that could fool a bracket count: brackets, braces, quotes, backslashes,
#: commas, line breaks, format names, non-ASCII.
NASTY = st.lists(
    st.sampled_from([*'[]{}",\\:\n\t abcé☃', '"inputs":', "dataframe_split", '{"dataframe_records": [']),
    max_size=10,
).map("".join)
BOUNDED = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def tables(draw, *, strings: bool = True) -> pd.DataFrame:
    """0-8 rows of 1-3 numeric columns and, with ``strings``, 0-2 text columns and a column of lists."""
    n = draw(st.integers(0, 8))
    numbers = st.floats(allow_nan=False, allow_infinity=False, width=32)
    table = {f"f{i}": draw(st.lists(numbers, min_size=n, max_size=n)) for i in range(draw(st.integers(1, 3)))}
    if strings:
        for i in range(draw(st.integers(0, 2))):
            table[draw(NASTY) + f"#{i}"] = draw(st.lists(NASTY, min_size=n, max_size=n))
        if draw(st.booleans()):
            table["nested"] = draw(st.lists(st.lists(st.integers(0, 9), max_size=3), min_size=n, max_size=n))
    return pd.DataFrame(table)


def _json(payload: dict, draw) -> bytes:
    """A JSON body as different clients write it: params first or last, ASCII-escaped or not, indented."""
    if draw(st.booleans()):
        payload = {"params": {"layout": "dataframe_records", "timeline": True}, **payload}
    else:
        payload = {**payload, "params": {"layout": '"inputs": ['}}
    return json.dumps(
        payload, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1]))
    ).encode()


@BOUNDED
@given(table=tables(), form=st.sampled_from(["split", "records", "inputs", "instances"]), data=st.data())
def test_json_rows_are_counted_exactly_whatever_the_strings_hold(table, form, data):
    rows = table.to_dict(orient="records")
    if form == "split":
        payload = {"dataframe_split": {"columns": list(table.columns), "data": table.to_numpy().tolist()}}
        if data.draw(st.booleans()):
            payload["dataframe_split"]["index"] = list(range(len(table)))
    elif form == "records":
        payload = {"dataframe_records": rows}
    else:  # a list of records or of lists
        payload = {form: rows if data.draw(st.booleans()) else table.to_numpy().tolist()}
    body = _json(payload, data.draw)
    assert guard._json_rows(body) == len(table)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(guard, "MAX_ROWS", LIMIT)
        assert (guard.refusal(body, "application/json") is not None) == (len(table) > LIMIT)


@BOUNDED
@given(table=tables(strings=False), data=st.data())
def test_json_columns_count_their_values(table, data):
    body = _json({"inputs": table.to_dict(orient="list")}, data.draw)
    assert guard._json_rows(body) == max(len(table), 1)  # a value leaves no trace: empty columns count one


@BOUNDED
@given(table=tables(), blank=st.booleans())
def test_csv_refusals_hold_more_rows_than_the_limit(table, blank):
    """Over the limit only when pandas reads more rows: quotes (a field may hold a line break) and blank
    lines make an over-limit count uncertain, and uncertain bodies go to MLflow's parser."""
    text = table.drop(columns="nested", errors="ignore").to_csv(index=False)
    if blank:
        text = text.replace("\n", "\n \n", 1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(guard, "MAX_ROWS", LIMIT)
        refused = guard.refusal(text.encode(), "text/csv; charset=utf-8") is not None
        if refused:
            assert len(pd.read_csv(io.StringIO(text))) > LIMIT
        if '"' not in text and not blank:
            assert refused == (len(table) > LIMIT)


def test_parquet_rows_come_from_the_footer():
    table = pd.DataFrame(np.zeros((MAX_ROWS + 1, 2)), columns=["tempo", "rms_mean"])
    problem = guard.refusal(table.to_parquet(), "application/vnd.apache.parquet")
    assert (
        problem is not None
        and str(problem) == f"too many rows: {MAX_ROWS + 1} in one request, the limit is {MAX_ROWS}"
    )
    assert guard.count_rows(b"PAR1 not parquet", "application/vnd.apache.parquet") is None


def test_a_real_over_limit_batch_is_refused_in_every_format():
    """GTZAN-like rows, 100,001 of them, as clients send batches."""
    rows = pd.DataFrame(np.random.default_rng(0).normal(size=(MAX_ROWS + 1, 3)), columns=FEATURE_COLUMNS[:3])
    bodies = {
        "application/json": json.dumps(
            {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
        ),
        "text/csv": rows.to_csv(index=False),
    }
    for content_type, text in bodies.items():
        assert guard.count_rows(text.encode(), content_type) == MAX_ROWS + 1
    small = json.dumps({"dataframe_records": rows.head(10).to_dict(orient="records")}).encode()
    assert (
        guard.count_rows(small, "application/json") is None
    )  # too short to hold MAX_ROWS rows: not looked at


def test_bodies_over_the_byte_limit_are_refused_as_too_large(monkeypatch):
    monkeypatch.setattr(guard, "MAX_REQUEST_BYTES", 100)
    problem = guard.refusal(b"x" * 101, "application/json")
    assert isinstance(problem, RequestError) and problem.kind == "too_large"
    assert f"the limit is {100 / 2**20:g} MiB" in str(problem)
    assert guard.refusal(b"x" * 100, "application/json") is None
    assert MAX_REQUEST_BYTES >= 2 * (4 * 32 * 2**20 // 3)  # base64 of the audio limit fits, twice over


def _original_invocations(data, content_type, model, input_schema):
    """Stands in for MLflow's ``invocations``: records what it was given."""
    _original_invocations.calls.append((data, content_type))
    if data == b"broken":
        raise MlflowException.invalid_parameter_value("Input: " + "x" * 100_000 + " the end")
    return "answered"


_original_invocations.calls = []


def test_the_guard_refuses_like_the_model_and_passes_everything_else_on():
    wrapped = guard.guarded(_original_invocations)
    body = pd.DataFrame(np.zeros((MAX_ROWS + 1, 1)), columns=["tempo"]).to_csv(index=False).encode()
    with pytest.raises(MlflowException) as refused:
        wrapped(body, "text/csv", None, None)
    answer = json.loads(refused.value.serialize_as_json())
    assert refused.value.get_http_status_code() == 400
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert answer["genre_kind"] == "invalid" and answer["genre_subject"] is None
    assert (
        answer["genre_detail"]
        == answer["message"]
        == f"too many rows: {MAX_ROWS + 1} in one request, the limit is {MAX_ROWS}"
    )
    # What GenrePyfunc.predict raises for the same error: the same fields.
    model_answer = json.loads(guard.invalid_request(RequestError("too many rows")).serialize_as_json())
    assert model_answer.keys() == answer.keys()

    assert wrapped(b"a,b\n1,2\n", "text/csv", None, None) == "answered"
    assert wrapped(b"{}", None, None, None) == "answered"
    assert _original_invocations.calls[-1] == (b"{}", "")  # MLflow's 415, not its 500 (None.split)
    with pytest.raises(MlflowException) as long:
        wrapped(b"broken", "application/json", None, None)
    assert len(long.value.message) < 2 * guard.MESSAGE_KEEP + 100
    assert long.value.message.startswith("Input: xxx") and long.value.message.endswith("x the end")
    assert f"[... {len('Input: ') + 100_000 + len(' the end') - 2000} characters ...]" in long.value.message


def test_install_acts_only_inside_the_scoring_server(monkeypatch):
    original = scoring_server.invocations
    monkeypatch.setattr(scoring_server, "invocations", original)  # restored whatever happens
    monkeypatch.delenv(scoring_server._SERVER_MODEL_PATH, raising=False)
    assert guard.install() is False and scoring_server.invocations is original

    monkeypatch.setenv(scoring_server._SERVER_MODEL_PATH, "file:///model")
    assert guard.install() is True and scoring_server.invocations is not original
    wrapped = scoring_server.invocations
    assert guard.install() is True and scoring_server.invocations is wrapped  # once, however often loaded
    assert wrapped.__wrapped__ is original


def test_install_stands_back_from_an_mlflow_it_was_not_written_for(monkeypatch, caplog):
    def invocations(request, model):  # a future MLflow's function, say
        return None

    monkeypatch.setattr(scoring_server, "invocations", invocations)
    monkeypatch.setenv(scoring_server._SERVER_MODEL_PATH, "file:///model")
    assert guard.install() is False and scoring_server.invocations is invocations
    assert "not the function this guard was written for" in caplog.text
